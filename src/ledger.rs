//! The ledger of source files (`loaded_files`): one row per (ingestion, file URL) a run dealt
//! with, written in the transaction that commits the Iceberg snapshot holding the file's rows,
//! so a `loaded` row always means "these rows are in the table", and a `rejected` one "none of
//! this file is, and here is why". A file is new to an ingestion when its URL is not here.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// How many paths one look-up sends.
const LOOKUP_CHUNK: usize = 10_000;

/// The paths among `paths` that the ingestion has loaded.
pub async fn ledger_loaded_among(
    pool: &PgPool,
    ingestion_id: Uuid,
    paths: &[String],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut loaded = std::collections::HashSet::new();
    for chunk in paths.chunks(LOOKUP_CHUNK) {
        let rows = sqlx::query_scalar!(
            "select path from loaded_files where ingestion_id = $1 and path = any($2)",
            ingestion_id,
            chunk
        )
        .fetch_all(pool)
        .await?;
        loaded.extend(rows);
    }
    Ok(loaded)
}

/// A file a commit deals with: loaded (its rows are in the commit's snapshot) or rejected.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub path: String,
    pub size: i64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub rows: i64,
    /// Why the file was rejected; `None`: it is loaded.
    pub rejected: Option<String>,
    /// Records of the file dropped under `on_error = skip_record`.
    pub records_rejected: i64,
}

/// Who dealt with the files of one commit: the run, its attempt, and the snapshot (`None` when
/// the commit added no rows: every file rejected, or empty).
#[derive(Debug, Clone, Copy)]
pub struct LoadedBy {
    pub ingestion_id: Uuid,
    pub run_id: Uuid,
    pub attempt: i32,
    pub snapshot_id: Option<i64>,
}

/// Records the files of a commit, inside the commit's transaction. A path already in the ledger
/// violates its primary key and rolls the whole commit back: no file is ever appended twice.
/// A rejected file is recorded without a snapshot and with no rows.
pub async fn ledger_record(
    tx: &mut Transaction<'_, Postgres>,
    by: LoadedBy,
    files: &[LoadedFile],
) -> Result<(), sqlx::Error> {
    let paths: Vec<String> = files.iter().map(|x| x.path.clone()).collect();
    let sizes: Vec<i64> = files.iter().map(|x| x.size).collect();
    let etags: Vec<Option<String>> = files.iter().map(|x| x.etag.clone()).collect();
    let modified: Vec<DateTime<Utc>> = files.iter().map(|x| x.last_modified).collect();
    let rows: Vec<i64> = files.iter().map(|x| x.rows).collect();
    let errors: Vec<Option<String>> = files.iter().map(|x| x.rejected.clone()).collect();
    let dropped: Vec<i64> = files.iter().map(|x| x.records_rejected).collect();
    sqlx::query!(
        "insert into loaded_files (ingestion_id, path, size_bytes, etag, last_modified,
                                   run_id, attempt, snapshot_id, rows_loaded, status, error,
                                   records_rejected)
         select $1, f.path, f.size, f.etag, f.modified, $2, $3,
                case when f.error is null then $4::bigint end,
                case when f.error is null then f.rows else 0 end,
                case when f.error is null then 'loaded' else 'rejected' end,
                f.error, f.dropped
         from unnest($5::text[], $6::bigint[], $7::text[], $8::timestamptz[], $9::bigint[],
                     $10::text[], $11::bigint[])
             as f(path, size, etag, modified, rows, error, dropped)",
        by.ingestion_id,
        by.run_id,
        by.attempt,
        by.snapshot_id,
        &paths,
        &sizes,
        &etags as &[Option<String>],
        &modified,
        &rows,
        &errors as &[Option<String>],
        &dropped,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
