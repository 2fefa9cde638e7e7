//! What `/metrics` reads of the run table: run totals grouped by trigger, status and lateness
//! bucket for a range of run ids (the API folds these scrape by scrape), and the fleet's gauges
//! (queue depth, leases).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// One group of runs: finished runs grouped by trigger, status and lateness bucket; a queued or
/// running run is a group of its own, named by `open_id`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Group {
    pub open_id: Option<Uuid>,
    pub by: String,
    pub status: String,
    /// How many of the lateness buckets the run counts in (their bound is at or above its
    /// lateness); `None` for runs without a tick or that never started.
    pub buckets_at_or_above: Option<i32>,
    pub n: i64,
    /// Summed lateness in seconds.
    pub secs: Option<f64>,
}

/// Which runs a [`groups`] query reads.
enum Runs<'a> {
    Ids(&'a [Uuid]),
    Between(Uuid, Uuid),
    From(Uuid),
}

async fn groups(
    tx: &mut sqlx::PgConnection,
    bucket_bounds: &[f64],
    runs: Runs<'_>,
) -> Result<Vec<Group>, sqlx::Error> {
    // `width_bucket(x, thresholds)` counts the thresholds <= x. With x = -lateness and the
    // thresholds the negated bucket bounds in ascending order, that is the number of buckets
    // whose bound is >= the lateness: the buckets (`le`, cumulative) the run counts in.
    let negated: Vec<f64> = bucket_bounds.iter().rev().map(|b| -b).collect();
    let filter = match runs {
        Runs::Ids(_) => "id = any($2)",
        Runs::Between(..) => "id >= $2 and id < $3",
        Runs::From(_) => "id >= $2",
    };
    let sql = format!(
        "select case when status in ('QUEUED', 'RUNNING') then id end as open_id,
                triggered_by as by, status,
                width_bucket(date_part('epoch', scheduled_for - started_at), $1::float8[])
                    as buckets_at_or_above,
                count(*) as n, sum(date_part('epoch', started_at - scheduled_for)) as secs
         from runs where {filter} group by 1, 2, 3, 4"
    );
    let query = sqlx::query_as(&sql).bind(&negated);
    let query = match runs {
        Runs::Ids(ids) => query.bind(ids),
        Runs::Between(from, to) => query.bind(from).bind(to),
        Runs::From(from) => query.bind(from),
    };
    query.fetch_all(&mut *tx).await
}

/// What one read of the run totals found, all in one snapshot.
#[derive(Debug)]
pub struct TotalsRead {
    /// The new watermark: every run with a smaller id is in `rechecked` or `crossed` or was
    /// read before.
    pub watermark: Uuid,
    /// The runs named in `open` (still open at the last read).
    pub rechecked: Vec<Group>,
    /// Runs with ids from the old watermark to the new one.
    pub crossed: Vec<Group>,
    /// Runs made within `settle` of now.
    pub recent: Vec<Group>,
}

/// Reads, in one repeatable-read snapshot, the runs `open` names, the runs whose ids lie between
/// `watermark` and the smallest id made `settle` ago, and the runs made since.
pub async fn runs_totals_read(
    pool: &PgPool,
    bucket_bounds: &[f64],
    watermark: Option<Uuid>,
    open: &[Uuid],
    settle: Duration,
) -> Result<TotalsRead, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let settled_before = sqlx::query_scalar!(
        r#"select uuid_v7_floor(now() - make_interval(secs => $1)) as "at!""#,
        settle.as_secs_f64()
    )
    .fetch_one(&mut *tx)
    .await?;
    let from = watermark.unwrap_or(Uuid::nil());
    let to = settled_before.max(from);
    let rechecked = if open.is_empty() {
        Vec::new()
    } else {
        groups(&mut tx, bucket_bounds, Runs::Ids(open)).await?
    };
    let crossed = groups(&mut tx, bucket_bounds, Runs::Between(from, to)).await?;
    let recent = groups(&mut tx, bucket_bounds, Runs::From(to)).await?;
    tx.commit().await?;
    Ok(TotalsRead {
        watermark: to,
        rechecked,
        crossed,
        recent,
    })
}

/// The fleet's work right now.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    pub queue_depth: i64,
    /// Seconds since the tick (or trigger) of the oldest queued run.
    pub oldest_queued_seconds: Option<f64>,
    pub active_leases: i64,
    pub expired_leases: i64,
}

pub async fn runs_gauges(pool: &PgPool) -> Result<Gauges, sqlx::Error> {
    let leases = sqlx::query!(
        r#"select count(*) filter (where lease_expires_at >= now()) as "active!",
                  count(*) filter (where lease_expires_at < now()) as "expired!"
           from runs where status = 'RUNNING'"#
    )
    .fetch_one(pool)
    .await?;
    let queue = sqlx::query!(
        r#"select count(*) as "depth!",
                  extract(epoch from now() - min(coalesce(scheduled_for, queued_at)))::float8 as oldest
           from runs where status = 'QUEUED'"#
    )
    .fetch_one(pool)
    .await?;
    Ok(Gauges {
        queue_depth: queue.depth,
        oldest_queued_seconds: queue.oldest,
        active_leases: leases.active,
        expired_leases: leases.expired,
    })
}
