//! When each ingestion with incremental discovery last listed its whole source prefix
//! (`discovery_listings`).
//!
//! An incremental run lists only the keys after the greatest one the ledger holds under the
//! prefix ([`crate::ledger::ledger_greatest_under`]); a file that arrives late, sorting before
//! that key, is found by the next full listing, due `full_listing_interval` after the last one.
//! The row is written only in the transaction that commits the run which did the full listing,
//! fenced by its lease ([`discovery_record_full_listing`]): a run that died, lost its lease or
//! failed never counts as having listed, so the full listing happens again. The database's clock
//! decides when one is due, since the workers comparing it are many.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Whether an ingestion's full listing is due, and the database's clock when that was asked (the
/// listing's start, recorded if the run commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullListingDue {
    pub due: bool,
    pub now: DateTime<Utc>,
}

/// Whether `ingestion_id`'s last full listing is `interval` old or more, or none is recorded.
pub async fn discovery_full_listing_due(
    pool: &PgPool,
    ingestion_id: Uuid,
    interval: Duration,
) -> Result<FullListingDue, sqlx::Error> {
    let interval = PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(interval.as_micros()).unwrap_or(i64::MAX),
    };
    let row = sqlx::query!(
        r#"select now() as "now!",
                  coalesce((select last_full_listing_at <= now() - $2::interval
                            from discovery_listings where ingestion_id = $1), true) as "due!""#,
        ingestion_id,
        interval
    )
    .fetch_one(pool)
    .await?;
    Ok(FullListingDue {
        due: row.due,
        now: row.now,
    })
}

/// A full listing a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullListing {
    pub ingestion_id: Uuid,
    pub run_id: Uuid,
    /// When it started ([`FullListingDue::now`]).
    pub listed_at: DateTime<Utc>,
    /// Keys it found under the prefix.
    pub keys_listed: i64,
}

/// Records a full listing, inside the transaction that commits (and fences) the run that did
/// it. A listing older than the one recorded (two runs racing) leaves the later one in place.
pub async fn discovery_record_full_listing(
    tx: &mut Transaction<'_, Postgres>,
    listing: &FullListing,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into discovery_listings (ingestion_id, tenant_id, last_full_listing_at, run_id,
                                         keys_listed)
         select id, tenant_id, $2, $3, $4 from ingestions where id = $1
         on conflict (ingestion_id) do update
             set last_full_listing_at = excluded.last_full_listing_at,
                 run_id = excluded.run_id, keys_listed = excluded.keys_listed
             where discovery_listings.last_full_listing_at <= excluded.last_full_listing_at",
        listing.ingestion_id,
        listing.listed_at,
        listing.run_id,
        listing.keys_listed,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes the tenant's ingestion's next run list its whole prefix (files retried from the ledger
/// may sort before the keys already loaded).
pub async fn discovery_forget(
    pool: &PgPool,
    tenant_id: Uuid,
    ingestion_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from discovery_listings where ingestion_id = $1 and tenant_id = $2",
        ingestion_id,
        tenant_id
    )
    .execute(pool)
    .await?;
    Ok(())
}
