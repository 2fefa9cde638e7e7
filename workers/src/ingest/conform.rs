//! A batch in the table's shape: columns by name in the table's order, each converted to the
//! table's type, a value or column that does not fit failing with the file and column named.

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};

use super::fit::{fit, Unknown};
use super::IngestError;

pub(super) fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Puts `batch` into the table's shape: columns by name in the table's order, converted to the
/// table's types ([`fit`]), missing nullable columns as nulls. A value that does not convert
/// fails the file, naming the column; a column the table does not have fails it too, unless
/// `unknown` says to drop it. (Which record it was, [`super::exact`] finds.)
pub fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    unknown: Unknown,
    file: &str,
) -> Result<RecordBatch, IngestError> {
    let (out, problems) = fit(batch, target, unknown, Vec::new(), file)?;
    match problems.into_iter().next() {
        None => Ok(out),
        Some(p) => Err(match p.column {
            Some(c) => IngestError::file(file, format!("column '{c}': {}", p.reason)),
            None => IngestError::file(file, p.reason),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;

    fn target() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn conform_orders_casts_and_fills() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["1", "2"]))],
        )
        .expect("batch");
        let out = conform(&b, &target(), Unknown::Fail, "f.csv").expect("conforms");
        let ids = out
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64");
        assert_eq!(ids.values(), &[1, 2]);
        assert_eq!(out.column(1).null_count(), 2, "missing column is null");
    }

    #[test]
    fn conform_names_the_file_and_column_that_do_not_fit() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["1", "one"]))],
        )
        .expect("batch");
        let e =
            conform(&b, &target(), Unknown::Fail, "in/bad.csv").expect_err("'one' is no number");
        let msg = e.to_string();
        assert!(msg.contains("in/bad.csv") && msg.contains("'id'"), "{msg}");

        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("extra", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .expect("batch");
        let msg = conform(&b, &target(), Unknown::Fail, "f.json")
            .expect_err("extra")
            .to_string();
        assert!(msg.contains("'extra' is not in the table"), "{msg}");
    }
}
