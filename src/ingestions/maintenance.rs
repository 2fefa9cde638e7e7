//! An ingestion's table maintenance settings (`options.maintenance`, `snapshot_retention`,
//! `min_snapshots_to_keep`, `target_file_size`, `orphan_safety_window`): each unset one falls
//! back to the operator's default (`AUTOLOADER_*`, [`crate::config::MaintenanceConfig`]).

use std::time::Duration;

use serde_json::Value;

/// The option keys this module reads, with what each means (for the unknown-option message and
/// the README).
pub const KEYS: [(&str, &str); 5] = [
    (
        "maintenance",
        "auto (default: the scheduler compacts, expires snapshots and removes orphans) or manual \
         (only POST .../maintenance)",
    ),
    (
        "snapshot_retention",
        "snapshots older than this are expired, e.g. '7d', '36h' (default \
         AUTOLOADER_SNAPSHOT_RETENTION, 7d)",
    ),
    (
        "min_snapshots_to_keep",
        "the last N snapshots are kept whatever their age (default \
         AUTOLOADER_MIN_SNAPSHOTS_TO_KEEP, 1)",
    ),
    (
        "target_file_size",
        "bytes a compacted data file aims at (default AUTOLOADER_TARGET_FILE_SIZE, 128 MiB)",
    ),
    (
        "orphan_safety_window",
        "unreferenced files younger than this are never removed, e.g. '3d' (default \
         AUTOLOADER_ORPHAN_SAFETY_WINDOW, 3d)",
    ),
];

/// Shortest `snapshot_retention` and `orphan_safety_window`: a commit in flight (its metadata and
/// manifests written, its pointer swap not yet made) must never look old enough to delete.
pub const MIN_WINDOW: Duration = Duration::from_secs(3600);
/// Longest duration accepted: ten years.
pub const MAX_WINDOW: Duration = Duration::from_secs(3650 * 86_400);
/// `target_file_size` bounds: 1 MiB to 4 GiB.
pub const TARGET_FILE_SIZE_RANGE: std::ops::RangeInclusive<u64> = (1 << 20)..=(4 << 30);

/// Who queues the table's maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaintenanceMode {
    /// The scheduler queues compaction, snapshot expiry and orphan removal when they are due.
    #[default]
    Auto,
    /// Only `POST /api/v1/ingestions/{id}/maintenance` does.
    Manual,
}

/// The settings an ingestion gives; `None` is the operator's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaintenanceOptions {
    pub mode: MaintenanceMode,
    pub snapshot_retention: Option<Duration>,
    pub min_snapshots_to_keep: Option<u32>,
    pub target_file_size: Option<u64>,
    pub orphan_safety_window: Option<Duration>,
}

impl MaintenanceOptions {
    /// Reads `key` when it is one of [`KEYS`]: `None` when it is not; else whether its value is
    /// good (the message says what is expected).
    pub fn read(&mut self, key: &str, value: &Value) -> Option<Result<(), String>> {
        let window = |v: &Value| {
            v.as_str()
                .and_then(|s| parse_duration(s).ok())
                .filter(|d| (MIN_WINDOW..=MAX_WINDOW).contains(d))
        };
        let result = match key {
            "maintenance" => match value.as_str() {
                Some("auto") => Ok(self.mode = MaintenanceMode::Auto),
                Some("manual") => Ok(self.mode = MaintenanceMode::Manual),
                _ => Err("maintenance must be 'auto' or 'manual'".to_owned()),
            },
            "snapshot_retention" | "orphan_safety_window" => match window(value) {
                Some(d) if key == "snapshot_retention" => Ok(self.snapshot_retention = Some(d)),
                Some(d) => Ok(self.orphan_safety_window = Some(d)),
                None => Err(format!(
                    "{key} must be a duration from 1h to 3650d, a number and a unit (s, m, h, d), \
                     e.g. '7d' or '36h'"
                )),
            },
            "min_snapshots_to_keep" => match value.as_u64().filter(|n| (1..=100_000).contains(n)) {
                Some(n) => Ok(self.min_snapshots_to_keep = Some(n as u32)),
                None => Err("min_snapshots_to_keep must be an integer from 1 to 100000".to_owned()),
            },
            "target_file_size" => match value
                .as_u64()
                .filter(|n| TARGET_FILE_SIZE_RANGE.contains(n))
            {
                Some(n) => Ok(self.target_file_size = Some(n)),
                None => Err(format!(
                    "target_file_size must be a number of bytes from {} to {}",
                    TARGET_FILE_SIZE_RANGE.start(),
                    TARGET_FILE_SIZE_RANGE.end()
                )),
            },
            _ => return None,
        };
        Some(result)
    }
}

/// `30s`, `15m`, `36h`, `7d`: a whole number (at most 10 digits) and one unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{s}' has no unit (s, m, h or d)"))?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() || digits.len() > 10 {
        return Err(format!("'{s}' must start with a whole number"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}' has an unknown unit (s, m, h or d)")),
    };
    Ok(Duration::from_secs(n * secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration(" 36h "), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "-1d",
            "1.5d",
            "7 d",
            "99999999999d",
            "7dd",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_read_and_bounded() {
        let mut o = MaintenanceOptions::default();
        assert_eq!(o.read("maintenance", &json!("manual")), Some(Ok(())));
        assert_eq!(o.read("snapshot_retention", &json!("2d")), Some(Ok(())));
        assert_eq!(o.read("orphan_safety_window", &json!("6h")), Some(Ok(())));
        assert_eq!(o.read("min_snapshots_to_keep", &json!(3)), Some(Ok(())));
        assert_eq!(o.read("target_file_size", &json!(64 << 20)), Some(Ok(())));
        assert_eq!(
            o,
            MaintenanceOptions {
                mode: MaintenanceMode::Manual,
                snapshot_retention: Some(Duration::from_secs(2 * 86_400)),
                min_snapshots_to_keep: Some(3),
                target_file_size: Some(64 << 20),
                orphan_safety_window: Some(Duration::from_secs(6 * 3600)),
            }
        );
        assert_eq!(o.read("glob", &json!("*")), None);
        for (k, v) in [
            ("maintenance", json!("sometimes")),
            ("snapshot_retention", json!("10m")),
            ("snapshot_retention", json!(7)),
            ("orphan_safety_window", json!("3651d")),
            ("min_snapshots_to_keep", json!(0)),
            ("min_snapshots_to_keep", json!("3")),
            ("target_file_size", json!(1024)),
            ("target_file_size", json!(5u64 << 30)),
        ] {
            let before = o;
            assert!(matches!(o.read(k, &v), Some(Err(_))), "{k} = {v}");
            assert_eq!(o, before, "a refused value changes nothing");
        }
    }
}
