//! Shutdown on signals, the same way in every binary: the first SIGTERM or Ctrl-C asks the
//! process to stop gracefully, a second one exits at once.

use tokio_util::sync::CancellationToken;

/// A token cancelled by the first SIGTERM or Ctrl-C. A second signal exits the process at once
/// (status 130), leaving any leases to expire and be recovered by other workers.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers; stop this process with SIGKILL");
                return;
            }
        };
        signals.next().await;
        tracing::info!("shutdown requested; signal again to exit at once");
        cancel.cancel();
        signals.next().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    token
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
