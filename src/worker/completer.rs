//! Batches run outcomes into one fenced UPDATE (one commit) per batch.
//!
//! A worker that writes each outcome in its own transaction spends a commit, and under a burst a
//! WAL flush, per run. The completer instead takes every outcome already waiting when it starts a
//! write, so batches grow by themselves exactly when runs finish faster than the database
//! commits, and a lone outcome is written at once. Each run's task waits for its own answer: whether
//! its lease still held when the batch was written.

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::lease::{self, Lease, Outcome};

/// Most outcomes in one statement.
const MAX_BATCH: usize = 1000;

type Reply = oneshot::Sender<Result<bool, String>>;

/// Where run tasks send their outcomes. Dropping every clone lets the completer finish.
#[derive(Clone)]
pub struct Completer {
    tx: mpsc::UnboundedSender<(Lease, Outcome, Reply)>,
}

impl Completer {
    /// Starts the completer's task; it ends once every `Completer` clone is dropped and the last
    /// batch is written.
    pub fn start(pool: PgPool, worker_id: String) -> (Completer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_batches(pool, worker_id, rx));
        (Completer { tx }, task)
    }

    /// Records `outcome` under `lease`. `Ok(false)`: the lease was lost and nothing was written.
    pub async fn complete(&self, lease: Lease, outcome: Outcome) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((lease, outcome, reply))
            .map_err(|_| "the worker is stopping".to_owned())?;
        answer
            .await
            .map_err(|_| "the completer stopped".to_owned())?
    }
}

async fn write_batches(
    pool: PgPool,
    worker_id: String,
    mut rx: mpsc::UnboundedReceiver<(Lease, Outcome, Reply)>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Runs claimed together tend to finish together: let the run tasks that are ready to
        // send their outcomes do so before this batch closes. A yield costs microseconds; a
        // batch split in two costs a commit.
        if batch.len() < MAX_BATCH {
            tokio::task::yield_now().await;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
        }
        let outcomes: Vec<(Lease, Outcome)> =
            batch.iter().map(|(l, o, _)| (*l, o.clone())).collect();
        let result = lease::complete_many(&pool, &worker_id, &outcomes).await;
        metrics::histogram!("autoloader_outcome_batch_size").record(outcomes.len() as f64);
        match result {
            Ok(applied) => {
                let applied: std::collections::HashSet<Uuid> = applied.into_iter().collect();
                for (l, _, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(applied.contains(&l.run_id)));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (_, _, reply) in batch.drain(..) {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }
}
