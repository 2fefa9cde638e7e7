//! Fitting a batch to the table, value by value: columns by name in the table's order, each
//! converted to the table's type. Where a value does not convert, the row has a problem (the
//! caller fails the file, rejects it or drops the row, as `on_error` says), or, under `rescue`,
//! the value goes into `_rescued_data` and the row loads. Columns the table lacks fail, are
//! dropped, or are rescued.
//!
//! Timestamps are converted by the rules `schema_hints` documents: text with an offset or `Z` is
//! that instant, text without one is UTC (or, for a column without a zone, the wall-clock time as
//! written), a number is seconds since the epoch.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use serde_json::{Map, Value};

use super::evolve::RESCUED;
use super::IngestError;

/// The key of `_rescued_data` naming the file the row came from.
pub const RESCUED_FILE: &str = "_file_path";

/// What happens to a column the table lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// The file fails, naming the column.
    Fail,
    /// Its values are dropped.
    Drop,
    /// Its values go into `_rescued_data`.
    Rescue,
}

/// A record that cannot load as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// The row within the batch.
    pub row: usize,
    pub column: Option<String>,
    pub reason: String,
}

/// Longest piece of a value an error quotes (`_rescued_data` keeps values whole).
const QUOTED_CHARS: usize = 80;

fn quoted(s: &str) -> String {
    if s.chars().count() <= QUOTED_CHARS {
        format!("'{s}'")
    } else {
        let head: String = s.chars().take(QUOTED_CHARS).collect();
        format!("'{head}…'")
    }
}

/// Fits `batch` to `target`. `rescued` holds, per row, values already rescued (the keys of a
/// JSON record the table lacks); it may be empty. Returns the batch in `target`'s shape, every
/// row included, and the rows with problems (under `rescue`, only rows whose problem is not a
/// value: a required column without one).
pub fn fit(
    batch: &RecordBatch,
    target: &SchemaRef,
    unknown: Unknown,
    mut rescued: Vec<Option<Map<String, Value>>>,
    file: &str,
) -> Result<(RecordBatch, Vec<RowProblem>), IngestError> {
    let rows = batch.num_rows();
    let rescue = unknown == Unknown::Rescue;
    if rescue && rescued.len() != rows {
        rescued = vec![None; rows];
    }
    let schema = batch.schema();
    for (i, f) in schema.fields().iter().enumerate() {
        if target.field_with_name(f.name()).is_ok() {
            continue;
        }
        match unknown {
            Unknown::Fail => return Err(IngestError::not_in_table(file, f.name(), target)),
            Unknown::Drop => {}
            Unknown::Rescue => {
                let c = batch.column(i);
                for (row, slot) in rescued.iter_mut().enumerate() {
                    if c.is_valid(row) {
                        slot.get_or_insert_with(Map::new)
                            .insert(f.name().clone(), json_value(c, row));
                    }
                }
            }
        }
    }
    let mut problems = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for t in target.fields() {
        if rescue && t.name() == RESCUED {
            // Filled below, once every column has had its say.
            columns.push(new_null_array(&DataType::Utf8, rows));
            continue;
        }
        let col = match schema.index_of(t.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == t.data_type() {
                    c.clone()
                } else {
                    let converted = convert(c, t.data_type()).map_err(|e| {
                        IngestError::column(
                            file,
                            t.name(),
                            format!("cannot be stored as {}: {e}", t.data_type()),
                        )
                    })?;
                    if converted.null_count() > c.null_count() {
                        for row in 0..rows {
                            if c.is_valid(row) && converted.is_null(row) {
                                if let (true, Some(slot)) = (rescue, rescued.get_mut(row)) {
                                    slot.get_or_insert_with(Map::new)
                                        .insert(t.name().clone(), json_value(c, row));
                                } else {
                                    problems.push(RowProblem {
                                        row,
                                        column: Some(t.name().clone()),
                                        reason: format!(
                                            "value {} cannot be stored as {}",
                                            quoted(&display(c, row)),
                                            t.data_type()
                                        ),
                                    });
                                }
                            }
                        }
                    }
                    converted
                }
            }
            Err(_) if t.is_nullable() => new_null_array(t.data_type(), rows),
            Err(_) => {
                return Err(IngestError::column(
                    file,
                    t.name(),
                    "is missing, and the table requires it".into(),
                ))
            }
        };
        if !t.is_nullable() && col.null_count() > 0 {
            for row in 0..rows {
                if col.is_null(row) {
                    problems.push(RowProblem {
                        row,
                        column: Some(t.name().clone()),
                        reason: "has no value, and the table requires one".into(),
                    });
                }
            }
        }
        columns.push(col);
    }
    if rescue {
        if let Ok(at) = target.index_of(RESCUED) {
            let mut b = StringBuilder::new();
            for slot in &mut rescued {
                match slot {
                    Some(m) => {
                        // As Auto Loader does: the rescued values say which file they came from.
                        m.insert(RESCUED_FILE.to_owned(), Value::String(file.to_owned()));
                        b.append_value(Value::Object(std::mem::take(m)).to_string())
                    }
                    None => b.append_null(),
                }
            }
            columns[at] = Arc::new(b.finish());
        }
    }
    problems.sort_by_key(|p| p.row);
    let out = RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| IngestError::file(file, format!("does not fit the table: {e}")))?;
    Ok((out, problems))
}

/// `c` as `to`: arrow's cast, where a value that does not convert becomes null, except that
/// text and numbers become timestamps by the documented rules.
pub fn convert(c: &ArrayRef, to: &DataType) -> Result<ArrayRef, arrow_schema::ArrowError> {
    if let DataType::Timestamp(TimeUnit::Microsecond, tz) = to {
        let micros: Option<TimestampMicrosecondArray> = match c.data_type() {
            DataType::Utf8 => Some(
                c.as_string::<i32>()
                    .iter()
                    .map(|v| v.and_then(text_micros))
                    .collect(),
            ),
            DataType::Int64 => Some(
                c.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.and_then(|s| s.checked_mul(1_000_000)))
                    .collect(),
            ),
            DataType::Float64 => Some(
                c.as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.and_then(float_micros))
                    .collect(),
            ),
            _ => None,
        };
        if let Some(m) = micros {
            return Ok(Arc::new(m.with_timezone_opt(tz.clone())));
        }
    }
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(c, to, &safe)
}

fn float_micros(s: f64) -> Option<i64> {
    let m = (s * 1e6).round();
    (m.is_finite() && m.abs() < 9.2e18).then_some(m as i64)
}

/// A timestamp written as text: a number of seconds, or a date-time (RFC 3339 or the forms
/// arrow reads; without an offset, UTC).
fn text_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return n.checked_mul(1_000_000);
    }
    if let Ok(f) = s.parse::<f64>() {
        return float_micros(f);
    }
    arrow_cast::parse::string_to_datetime(&chrono::Utc, s)
        .ok()
        .map(|d| d.timestamp_micros())
}

/// Row `row` of `c` as text.
fn display(c: &ArrayRef, row: usize) -> String {
    if let DataType::Utf8 = c.data_type() {
        return c.as_string::<i32>().value(row).to_owned();
    }
    match ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()) {
        Ok(f) => f.value(row).to_string(),
        Err(_) => String::new(),
    }
}

/// Row `row` of `c` as the JSON value `_rescued_data` keeps: text stays text, numbers and
/// booleans stay themselves, anything else is its text.
fn json_value(c: &ArrayRef, row: usize) -> Value {
    let text = display(c, row);
    match c.data_type() {
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64 => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        _ => Value::String(text),
    }
}

/// `batch` without the rows in `drop` (sorted).
pub fn without_rows(batch: &RecordBatch, drop: &[usize]) -> Result<RecordBatch, IngestError> {
    if drop.is_empty() {
        return Ok(batch.clone());
    }
    let mut keep = vec![true; batch.num_rows()];
    for &r in drop {
        if let Some(k) = keep.get_mut(r) {
            *k = false;
        }
    }
    let mask = arrow_array::BooleanArray::from(keep);
    arrow_select::filter::filter_record_batch(batch, &mask)
        .map_err(|e| IngestError::Catalog(format!("dropping rejected rows: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    fn target(rescue: bool) -> SchemaRef {
        let mut f = vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ];
        if rescue {
            f.push(Field::new(RESCUED, DataType::Utf8, true));
        }
        Arc::new(Schema::new(f))
    }

    fn raw() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, true),
                Field::new("ts", DataType::Utf8, true),
                Field::new("extra", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![Some("1"), Some("two"), None])),
                Arc::new(StringArray::from(vec![
                    Some("2024-03-01T10:00:00+01:00"),
                    Some("1700000000"),
                    Some("2024-03-01 09:00:00"),
                ])),
                Arc::new(StringArray::from(vec![None, Some("x"), None])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn values_that_do_not_convert_are_problems_naming_row_and_column() {
        let (out, problems) =
            fit(&raw(), &target(false), Unknown::Drop, vec![], "f").expect("fits");
        assert_eq!(
            problems,
            vec![RowProblem {
                row: 1,
                column: Some("id".into()),
                reason: "value 'two' cannot be stored as Int64".into()
            }]
        );
        let ts = out
            .column(1)
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        // 10:00+01:00 is 09:00Z, as is the zone-less 09:00; the number is epoch seconds.
        assert_eq!(ts.value(0), ts.value(2));
        assert_eq!(ts.value(1), 1_700_000_000_000_000);
        let e = fit(&raw(), &target(false), Unknown::Fail, vec![], "in/f.csv").expect_err("extra");
        assert!(
            e.to_string().contains("column 'extra' is not in the table"),
            "{e}"
        );
    }

    #[test]
    fn rescue_keeps_the_row_and_the_value() {
        let (out, problems) =
            fit(&raw(), &target(true), Unknown::Rescue, vec![], "f").expect("fits");
        assert!(problems.is_empty());
        let ids = out
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ids");
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![Some(1), None, None]);
        let rescued = out.column(2).as_string::<i32>();
        assert!(rescued.is_null(0));
        let row1: Value = serde_json::from_str(rescued.value(1)).expect("json");
        assert_eq!(
            row1,
            serde_json::json!({"id": "two", "extra": "x", "_file_path": "f"})
        );
        assert!(rescued.is_null(2));
    }

    #[test]
    fn dropping_rows_keeps_the_others_in_order() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3, 4]))],
        )
        .expect("batch");
        let out = without_rows(&b, &[1, 3]).expect("filtered");
        let ids = out
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ids");
        assert_eq!(ids.values(), &[1, 3]);
    }
}
