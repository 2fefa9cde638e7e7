//! Ingestions: what a user defines (where files come from, their format, the table they go to,
//! the schedule), checked at the boundary, and the one home of every statement on the
//! `ingestions` table.
//!
//! * [`definition`]: the parts of a definition as types that cannot be invalid.
//! * [`options`]: the `options` object; [`hints`]: its `schema_hints`; [`partitions`]: its
//!   `partition_by`; [`listing`]: its `discovery` and `full_listing_interval`; [`maintenance`]:
//!   the table's maintenance settings.
//! * [`roots`]: the directories local sources may read from.
//! * [`draft`]: a definition as a request sends it, checked whole into a [`draft::Valid`], every
//!   problem named by its field.
//! * [`store`]: the statements. The schedule's tick row follows the ingestion row by itself
//!   (trigger `ingestions_sync_tick`), so no caller writes `schedule_ticks`.

pub mod definition;
pub mod draft;
pub mod egress;
pub mod glob;
pub mod hints;
pub mod listing;
pub mod maintenance;
pub mod options;
pub mod partitions;
pub mod roots;
pub mod store;

pub use definition::Definition;
