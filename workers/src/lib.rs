//! The ingestion executor: loads an ingestion's new files into its Iceberg table.
#![forbid(unsafe_code)]

pub mod ingest;
