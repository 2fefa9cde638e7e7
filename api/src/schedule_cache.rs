//! An in-memory view of schedules for `GET /api/v1/ingestions/{id}/schedule`, kept true by
//! PostgreSQL notifications, so the endpoint dashboards poll answers without a database query.
//!
//! Correctness rules, in order of importance:
//! - The cache is only used while its `LISTEN autoloader_ingestions` connection is up. When the
//!   connection drops (notifications may have been lost) everything is forgotten and lookups go to
//!   the database until it is listening again.
//! - Every change to an ingestion's schedule fields, status, tenant, or the row's deletion notifies
//!   (trigger `ingestions_notify_change`), and this process's own writes invalidate at once, before
//!   they answer, so a client reads its own writes.
//! - A lookup that read the database stores its result only if no invalidation happened while it
//!   read (an epoch counter), so a slow read cannot put back what a change just removed.
//! - `next_run_time` moves when the ticker fires a tick, which does not notify: an entry whose
//!   `next_run_time` has passed is a miss, read again from the database, and so is an enabled
//!   schedule whose `next_run_time` the ticker has not computed yet.
//!
//! Another API process's write reaches this one's cache when the notification arrives
//! (milliseconds after its commit).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use autoloader::schedule::Schedule;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

/// The channel `ingestions_notify_change` notifies, with the ingestion id as payload.
pub const CHANNEL: &str = "autoloader_ingestions";
/// Entries older than this are read again whatever the notifications say.
const MAX_AGE: Duration = Duration::from_secs(300);
/// Entries kept at most; beyond it the cache is emptied and refills with what is asked.
const MAX_ENTRIES: usize = 100_000;

/// What the schedule endpoint shows of one ingestion.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    pub tenant_id: Uuid,
    pub enabled: bool,
    pub frequency: Option<String>,
    pub timezone: String,
    pub schedule: Option<Schedule>,
    pub next_run_time: Option<DateTime<Utc>>,
}

struct Entry {
    view: Arc<ScheduleView>,
    stored_at: Instant,
}

#[derive(Default)]
pub struct ScheduleCache {
    entries: RwLock<HashMap<Uuid, Entry>>,
    /// Bumped by every invalidation; see the module docs.
    epoch: AtomicU64,
    listening: AtomicBool,
}

impl ScheduleCache {
    /// The cached view of `id`, if it is usable now.
    pub fn get(&self, id: Uuid, now: DateTime<Utc>) -> Option<Arc<ScheduleView>> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let e = entries.get(&id)?;
        let fresh = e.stored_at.elapsed() < MAX_AGE
            && match e.view.next_run_time {
                Some(t) => t > now,
                // Enabled but not yet computed: the ticker is about to set it.
                None => !e.view.enabled,
            };
        fresh.then(|| e.view.clone())
    }

    /// The epoch to pass to [`ScheduleCache::put`] after reading the database.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores `view` read from the database, unless something was invalidated since `epoch`.
    pub fn put(&self, id: Uuid, view: Arc<ScheduleView>, epoch: u64) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Checked under the write lock: invalidations take it too, so none can slip between.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            id,
            Entry {
                view,
                stored_at: Instant::now(),
            },
        );
    }

    /// Forgets `id` (its ingestion changed).
    pub fn invalidate(&self, id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.remove(&id);
        }
    }

    fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.clear();
        }
    }

    fn set_listening(&self, on: bool) {
        // Forget first: entries from before a gap in notifications must never be served.
        self.forget_all();
        self.listening.store(on, Ordering::Release);
    }

    /// Listens for ingestion changes until the process ends, reconnecting when the connection
    /// breaks. Spawn it once per process; until it is listening the cache is bypassed.
    pub async fn listen(self: Arc<Self>, pool: PgPool) {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => {
                        self.set_listening(true);
                        self.follow(&mut listener).await;
                        tracing::warn!("schedule cache: LISTEN connection lost; bypassing the cache until it is back");
                    }
                    Err(e) => tracing::warn!(error = %e, "schedule cache: cannot LISTEN"),
                },
                Err(e) => tracing::warn!(error = %e, "schedule cache: cannot connect to LISTEN"),
            }
            self.set_listening(false);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn follow(&self, listener: &mut PgListener) {
        loop {
            // `try_recv` says when the connection dropped (`None`), unlike `recv`, which
            // reconnects silently and loses what was sent meanwhile.
            match listener.try_recv().await {
                Ok(Some(n)) => match n.payload().parse::<Uuid>() {
                    Ok(id) => self.invalidate(id),
                    Err(_) => self.forget_all(),
                },
                Ok(None) | Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(next: Option<DateTime<Utc>>) -> Arc<ScheduleView> {
        Arc::new(ScheduleView {
            tenant_id: Uuid::nil(),
            enabled: next.is_some(),
            frequency: Some("hourly".into()),
            timezone: "UTC".into(),
            schedule: None,
            next_run_time: next,
        })
    }

    fn listening() -> ScheduleCache {
        let c = ScheduleCache::default();
        c.set_listening(true);
        c
    }

    #[test]
    fn nothing_is_served_while_not_listening() {
        let c = ScheduleCache::default();
        let id = Uuid::now_v7();
        c.put(id, view(None), c.epoch());
        assert!(c.get(id, Utc::now()).is_none());
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let c = listening();
        let id = Uuid::now_v7();
        let epoch = c.epoch();
        c.invalidate(Uuid::now_v7());
        c.put(id, view(None), epoch);
        assert!(c.get(id, Utc::now()).is_none());
        c.put(id, view(None), c.epoch());
        assert!(c.get(id, Utc::now()).is_some());
        c.invalidate(id);
        assert!(c.get(id, Utc::now()).is_none());
    }

    #[test]
    fn an_entry_whose_next_run_has_passed_is_a_miss() {
        let c = listening();
        let id = Uuid::now_v7();
        let next = Utc::now() + chrono::Duration::seconds(60);
        c.put(id, view(Some(next)), c.epoch());
        assert!(c.get(id, next - chrono::Duration::seconds(1)).is_some());
        assert!(c.get(id, next).is_none());
    }

    #[test]
    fn an_enabled_schedule_without_a_next_run_is_not_served() {
        let c = listening();
        let id = Uuid::now_v7();
        let mut enabled = (*view(None)).clone();
        enabled.enabled = true;
        c.put(id, Arc::new(enabled), c.epoch());
        assert!(c.get(id, Utc::now()).is_none(), "enabled, next run unknown");
        let disabled = (*view(None)).clone();
        c.put(id, Arc::new(disabled), c.epoch());
        assert!(c.get(id, Utc::now()).is_some());
    }

    #[test]
    fn losing_the_connection_forgets_everything() {
        let c = listening();
        let id = Uuid::now_v7();
        c.put(id, view(None), c.epoch());
        c.set_listening(false);
        c.set_listening(true);
        assert!(c.get(id, Utc::now()).is_none());
    }
}
