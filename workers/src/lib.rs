//! Autoloader's engine: everything an `autoloader-worker` process runs.
//!
//! * [`ticker`]: turns due schedule ticks into run rows.
//! * [`worker`]: claims queued runs, executes them under a heartbeated lease, records outcomes,
//!   rescues the runs of dead workers, shuts down gracefully.
//! * [`executor`]: the seam between the engine and the work a run does.
//! * [`dry_runs`]: claims dry-run requests and has a [`dry_runs::DryRunner`] answer them.
//! * `ingest` (feature `loader`, on by default): the executor that loads an ingestion's new files
//!   into its Iceberg table; the only part that links arrow, parquet, object_store and iceberg.
//! * [`retention`]: the sweep that deletes finished runs past their retention.
//! * [`process`]: the wiring every worker binary shares.
//!
//! Every statement these make is a function of the core's stores (`autoloader::runs`,
//! `autoloader::ticks`, `autoloader::ledger`...).
// Denied, not forbidden: `ingest::local` allows it for the one system call std lacks (openat2).
#![deny(unsafe_code)]

pub mod catchup;
pub mod dry_runs;
pub mod executor;
#[cfg(feature = "loader")]
pub mod ingest;
pub mod maintenance;
pub mod metrics_http;
pub mod process;
pub mod retention;
pub mod ticker;
pub mod wake;
pub mod worker;
