//! The ledger of source files (`loaded_files`): one row per (ingestion, file URL) a run dealt
//! with, written in the transaction that commits the Iceberg snapshot holding the file's rows,
//! so a `loaded` row always means "these rows are in the table", and a `rejected` one "none of
//! this file is, and here is why". A file is new to an ingestion when its URL is not here.
//!
//! People read the ledger through the API ([`ledger_files`]) and retry rejected files by deleting
//! their rows ([`ledger_retry`]); loaded rows never leave it.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::audit::{audit_record, Action, Actor};

use crate::paging::KeysetRequest;

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

/// The greatest path the ingestion's ledger holds below `dir` (a source's URL without its
/// trailing `/`: paths `{dir}/…`), byte by byte: where an incremental listing starts after. One
/// step backwards through the primary key, whatever the ledger's size: the paths below `dir`
/// are a range of the key (`path` compares as `collate "C"`), from `{dir}/` to `{dir}0`, `0`
/// being the byte after `/`.
pub async fn ledger_greatest_under(
    pool: &PgPool,
    ingestion_id: Uuid,
    dir: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select max(path) from loaded_files where ingestion_id = $1 and path >= $2 and path < $3",
        ingestion_id,
        format!("{dir}/"),
        format!("{dir}0")
    )
    .fetch_one(pool)
    .await
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

/// Longest file path (a full URL) the API takes, in bytes. Longer than a `source_path` may be: a
/// file's URL is its source's path and its name below it (an S3 key alone may be 1024 bytes, a
/// local path 4096).
pub const MAX_PATH_BYTES: usize = 4096;
const _: () = assert!(MAX_PATH_BYTES == crate::paging::MAX_KEY_BYTES);

/// A ledger row's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Its rows are in the table (none, if every record was rejected).
    Loaded,
    /// Nothing of it is in the table; `error` says why. It is not read again until retried.
    Rejected,
}

impl FileStatus {
    pub const ALL: [FileStatus; 2] = [FileStatus::Loaded, FileStatus::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Loaded => "loaded",
            FileStatus::Rejected => "rejected",
        }
    }

    /// The status named `s`, as stored (lower case).
    pub fn parse(s: &str) -> Result<FileStatus, String> {
        FileStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| "status must be loaded or rejected".to_owned())
    }
}

/// A row of the ledger, as people look at it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerFile {
    pub path: String,
    pub status: String,
    pub size_bytes: i64,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub rows_loaded: i64,
    pub records_rejected: i64,
    pub run_id: Uuid,
    pub attempt: i32,
    pub snapshot_id: Option<i64>,
    pub error: Option<String>,
    pub loaded_at: DateTime<Utc>,
}

/// One page of the tenant's ingestion's ledger in path order, of one status or both, and the
/// key of the next page (the last path of this one, when more follow). Each status reads an
/// index in path order from the cursor on: the primary key, or `loaded_files_rejected` for the
/// rejected files. Every path sorts after the empty string, the first page's key.
pub async fn ledger_files(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    status: Option<FileStatus>,
    page: &KeysetRequest,
) -> Result<(Vec<LedgerFile>, Option<String>), sqlx::Error> {
    let after = page.after.as_deref().unwrap_or("");
    // One row more than the page: whether a next page exists, without a query for it.
    let fetch = page.limit.saturating_add(1);
    let mut rows = match status {
        None => {
            sqlx::query_as!(
                LedgerFile,
                "select path, status, size_bytes, etag, last_modified, rows_loaded,
                        records_rejected, run_id, attempt, snapshot_id, error, loaded_at
                 from loaded_files
                 where ingestion_id = $1 and path > $3
                   and exists (select 1 from ingestions where id = $1 and tenant_id = $2)
                 order by path limit $4",
                ingestion_id,
                tenant_id,
                after,
                fetch
            )
            .fetch_all(pool)
            .await?
        }
        Some(FileStatus::Loaded) => {
            sqlx::query_as!(
                LedgerFile,
                "select path, status, size_bytes, etag, last_modified, rows_loaded,
                        records_rejected, run_id, attempt, snapshot_id, error, loaded_at
                 from loaded_files
                 where ingestion_id = $1 and status = 'loaded' and path > $3
                   and exists (select 1 from ingestions where id = $1 and tenant_id = $2)
                 order by path limit $4",
                ingestion_id,
                tenant_id,
                after,
                fetch
            )
            .fetch_all(pool)
            .await?
        }
        Some(FileStatus::Rejected) => {
            sqlx::query_as!(
                LedgerFile,
                "select path, status, size_bytes, etag, last_modified, rows_loaded,
                        records_rejected, run_id, attempt, snapshot_id, error, loaded_at
                 from loaded_files
                 where ingestion_id = $1 and status = 'rejected' and path > $3
                   and exists (select 1 from ingestions where id = $1 and tenant_id = $2)
                 order by path limit $4",
                ingestion_id,
                tenant_id,
                after,
                fetch
            )
            .fetch_all(pool)
            .await?
        }
    };
    let more = rows.len() as i64 > page.limit;
    rows.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
    let next = if more {
        rows.last().map(|r| r.path.clone())
    } else {
        None
    };
    Ok((rows, next))
}

/// What retrying rejected files did.
#[derive(Debug, PartialEq, Eq)]
pub enum Retried {
    /// These files left the ledger: the next run lists them as new.
    Retried(Vec<String>),
    /// These indices of `paths` are not rejected files of the ingestion (loaded ones, or none):
    /// nothing left the ledger.
    NotRejected(Vec<usize>),
}

/// Paths an audit row of a retry names, at most (it says how many there were in all).
const AUDITED_PATHS: usize = 20;

/// Records a retry that took files out of the ledger as made by `actor`.
async fn retry_audit(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    retried: &[String],
) -> Result<(), sqlx::Error> {
    if retried.is_empty() {
        return Ok(());
    }
    let shown = &retried[..retried.len().min(AUDITED_PATHS)];
    let detail = serde_json::json!({ "count": retried.len(), "paths": shown });
    audit_record(
        tx,
        actor,
        Some(tenant_id),
        Some(ingestion_id),
        Action::FilesRetried,
        &detail,
    )
    .await
}

/// Deletes rejected files of the tenant's ingestion from the ledger, so the next run reads them
/// again: the named `paths` (distinct), all or none, or every rejected file when `paths` is
/// `None`. A loaded file never leaves the ledger here (its rows are in the table). A retry that
/// took any file out is recorded as made by `actor` (the first paths and the count).
pub async fn ledger_retry(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
    paths: Option<&[String]>,
    actor: &Actor,
) -> Result<Retried, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(paths) = paths else {
        let mut retried = sqlx::query_scalar!(
            "delete from loaded_files
             where ingestion_id = $1 and status = 'rejected'
               and exists (select 1 from ingestions where id = $1 and tenant_id = $2)
             returning path",
            ingestion_id,
            tenant_id
        )
        .fetch_all(&mut *tx)
        .await?;
        retried.sort();
        retry_audit(&mut tx, actor, tenant_id, ingestion_id, &retried).await?;
        tx.commit().await?;
        return Ok(Retried::Retried(retried));
    };
    let deleted: std::collections::HashSet<String> = sqlx::query_scalar!(
        "delete from loaded_files
         where ingestion_id = $1 and status = 'rejected' and path = any($3)
           and exists (select 1 from ingestions where id = $1 and tenant_id = $2)
         returning path",
        ingestion_id,
        tenant_id,
        paths
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let missing: Vec<usize> = (0..paths.len())
        .filter(|&i| !deleted.contains(&paths[i]))
        .collect();
    if !missing.is_empty() {
        tx.rollback().await?;
        return Ok(Retried::NotRejected(missing));
    }
    retry_audit(&mut tx, actor, tenant_id, ingestion_id, paths).await?;
    tx.commit().await?;
    Ok(Retried::Retried(paths.to_vec()))
}
