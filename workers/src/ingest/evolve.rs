//! The table's schema as files change it: which of a file's columns the table lacks, which
//! types may widen, and the Iceberg schema that results, with field ids that never collide with
//! ones already used. A run writes its data files with the evolved schema and commits the schema
//! in the same fenced commit as the data ([`super::table::commit`]).
//!
//! Widenings are Iceberg's type promotions: int to long, float to double, and a decimal's
//! precision up at the same scale. Everything else that does not fit is a mismatch, which
//! `on_error` (or `rescue`) decides about, value by value ([`super::fit`]).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use autoloader::ingestions::options::{HintType, IngestOptions, SchemaEvolution, SchemaHint};
use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type,
};

use super::IngestError;

/// The column `rescue` puts values into.
pub const RESCUED: &str = "_rescued_data";
/// The file a row came from (`metadata_columns`).
pub const SOURCE_FILE: &str = "_source_file";
/// When that file was last modified.
pub const SOURCE_MODIFIED_AT: &str = "_source_modified_at";
/// The run that loaded the row.
pub const INGESTED_RUN_ID: &str = "_ingested_run_id";

/// Most columns one file may add to a table.
pub const MAX_NEW_COLUMNS: usize = 1_000;
/// Most top-level columns a table may grow to by evolution (its metadata is read by every
/// reader, every commit).
pub const MAX_TABLE_COLUMNS: usize = 4_000;
/// Longest name a column added from a file may have, in characters.
pub const MAX_COLUMN_NAME_CHARS: usize = 256;

/// The Arrow type a hint stands for.
pub fn hint_type(h: HintType) -> DataType {
    match h {
        HintType::Boolean => DataType::Boolean,
        HintType::Int => DataType::Int32,
        HintType::Long => DataType::Int64,
        HintType::Float => DataType::Float32,
        HintType::Double => DataType::Float64,
        HintType::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        HintType::String => DataType::Utf8,
        HintType::Binary => DataType::Binary,
        HintType::Date => DataType::Date32,
        HintType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        HintType::TimestampNtz => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// `schema` with the hinted columns' types replaced (columns without a hint keep theirs).
pub fn apply_hints(schema: &ArrowSchema, hints: &[SchemaHint]) -> ArrowSchema {
    ArrowSchema::new(
        schema
            .fields()
            .iter()
            .map(|f| match hints.iter().find(|h| h.column == *f.name()) {
                Some(h) => Field::new(f.name(), hint_type(h.hint), true),
                None => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    )
}

/// What a file asks of the table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// Columns to append, in the file's order, with their (hinted, normalised) types.
    pub added: Vec<Field>,
    /// Existing top-level columns whose type widens.
    pub widened: Vec<(String, DataType)>,
}

impl Changes {
    /// Only these columns added.
    pub fn adding(added: Vec<Field>) -> Changes {
        Changes {
            added,
            widened: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.widened.is_empty()
    }
}

/// The columns the table needs for these options beyond the file's: the metadata columns, and
/// `_rescued_data` when `rescue` needs it.
pub fn required_columns(options: &IngestOptions, rescue_needed: bool) -> Vec<Field> {
    let mut out = Vec::new();
    if options.metadata_columns {
        out.push(Field::new(SOURCE_FILE, DataType::Utf8, true));
        out.push(Field::new(
            SOURCE_MODIFIED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ));
        out.push(Field::new(INGESTED_RUN_ID, DataType::Utf8, true));
    }
    if rescue_needed {
        out.push(Field::new(RESCUED, DataType::Utf8, true));
    }
    out
}

/// The rescue column, when `table` lacks it (nothing when it has one).
pub fn rescue_column(table: &ArrowSchema) -> Vec<Field> {
    match table.field_with_name(RESCUED) {
        Ok(_) => Vec::new(),
        Err(_) => vec![Field::new(RESCUED, DataType::Utf8, true)],
    }
}

/// What a file's typed `columns` ask of `table`, as a run and a dry run both decide it:
/// [`changes`] over the columns the file's path does not supply (`in_path`: those take their
/// values from the path), and under `rescue` the rescue column when the file has a column the
/// table lacks.
pub fn file_changes(
    table: &ArrowSchema,
    columns: &ArrowSchema,
    in_path: impl Fn(&str) -> bool,
    mode: SchemaEvolution,
    hints: &[SchemaHint],
    name: &str,
) -> Result<Changes, IngestError> {
    let columns = ArrowSchema::new(
        columns
            .fields()
            .iter()
            .filter(|f| !in_path(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut out = changes(table, &columns, mode, hints, name)?;
    let lacks_some = columns
        .fields()
        .iter()
        .any(|f| table.field_with_name(f.name()).is_err());
    if mode == SchemaEvolution::Rescue && lacks_some {
        out.added.extend(rescue_column(table));
    }
    Ok(out)
}

/// What `file` (its columns with normalised types) asks of a table whose columns are `table`,
/// under `mode`. `fail_on_new_columns` fails on the first new column; `rescue` and `none` change
/// nothing (their unknown columns are rescued or dropped while reading).
pub fn changes(
    table: &ArrowSchema,
    file: &ArrowSchema,
    mode: SchemaEvolution,
    hints: &[SchemaHint],
    name: &str,
) -> Result<Changes, IngestError> {
    let mut out = Changes::default();
    for f in file.fields() {
        match table.field_with_name(f.name()) {
            Ok(t) => {
                if mode == SchemaEvolution::AddNewColumns {
                    if let Some(w) = widening(t.data_type(), f.data_type()) {
                        out.widened.push((f.name().clone(), w));
                    }
                }
            }
            Err(_) => match mode {
                SchemaEvolution::AddNewColumns => {
                    if out.added.len() == MAX_NEW_COLUMNS {
                        return Err(IngestError::file(
                            name,
                            format!("adds more than {MAX_NEW_COLUMNS} columns to the table"),
                        ));
                    }
                    let field = Field::new(f.name(), f.data_type().clone(), true);
                    let hinted = apply_hints(&ArrowSchema::new(vec![field]), hints);
                    out.added.push(hinted.field(0).clone());
                }
                SchemaEvolution::FailOnNewColumns => {
                    return Err(IngestError::not_in_table(name, f.name(), table))
                }
                SchemaEvolution::Rescue | SchemaEvolution::None => {}
            },
        }
    }
    Ok(out)
}

/// The type `table` widens to for a file's `file` type, if it is an allowed promotion.
fn widening(table: &DataType, file: &DataType) -> Option<DataType> {
    match (table, file) {
        (DataType::Int32, DataType::Int64) => Some(DataType::Int64),
        (DataType::Float32, DataType::Float64) => Some(DataType::Float64),
        (DataType::Decimal128(p, s), DataType::Decimal128(fp, fs)) if fs == s && fp > p => {
            Some(DataType::Decimal128(*fp, *s))
        }
        _ => None,
    }
}

/// `current` with `changes` applied: widened columns keep their ids, added ones get ids after
/// `last_column_id` (nested fields too). Fails naming the column when a type cannot be an
/// Iceberg type.
pub fn evolve(
    current: &Schema,
    last_column_id: i32,
    changes: &Changes,
    name: &str,
) -> Result<Schema, IngestError> {
    let mut fields: Vec<NestedFieldRef> = current
        .as_struct()
        .fields()
        .iter()
        .map(
            |f| match changes.widened.iter().find(|(n, _)| *n == f.name) {
                Some((_, t)) => {
                    let mut w = f.as_ref().clone();
                    w.field_type = Box::new(Type::Primitive(widened_type(t)));
                    Arc::new(w)
                }
                None => f.clone(),
            },
        )
        .collect();
    if fields.len() + changes.added.len() > MAX_TABLE_COLUMNS {
        return Err(IngestError::file(
            name,
            format!(
                "would grow the table past {MAX_TABLE_COLUMNS} columns ({} now, {} new)",
                fields.len(),
                changes.added.len()
            ),
        ));
    }
    for f in &changes.added {
        let n = f.name();
        if n.is_empty()
            || n.chars().count() > MAX_COLUMN_NAME_CHARS
            || n.chars().any(char::is_control)
        {
            let shown: String = n.chars().take(40).filter(|c| !c.is_control()).collect();
            return Err(IngestError::file(
                name,
                format!(
                    "has a column named '{shown}', which cannot be added to the table (a name is \
                     1 to {MAX_COLUMN_NAME_CHARS} printable characters)"
                ),
            ));
        }
    }
    if !changes.added.is_empty() {
        let added = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&ArrowSchema::new(
            changes.added.clone(),
        ))
        .map_err(|e| {
            IngestError::file(
                name,
                format!("its new columns cannot be Iceberg columns: {e}"),
            )
        })?;
        let mut next = last_column_id.max(current.highest_field_id());
        for f in added.as_struct().fields() {
            fields.push(renumber(f, &mut next));
        }
    }
    Schema::builder()
        .with_schema_id(current.schema_id() + 1)
        .with_identifier_field_ids(current.identifier_field_ids())
        .with_fields(fields)
        .build()
        .map_err(|e| IngestError::file(name, format!("cannot evolve the table's schema: {e}")))
}

fn widened_type(t: &DataType) -> PrimitiveType {
    match t {
        DataType::Int64 => PrimitiveType::Long,
        DataType::Float64 => PrimitiveType::Double,
        DataType::Decimal128(p, s) => PrimitiveType::Decimal {
            precision: u32::from(*p),
            scale: (*s).max(0) as u32,
        },
        // `widening` yields only the three above.
        _ => PrimitiveType::String,
    }
}

/// `f` and the fields inside it with fresh ids, counting up from `next`.
fn renumber(f: &NestedField, next: &mut i32) -> NestedFieldRef {
    *next += 1;
    let id = *next;
    let mut out = f.clone();
    out.id = id;
    out.field_type = Box::new(renumber_type(&f.field_type, next));
    Arc::new(out)
}

fn renumber_type(t: &Type, next: &mut i32) -> Type {
    match t {
        Type::Primitive(_) => t.clone(),
        Type::Struct(s) => Type::Struct(StructType::new(
            s.fields().iter().map(|f| renumber(f, next)).collect(),
        )),
        Type::List(l) => Type::List(ListType {
            element_field: renumber(&l.element_field, next),
        }),
        Type::Map(m) => Type::Map(MapType {
            key_field: renumber(&m.key_field, next),
            value_field: renumber(&m.value_field, next),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Schema {
        iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&ArrowSchema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("name", DataType::Utf8, true),
        ]))
        .expect("schema")
    }

    #[test]
    fn new_columns_are_appended_with_fresh_ids_and_widenings_keep_theirs() {
        let current = table();
        let arrow = iceberg::arrow::schema_to_arrow_schema(&current).expect("arrow");
        let file = ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(14, 2), true),
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
            Field::new("score", DataType::Float64, true),
        ]);
        let hints = autoloader::ingestions::hints::parse_hints("score float").expect("hints");
        let c = changes(&arrow, &file, SchemaEvolution::AddNewColumns, &hints, "f").expect("ok");
        assert_eq!(
            c.widened,
            vec![
                ("id".to_owned(), DataType::Int64),
                ("amount".to_owned(), DataType::Decimal128(14, 2))
            ]
        );
        assert_eq!(c.added.len(), 2);
        assert_eq!(c.added[1].data_type(), &DataType::Float32, "the hint wins");
        // A field id 7 was used once (say by a dropped column): new ids start after it.
        let s = evolve(&current, 7, &c, "f").expect("evolves");
        let id = s.field_by_name("id").expect("id");
        assert_eq!(
            (id.id, &*id.field_type),
            (1, &Type::Primitive(PrimitiveType::Long))
        );
        let tags = s.field_by_name("tags").expect("tags");
        assert_eq!(tags.id, 8);
        let Type::List(l) = &*tags.field_type else {
            panic!("a list")
        };
        assert_eq!(l.element_field.id, 9);
        assert_eq!(s.field_by_name("score").expect("score").id, 10);
        assert_eq!(s.highest_field_id(), 10);
        assert_eq!(s.schema_id(), current.schema_id() + 1);
    }

    #[test]
    fn hostile_column_names_and_endless_growth_are_refused() {
        let current = table();
        for bad in ["".to_owned(), "a".repeat(257), "tab\there".to_owned()] {
            let c = Changes::adding(vec![Field::new(bad.as_str(), DataType::Utf8, true)]);
            let e = evolve(&current, 3, &c, "f.json").expect_err("refused");
            assert!(
                e.to_string().contains("cannot be added to the table"),
                "{e}"
            );
        }
        let many = Changes {
            added: (0..MAX_TABLE_COLUMNS)
                .map(|i| Field::new(format!("c{i}"), DataType::Utf8, true))
                .collect(),
            widened: Vec::new(),
        };
        let e = evolve(&current, 3, &many, "f.json").expect_err("too wide");
        assert!(e.to_string().contains("past 4000 columns"), "{e}");
    }

    #[test]
    fn only_iceberg_promotions_widen() {
        assert_eq!(widening(&DataType::Int64, &DataType::Int32), None);
        assert_eq!(widening(&DataType::Int32, &DataType::Float64), None);
        assert_eq!(
            widening(&DataType::Decimal128(10, 2), &DataType::Decimal128(12, 3)),
            None
        );
        assert_eq!(
            widening(&DataType::Float32, &DataType::Float64),
            Some(DataType::Float64)
        );
    }

    #[test]
    fn fail_on_new_columns_names_the_column() {
        let arrow = iceberg::arrow::schema_to_arrow_schema(&table()).expect("arrow");
        let file = ArrowSchema::new(vec![Field::new("extra", DataType::Utf8, true)]);
        let e = changes(
            &arrow,
            &file,
            SchemaEvolution::FailOnNewColumns,
            &[],
            "in/f.json",
        )
        .expect_err("fails");
        assert!(
            e.to_string().contains("column 'extra' is not in the table"),
            "{e}"
        );
        for mode in [SchemaEvolution::Rescue, SchemaEvolution::None] {
            assert!(changes(&arrow, &file, mode, &[], "f")
                .expect("ok")
                .is_empty());
        }
    }
}
