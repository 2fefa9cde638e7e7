//! How a new table is partitioned (`options.partition_by`): a list of Iceberg transforms of
//! top-level columns, `"day(ts)"`, `"region"` (identity), `"bucket(16, id)"`, `"truncate(4, sku)"`.
//! They apply when the loader creates the table; a table that exists keeps its own spec.
//!
//! Each entry is one partition field, named as Iceberg's Java builder (and so Spark's
//! `PARTITIONED BY`) names it: `c` for identity, `c_year`, `c_month`, `c_day`, `c_hour`,
//! `c_bucket`, `c_trunc`. Entries are bounded: at most [`MAX_FIELDS`], column names of at most
//! [`MAX_NAME_CHARS`] characters, bucket counts and truncation widths from 1 to [`MAX_ARGUMENT`],
//! no two fields of one name, and at most one time transform (year, month, day, hour) per column,
//! as Iceberg requires.

use std::fmt;

use super::hints::HintType;

/// Most partition fields one table gets.
pub const MAX_FIELDS: usize = 16;
/// Longest column name a partition field may name.
pub const MAX_NAME_CHARS: usize = 256;
/// Largest bucket count or truncation width.
pub const MAX_ARGUMENT: u32 = 1_000_000;
/// Longest text of one entry (a name of [`MAX_NAME_CHARS`] backquoted, with room to spare).
const MAX_ENTRY_BYTES: usize = 4 * MAX_NAME_CHARS + 64;

/// An Iceberg partition transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    Identity,
    Year,
    Month,
    Day,
    Hour,
    /// Hash of the value into this many buckets.
    Bucket(u32),
    /// Values cut to this width (integers down to a multiple, strings to a prefix).
    Truncate(u32),
}

impl Transform {
    fn name(self) -> &'static str {
        match self {
            Transform::Identity => "identity",
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Day => "day",
            Transform::Hour => "hour",
            Transform::Bucket(_) => "bucket",
            Transform::Truncate(_) => "truncate",
        }
    }

    fn is_time(self) -> bool {
        matches!(
            self,
            Transform::Year | Transform::Month | Transform::Day | Transform::Hour
        )
    }

    /// Whether Iceberg allows this transform of a column of type `t`.
    pub fn accepts(self, t: HintType) -> bool {
        use HintType::*;
        match self {
            Transform::Identity => true,
            Transform::Year | Transform::Month | Transform::Day => {
                matches!(t, Date | Timestamp | TimestampNtz)
            }
            Transform::Hour => matches!(t, Timestamp | TimestampNtz),
            Transform::Bucket(_) => matches!(
                t,
                Int | Long | Decimal { .. } | Date | Timestamp | TimestampNtz | String | Binary
            ),
            Transform::Truncate(_) => matches!(t, Int | Long | Decimal { .. } | String | Binary),
        }
    }

    /// The column types this transform applies to, for messages.
    pub fn applies_to(self) -> &'static str {
        match self {
            Transform::Identity => "any column that is not a struct, list or map",
            Transform::Year | Transform::Month | Transform::Day => {
                "date and timestamp columns (date, timestamp, timestamp_ntz)"
            }
            Transform::Hour => "timestamp columns (timestamp, timestamp_ntz)",
            Transform::Bucket(_) => {
                "int, bigint, decimal, date, timestamp, timestamp_ntz, string and binary columns"
            }
            Transform::Truncate(_) => "int, bigint, decimal, string and binary columns",
        }
    }
}

/// A type's name as `schema_hints` writes it, for messages.
pub fn type_name(t: HintType) -> String {
    match t {
        HintType::Boolean => "boolean".into(),
        HintType::Int => "int".into(),
        HintType::Long => "bigint".into(),
        HintType::Float => "float".into(),
        HintType::Double => "double".into(),
        HintType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        HintType::String => "string".into(),
        HintType::Binary => "binary".into(),
        HintType::Date => "date".into(),
        HintType::Timestamp => "timestamp".into(),
        HintType::TimestampNtz => "timestamp_ntz".into(),
    }
}

/// One partition field: a transform of a top-level column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionField {
    pub column: String,
    pub transform: Transform,
}

impl PartitionField {
    /// The partition field's name, as Iceberg's Java builder and Spark name it.
    pub fn name(&self) -> String {
        let c = &self.column;
        match self.transform {
            Transform::Identity => c.clone(),
            Transform::Year => format!("{c}_year"),
            Transform::Month => format!("{c}_month"),
            Transform::Day => format!("{c}_day"),
            Transform::Hour => format!("{c}_hour"),
            Transform::Bucket(_) => format!("{c}_bucket"),
            Transform::Truncate(_) => format!("{c}_trunc"),
        }
    }

    /// Why this field cannot partition a column of type `t`, if it cannot.
    pub fn check_type(&self, t: HintType) -> Result<(), String> {
        if self.transform.accepts(t) {
            return Ok(());
        }
        Err(format!(
            "{self}: column '{}' is {}; {} applies to {}",
            self.column,
            type_name(t),
            self.transform.name(),
            self.transform.applies_to()
        ))
    }

    /// Parses one entry: `c`, `identity(c)`, `year(c)`, `month(c)`, `day(c)`, `hour(c)` (or the
    /// plural forms Spark also accepts), `bucket(n, c)`, `truncate(w, c)`. A column is letters,
    /// digits and `_` not starting with a digit, or any text in backquotes (a backquote inside
    /// doubled).
    pub fn parse(text: &str) -> Result<PartitionField, String> {
        if text.len() > MAX_ENTRY_BYTES {
            return Err(format!(
                "is longer than {MAX_ENTRY_BYTES} bytes; column names are at most \
                 {MAX_NAME_CHARS} characters"
            ));
        }
        let text = text.trim();
        let Some(open) = text.find('(').filter(|_| !text.starts_with('`')) else {
            return Ok(PartitionField {
                column: column(text)?,
                transform: Transform::Identity,
            });
        };
        let Some(inner) = text[open + 1..].strip_suffix(')') else {
            return Err(format!("'{}' does not end with ')'", shown(text)));
        };
        let name = text[..open].trim().to_ascii_lowercase();
        let with_argument = |make: fn(u32) -> Transform| -> Result<PartitionField, String> {
            let Some((n, c)) = inner.split_once(',') else {
                return Err(format!(
                    "{name} takes a number and a column, as {name}(16, id)"
                ));
            };
            let n = n
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_ARGUMENT).contains(n))
                .ok_or_else(|| {
                    format!(
                        "{name}: '{}' is not a whole number from 1 to {MAX_ARGUMENT}",
                        shown(n.trim())
                    )
                })?;
            Ok(PartitionField {
                column: column(c)?,
                transform: make(n),
            })
        };
        let plain = |transform: Transform| -> Result<PartitionField, String> {
            Ok(PartitionField {
                column: column(inner)?,
                transform,
            })
        };
        match name.as_str() {
            "identity" => plain(Transform::Identity),
            "year" | "years" => plain(Transform::Year),
            "month" | "months" => plain(Transform::Month),
            "day" | "days" => plain(Transform::Day),
            "hour" | "hours" => plain(Transform::Hour),
            "bucket" => with_argument(Transform::Bucket),
            "truncate" => with_argument(Transform::Truncate),
            _ => Err(format!(
                "unknown transform '{}' (known: identity, year, month, day, hour, bucket, \
                 truncate)",
                shown(&name)
            )),
        }
    }
}

impl fmt::Display for PartitionField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = if self
            .column
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !self.column.starts_with(|c: char| c.is_ascii_digit())
        {
            self.column.clone()
        } else {
            format!("`{}`", self.column.replace('`', "``"))
        };
        match self.transform {
            Transform::Bucket(n) | Transform::Truncate(n) => {
                write!(f, "{}({n}, {c})", self.transform.name())
            }
            t => write!(f, "{}({c})", t.name()),
        }
    }
}

/// Parses the whole list, each problem with the index of its entry (`None`: the list itself).
pub fn parse_partition_by(
    value: &serde_json::Value,
) -> Result<Vec<PartitionField>, Vec<(Option<usize>, String)>> {
    let Some(items) = value.as_array() else {
        return Err(vec![(
            None,
            "partition_by must be a list of strings such as [\"day(ts)\", \"region\"]".into(),
        )]);
    };
    if items.len() > MAX_FIELDS {
        return Err(vec![(
            None,
            format!("partition_by may have at most {MAX_FIELDS} fields"),
        )]);
    }
    let mut problems = Vec::new();
    let mut fields: Vec<PartitionField> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(text) = item.as_str() else {
            problems.push((Some(i), "must be a string such as \"day(ts)\"".into()));
            continue;
        };
        let field = match PartitionField::parse(text) {
            Ok(f) => f,
            Err(e) => {
                problems.push((Some(i), e));
                continue;
            }
        };
        if let Some(other) = fields.iter().find(|f| f.name() == field.name()) {
            problems.push((
                Some(i),
                format!(
                    "{field} and {other} are both named '{}'; a table has one partition field \
                     of a name",
                    field.name()
                ),
            ));
            continue;
        }
        if let Some(other) = fields.iter().find(|f| {
            f.column == field.column && f.transform.is_time() && field.transform.is_time()
        }) {
            problems.push((
                Some(i),
                format!(
                    "{field} and {other} are two time transforms of column '{}'; keep one",
                    field.column
                ),
            ));
            continue;
        }
        fields.push(field);
    }
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(problems)
    }
}

fn column(text: &str) -> Result<String, String> {
    let text = text.trim();
    let name = if let Some(quoted) = text.strip_prefix('`') {
        let Some(body) = quoted.strip_suffix('`') else {
            return Err(format!(
                "'{}' has a backquoted column name that does not end",
                shown(text)
            ));
        };
        let mut name = String::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '`' && chars.next_if_eq(&'`').is_none() {
                return Err(format!(
                    "'{}': a backquote inside a backquoted name is doubled",
                    shown(text)
                ));
            }
            name.push(c);
        }
        name
    } else {
        if text.is_empty()
            || text.starts_with(|c: char| c.is_ascii_digit())
            || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "expects a column name at '{}' (letters, digits and _, or `backquoted`)",
                shown(text)
            ));
        }
        text.to_owned()
    };
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "column names must be 1 to {MAX_NAME_CHARS} printable characters"
        ));
    }
    Ok(name)
}

fn shown(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(text: &str) -> PartitionField {
        PartitionField::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn entries_parse_into_fields_named_as_iceberg_names_them() {
        for (text, transform, name, shown) in [
            ("region", Transform::Identity, "region", "identity(region)"),
            (
                " identity( region ) ",
                Transform::Identity,
                "region",
                "identity(region)",
            ),
            ("year(ts)", Transform::Year, "ts_year", "year(ts)"),
            ("MONTHS(ts)", Transform::Month, "ts_month", "month(ts)"),
            ("day(ts)", Transform::Day, "ts_day", "day(ts)"),
            ("hours(ts)", Transform::Hour, "ts_hour", "hour(ts)"),
            (
                "bucket(16, id)",
                Transform::Bucket(16),
                "id_bucket",
                "bucket(16, id)",
            ),
            (
                "truncate(4,sku)",
                Transform::Truncate(4),
                "sku_trunc",
                "truncate(4, sku)",
            ),
        ] {
            let f = field(text);
            assert_eq!(f.transform, transform, "{text}");
            assert_eq!(f.name(), name, "{text}");
            assert_eq!(f.to_string(), shown, "{text}");
        }
        let odd = field("day(`event time`)");
        assert_eq!(odd.column, "event time");
        assert_eq!(odd.name(), "event time_day");
        assert_eq!(odd.to_string(), "day(`event time`)");
        assert_eq!(field("`a``b`").column, "a`b");
        assert_eq!(field("`x(y)`").column, "x(y)");
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (text, expect) in [
            ("", "expects a column name"),
            ("week(ts)", "unknown transform 'week'"),
            ("day(ts", "does not end with ')'"),
            ("bucket(id)", "takes a number and a column"),
            ("bucket(0, id)", "from 1 to 1000000"),
            ("bucket(1000001, id)", "from 1 to 1000000"),
            ("truncate(-1, id)", "from 1 to 1000000"),
            ("truncate(x, id)", "from 1 to 1000000"),
            ("day(1ts)", "expects a column name"),
            ("day(a b)", "expects a column name"),
            ("day(`open)", "does not end"),
            ("day(``)", "1 to 256 printable"),
            ("day(`a`b`)", "doubled"),
        ] {
            let e = PartitionField::parse(text).expect_err(text);
            assert!(e.contains(expect), "{text:?}: {e}");
        }
        let long = format!("day({})", "c".repeat(MAX_NAME_CHARS + 1));
        assert!(PartitionField::parse(&long)
            .expect_err("long")
            .contains("1 to 256"));
        let huge = format!("day({})", "c".repeat(100_000));
        assert!(PartitionField::parse(&huge)
            .expect_err("huge")
            .contains("longer than"));
    }

    #[test]
    fn the_list_is_bounded_and_its_fields_distinct() {
        let ok = parse_partition_by(&json!(["day(ts)", "region", "bucket(8, id)"])).expect("ok");
        assert_eq!(ok.len(), 3);
        assert!(parse_partition_by(&json!([])).expect("empty").is_empty());
        let p = parse_partition_by(&json!("day(ts)")).expect_err("not a list");
        assert_eq!(p[0].0, None);
        let many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("c{i}")).collect();
        let p = parse_partition_by(&json!(many)).expect_err("too many");
        assert!(p[0].1.contains("at most 16"), "{p:?}");
        let p = parse_partition_by(&json!([
            "day(ts)",
            7,
            "bucket(4, id)",
            "bucket(8, id)",
            "hour(ts)",
            "identity(region)",
            "region",
            "week(ts)"
        ]))
        .expect_err("problems");
        let at: Vec<Option<usize>> = p.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [Some(1), Some(3), Some(4), Some(6), Some(7)], "{p:?}");
        assert!(p[1].1.contains("both named 'id_bucket'"), "{p:?}");
        assert!(p[2].1.contains("two time transforms"), "{p:?}");
    }

    #[test]
    fn transforms_take_the_types_iceberg_allows() {
        use HintType::*;
        let dec = Decimal {
            precision: 10,
            scale: 2,
        };
        assert!(field("day(d)").check_type(Date).is_ok());
        assert!(field("hour(t)").check_type(TimestampNtz).is_ok());
        assert!(field("bucket(4, d)").check_type(dec).is_ok());
        assert!(field("truncate(4, s)").check_type(String).is_ok());
        assert!(field("region").check_type(Double).is_ok());
        for (text, t) in [
            ("day(s)", String),
            ("year(n)", Long),
            ("hour(d)", Date),
            ("bucket(4, f)", Double),
            ("bucket(4, b)", Boolean),
            ("truncate(4, d)", Date),
        ] {
            let e = field(text).check_type(t).expect_err(text);
            assert!(e.contains(&format!("is {}", type_name(t))), "{e}");
        }
        let e = field("day(region)").check_type(String).expect_err("string");
        assert_eq!(
            e,
            "day(region): column 'region' is string; day applies to date and timestamp columns \
             (date, timestamp, timestamp_ntz)"
        );
    }

    /// Any text at all parses or is refused with a message: never a panic.
    #[test]
    fn any_text_parses_or_is_refused() {
        for text in super::super::pseudo_random_texts(
            "ab_1 ,()`\t\u{e9}\u{1F600}bucket(truncate(day9",
            30,
            20_000,
        ) {
            match PartitionField::parse(&text) {
                Ok(f) => assert!(!f.column.is_empty()),
                Err(e) => assert!(!e.is_empty()),
            }
        }
    }
}
