//! Autoloader's core library: configuration, the schedule model, the run state machine, database
//! access, the ticker and the worker runtime. The binaries (`autoloader-api`,
//! `autoloader-worker`) are thin shells over it.
#![forbid(unsafe_code)]

pub mod config;
pub mod db;
pub mod executor;
pub mod ingestion;
pub mod process;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod source;
pub mod telemetry;
pub mod ticker;
pub mod wake;
pub mod worker;
