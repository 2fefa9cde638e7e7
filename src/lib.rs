//! Autoloader's core library: configuration, the schedule model, the run state machine and
//! database access. The binaries (`autoloader-api`, `autoloader-worker`) are thin shells over it.
#![forbid(unsafe_code)]

pub mod config;
pub mod db;
pub mod run;
pub mod schedule;
pub mod telemetry;
