//! The one place a process sets up its `tracing` subscriber.
//!
//! JSON lines when stderr is not a terminal (production, CI, log shippers), human-readable
//! output in a terminal; `AUTOLOADER_LOG_FORMAT=json|pretty` overrides the guess and `RUST_LOG`
//! sets the filter (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(default_filter: &str) {
    // PostgreSQL's notices ("relation ... already exists, skipping" from idempotent DDL) are
    // not news; RUST_LOG=sqlx::postgres::notice=info shows them again.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_filter},sqlx::postgres::notice=warn"))
    });
    let json = match std::env::var("AUTOLOADER_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests that start several apps in one process) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}
