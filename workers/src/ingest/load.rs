//! One run's loading of its files into data files of the table, file by file, as the
//! ingestion's `schema_evolution` and `on_error` say.
//!
//! Each file is first read the fast way ([`read::read_file`]): whole batches, decoded straight
//! into the table's types. A typed file (Parquet, Avro) evolves the table's schema first, from its
//! own schema. A file the fast way refuses is looked at again:
//! - a JSON or CSV file with columns the table lacks (`add_new_columns`): its new columns are
//!   found (JSON keys by [`exact::json_new_columns`], a CSV header's new names typed from its
//!   first rows), the schema evolves, and the file is read again;
//! - otherwise it is read record by record ([`exact::read_exact`]), which finds the records that
//!   cannot load: the run fails naming the first (`abort`), the file is rejected (`skip_file`), or
//!   they are dropped (`skip_record`); `rescue` keeps their values in `_rescued_data`.
//!
//! A file's batches are held ([`FileSink`]) until the file is known good, so a rejected or
//! re-read file leaves nothing behind; past [`super::sink::HOLD_BYTES`] they go to data files of the file's
//! own, dropped with it. Under `on_error = abort` (nothing to take back but the whole run) batches
//! go straight to the run's writer; the rare file that must be read again then restarts the run's
//! reading once, holding files from then on.

use arrow_schema::Schema as ArrowSchema;
use autoloader::ingestions::definition::FormatType;
use autoloader::ingestions::options::{IngestOptions, Limits, OnError, SchemaEvolution};
use autoloader::runs::lease::Rejections;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::discover::{Candidate, Source};
use super::evolve::{self, Changes};
use super::exact::{self, ExactSpec, Rejection, KEPT_REJECTIONS};
use super::fetch::SourceFile;
use super::fit::Unknown;
use super::path_columns::{self, PathValues};
use super::read::{self, ReadSpec};
use super::sink::{FileSink, NullSink, Stamp, Writers};
use super::table::{Evolved, Fence, LoadedFile};
use super::IngestError;

/// What a run's reading produced, ready to commit.
pub struct Loaded {
    pub files: Vec<LoadedFile>,
    pub data_files: Vec<DataFile>,
    pub evolved: Option<Evolved>,
    pub rejections: Rejections,
    pub bytes_read: u64,
}

/// Why a pass over the files stopped.
enum Stop {
    /// A file must be read again, and what was written of it cannot be taken back: read the
    /// run's files again, holding each.
    Restart,
    Fail(IngestError),
}

impl From<IngestError> for Stop {
    fn from(e: IngestError) -> Stop {
        Stop::Fail(e)
    }
}

/// One run's files and how to read them.
pub struct Run<'a> {
    pub source: &'a Source,
    pub files: &'a [Candidate],
    pub format: FormatType,
    pub options: &'a IngestOptions,
    pub limits: Limits,
    pub run_id: Uuid,
    pub cancel: &'a CancellationToken,
}

impl Run<'_> {
    /// Reads every file into data files of `table` (with its schema evolved as the files ask).
    pub async fn load(&self, table: &Table, fence: &Fence) -> Result<Loaded, IngestError> {
        let mut hold = self.options.on_error != OnError::Abort;
        loop {
            match self.pass(table, fence, hold).await {
                Ok(loaded) => return Ok(loaded),
                Err(Stop::Restart) if !hold => {
                    tracing::info!(
                        "a file must be read again after part of it was written; reading the \
                         run's files again"
                    );
                    hold = true;
                }
                Err(Stop::Restart) => {
                    return Err(IngestError::Catalog(
                        "a held file asked for a restart".into(),
                    ))
                }
                Err(Stop::Fail(e)) => return Err(e),
            }
        }
    }

    async fn pass(&self, table: &Table, fence: &Fence, hold: bool) -> Result<Loaded, Stop> {
        let mut w = Writers::open(table, fence).await?;
        // Columns the options ask for (the metadata columns) exist before any file is read.
        let needed = evolve::required_columns(self.options, false);
        let missing: Vec<_> = needed
            .into_iter()
            .filter(|f| w.target.field_with_name(f.name()).is_err())
            .collect();
        if !missing.is_empty() {
            w.evolve(&Changes::adding(missing), "options.metadata_columns")
                .await?;
        }
        let mut files = Vec::with_capacity(self.files.len());
        let mut rejections = Rejections::default();
        let mut first: Vec<Rejection> = Vec::new();
        let mut bytes_read = 0u64;
        for c in self.files {
            if self.cancel.is_cancelled() {
                return Err(Stop::Fail(IngestError::LeaseLost));
            }
            // A local file is opened here, beneath its root, and read through that descriptor.
            let file = self.source.open_file(c, self.limits)?;
            let done = self.one_file(&mut w, c, &file, hold).await?;
            bytes_read += c.size;
            let mut entry = LoadedFile {
                path: c.url.clone(),
                size: c.size,
                etag: c.etag.clone(),
                last_modified: c.last_modified,
                rows: 0,
                rejected: None,
                records_rejected: 0,
            };
            match done {
                Done::Loaded { rows, rejected } => {
                    tracing::debug!(file = %c.relative, rows, records_rejected = rejected.rejected, "file read");
                    entry.rows = rows;
                    entry.records_rejected = rejected.rejected;
                    rejections.records += i64::try_from(rejected.rejected).unwrap_or(i64::MAX);
                    keep_first(&mut first, rejected.first);
                }
                Done::Rejected(why) => {
                    tracing::warn!(file = %c.relative, error = %why.message, "file rejected");
                    rejections.files += 1;
                    entry.rejected = Some(why.message.clone());
                    keep_first(&mut first, vec![why.rejection]);
                }
            }
            files.push(entry);
        }
        if !first.is_empty() {
            rejections.first = serde_json::to_value(&first).ok();
        }
        let evolved = w.evolved();
        let data_files = w.finish().await?;
        Ok(Loaded {
            files,
            data_files,
            evolved,
            rejections,
            bytes_read,
        })
    }

    /// The columns of a typed file (Parquet, Avro), known before reading it: from its schema,
    /// so that a column can widen before a value is read. `None` for JSON and CSV, which carry
    /// no types: their new columns show when the fast path refuses the file
    /// ([`Run::untyped_new_columns`]).
    pub(crate) async fn typed_columns(
        &self,
        file: &SourceFile,
    ) -> Result<Option<ArrowSchema>, IngestError> {
        match self.format {
            FormatType::Json | FormatType::Csv => Ok(None),
            FormatType::Parquet | FormatType::Avro => Ok(Some(
                super::schema::infer_schema(
                    &self.source.store,
                    file,
                    self.format,
                    self.options.csv,
                    self.limits.max_record_bytes,
                )
                .await?,
            )),
        }
    }

    /// The columns a JSON or CSV file has that `target` lacks, with inferred types: JSON keys
    /// from a scan of the whole file, a CSV header's new names typed from its first rows. The
    /// columns the table has keep their types (nothing widens from a guess).
    pub(crate) async fn untyped_new_columns(
        &self,
        file: &SourceFile,
        target: &ArrowSchema,
    ) -> Result<Vec<arrow_schema::Field>, IngestError> {
        let store = &self.source.store;
        let cap = self.limits.max_record_bytes;
        match self.format {
            FormatType::Json => exact::json_new_columns(store, file, cap, target).await,
            FormatType::Csv if self.options.csv.header => {
                let inferred =
                    super::schema::infer_schema(store, file, self.format, self.options.csv, cap)
                        .await?;
                Ok(inferred
                    .fields()
                    .iter()
                    .filter(|f| target.field_with_name(f.name()).is_err())
                    .map(|f| f.as_ref().clone())
                    .collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn one_file(
        &self,
        w: &mut Writers,
        c: &Candidate,
        file: &SourceFile,
        hold: bool,
    ) -> Result<Done, Stop> {
        let name = file.name.as_str();
        let mode = self.options.schema_evolution;
        let on_error = self.options.on_error;
        let store = &self.source.store;
        let cap = self.limits.max_record_bytes;
        // A file that cannot be read is rejected, unless the run must stop at it.
        let bad_file = |e: IngestError| -> Result<Done, Stop> {
            match (&e, on_error) {
                (IngestError::File { .. }, OnError::SkipFile | OnError::SkipRecord) => {
                    Ok(Done::rejected(name, e))
                }
                _ => Err(Stop::Fail(e)),
            }
        };

        // The columns of the file's path join the table as the option asks, whatever
        // `schema_evolution` says; their values replace the file's own.
        let path_values = match self.options.partition_columns_from_path {
            true => match path_columns::parse(&c.relative) {
                Ok(v) => v,
                Err(m) => return bad_file(IngestError::file(name, m)),
            },
            false => Vec::new(),
        };
        let from_path: Vec<arrow_schema::Field> =
            path_columns::fields(&path_values, &self.options.schema_hints)
                .into_iter()
                .filter(|f| w.target.field_with_name(f.name()).is_err())
                .collect();
        if !from_path.is_empty() {
            w.evolve(&Changes::adding(from_path), name).await?;
        }
        let in_path = |n: &str| path_values.iter().any(|(k, _)| k == n);

        match self.typed_columns(file).await {
            Ok(Some(columns)) => {
                let changes = evolve::file_changes(
                    &w.target,
                    &columns,
                    in_path,
                    mode,
                    &self.options.schema_hints,
                    name,
                )?;
                if !changes.is_empty() {
                    w.evolve(&changes, name).await?;
                }
            }
            Ok(None) => {}
            Err(e) => return bad_file(e),
        }

        let path = match PathValues::typed(&path_values, &w.target, name) {
            Ok(p) => p,
            Err(e) => return bad_file(e),
        };

        let unknown_fast = match mode {
            SchemaEvolution::None => Unknown::Drop,
            _ => Unknown::Fail,
        };
        let mut scanned = false;
        loop {
            let stamp = Stamp::new(c, self.run_id).with_path(path.clone());
            let target = w.target.clone();
            let spec = ReadSpec {
                format: self.format,
                csv: self.options.csv,
                max_record_bytes: cap,
                target: &target,
                unknown: unknown_fast,
            };
            let mut sink = FileSink::new(w, stamp, hold);
            let failure = match read::read_file(store, file, spec, &mut sink).await {
                Ok(rows) => {
                    sink.keep().await?;
                    return Ok(Done::Loaded {
                        rows,
                        rejected: exact::Exact::default(),
                    });
                }
                Err(e @ (IngestError::File { .. } | IngestError::Schema { .. })) => e,
                Err(e) => return Err(Stop::Fail(e)),
            };
            let undone = sink.discard();
            if let IngestError::Schema { .. } = failure {
                if mode == SchemaEvolution::FailOnNewColumns {
                    return Err(Stop::Fail(failure));
                }
            }
            tracing::debug!(file = %name, error = %failure, "the fast path refused the file");
            // New JSON keys (which may show after a bad value) or CSV columns (which the header
            // names, before any value): evolve and read again.
            let may_be_new = match self.format {
                FormatType::Json => true,
                _ => matches!(failure, IngestError::Schema { .. }),
            };
            if mode == SchemaEvolution::AddNewColumns && may_be_new && !scanned {
                scanned = true;
                let added = match self.untyped_new_columns(file, &w.target).await {
                    Ok(a) => a,
                    Err(e) => return bad_file(e),
                };
                if !added.is_empty() {
                    if !undone {
                        return Err(Stop::Restart);
                    }
                    let hinted =
                        evolve::apply_hints(&ArrowSchema::new(added), &self.options.schema_hints);
                    let changes = Changes::adding(
                        hinted.fields().iter().map(|f| f.as_ref().clone()).collect(),
                    );
                    w.evolve(&changes, name).await?;
                    continue;
                }
            }
            if mode == SchemaEvolution::Rescue {
                let add = w.rescue_column();
                if !add.is_empty() {
                    if !undone {
                        return Err(Stop::Restart);
                    }
                    let changes = Changes::adding(add);
                    w.evolve(&changes, name).await?;
                }
            }
            let target = w.target.clone();
            let spec = ExactSpec {
                format: self.format,
                csv: self.options.csv,
                max_record_bytes: cap,
                target: &target,
                unknown: match mode {
                    SchemaEvolution::Rescue => Unknown::Rescue,
                    SchemaEvolution::None => Unknown::Drop,
                    _ => Unknown::Fail,
                },
                stop_at_first: on_error != OnError::SkipRecord,
            };
            if !undone {
                // Part of the file is in the run's writer: find what is wrong to say so, and
                // read the run again if nothing is.
                return match exact::read_exact(store, file, &spec, &mut NullSink).await {
                    Ok(found) => match found.first.into_iter().next() {
                        Some(r) => Err(Stop::Fail(r.into_error())),
                        None => Err(Stop::Restart),
                    },
                    Err(e) => Err(Stop::Fail(e)),
                };
            }
            let stamp = Stamp::new(c, self.run_id).with_path(path.clone());
            let mut sink = FileSink::new(w, stamp, hold);
            return match exact::read_exact(store, file, &spec, &mut sink).await {
                Ok(found) if found.rejected == 0 => {
                    sink.keep().await?;
                    Ok(Done::Loaded {
                        rows: found.rows,
                        rejected: found,
                    })
                }
                Ok(mut found) => match on_error {
                    OnError::Abort => {
                        let first = found.first.remove(0);
                        Err(Stop::Fail(first.into_error()))
                    }
                    OnError::SkipFile => {
                        sink.discard();
                        let first = found.first.remove(0);
                        Ok(Done::rejected(name, first.into_error()))
                    }
                    OnError::SkipRecord => {
                        sink.keep().await?;
                        Ok(Done::Loaded {
                            rows: found.rows,
                            rejected: found,
                        })
                    }
                },
                Err(e @ IngestError::Schema { .. }) => Err(Stop::Fail(e)),
                Err(e) => {
                    sink.discard();
                    bad_file(e)
                }
            };
        }
    }
}

fn keep_first(first: &mut Vec<Rejection>, more: Vec<Rejection>) {
    let room = KEPT_REJECTIONS.saturating_sub(first.len());
    first.extend(more.into_iter().take(room));
}

/// How one file ended.
enum Done {
    Loaded { rows: u64, rejected: exact::Exact },
    Rejected(Why),
}

struct Why {
    message: String,
    rejection: Rejection,
}

impl Done {
    fn rejected(name: &str, e: IngestError) -> Done {
        let message = match &e {
            IngestError::File { message, .. } | IngestError::Schema { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        };
        Done::Rejected(Why {
            rejection: Rejection {
                file: name.to_owned(),
                record: None,
                column: None,
                reason: format!("file rejected: {message}"),
            },
            message,
        })
    }
}
