//! The rules a single field obeys, as the OpenAPI document states them: one schema per kind of
//! value (a name, a time of day, a zone, a cron expression, a source path, an option), each
//! accepting exactly what the server accepts for that field on its own. The request types keep
//! their plain Rust types, so parsing and its error messages are the core's; these types exist
//! only for the document (`value_type = ...`).
//!
//! Rules that tie fields together cannot be said field by field; README.md lists them ("Rules
//! OpenAPI cannot express").
//!
//! Patterns are ECMA 262 regular expressions, as JSON Schema reads them. The server trims with
//! Rust's notion of white space (Unicode `White_Space`), so the patterns spell that set out
//! rather than use `\s`, whose meaning differs between regex dialects.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema,
    SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use autoloader::ingestions::definition::MAX_NAME_CHARS;
use autoloader::ingestions::listing::INTERVAL_PATTERN;
use autoloader::ingestions::options::{Discovery, OnError, SchemaEvolution, OPTION_KEYS};
use autoloader::ledger::MAX_PATH_BYTES;

/// Unicode `White_Space`, what `str::trim` removes, as the body of a character class.
const WS: &str =
    r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Unicode control characters (`char::is_control`, category Cc), as the body of a class.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";

fn string(pattern: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(pattern))
}

/// At least one character that is not white space (the server trims, then requires a value).
fn non_blank_pattern() -> String {
    format!("[^{WS}]")
}

/// The name of an ingestion or a tenant, as sent: at most 200 characters, no control
/// characters, and not blank (the server trims it).
pub fn name_pattern() -> String {
    // A name character is anything but a control character; one of them is not white space.
    // White space and control characters overlap (tab, U+0085), hence the second class.
    format!(
        r"^[^{CONTROL}]*[^{CONTROL}\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^{CONTROL}]*$"
    )
}

macro_rules! doc_type {
    ($(#[$meta:meta])* $name:ident, $schema:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let schema: Schema = $schema;
                RefOr::T(schema)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

doc_type!(
    /// An ingestion's or a tenant's name.
    Name,
    string(name_pattern())
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .description(Some(
            "At most 200 characters, no control characters, not blank (surrounding spaces are trimmed)",
        ))
        .examples(["Daily AWS CloudTrail Ingestion"])
        .into()
);

doc_type!(
    /// `schedule_time`.
    ScheduleTime,
    string(format!(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|[{WS}]*)$"))
        .description(Some(
            "`HH:MM`, 24-hour; required for daily and weekly schedules (blank means not set)",
        ))
        .examples(["02:00"])
        .into()
);

doc_type!(
    /// `schedule_timezone`: every IANA zone the server knows, or blank for UTC.
    TimeZone,
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(
            std::iter::once("").chain(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())),
        ))
        .description(Some("An IANA time zone (tz database name); blank or omitted means UTC"))
        .examples(["UTC"])
        .into()
);

doc_type!(
    /// `schedule_cron`.
    CronExpression,
    string(cron_pattern())
        .description(Some(
            "5 fields (minute hour day-of-month month day-of-week; `*`, values, `a-b` ranges, \
             `/step`, lists; month and weekday names) or a macro (@yearly, @annually, @monthly, \
             @weekly, @daily, @midnight, @hourly). Any cron given must parse; it is read for \
             custom schedules only, where it is required when enabled and must be able to fire",
        ))
        .examples(["*/15 9-17 * * mon-fri"])
        .into()
);

doc_type!(
    /// `source_path`, whichever source type it is for.
    SourcePathText,
    string(source_path_pattern())
        .max_length(Some(1024))
        .description(Some(
            "`s3://bucket/prefix/` (or `s3a://`) for s3 sources, `file:///absolute/dir/` for local \
             ones (under the server's file roots); at most 1024 bytes",
        ))
        .examples(["s3a://my-logs-bucket/cloudtrail/"])
        .into()
);

doc_type!(
    /// A file's URL as the ledger holds it (`s3://bucket/key`, `file:///dir/name`).
    LedgerPath,
    string(r"^[^\u0000]+$".to_owned())
        .min_length(Some(1))
        .max_length(Some(MAX_PATH_BYTES))
        .description(Some(
            "A file's full URL, as `GET /api/v1/ingestions/{id}/files` lists it; at most 4096 bytes",
        ))
        .examples(["s3://my-logs-bucket/cloudtrail/2025/01/02/events-0001.json"])
        .into()
);

doc_type!(
    /// `destination_table`.
    DestinationTableName,
    string(format!(
        r"^[{WS}]*[A-Za-z_][A-Za-z0-9_]{{0,127}}(\.[A-Za-z_][A-Za-z0-9_]{{0,127}})+[{WS}]*$"
    ))
    .description(Some(
        "`namespace.table` (namespaces may nest), each part an identifier of at most 128 characters",
    ))
    .examples(["security.cloudtrail_logs"])
    .into()
);

doc_type!(
    /// A string holding at least one character that is not white space.
    NonBlankText,
    string(non_blank_pattern()).into()
);

doc_type!(
    /// A yes/no option: a boolean, or the string `true` or `false` in any case.
    OptionFlag,
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Boolean)))
        .item(string(format!(
            r"^[{WS}]*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])[{WS}]*$"
        )))
        .into()
);

doc_type!(
    /// A CSV delimiter or quote: one ASCII character other than a line break, or `\t` spelled
    /// with a backslash.
    CsvCharacter,
    string(r"^([\u0000-\u0009\u000B\u000C\u000E-\u007F]|\\t)$".to_owned())
        .examples([";"])
        .into()
);

doc_type!(
    /// `options.glob`.
    GlobPattern,
    AllOfBuilder::new()
        .item(string(non_blank_pattern()))
        .item(string(r"^[^{}]*(\{[^{}]*\}[^{}]*)*$".to_owned()))
        .description(Some(
            "`*` within a path segment, `**` across segments, `?` one character, `{a,b}` \
             alternatives (not nested; at most 64 in all); at most 512 bytes",
        ))
        .examples(["**/*.json"])
        .into()
);

/// A path segment other than `..`: empty, `.`, or anything longer or not made of dots.
fn path_segment_pattern() -> String {
    let segment_char = format!("[^/{CONTROL}]");
    format!(r"({segment_char}{{3,}}|[^./{CONTROL}]{segment_char}?|\.[^./{CONTROL}]|\.|)")
}

/// An absolute directory with no `..` segment and no control character: a tenant's file root.
fn absolute_dir_pattern() -> String {
    format!(r"^(/{})+$", path_segment_pattern())
}

doc_type!(
    /// A directory of a tenant's `file_roots`.
    AbsoluteDir,
    string(absolute_dir_pattern())
        .max_length(Some(1024))
        .description(Some(
            "An absolute path without `..` or control characters, inside the server's \
             AUTOLOADER_FILE_ROOTS; at most 1024 bytes",
        ))
        .into()
);

/// `s3://bucket[/anything]` or `file:///absolute/dir` with no `..` segment, trimmed.
fn source_path_pattern() -> String {
    let any = format!("[^{CONTROL}]");
    let segment = path_segment_pattern();
    format!(
        r"^[{WS}]*(s3a?://[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9](/{any}*)?|file://(/{segment})+)[{WS}]*$"
    )
}

/// A cron expression as `CronExpr::parse` takes it: a macro, or five fields of comma-separated
/// items (`*`, a value or an `a-b` range, each with an optional `/step`). Values may have leading
/// zeros; months and weekdays may be named in any case. Blank means not set.
pub fn cron_pattern() -> String {
    fn any_case(word: &str) -> String {
        word.chars()
            .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
            .collect()
    }
    fn field(value: &str, step: &str) -> String {
        let item = format!(r"(\*|{value}(-{value})?)(/0*{step})?");
        format!("{item}(,{item})*")
    }
    let names = |list: &[&str]| {
        list.iter()
            .map(|n| any_case(n))
            .collect::<Vec<_>>()
            .join("|")
    };
    let minute = field("0*[1-5]?[0-9]", "([1-9]|[1-5][0-9])");
    let hour = field("0*(1?[0-9]|2[0-3])", "([1-9]|1[0-9]|2[0-3])");
    let dom = field("0*([1-9]|[12][0-9]|3[01])", "([1-9]|[12][0-9]|3[01])");
    let months = names(&[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]);
    let month = field(&format!("(0*([1-9]|1[0-2])|{months})"), "([1-9]|1[0-2])");
    let days = names(&["sun", "mon", "tue", "wed", "thu", "fri", "sat"]);
    let dow = field(&format!("(0*[0-7]|{days})"), "[1-7]");
    let macros = names(&[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ]);
    let sep = format!("[{WS}]+");
    format!("^[{WS}]*(({macros})|{minute}{sep}{hour}{sep}{dom}{sep}{month}{sep}{dow})?[{WS}]*$")
}

doc_type!(
    /// `options`, for the document only: the request keeps the JSON object, which
    /// `IngestOptions::parse` checks (so its messages name each key). A closed object: every key
    /// is optional, and each is described by `OPTION_KEYS`.
    IngestOptionsDoc,
    OPTION_KEYS
        .iter()
        .fold(ObjectBuilder::new(), |o, (key, description)| {
            o.property(*key, described(option_schema(key), description))
        })
        .schema_type(SchemaType::Type(Type::Object))
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .description(Some(
            "Source and format options. `s3_*` keys apply to s3 sources only, `csv_*` keys to \
             the csv format only; secret values are never returned",
        ))
        .into()
);

/// The value one option takes, as `IngestOptions::parse` checks it.
fn option_schema(key: &str) -> Schema {
    let inline = |schema: RefOr<Schema>| match schema {
        RefOr::T(schema) => schema,
        RefOr::Ref(_) => unreachable!("the rules' schemas are plain"),
    };
    match key {
        "s3_endpoint" => string(format!("^[{WS}]*https?://")).into(),
        "s3_region" => string(r"^[a-z0-9]+(-[a-z0-9]+)*$".to_owned())
            .max_length(Some(64))
            .into(),
        "s3_access_key_id" | "s3_secret_access_key" => string(non_blank_pattern()).into(),
        "s3_allow_http" | "s3_path_style" | "csv_header" => inline(OptionFlag::schema()),
        "csv_delimiter" | "csv_quote" => inline(CsvCharacter::schema()),
        "glob" => inline(GlobPattern::schema()),
        "max_files_per_run" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(100_000))
            .into(),
        "max_bytes_per_run" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(u64::MAX as usize))
            .into(),
        "schema_evolution" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(SchemaEvolution::ALL.map(SchemaEvolution::as_str)))
            .default(Some(SchemaEvolution::default().as_str().into()))
            .into(),
        "on_error" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(OnError::ALL.map(OnError::as_str)))
            .default(Some(OnError::default().as_str().into()))
            .into(),
        "schema_hints" => string(non_blank_pattern())
            .examples(["id bigint, ts timestamp, amount decimal(12,2)"])
            .into(),
        "metadata_columns" | "partition_columns_from_path" => inline(OptionFlag::schema()),
        "partition_by" => ArrayBuilder::new()
            .items(string(partition_field_pattern()))
            .max_items(Some(autoloader::ingestions::partitions::MAX_FIELDS))
            .unique_items(true)
            .examples([serde_json::json!(["day(ts)", "region", "bucket(16, id)"])])
            .into(),
        "discovery" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(Discovery::ALL.map(Discovery::as_str)))
            .default(Some(Discovery::default().as_str().into()))
            .into(),
        "full_listing_interval" => string(INTERVAL_PATTERN.to_owned())
            .default(Some("1d".into()))
            .examples(["30m", "6h", "1d"])
            .into(),
        "maintenance" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(["auto", "manual"]))
            .default(Some("auto".into()))
            .into(),
        "snapshot_retention" | "orphan_safety_window" => {
            string(autoloader::ingestions::maintenance::WINDOW_PATTERN.to_owned())
                .examples(["7d", "36h"])
                .into()
        }
        "min_snapshots_to_keep" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(100_000))
            .into(),
        "target_file_size" => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(
                *autoloader::ingestions::maintenance::TARGET_FILE_SIZE_RANGE.start() as usize,
            ))
            .maximum(Some(
                *autoloader::ingestions::maintenance::TARGET_FILE_SIZE_RANGE.end() as usize,
            ))
            .into(),
        other => panic!("option {other} has no documented type"),
    }
}

/// One entry of `partition_by`: a column (identity), or a transform of one. Transform names in
/// any case; the plural forms Spark accepts too.
fn partition_field_pattern() -> String {
    let any_case = |word: &str| -> String {
        word.chars()
            .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c))
            .collect()
    };
    let ws = format!("[{WS}]*");
    let column = format!("{ws}([A-Za-z_][A-Za-z0-9_]*|`([^`{CONTROL}]|``)+`){ws}");
    let number = format!(r"{ws}\+?0*([1-9][0-9]{{0,5}}|1000000){ws}");
    let plain = ["year", "month", "day", "hour"]
        .map(|w| format!("{}({})?", any_case(w), any_case("s")))
        .join("|");
    let plain = format!("{}|{plain}", any_case("identity"));
    let sized = ["bucket", "truncate"].map(any_case).join("|");
    format!(
        r"^({column}|{ws}({plain}){ws}\({column}\){ws}|{ws}({sized}){ws}\({number},{column}\){ws})$"
    )
}

fn described(mut schema: Schema, description: &str) -> Schema {
    let text = Some(description.to_owned());
    match &mut schema {
        Schema::Object(o) => o.description = text,
        Schema::AnyOf(a) => a.description = text,
        Schema::AllOf(a) => a.description = text,
        _ => {}
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_document_every_key() {
        let RefOr::T(Schema::Object(o)) = IngestOptionsDoc::schema() else {
            panic!("options is an object");
        };
        let documented: Vec<&str> = o.properties.keys().map(String::as_str).collect();
        let mut known: Vec<&str> = OPTION_KEYS.iter().map(|(k, _)| *k).collect();
        known.sort();
        assert_eq!(documented, known);
    }
}
