//! Partitioned tables: the spec a new table gets from `options.partition_by`, and the writer that
//! fans a run's rows out to one data file per partition ([`FanOut`]).
//!
//! The spec is built once, when the table is created, from the first file's schema (with the
//! ingestion's hints): a column it lacks, or a transform its type does not allow, fails the run
//! naming the option and the column. A table that exists keeps its spec whatever the option says
//! now; the writers always follow the table's default spec.
//!
//! [`FanOut`] keeps at most [`MAX_OPEN_PARTITIONS`] Parquet writers open, each buffering at most
//! about [`PARTITIONED_ROW_GROUP_BYTES`] of encoded rows: when a row for one more partition
//! comes, the writer used least recently finishes its file (a later row of that partition starts
//! another). So memory stays bounded however many partitions a run writes; a run whose rows
//! interleave more partitions than that writes more, smaller files.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use autoloader::ingestions::options::{HintType, PartitionField, Transform};
use iceberg::arrow::{arrow_struct_to_literal, PartitionValueCalculator};
use iceberg::spec::{
    DataFile, Literal, PartitionKey, PartitionSpec, PartitionSpecRef, PrimitiveType, Schema,
    SchemaRef, Struct, StructType, Transform as IcebergTransform, Type, UnboundPartitionField,
    UnboundPartitionSpec,
};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};

use super::IngestError;

/// Parquet writers one sink keeps open at once.
pub const MAX_OPEN_PARTITIONS: usize = 32;
/// Encoded bytes of a partition's row group before it is flushed to its file.
pub const PARTITIONED_ROW_GROUP_BYTES: usize = 8 << 20;

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type Writer =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// The spec a new table with `schema` gets from `fields` (`None`: unpartitioned). Its source ids
/// are `schema`'s.
pub fn spec(
    schema: &Schema,
    fields: &[PartitionField],
) -> Result<Option<UnboundPartitionSpec>, IngestError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let refuse = |f: &PartitionField, why: String| {
        IngestError::Config(format!("options.partition_by: {f}: {why}"))
    };
    let mut builder = PartitionSpec::builder(schema.clone());
    for f in fields {
        let columns = schema.as_struct().fields();
        let Some(column) = columns.iter().find(|c| c.name == f.column) else {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            return Err(refuse(
                f,
                format!(
                    "column '{}' is not in the table (its columns: {})",
                    f.column,
                    names.join(", ")
                ),
            ));
        };
        match column.field_type.as_ref() {
            Type::Primitive(p) => {
                if let Some(t) = hint_type(p) {
                    f.check_type(t)
                        .map_err(|m| IngestError::Config(format!("options.partition_by: {m}")))?;
                }
            }
            _ => {
                return Err(refuse(
                    f,
                    format!(
                    "column '{}' is a struct, list or map; only plain columns partition a table",
                    f.column
                ),
                ))
            }
        }
        builder = builder
            .add_unbound_field(UnboundPartitionField {
                source_id: column.id,
                field_id: None,
                name: f.name(),
                transform: iceberg_transform(f.transform),
            })
            .map_err(|e| refuse(f, e.message().to_owned()))?;
    }
    let spec = builder
        .build()
        .map_err(|e| IngestError::Config(format!("options.partition_by: {}", e.message())))?;
    Ok(Some(spec.into_unbound()))
}

fn iceberg_transform(t: Transform) -> IcebergTransform {
    match t {
        Transform::Identity => IcebergTransform::Identity,
        Transform::Year => IcebergTransform::Year,
        Transform::Month => IcebergTransform::Month,
        Transform::Day => IcebergTransform::Day,
        Transform::Hour => IcebergTransform::Hour,
        Transform::Bucket(n) => IcebergTransform::Bucket(n),
        Transform::Truncate(w) => IcebergTransform::Truncate(w),
    }
}

/// An Iceberg type as `schema_hints` names it, for the transforms' rules (`None`: a type hints
/// cannot name, which Iceberg's own check judges).
fn hint_type(p: &PrimitiveType) -> Option<HintType> {
    Some(match p {
        PrimitiveType::Boolean => HintType::Boolean,
        PrimitiveType::Int => HintType::Int,
        PrimitiveType::Long => HintType::Long,
        PrimitiveType::Float => HintType::Float,
        PrimitiveType::Double => HintType::Double,
        PrimitiveType::Decimal { precision, scale } => HintType::Decimal {
            precision: u8::try_from(*precision).unwrap_or(u8::MAX),
            scale: u8::try_from(*scale).unwrap_or(u8::MAX),
        },
        PrimitiveType::String => HintType::String,
        PrimitiveType::Binary | PrimitiveType::Fixed(_) => HintType::Binary,
        PrimitiveType::Date => HintType::Date,
        PrimitiveType::Timestamptz => HintType::Timestamp,
        PrimitiveType::Timestamp => HintType::TimestampNtz,
        _ => return None,
    })
}

/// Splits batches by partition: each row's partition value, computed from its source columns.
struct Splitter {
    spec: PartitionSpec,
    schema: SchemaRef,
    calculator: PartitionValueCalculator,
    partition_type: StructType,
}

impl Splitter {
    fn new(spec: &PartitionSpecRef, schema: SchemaRef) -> iceberg::Result<Splitter> {
        let calculator = PartitionValueCalculator::try_new(spec, &schema)?;
        let partition_type = calculator.partition_type().clone();
        Ok(Splitter {
            spec: spec.as_ref().clone(),
            schema,
            calculator,
            partition_type,
        })
    }

    /// `batch`'s rows grouped by partition, in the order partitions first appear.
    fn split(&self, batch: &RecordBatch) -> iceberg::Result<Vec<(PartitionKey, RecordBatch)>> {
        let values = self.calculator.calculate(batch)?;
        let rows = arrow_struct_to_literal(&values, &self.partition_type)?;
        let mut groups: Vec<(Struct, Vec<u32>)> = Vec::new();
        let mut index: HashMap<Struct, usize> = HashMap::new();
        for (row, value) in rows.into_iter().enumerate() {
            let Some(Literal::Struct(value)) = value else {
                return Err(iceberg::Error::new(
                    iceberg::ErrorKind::DataInvalid,
                    "a row has no partition value",
                ));
            };
            let row = u32::try_from(row).map_err(|_| {
                iceberg::Error::new(iceberg::ErrorKind::DataInvalid, "batch too large")
            })?;
            match index.get(&value) {
                Some(&g) => groups[g].1.push(row),
                None => {
                    index.insert(value.clone(), groups.len());
                    groups.push((value, vec![row]));
                }
            }
        }
        let key = |value| PartitionKey::new(self.spec.clone(), self.schema.clone(), value);
        if groups.len() == 1 {
            let (value, _) = groups.remove(0);
            return Ok(vec![(key(value), batch.clone())]);
        }
        groups
            .into_iter()
            .map(|(value, rows)| {
                let part = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))
                    .map_err(|e| {
                    iceberg::Error::new(
                        iceberg::ErrorKind::Unexpected,
                        format!("splitting a batch by partition: {e}"),
                    )
                })?;
                Ok((key(value), part))
            })
            .collect()
    }
}

/// One data file writer per partition, at most [`MAX_OPEN_PARTITIONS`] open at once.
pub struct FanOut {
    builder: Builder,
    splitter: Splitter,
    open: HashMap<Struct, (Writer, u64)>,
    clock: u64,
    done: Vec<DataFile>,
}

impl FanOut {
    pub fn new(
        builder: Builder,
        spec: &PartitionSpecRef,
        schema: Arc<Schema>,
    ) -> iceberg::Result<FanOut> {
        Ok(FanOut {
            builder,
            splitter: Splitter::new(spec, schema)?,
            open: HashMap::new(),
            clock: 0,
            done: Vec::new(),
        })
    }

    pub async fn write(&mut self, batch: RecordBatch) -> iceberg::Result<()> {
        for (key, part) in self.splitter.split(&batch)? {
            self.clock += 1;
            if !self.open.contains_key(key.data()) {
                if self.open.len() >= MAX_OPEN_PARTITIONS {
                    self.close_least_recent().await?;
                }
                let writer = self.builder.build(Some(key.clone())).await?;
                self.open.insert(key.data().clone(), (writer, 0));
            }
            let Some((writer, used)) = self.open.get_mut(key.data()) else {
                return Err(iceberg::Error::new(
                    iceberg::ErrorKind::Unexpected,
                    "a partition's writer vanished",
                ));
            };
            *used = self.clock;
            writer.write(part).await?;
        }
        Ok(())
    }

    async fn close_least_recent(&mut self) -> iceberg::Result<()> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone());
        if let Some((mut writer, _)) = oldest.and_then(|k| self.open.remove(&k)) {
            self.done.extend(writer.close().await?);
        }
        Ok(())
    }

    pub async fn close(mut self) -> iceberg::Result<Vec<DataFile>> {
        for (_, (mut writer, _)) in self.open.drain() {
            self.done.extend(writer.close().await?);
        }
        Ok(self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::NestedField;

    fn schema() -> Schema {
        Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
                NestedField::optional(2, "region", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(3, "id", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .expect("schema")
    }

    fn fields(texts: &[&str]) -> Vec<PartitionField> {
        texts
            .iter()
            .map(|t| PartitionField::parse(t).expect("field"))
            .collect()
    }

    #[test]
    fn a_spec_names_its_fields_as_iceberg_does() {
        let spec = spec(&schema(), &fields(&["day(ts)", "region", "bucket(8, id)"]))
            .expect("spec")
            .expect("partitioned");
        let got: Vec<(i32, String, IcebergTransform)> = spec
            .fields()
            .iter()
            .map(|f| (f.source_id, f.name.clone(), f.transform))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "ts_day".into(), IcebergTransform::Day),
                (2, "region".into(), IcebergTransform::Identity),
                (3, "id_bucket".into(), IcebergTransform::Bucket(8)),
            ]
        );
        assert!(spec_is_none(&[]));
    }

    fn spec_is_none(texts: &[&str]) -> bool {
        spec(&schema(), &fields(texts)).expect("spec").is_none()
    }

    /// A fan-out by `region` (identity), writing to memory.
    fn fan_out() -> FanOut {
        use iceberg::io::FileIO;
        use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
        let schema = Arc::new(schema());
        let spec = PartitionSpec::builder(schema.clone())
            .add_partition_field("region", "region", IcebergTransform::Identity)
            .and_then(|b| b.build())
            .expect("spec");
        let rolling = RollingFileWriterBuilder::new_with_default_file_size(
            ParquetWriterBuilder::new(Default::default(), schema.clone()),
            FileIO::new_with_memory(),
            DefaultLocationGenerator::with_data_location("memory:///t/data".into()),
            DefaultFileNameGenerator::new(
                "run-x-a1-w0".into(),
                None,
                iceberg::spec::DataFileFormat::Parquet,
            ),
        );
        FanOut::new(DataFileWriterBuilder::new(rolling), &Arc::new(spec), schema).expect("fan")
    }

    /// Rows `ids`, each in region `p<id % regions>`.
    fn batch(ids: std::ops::Range<i64>, regions: i64) -> RecordBatch {
        use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema()).expect("arrow"));
        let n = ids.clone().count();
        RecordBatch::try_new(
            arrow,
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone("+00:00")),
                Arc::new(StringArray::from_iter_values(
                    ids.clone().map(|i| format!("p{}", i % regions)),
                )),
                Arc::new(Int64Array::from_iter_values(ids)),
            ],
        )
        .expect("batch")
    }

    fn region_of(f: &DataFile) -> String {
        match f.partition().fields().first() {
            Some(Some(Literal::Primitive(iceberg::spec::PrimitiveLiteral::String(s)))) => s.clone(),
            other => panic!("no region: {other:?}"),
        }
    }

    #[tokio::test]
    async fn each_partition_gets_its_own_file_with_its_value() {
        let mut fan = fan_out();
        fan.write(batch(0..100, 10)).await.expect("write");
        fan.write(batch(100..200, 10)).await.expect("write");
        let files = fan.close().await.expect("close");
        assert_eq!(files.len(), 10, "one file per partition");
        let mut regions: Vec<String> = files.iter().map(region_of).collect();
        regions.sort();
        regions.dedup();
        assert_eq!(regions.len(), 10);
        assert!(files.iter().all(|f| f.record_count() == 20));
        assert!(files.iter().all(|f| f
            .file_path()
            .contains(&format!("/data/region={}/run-x-a1-w0-", region_of(f)))));
    }

    #[tokio::test]
    async fn many_partitions_never_hold_more_than_the_cap_open() {
        let mut fan = fan_out();
        let regions = 3 * MAX_OPEN_PARTITIONS as i64;
        for start in (0..6 * regions).step_by(regions as usize) {
            fan.write(batch(start..start + regions, regions))
                .await
                .expect("write");
            assert!(fan.open.len() <= MAX_OPEN_PARTITIONS, "{}", fan.open.len());
        }
        let files = fan.close().await.expect("close");
        // Every row is in a file of its partition; rows that came back to a closed partition
        // went to another file of it.
        let rows: u64 = files.iter().map(|f| f.record_count()).sum();
        assert_eq!(rows, 6 * regions as u64);
        assert!(files.len() > regions as usize, "{}", files.len());
        let mut paths: Vec<&str> = files.iter().map(|f| f.file_path()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), files.len(), "no file overwrote another");
    }

    #[test]
    fn a_spec_the_schema_cannot_have_names_the_option_and_the_column() {
        for (texts, expect) in [
            (
                &["day(region)"][..],
                "options.partition_by: day(region): column 'region' is string",
            ),
            (
                &["month(missing)"][..],
                "options.partition_by: month(missing): column 'missing' is not in the table \
                 (its columns: ts, region, id)",
            ),
            (&["truncate(4, ts)"][..], "column 'ts' is timestamp"),
        ] {
            let e = spec(&schema(), &fields(texts))
                .expect_err(texts[0])
                .to_string();
            assert!(e.contains(expect), "{e}");
        }
    }
}
