//! Live updates: `GET /ui/events`, a server-sent event stream per open page, all fed by ONE
//! task per API process.
//!
//! The task LISTENs on the channels the engine notifies (`autoloader_runs` when runs are queued,
//! `autoloader_ingestions` when a definition changes) and, while at least one page is watching,
//! reads the runs QUEUED or RUNNING now (two partial indexes) and those made in the last two
//! minutes (a primary-key range: run ids are UUIDv7), at once on a notification and every second
//! otherwise. A run that appeared, changed state or left the set (it finished; its status is
//! read) since the previous read becomes a `run` event, a change of a tenant's queue depth a
//! `queue` event.
//! Nobody watching: no reads at all. Events go out on a bounded broadcast channel; a stream that
//! falls behind gets `resync` and its page fetches everything again.
//!
//! Each stream sees only its tenant's events (the admin: all), is bounded in number
//! ([`MAX_STREAMS`] per process), sends a keep-alive comment every 15 s, and ends after
//! [`STREAM_SECS`]: the browser reconnects at once, and the reconnection checks the session
//! again, so a revoked token's page stops hearing within that time. At shutdown every stream
//! ends at once (`LiveHub::close`), so open pages do not hold up a graceful shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{broadcast, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use autoloader::runs::dashboard::{runs_active, runs_recent, runs_status, RunState};

use super::session::UiSession;
use crate::AppState;

/// Event streams one API process serves at once; more get 429 with `Retry-After` (the browser retries).
pub const MAX_STREAMS: usize = 256;
/// How long one stream lasts before the browser reconnects (and its session is checked again).
pub const STREAM_SECS: u64 = 300;
/// Events buffered per stream before it must resync.
const BUFFER: usize = 256;
/// How often the runs are read while someone watches and nothing was notified.
const POLL: Duration = Duration::from_secs(1);
/// Runs made this recently are read whatever their state, so one that was queued and finished
/// between two reads is still heard of.
const RECENT_SECS: f64 = 120.0;

/// A change a page may show.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A run appeared or changed state.
    Run {
        tenant: Uuid,
        ingestion: Uuid,
        run: Uuid,
        status: String,
    },
    /// The number of QUEUED runs of each tenant (those with none are absent).
    Queue(Arc<HashMap<Uuid, i64>>),
}

pub struct LiveHub {
    tx: broadcast::Sender<LiveEvent>,
    wake: Notify,
    streams: Arc<Semaphore>,
    /// Cancelled when the process shuts down: every stream ends, so a graceful shutdown does not
    /// wait for open pages.
    closing: CancellationToken,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub {
            tx: broadcast::channel(BUFFER).0,
            wake: Notify::new(),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            closing: CancellationToken::new(),
        }
    }
}

impl LiveHub {
    /// Ends every event stream, now and from now on (the process is shutting down).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// A new receiver of every event, and a read of the active runs right away.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        let rx = self.tx.subscribe();
        self.wake.notify_one();
        rx
    }

    /// Runs until the process ends: the LISTEN connection (reconnected when it breaks) and the
    /// reads of the active runs while anyone watches. Spawned once per process (see
    /// `AppState::listen`).
    pub async fn run(self: Arc<Self>, pool: PgPool) {
        tokio::join!(self.clone().listen(pool.clone()), self.poll(pool));
    }

    async fn listen(self: Arc<Self>, pool: PgPool) {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    match listener
                        .listen_all(["autoloader_runs", crate::schedule_cache::CHANNEL])
                        .await
                    {
                        Ok(()) => {
                            while let Ok(Some(_)) = listener.try_recv().await {
                                self.wake.notify_one();
                            }
                            tracing::warn!("live updates: LISTEN connection lost; reconnecting");
                        }
                        Err(e) => tracing::warn!(error = %e, "live updates: cannot LISTEN"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "live updates: cannot connect to LISTEN"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn poll(self: Arc<Self>, pool: PgPool) {
        // The runs last read, by id: (tenant, ingestion, status). `None`: nobody was watching.
        let mut known: Option<HashMap<Uuid, RunState>> = None;
        let mut depth: Arc<HashMap<Uuid, i64>> = Arc::default();
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            if self.tx.receiver_count() == 0 {
                // Nobody watches: read nothing, and start afresh when someone does.
                known = None;
                depth = Arc::default();
                continue;
            }
            let (active, recent) =
                match tokio::try_join!(runs_active(&pool, None), runs_recent(&pool, RECENT_SECS)) {
                    Ok(read) => read,
                    Err(e) => {
                        tracing::warn!(error = %e, "live updates: cannot read the runs");
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                };
            let mut queued: HashMap<Uuid, i64> = HashMap::new();
            for run in active.iter().filter(|r| r.status == "QUEUED") {
                *queued.entry(run.tenant_id).or_default() += 1;
            }
            let mut now: HashMap<Uuid, RunState> = recent.into_iter().map(|r| (r.id, r)).collect();
            for r in active {
                now.insert(
                    r.id,
                    RunState {
                        id: r.id,
                        tenant_id: r.tenant_id,
                        ingestion_id: r.ingestion_id,
                        status: r.status,
                    },
                );
            }
            if let Some(known) = &known {
                for (id, run) in &now {
                    if known.get(id).map(|k| &k.status) != Some(&run.status) {
                        self.send_run(run);
                    }
                }
                // Runs no longer active nor recent: they finished; their final state is read.
                let gone: Vec<Uuid> = known
                    .keys()
                    .filter(|id| !now.contains_key(id))
                    .copied()
                    .collect();
                if !gone.is_empty() {
                    let finished = runs_status(&pool, &gone)
                        .await
                        .inspect_err(|e| tracing::warn!(error = %e, "live updates: cannot read finished runs"))
                        .unwrap_or_default();
                    for (id, status) in finished {
                        if let Some(run) = known.get(&id).filter(|k| k.status != status) {
                            self.send_run(&RunState {
                                status,
                                ..run.clone()
                            });
                        }
                    }
                }
            }
            if *depth != queued {
                depth = Arc::new(queued);
                let _ = self.tx.send(LiveEvent::Queue(depth.clone()));
            }
            known = Some(now);
        }
    }

    fn send_run(&self, run: &RunState) {
        let _ = self.tx.send(LiveEvent::Run {
            tenant: run.tenant_id,
            ingestion: run.ingestion_id,
            run: run.id,
            status: run.status.clone(),
        });
    }
}

/// The SSE form of `event` for a stream of `tenant` (`None`: the admin's), if it may see it.
fn render(event: &LiveEvent, tenant: Option<Uuid>) -> Option<Event> {
    match event {
        LiveEvent::Run {
            tenant: t,
            ingestion,
            run,
            status,
        } => {
            if tenant.is_some_and(|mine| mine != *t) {
                return None;
            }
            let data =
                serde_json::json!({"ingestion_id": ingestion, "run_id": run, "status": status});
            Some(Event::default().event("run").data(data.to_string()))
        }
        LiveEvent::Queue(depth) => {
            let n = match tenant {
                Some(mine) => depth.get(&mine).copied().unwrap_or(0),
                None => depth.values().sum(),
            };
            Some(
                Event::default()
                    .event("queue")
                    .data(serde_json::json!({ "depth": n }).to_string()),
            )
        }
    }
}

/// `GET /ui/events`.
pub async fn events(State(state): State<AppState>, session: UiSession) -> Response {
    let hub = state.ui.live.clone();
    let Ok(permit) = hub.streams.clone().try_acquire_owned() else {
        return crate::error::ApiError::Quota {
            detail: "this API process serves as many live pages as it may; retrying".to_owned(),
            field: None,
            retry_after_secs: Some(5),
        }
        .into_response();
    };
    let tenant = session.tenant();
    let closing = hub.closing.clone();
    let rx = hub.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(STREAM_SECS);
    let hello = Event::default().event("hello").data("{}");
    let stream =
        futures_util::stream::unfold((rx, permit, Some(hello)), move |(mut rx, permit, first)| {
            let closing = closing.clone();
            async move {
                if let Some(first) = first {
                    return Some((Ok::<_, Infallible>(first), (rx, permit, None)));
                }
                loop {
                    let next = tokio::select! {
                        r = rx.recv() => r,
                        _ = tokio::time::sleep_until(deadline) => return None,
                        _ = closing.cancelled() => return None,
                    };
                    match next {
                        Ok(event) => {
                            if let Some(e) = render(&event, tenant) {
                                return Some((Ok(e), (rx, permit, None)));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let e = Event::default().event("resync").data("{}");
                            return Some((Ok(e), (rx, permit, None)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_hears_only_its_own_runs_and_queue() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let run = LiveEvent::Run {
            tenant: a,
            ingestion: Uuid::now_v7(),
            run: Uuid::now_v7(),
            status: "QUEUED".into(),
        };
        assert!(render(&run, Some(a)).is_some());
        assert!(render(&run, Some(b)).is_none());
        assert!(render(&run, None).is_some(), "the admin hears all");
        let depth = LiveEvent::Queue(Arc::new(HashMap::from([(a, 3)])));
        let text = |e: Option<Event>| format!("{:?}", e.expect("an event"));
        assert!(text(render(&depth, Some(b))).contains(r#"{\"depth\":0}"#));
    }
}
