//! The ledger of loaded files (`loaded_files`): one row per (ingestion, file URL) loaded, written
//! in the transaction that commits the Iceberg snapshot holding the file's rows, so a row here
//! always means "these rows are in the table". A file is new to an ingestion when its URL is not
//! here.

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

/// A file a commit loads.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub path: String,
    pub size: i64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub rows: i64,
}

/// Who loaded the files of one commit: the run, its attempt, and the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct LoadedBy {
    pub ingestion_id: Uuid,
    pub run_id: Uuid,
    pub attempt: i32,
    pub snapshot_id: i64,
}

/// Records the files of a commit, inside the commit's transaction. A path already in the ledger
/// violates its primary key and rolls the whole commit back: no file is ever appended twice.
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
    sqlx::query!(
        "insert into loaded_files (ingestion_id, path, size_bytes, etag, last_modified,
                                   run_id, attempt, snapshot_id, rows_loaded)
         select $1, f.path, f.size, f.etag, f.modified, $2, $3, $4, f.rows
         from unnest($5::text[], $6::bigint[], $7::text[], $8::timestamptz[], $9::bigint[])
             as f(path, size, etag, modified, rows)",
        by.ingestion_id,
        by.run_id,
        by.attempt,
        by.snapshot_id,
        &paths,
        &sizes,
        &etags as &[Option<String>],
        &modified,
        &rows,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
