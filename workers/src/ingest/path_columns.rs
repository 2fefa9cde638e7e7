//! Columns from a file's path (`partition_columns_from_path`): Hive-style directories between the
//! source prefix and the file name (`dt=2025-01-01/region=eu/part-1.json`) give every row of the
//! file a value, URL-decoded; `__HIVE_DEFAULT_PARTITION__` is null. Directories of another form
//! are passed over.
//!
//! A column's type is its `schema_hints` type, or, when it is first added to the table, inferred
//! from that file's value: all digits is a bigint, `YYYY-MM-DD` a date, anything else (and null) a
//! string. The path's value replaces any value of a column of that name in the file. A value that
//! does not convert to the column's type makes the file bad (the run fails under `abort`, the file
//! is rejected otherwise). At most [`MAX_PATH_COLUMNS`] columns, names of 1 to 256 characters.

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use autoloader::ingestions::options::SchemaHint;

use super::evolve::{self, MAX_COLUMN_NAME_CHARS};
use super::fit;
use super::IngestError;

/// Most columns one file's path may give.
pub const MAX_PATH_COLUMNS: usize = 32;
/// The value Hive writes for a null partition value.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// The columns `relative` (a file's path below the source prefix) names, in path order.
pub fn parse(relative: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let segments: Vec<&str> = relative.split('/').collect();
    let dirs = &segments[..segments.len().saturating_sub(1)];
    for seg in dirs {
        let Some((key, value)) = seg.split_once('=') else {
            continue;
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("path segment '{seg}' is not UTF-8 once decoded"))
        };
        let key = decode(key)?;
        if key.is_empty()
            || key.chars().count() > MAX_COLUMN_NAME_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(format!(
                "path segment '{seg}': a column name from the path is 1 to \
                 {MAX_COLUMN_NAME_CHARS} printable characters"
            ));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("the path names column '{key}' twice"));
        }
        if out.len() == MAX_PATH_COLUMNS {
            return Err(format!(
                "the path names more than {MAX_PATH_COLUMNS} columns"
            ));
        }
        let value = match value {
            HIVE_NULL => None,
            v => Some(decode(v)?),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// The type a column first seen with `value` gets, without a hint.
pub fn inferred_type(value: Option<&str>) -> DataType {
    let Some(v) = value else {
        return DataType::Utf8;
    };
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<i64>().is_ok() {
        return DataType::Int64;
    }
    if v.len() == 10 && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
        return DataType::Date32;
    }
    DataType::Utf8
}

/// The columns of `values` as the table would add them: hinted, else inferred.
pub fn fields(values: &[(String, Option<String>)], hints: &[SchemaHint]) -> Vec<Field> {
    values
        .iter()
        .map(|(name, value)| {
            let t = match hints.iter().find(|h| h.column == *name) {
                Some(h) => evolve::hint_type(h.hint),
                None => inferred_type(value.as_deref()),
            };
            Field::new(name, t, true)
        })
        .collect()
}

/// One file's path values, each converted to its column's type in `target`.
#[derive(Debug, Clone, Default)]
pub struct PathValues(Vec<(String, ArrayRef)>);

impl PathValues {
    /// `values` as `target`'s types; a value that does not convert fails the file, naming the
    /// column.
    pub fn typed(
        values: &[(String, Option<String>)],
        target: &Schema,
        file: &str,
    ) -> Result<PathValues, IngestError> {
        let mut out = Vec::with_capacity(values.len());
        for (name, value) in values {
            let Ok(field) = target.field_with_name(name) else {
                continue;
            };
            let text: ArrayRef = Arc::new(StringArray::from(vec![value.as_deref()]));
            let converted = match fit::convert(&text, field.data_type()) {
                Ok(c) if c.null_count() == text.null_count() => c,
                _ => {
                    return Err(IngestError::column(
                        file,
                        name,
                        format!(
                            "cannot take the value '{}' of the file's path as {}",
                            value.as_deref().unwrap_or_default(),
                            field.data_type()
                        ),
                    ))
                }
            };
            out.push((name.clone(), converted));
        }
        Ok(PathValues(out))
    }

    /// The value of column `name` for `rows` rows, as `to`, if the path gives it.
    pub fn column(&self, name: &str, to: &DataType, rows: usize) -> Option<ArrayRef> {
        let (_, one) = self.0.iter().find(|(n, _)| n == name)?;
        let one = if one.data_type() == to {
            one.clone()
        } else {
            fit::convert(one, to).ok()?
        };
        if one.is_null(0) {
            return Some(new_null_array(to, rows));
        }
        let zeros = UInt32Array::from(vec![0u32; rows]);
        arrow_select::take::take(one.as_ref(), &zeros, None).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_directories_become_columns() {
        let got = parse("dt=2025-01-01/misc/region=eu%2Fwest/n=__HIVE_DEFAULT_PARTITION__/f.json")
            .expect("parsed");
        assert_eq!(
            got,
            vec![
                ("dt".to_owned(), Some("2025-01-01".to_owned())),
                ("region".to_owned(), Some("eu/west".to_owned())),
                ("n".to_owned(), None),
            ]
        );
        assert!(parse("a=1.json").expect("file name only").is_empty());
        assert!(parse("a=1/a=2/f.json")
            .expect_err("twice")
            .contains("twice"));
        let deep: String = (0..=MAX_PATH_COLUMNS).map(|i| format!("c{i}=1/")).collect();
        assert!(parse(&format!("{deep}f.json"))
            .expect_err("too many")
            .contains("more than 32"));
        assert!(parse(&format!("{}=1/f.json", "k".repeat(257)))
            .expect_err("long")
            .contains("1 to 256"));
        assert!(parse("=1/f.json").is_err());
    }

    #[test]
    fn types_are_inferred_from_the_first_value() {
        assert_eq!(inferred_type(Some("20250101")), DataType::Int64);
        assert_eq!(inferred_type(Some("2025-01-31")), DataType::Date32);
        assert_eq!(inferred_type(Some("2025-02-31")), DataType::Utf8);
        assert_eq!(inferred_type(Some("99999999999999999999")), DataType::Utf8);
        assert_eq!(inferred_type(Some("-5")), DataType::Utf8);
        assert_eq!(inferred_type(Some("eu")), DataType::Utf8);
        assert_eq!(inferred_type(None), DataType::Utf8);
    }

    #[test]
    fn values_convert_to_the_tables_types_or_fail_naming_the_column() {
        let target = Schema::new(vec![
            Field::new("dt", DataType::Date32, true),
            Field::new("n", DataType::Int64, true),
        ]);
        let values = parse("dt=2025-01-02/n=__HIVE_DEFAULT_PARTITION__/f.json").expect("parsed");
        let typed = PathValues::typed(&values, &target, "f.json").expect("typed");
        let dt = typed.column("dt", &DataType::Date32, 3).expect("dt");
        assert_eq!((dt.len(), dt.null_count()), (3, 0));
        let n = typed.column("n", &DataType::Int64, 3).expect("n");
        assert_eq!(n.null_count(), 3);
        let bad = parse("dt=yesterday/f.json").expect("parsed");
        let e = PathValues::typed(&bad, &target, "f.json")
            .expect_err("not a date")
            .to_string();
        assert!(
            e.contains("column 'dt'") && e.contains("'yesterday'"),
            "{e}"
        );
    }
}
