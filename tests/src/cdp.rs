//! A small Chrome DevTools protocol client: one websocket to the browser, commands matched to
//! their answers by id, events fanned out to whoever listens. Sessions are flattened (a page's
//! commands carry its `sessionId` on the same socket), so one connection serves every page.
//! Every command is bounded in time; an answer that never comes is an error, not a hang.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one command may take before it counts as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// An event the browser sent: its method, parameters, and the session (page) it belongs to.
#[derive(Debug, Clone)]
pub struct Event {
    pub session: Option<String>,
    pub method: String,
    pub params: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One websocket connection to a browser.
pub struct Connection {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    next_id: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Connection {
    /// Connects to the browser's websocket endpoint (`ws://127.0.0.1:<port>/devtools/browser/<id>`).
    pub async fn connect(url: &str) -> Result<Connection, String> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| format!("connect to {url}: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(4096);
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let reader = {
            let pending = Arc::clone(&pending);
            let events = events.clone();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    if let Some(id) = v["id"].as_u64() {
                        let answer = match v.get("error") {
                            Some(e) => Err(e.to_string()),
                            None => Ok(v["result"].clone()),
                        };
                        let waiter = pending.lock().expect("pending lock").remove(&id);
                        if let Some(tx) = waiter {
                            let _ = tx.send(answer);
                        }
                    } else if let Some(method) = v["method"].as_str() {
                        let _ = events.send(Event {
                            session: v["sessionId"].as_str().map(str::to_owned),
                            method: method.to_owned(),
                            params: v["params"].clone(),
                        });
                    }
                }
                // The socket closed: every waiting command fails at once instead of timing out.
                pending.lock().expect("pending lock").clear();
            })
        };
        Ok(Connection {
            out,
            pending,
            events,
            next_id: AtomicU64::new(1),
            tasks: vec![writer, reader],
        })
    }

    /// Sends `method` with `params` (to `session`'s page, or to the browser) and waits for its
    /// answer.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.call_within(session, method, params, COMMAND_TIMEOUT)
            .await
    }

    /// [`Connection::call`] with its own bound.
    pub async fn call_within(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.out
            .send(Message::text(msg.to_string()))
            .map_err(|_| format!("{method}: the connection to the browser is closed"))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: the browser closed the connection")),
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&id);
                Err(format!("{method}: no answer within {timeout:?}"))
            }
        }
    }

    /// Sends `method` without waiting for its answer (for clean-up on drop).
    pub fn send_and_forget(&self, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = json!({ "id": id, "method": method, "params": params });
        let _ = self.out.send(Message::text(msg.to_string()));
    }

    /// Events from now on. Subscribe before the action whose events you wait for.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Waits for the first event on `rx` for which `pick` returns `Some`, for at most `timeout`.
pub async fn wait_event<T>(
    rx: &mut broadcast::Receiver<Event>,
    timeout: Duration,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) => {
                if let Some(v) = pick(&ev) {
                    return Some(v);
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
        }
    }
}
