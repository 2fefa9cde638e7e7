//! A batch in the table's shape: columns by name in the table's order, each cast to the table's
//! type, a value or column that does not fit failing with the file and column named.

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{Schema, SchemaRef};

use super::IngestError;

pub(super) fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn strip_metadata(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_metadata(Default::default()))
            .collect::<Vec<_>>(),
    ))
}

/// Puts `batch` into the table's shape: columns by name in the table's order, cast to the
/// table's types (a value that does not convert fails, naming the column), missing nullable
/// columns as nulls. A column the table does not have fails the file.
pub fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    file: &str,
) -> Result<RecordBatch, IngestError> {
    let schema = batch.schema();
    for f in schema.fields() {
        if target.field_with_name(f.name()).is_err() {
            return Err(IngestError::column(
                file,
                f.name(),
                format!("is not in the table (its columns: {})", column_list(target)),
            ));
        }
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for t in target.fields() {
        let col = match schema.index_of(t.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == t.data_type() {
                    c.clone()
                } else {
                    cast_with_options(c, t.data_type(), &strict).map_err(|e| {
                        IngestError::column(
                            file,
                            t.name(),
                            format!(
                                "cannot be stored as {} ({})",
                                t.data_type(),
                                e.to_string().trim_start_matches("Cast error: ")
                            ),
                        )
                    })?
                }
            }
            Err(_) if t.is_nullable() => new_null_array(t.data_type(), batch.num_rows()),
            Err(_) => {
                return Err(IngestError::column(
                    file,
                    t.name(),
                    "is missing, and the table requires it".into(),
                ))
            }
        };
        if !t.is_nullable() && col.null_count() > 0 {
            return Err(IngestError::column(
                file,
                t.name(),
                "has nulls, and the table requires a value".into(),
            ));
        }
        columns.push(col);
    }
    RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| IngestError::file(file, format!("does not fit the table: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

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
        let out = conform(&b, &target(), "f.csv").expect("conforms");
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
        let e = conform(&b, &target(), "in/bad.csv").expect_err("'one' is no number");
        let msg = e.to_string();
        assert!(msg.contains("in/bad.csv") && msg.contains("'id'"), "{msg}");

        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("extra", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .expect("batch");
        let msg = conform(&b, &target(), "f.json")
            .expect_err("extra")
            .to_string();
        assert!(msg.contains("'extra' is not in the table"), "{msg}");
    }
}
