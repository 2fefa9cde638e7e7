//! Wake-ups instead of polling: a `LISTEN` connection per loop, reconnected when it breaks.
//!
//! Notifications are hints, never the only signal: a loop that waits here also wakes on its own
//! timer, so a notification lost while the connection was down delays work by at most that
//! timer, and never loses it.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;

/// Tick rows changed: a schedule was edited, or a ticker advanced rows (see migrations).
pub const TICKS_CHANNEL: &str = "autoloader_ticks";
/// A run became QUEUED.
pub const RUNS_CHANNEL: &str = "autoloader_runs";

/// Longest wait for a `LISTEN` connection before the loop goes on polling.
const LISTEN_CONNECT_BOUND: Duration = Duration::from_secs(5);

pub struct Waker {
    pool: PgPool,
    channel: &'static str,
    listener: Option<PgListener>,
}

impl Waker {
    /// Does not connect yet: [`Waker::listen`] does, so a process starts even while the database
    /// is briefly away.
    pub fn new(pool: PgPool, channel: &'static str) -> Waker {
        Waker {
            pool,
            channel,
            listener: None,
        }
    }

    /// Makes sure the `LISTEN` is in place. Call it before looking at the database, so that any
    /// change after the look sends a notification this waker will see (listen, then check).
    pub async fn listen(&mut self) {
        if self.listener.is_some() {
            return;
        }
        // Bounded: a LISTEN that cannot connect must not hold up the loop that waits on it.
        let connect = tokio::time::timeout(LISTEN_CONNECT_BOUND, self.connect());
        match connect
            .await
            .unwrap_or_else(|_| Err(autoloader::db::unanswered(LISTEN_CONNECT_BOUND)))
        {
            Ok(l) => self.listener = Some(l),
            Err(e) => {
                tracing::warn!(channel = self.channel, error = %e, "cannot LISTEN; polling until it can")
            }
        }
    }

    /// Returns when a notification arrives (after swallowing any others already buffered, so a
    /// burst wakes the caller once), or soon when there is no working `LISTEN` connection, so the
    /// caller looks at the database again and [`Waker::listen`]s anew.
    pub async fn wait(&mut self) {
        let Some(listener) = self.listener.as_mut() else {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return;
        };
        match listener.recv().await {
            Ok(_) => while listener.next_buffered().is_some() {},
            Err(e) => {
                tracing::warn!(channel = self.channel, error = %e, "LISTEN connection lost; reconnecting");
                self.listener = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Drops the `LISTEN` connection, to be made anew by the next [`Waker::listen`]: after a
    /// statement got no answer, this connection may be as quiet, and a half-open one would never
    /// deliver a notification again nor fail.
    pub fn reset(&mut self) {
        if self.listener.take().is_some() {
            tracing::warn!(
                channel = self.channel,
                "the database went quiet; LISTENing again on a fresh connection"
            );
        }
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(self.channel).await?;
        Ok(listener)
    }
}
