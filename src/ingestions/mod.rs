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

pub mod catchup;
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

/// `n` pseudo-random texts of up to `max_len` characters drawn from `alphabet` (a xorshift, so
/// every run tries the same texts): for tests that any text parses or is refused.
#[cfg(test)]
pub(crate) fn pseudo_random_texts(alphabet: &str, max_len: u64, n: usize) -> Vec<String> {
    let alphabet: Vec<char> = alphabet.chars().collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % max_len) as usize;
            (0..len)
                .map(|i| alphabet[((x >> (i % 50)) as usize + i) % alphabet.len()])
                .collect()
        })
        .collect()
}
