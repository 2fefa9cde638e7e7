//! An ingestion's table maintenance settings (`options.maintenance`, `snapshot_retention`,
//! `min_snapshots_to_keep`, `target_file_size`, `orphan_safety_window`): each unset one falls
//! back to the operator's default (`AUTOLOADER_*`, [`crate::config::MaintenanceConfig`]).

use std::time::Duration;

use serde_json::Value;

/// `snapshot_retention` and `orphan_safety_window` as the API's document writes them: 1 to 87600
/// hours or 1 to 3650 days.
pub const WINDOW_PATTERN: &str = "^(([1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-6][0-9]{3}|87[0-5][0-9]{2}|87600)h|([1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)d)$";

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
    /// Reads `key` when it is one of this module's options: `None` when it is not; else whether its value is
    /// good (the message says what is expected).
    pub fn read(&mut self, key: &str, value: &Value) -> Option<Result<(), String>> {
        // Hours or days, as the API's document says (the operator's settings take any unit).
        let window = |v: &Value| {
            v.as_str()
                .filter(|s| s.trim() == *s && (s.ends_with('h') || s.ends_with('d')))
                .and_then(|s| parse_duration(s).ok())
                .filter(|d| (MIN_WINDOW..=MAX_WINDOW).contains(d))
        };
        let mut next = *self;
        let ok = match key {
            "maintenance" => match value.as_str() {
                Some("auto") => Some(MaintenanceMode::Auto),
                Some("manual") => Some(MaintenanceMode::Manual),
                _ => None,
            }
            .map(|m| next.mode = m),
            "snapshot_retention" => window(value).map(|d| next.snapshot_retention = Some(d)),
            "orphan_safety_window" => window(value).map(|d| next.orphan_safety_window = Some(d)),
            "min_snapshots_to_keep" => value
                .as_u64()
                .filter(|n| (1..=100_000).contains(n))
                .map(|n| next.min_snapshots_to_keep = Some(n as u32)),
            "target_file_size" => value
                .as_u64()
                .filter(|n| TARGET_FILE_SIZE_RANGE.contains(n))
                .map(|n| next.target_file_size = Some(n)),
            _ => return None,
        };
        if ok.is_some() {
            *self = next;
            return Some(Ok(()));
        }
        Some(Err(match key {
            "maintenance" => "maintenance must be 'auto' or 'manual'".to_owned(),
            "min_snapshots_to_keep" => {
                "min_snapshots_to_keep must be an integer from 1 to 100000".to_owned()
            }
            "target_file_size" => format!(
                "target_file_size must be a number of bytes from {} to {}",
                TARGET_FILE_SIZE_RANGE.start(),
                TARGET_FILE_SIZE_RANGE.end()
            ),
            _ => format!(
                "{key} must be a whole number of hours or days from 1h to 3650d, e.g. '7d' \
                 or '36h'"
            ),
        }))
    }
}

/// `30s`, `15m`, `36h`, `7d`: a whole number (no leading zero, at most 12 digits) and one
/// unit. Every duration option and setting is read by this one parser, each with its own bounds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{s}' has no unit (s, m, h or d)"))?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() || digits.len() > 12 || (digits.len() > 1 && digits.starts_with('0')) {
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
    Ok(Duration::from_secs(n.saturating_mul(secs)))
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
            "9999999999999d",
            "7dd",
            "07d",
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

    /// The document's pattern accepts exactly what the option takes.
    #[test]
    fn the_window_pattern_says_what_the_option_takes() {
        let pattern = regex_lite::Regex::new(WINDOW_PATTERN).expect("pattern");
        for n in (0..=90_000u64)
            .step_by(7)
            .chain([1, 3650, 3651, 87_600, 87_601])
        {
            for unit in ["s", "m", "h", "d"] {
                let v = format!("{n}{unit}");
                let took = MaintenanceOptions::default()
                    .read("snapshot_retention", &json!(v))
                    .is_some_and(|r| r.is_ok());
                assert_eq!(pattern.is_match(&v), took, "{v}");
            }
        }
        for v in ["01d", "", "1 d", "7d\n", " 7d"] {
            assert!(!pattern.is_match(v), "{v:?}");
            assert!(matches!(
                MaintenanceOptions::default().read("orphan_safety_window", &json!(v)),
                Some(Err(_))
            ));
        }
    }
}
