//! Schema hints (`options.schema_hints`): the types a user gives some columns instead of the
//! inferred ones, as `"id bigint, ts timestamp, amount decimal(12,2)"`. They apply when the table
//! is created, and to columns added to it later; a column the table already has keeps its type.
//!
//! Types, by the names Spark SQL and Databricks use (case does not matter):
//!
//! | hint | Iceberg type |
//! |---|---|
//! | `boolean` | boolean |
//! | `int`, `integer` | int |
//! | `bigint`, `long` | long |
//! | `float` | float |
//! | `double` | double |
//! | `decimal(p,s)` (1 ≤ p ≤ 38, 0 ≤ s ≤ p) | decimal(p,s) |
//! | `string` | string |
//! | `binary` | binary |
//! | `date` | date |
//! | `timestamp` | timestamptz (an instant, stored in UTC) |
//! | `timestamp_ntz` | timestamp (a wall-clock time, no zone) |
//!
//! Values become timestamps by these rules: text with an offset or `Z` is that instant; text
//! without one is taken as UTC for `timestamp` and as written for `timestamp_ntz`; a number is
//! seconds since 1970-01-01T00:00:00Z (a fraction keeps microseconds).

/// Most hints one ingestion may give.
pub const MAX_HINTS: usize = 500;
/// Longest column name a hint may name.
pub const MAX_NAME_CHARS: usize = 256;

/// A hinted type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintType {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    String,
    Binary,
    Date,
    /// An instant (Iceberg `timestamptz`).
    Timestamp,
    /// A wall-clock time without a zone (Iceberg `timestamp`).
    TimestampNtz,
}

/// One hint: a top-level column and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaHint {
    pub column: String,
    pub hint: HintType,
}

/// Parses `"name type, name type, …"`. A name is letters, digits and `_` not starting with a
/// digit, or any text in backquotes (a backquote inside doubled). Each column at most once.
pub fn parse_hints(text: &str) -> Result<Vec<SchemaHint>, String> {
    let mut hints: Vec<SchemaHint> = Vec::new();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(
            "schema_hints must name at least one column, as 'id bigint, ts timestamp'".into(),
        );
    }
    while !rest.is_empty() {
        if hints.len() == MAX_HINTS {
            return Err(format!("schema_hints may name at most {MAX_HINTS} columns"));
        }
        let (column, after) = name(rest)?;
        let after = after.trim_start();
        // The type runs to the next comma outside parentheses.
        let mut depth = 0usize;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => return true,
                    _ => {}
                }
                false
            })
            .map_or(after.len(), |(i, _)| i);
        let hint = hint_type(after[..end].trim()).map_err(|e| format!("column '{column}': {e}"))?;
        if hints.iter().any(|h| h.column == column) {
            return Err(format!("schema_hints names column '{column}' twice"));
        }
        hints.push(SchemaHint { column, hint });
        rest = after[end..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            if rest.is_empty() {
                return Err("schema_hints ends with a comma".into());
            }
        }
    }
    Ok(hints)
}

fn name(text: &str) -> Result<(String, &str), String> {
    let (name, rest) = if let Some(quoted) = text.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        loop {
            match chars.next() {
                None => return Err("schema_hints has a backquoted name that does not end".into()),
                Some((i, '`')) => {
                    if quoted[i + 1..].starts_with('`') {
                        name.push('`');
                        chars.next();
                    } else {
                        break (name, &quoted[i + 1..]);
                    }
                }
                Some((_, c)) => name.push(c),
            }
        }
    } else {
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let name = &text[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            let shown: String = text.chars().take(20).collect();
            return Err(format!(
                "schema_hints expects a column name at '{shown}' (letters, digits and _, or \
                 `backquoted`)"
            ));
        }
        (name.to_owned(), &text[end..])
    };
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "schema_hints column names must be 1 to {MAX_NAME_CHARS} printable characters"
        ));
    }
    Ok((name, rest))
}

fn hint_type(text: &str) -> Result<HintType, String> {
    let lower = text.to_ascii_lowercase();
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(match compact.as_str() {
        "boolean" | "bool" => HintType::Boolean,
        "int" | "integer" => HintType::Int,
        "bigint" | "long" => HintType::Long,
        "float" | "real" => HintType::Float,
        "double" => HintType::Double,
        "string" => HintType::String,
        "binary" => HintType::Binary,
        "date" => HintType::Date,
        "timestamp" => HintType::Timestamp,
        "timestamp_ntz" => HintType::TimestampNtz,
        "decimal" => HintType::Decimal {
            precision: 10,
            scale: 0,
        },
        t if t.starts_with("decimal(") && t.ends_with(')') => {
            let inner = &t["decimal(".len()..t.len() - 1];
            let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
            let (Ok(precision), Ok(scale)) = (p.parse::<u8>(), s.parse::<u8>()) else {
                return Err(format!("'{text}' is not decimal(precision, scale)"));
            };
            if !(1..=38).contains(&precision) || scale > precision {
                return Err(format!(
                    "'{text}': precision must be 1 to 38 and scale 0 to the precision"
                ));
            }
            HintType::Decimal { precision, scale }
        }
        "" => return Err("has no type".into()),
        _ => {
            let shown: String = text.chars().take(40).collect();
            return Err(format!(
                "unknown type '{shown}' (known: boolean, int, bigint, float, double, \
                 decimal(p,s), string, binary, date, timestamp, timestamp_ntz)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_parse_names_and_types() {
        let h = parse_hints("id bigint, ts TIMESTAMP,amount decimal(12, 2), `odd name`` x` string")
            .expect("valid");
        assert_eq!(
            h,
            vec![
                SchemaHint {
                    column: "id".into(),
                    hint: HintType::Long
                },
                SchemaHint {
                    column: "ts".into(),
                    hint: HintType::Timestamp
                },
                SchemaHint {
                    column: "amount".into(),
                    hint: HintType::Decimal {
                        precision: 12,
                        scale: 2
                    }
                },
                SchemaHint {
                    column: "odd name` x".into(),
                    hint: HintType::String
                },
            ]
        );
    }

    /// Any text at all parses or is refused with a message: never a panic.
    #[test]
    fn any_text_parses_or_is_refused() {
        for text in super::super::pseudo_random_texts(
            "ab_1 ,()`\t\u{e9}\u{1F600}decimal(38,2)intbigint",
            40,
            20_000,
        ) {
            match parse_hints(&text) {
                Ok(h) => assert!(!h.is_empty() && h.len() <= MAX_HINTS),
                Err(e) => assert!(!e.is_empty()),
            }
        }
    }

    #[test]
    fn bad_hints_say_what_is_wrong() {
        for (text, expect) in [
            ("", "at least one column"),
            ("id", "has no type"),
            ("id bigint,", "ends with a comma"),
            ("id varchar", "unknown type 'varchar'"),
            ("amount decimal(40,2)", "precision must be 1 to 38"),
            ("amount decimal(5,6)", "precision must be 1 to 38"),
            ("amount decimal(x)", "is not decimal"),
            ("id int, id long", "names column 'id' twice"),
            ("1id int", "expects a column name"),
            ("`open int", "does not end"),
            ("`` int", "1 to 256 printable"),
        ] {
            let e = parse_hints(text).expect_err(text);
            assert!(e.contains(expect), "{text:?}: {e}");
        }
        let many: Vec<String> = (0..=MAX_HINTS).map(|i| format!("c{i} int")).collect();
        assert!(parse_hints(&many.join(","))
            .expect_err("too many")
            .contains("at most"));
    }
}
