//! Autoloader's core: the model and the stores.
//!
//! The model is what a user defines and what the engine records, parsed into types that cannot be
//! invalid ([`schedule`], [`ingestions::definition`], [`runs::RunStatus`]). The stores are the
//! one home of every SQL statement on the scheduler's tables, one module per table or aggregate,
//! named noun-first as the statements are (`run_cancel`, `tick_lock_due`, `ledger_record`):
//!
//! | table | module |
//! |---|---|
//! | `tenants`, `api_tokens` | [`tenants`] |
//! | `ingestions` | [`ingestions::store`] |
//! | `schedule_ticks` | [`ticks`] |
//! | `runs` (a run and its lease) | [`runs`] |
//! | `loaded_files` | [`ledger`] |
//! | `discovery_listings` | [`discovery`] |
//! | `audit_events` | [`audit`] |
//! | `dry_runs` | [`dry_runs`] |
//!
//! The API (`autoloader-api`) and the engine (`autoloader-worker`: ticker, worker runtime,
//! loader) call these functions and write no SQL of their own, except the Iceberg catalog's
//! tables, which belong to the catalog library.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod db;
pub mod discovery;
pub mod dry_runs;
pub mod ingestions;
pub mod ledger;
pub mod paging;
pub mod runs;
pub mod schedule;
pub mod secrets;
pub mod signals;
pub mod tables;
pub mod telemetry;
pub mod tenants;
pub mod ticks;
pub mod ui_sessions;
