//! A dry run: what the ingestion's next run would load, worked out with the run's own code and
//! writing nothing.
//!
//! Three stages, each bounded by the request's deadline:
//! 1. `discovery`: the run's own [`Source::plan`] and [`Source::new_files`] (with the ingestion's
//!    opened secret, the egress check, the tenant's roots, its ledger and its caps), asked to keep
//!    [`LEFT_SHOWN`] more files: the ones the caps leave for later.
//! 2. `schema`: the table as the catalog has it. Absent: the schema [`super::new_table_schema`]
//!    gives, the one a run creates. Then, file by file as a run reads them, the columns each file
//!    adds or widens ([`evolve::changes`], the run's [`load::Run`] column readers, [`evolve::evolve`]).
//! 3. `rows`: the first [`ROWS_SHOWN`] rows decoded by the run's reader ([`read::read_file`]) into
//!    the schema of stage 2, each text value cut to [`VALUE_CHARS`] characters.
//!
//! Nothing is written: no table, no ledger row, no run, no listing recorded (an unsaved
//! definition's ledger is empty: it has loaded nothing). A stage the deadline stops is named in
//! `unfinished`, with `complete: false`; an error the run would meet is in `error`, with its
//! stage.

use std::sync::Arc;

use arrow_array::RecordBatch;
use autoloader::ingestions::options::{IngestOptions, SchemaEvolution};
use iceberg::spec::Schema;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::discover::{Candidate, Discovered};
use super::evolve::{self, Changes};
use super::fit::Unknown;
use super::read::{self, BatchSink, ReadSpec};
use super::{load, path_columns, table, IngestError, IngestExecutor};
use crate::dry_runs::{DryRunAnswer, DryRunFuture, DryRunRequest, DryRunner};

/// Files left for later shown, at most.
pub const LEFT_SHOWN: usize = 100;
/// Rows decoded and shown, at most.
pub const ROWS_SHOWN: usize = 10;
/// Characters of a text value shown.
pub const VALUE_CHARS: usize = 200;
/// Files whose schema problems are shown, at most.
const PROBLEMS_SHOWN: usize = 20;
/// Text a row sink stops the reader with once it has its rows.
const ENOUGH: &str = "dry run: enough rows";

impl DryRunner for IngestExecutor {
    fn dry_run(&self, req: DryRunRequest) -> DryRunFuture<'_> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let mut out = Map::new();
            out.insert("id".into(), json!(req.id));
            out.insert("ingestion_id".into(), json!(req.ingestion_id));
            let error = match self.dry_stages(&req, &mut out).await {
                Ok(()) => None,
                Err(Stopped::Late(stage)) => {
                    out.insert("unfinished".into(), json!(stage));
                    None
                }
                Err(Stopped::Failed(stage, e)) => {
                    let message = e.to_string();
                    out.insert("unfinished".into(), json!(stage));
                    out.insert("error".into(), json!({"stage": stage, "message": message}));
                    Some(message)
                }
            };
            let complete = !out.contains_key("unfinished");
            out.insert("complete".into(), json!(complete));
            out.insert(
                "elapsed_ms".into(),
                json!(started.elapsed().as_millis() as u64),
            );
            DryRunAnswer {
                result: Value::Object(out),
                error,
            }
        })
    }
}

/// Why a dry run stopped before its last stage's end.
enum Stopped {
    /// The deadline (or shutdown) came first, in this stage.
    Late(&'static str),
    /// The run would fail here, as this says.
    Failed(&'static str, IngestError),
}

/// Runs `fut` as stage `stage`, within the request's budget.
async fn stage<T>(
    req: &DryRunRequest,
    stage: &'static str,
    fut: impl std::future::Future<Output = Result<T, IngestError>>,
) -> Result<T, Stopped> {
    tokio::select! {
        r = tokio::time::timeout_at(req.budget, fut) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Stopped::Failed(stage, e)),
            Err(_) => Err(Stopped::Late(stage)),
        },
        () = req.cancel.cancelled() => Err(Stopped::Late(stage)),
    }
}

impl IngestExecutor {
    async fn dry_stages(
        &self,
        req: &DryRunRequest,
        out: &mut Map<String, Value>,
    ) -> Result<(), Stopped> {
        let def = &req.definition;
        let options = &self
            .open_secrets(req.tenant_id, &def.options)
            .map_err(|e| Stopped::Failed("discovery", e))?;
        // An unsaved definition has loaded nothing: no ingestion has the nil id.
        let ledger_id = req.ingestion_id.unwrap_or(Uuid::nil());

        let (source, found) = stage(req, "discovery", async {
            let source = self
                .open_source(
                    def.source_type,
                    &def.source_path,
                    options,
                    &req.tenant_file_roots,
                )
                .await?;
            let plan = source.plan(&self.pool, ledger_id, options).await?;
            let found = source
                .new_files(
                    &self.pool,
                    ledger_id,
                    options,
                    self.cfg.limits,
                    &plan,
                    LEFT_SHOWN,
                )
                .await?;
            out.insert("listing".into(), json!(plan.kind()));
            Ok((source, found))
        })
        .await?;
        report_files(out, &found);

        let dest = def.destination_table.under(&req.tenant_namespace);
        out.insert("table".into(), json!({"name": dest.to_string()}));
        let schema = stage(req, "schema", async {
            let catalog = self.catalog().await?;
            let existing = table::load(catalog, &table::ident(&dest)?).await?;
            let (base, last_id, created) = match &existing {
                Some(t) => {
                    let m = t.metadata();
                    (m.current_schema().as_ref().clone(), m.last_column_id(), None)
                }
                None if found.files.is_empty() => return Ok(None),
                None => {
                    let new = super::new_table_schema(
                        &source,
                        &found.files,
                        def.format_type,
                        options,
                        self.cfg.limits,
                    )
                    .await?;
                    let last = new.schema.highest_field_id();
                    (new.schema, last, Some(new.from))
                }
            };
            let mut ev = Evolving::new(base.clone(), last_id)?;
            if existing.is_some() {
                let missing: Vec<_> = evolve::required_columns(options, false)
                    .into_iter()
                    .filter(|f| ev.target.field_with_name(f.name()).is_err())
                    .collect();
                if !missing.is_empty() {
                    ev.apply(&Changes::adding(missing), "options.metadata_columns")?;
                }
            }
            let run = load::Run {
                source: &source,
                files: &found.files,
                format: def.format_type,
                options,
                limits: self.cfg.limits,
                run_id: req.id,
                cancel: &CancellationToken::new(),
            };
            let mut problems = Vec::new();
            for c in &found.files {
                if let Err(e) = ev.file(&run, c, options).await {
                    match e {
                        IngestError::File { .. } | IngestError::Schema { .. } => {
                            if problems.len() < PROBLEMS_SHOWN {
                                problems.push(json!({"path": c.url, "message": e.to_string()}));
                            }
                        }
                        other => return Err(other),
                    }
                }
            }
            let table = json!({
                "name": dest.to_string(),
                "exists": existing.is_some(),
                "create_columns": created.as_ref().map(|_| columns(base.as_struct().fields().iter())),
                "created_from": created,
                "add_columns": columns(ev.schema.as_struct().fields().iter()
                    .filter(|f| base.field_by_name(&f.name).is_none())),
                "widen_columns": columns(ev.schema.as_struct().fields().iter()
                    .filter(|f| base.field_by_name(&f.name).is_some_and(|b| b.field_type != f.field_type))),
                "file_problems": problems,
            });
            Ok(Some((table, ev.target)))
        })
        .await?;
        let Some((table, target)) = schema else {
            out.insert(
                "table".into(),
                json!({"name": dest.to_string(), "exists": false, "create_columns": null,
                       "add_columns": [], "widen_columns": [], "file_problems": []}),
            );
            out.insert("rows".into(), json!([]));
            return Ok(());
        };
        out.insert("table".into(), table);

        let rows = stage(req, "rows", async {
            let mut sink = FirstRows::default();
            let mut read_from = Vec::new();
            for c in &found.files {
                if sink.rows >= ROWS_SHOWN {
                    break;
                }
                let file = source.open_file(c, self.cfg.limits)?;
                let spec = ReadSpec {
                    format: def.format_type,
                    csv: options.csv,
                    max_record_bytes: self.cfg.limits.max_record_bytes,
                    target: &target,
                    unknown: Unknown::Drop,
                };
                read_from.push(c.url.clone());
                match read::read_file(&source.store, &file, spec, &mut sink).await {
                    Ok(_) => {}
                    Err(IngestError::Config(m)) if m == ENOUGH => break,
                    // A file the fast reader refuses is read record by record by a run; its
                    // first rows are not shown here, the next file's are.
                    Err(e @ (IngestError::File { .. } | IngestError::Schema { .. })) => {
                        sink.problems
                            .push(json!({"path": c.url, "message": e.to_string()}));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((rows_json(&sink.batches), read_from, sink.problems))
        })
        .await?;
        out.insert("rows".into(), rows.0);
        out.insert("rows_read_from".into(), json!(rows.1));
        out.insert("row_problems".into(), json!(rows.2));
        Ok(())
    }
}

/// The files part of the answer.
fn report_files(out: &mut Map<String, Value>, found: &Discovered) {
    let file =
        |c: &Candidate| json!({"path": c.url, "size": c.size, "last_modified": c.last_modified});
    out.insert("keys_listed".into(), json!(found.keys_listed));
    out.insert(
        "files".into(),
        json!(found.files.iter().map(file).collect::<Vec<_>>()),
    );
    out.insert(
        "files_bytes".into(),
        json!(found.files.iter().map(|c| c.size).sum::<u64>()),
    );
    out.insert(
        "left_for_later".into(),
        json!(found.left.iter().map(file).collect::<Vec<_>>()),
    );
    out.insert("more_left_for_later".into(), json!(found.more_left));
}

fn columns<'a>(fields: impl Iterator<Item = &'a iceberg::spec::NestedFieldRef>) -> Value {
    json!(fields
        .map(|f| json!({"name": f.name, "type": f.field_type.to_string()}))
        .collect::<Vec<_>>())
}

/// The table's schema as a run's files change it, without a writer.
struct Evolving {
    schema: Schema,
    last_id: i32,
    target: arrow_schema::SchemaRef,
}

impl Evolving {
    fn new(schema: Schema, last_id: i32) -> Result<Evolving, IngestError> {
        let target = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&schema)
                .map_err(|e| IngestError::catalog(&e))?,
        );
        Ok(Evolving {
            schema,
            last_id,
            target,
        })
    }

    fn apply(&mut self, changes: &Changes, name: &str) -> Result<(), IngestError> {
        let next = evolve::evolve(&self.schema, self.last_id, changes, name)?;
        self.last_id = self.last_id.max(next.highest_field_id());
        *self = Evolving::new(next, self.last_id)?;
        Ok(())
    }

    fn rescue_column(&self) -> Vec<arrow_schema::Field> {
        evolve::rescue_column(&self.target)
    }

    /// What one file asks of the table, as a run's reading of it decides (`load::Run`).
    async fn file(
        &mut self,
        run: &load::Run<'_>,
        c: &Candidate,
        options: &IngestOptions,
    ) -> Result<(), IngestError> {
        let file = run.source.open_file(c, run.limits)?;
        let name = file.name.as_str();
        let mode = options.schema_evolution;
        let values = match options.partition_columns_from_path {
            true => path_columns::parse(&c.relative).map_err(|m| IngestError::file(name, m))?,
            false => Vec::new(),
        };
        let from_path: Vec<_> = path_columns::fields(&values, &options.schema_hints)
            .into_iter()
            .filter(|f| self.target.field_with_name(f.name()).is_err())
            .collect();
        if !from_path.is_empty() {
            self.apply(&Changes::adding(from_path), name)?;
        }
        let in_path = |n: &str| values.iter().any(|(k, _)| k == n);
        match run.typed_columns(&file).await? {
            Some(columns) => {
                let changes = evolve::file_changes(
                    &self.target,
                    &columns,
                    in_path,
                    mode,
                    &options.schema_hints,
                    name,
                )?;
                if !changes.is_empty() {
                    self.apply(&changes, name)?;
                }
            }
            None if mode == SchemaEvolution::None => {}
            None => {
                let added = run.untyped_new_columns(&file, &self.target).await?;
                let added: Vec<_> = added.into_iter().filter(|f| !in_path(f.name())).collect();
                if let Some(first) = added.first() {
                    match mode {
                        SchemaEvolution::AddNewColumns => {
                            let hinted = evolve::apply_hints(
                                &arrow_schema::Schema::new(added.clone()),
                                &options.schema_hints,
                            );
                            let changes = Changes::adding(
                                hinted.fields().iter().map(|f| f.as_ref().clone()).collect(),
                            );
                            self.apply(&changes, name)?;
                        }
                        SchemaEvolution::Rescue => {
                            let add = self.rescue_column();
                            if !add.is_empty() {
                                self.apply(&Changes::adding(add), name)?;
                            }
                        }
                        _ => {
                            return Err(IngestError::not_in_table(name, first.name(), &self.target))
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Keeps the first [`ROWS_SHOWN`] rows read, then stops the reader.
#[derive(Default)]
struct FirstRows {
    batches: Vec<RecordBatch>,
    rows: usize,
    problems: Vec<Value>,
}

impl BatchSink for FirstRows {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), IngestError> {
        let want = ROWS_SHOWN.saturating_sub(self.rows);
        let take = batch.num_rows().min(want);
        if take > 0 {
            self.batches.push(batch.slice(0, take));
            self.rows += take;
        }
        if self.rows >= ROWS_SHOWN {
            return Err(IngestError::Config(ENOUGH.into()));
        }
        Ok(())
    }
}

/// The rows as JSON objects, each text value cut to [`VALUE_CHARS`] characters.
fn rows_json(batches: &[RecordBatch]) -> Value {
    let mut w = arrow_json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    if w.write_batches(&refs).and_then(|()| w.finish()).is_err() {
        return json!([]);
    }
    let bytes = w.into_inner();
    let mut rows: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!([]));
    cut(&mut rows);
    rows
}

fn cut(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some((at, _)) = s.char_indices().nth(VALUE_CHARS) {
                s.truncate(at);
                s.push('…');
            }
        }
        Value::Array(items) => items.iter_mut().for_each(cut),
        Value::Object(map) => map.values_mut().for_each(cut),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_short_ones_kept() {
        let mut v = json!([{"a": "x".repeat(500), "b": "short", "c": [ "é".repeat(300) ]}]);
        cut(&mut v);
        let a = v[0]["a"].as_str().expect("text");
        assert_eq!(a.chars().count(), VALUE_CHARS + 1);
        assert!(a.ends_with('…'));
        assert_eq!(v[0]["b"], "short");
        assert_eq!(
            v[0]["c"][0].as_str().expect("text").chars().count(),
            VALUE_CHARS + 1
        );
    }
}
