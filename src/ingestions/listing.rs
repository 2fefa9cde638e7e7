//! How a run finds its files (`discovery`) and how often an incremental ingestion lists its whole
//! prefix (`full_listing_interval`), as Databricks Auto Loader's incremental listing does.
//!
//! An interval is `<n><unit>` with unit `m` (minutes), `h` (hours) or `d` (days), from one minute
//! to 365 days: a listing of a large prefix every second would be the full listing again, and a
//! year is already longer than anyone should wait for a late file.

use std::time::Duration;

/// `discovery`: what a run lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discovery {
    /// The whole source prefix, every run; new files are taken oldest first.
    #[default]
    Full,
    /// Only the keys after the greatest key the ledger holds under the prefix (S3 `start-after`;
    /// a local tree skips the directories that hold nothing later), and the whole prefix once
    /// every `full_listing_interval`; new files are taken in key order.
    Incremental,
}

impl Discovery {
    pub const ALL: [Discovery; 2] = [Discovery::Full, Discovery::Incremental];

    pub fn as_str(self) -> &'static str {
        match self {
            Discovery::Full => "full",
            Discovery::Incremental => "incremental",
        }
    }
}

/// The shortest `full_listing_interval`.
pub const MIN_FULL_LISTING_INTERVAL: Duration = Duration::from_secs(60);
/// The longest `full_listing_interval`.
pub const MAX_FULL_LISTING_INTERVAL: Duration = Duration::from_secs(365 * 86_400);
/// The `full_listing_interval` when none is given: one day.
pub const DEFAULT_FULL_LISTING_INTERVAL: Duration = Duration::from_secs(86_400);

/// Parses a `full_listing_interval`: `30m`, `6h`, `1d`.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    const SHAPE: &str = "full_listing_interval must be a whole number of minutes, hours or days \
                         such as '30m', '6h' or '1d'";
    // A bound on the text before any arithmetic: "365d" is 4 characters, "525600m" 7. Seconds
    // are not a unit here.
    if s.is_empty() || s.len() > 12 || s.ends_with('s') || s.trim() != s {
        return Err(SHAPE.into());
    }
    let d = super::maintenance::parse_duration(s).map_err(|_| SHAPE.to_owned())?;
    if d < MIN_FULL_LISTING_INTERVAL || d > MAX_FULL_LISTING_INTERVAL {
        return Err(
            "full_listing_interval must be from 1 minute ('1m') to 365 days ('365d')".into(),
        );
    }
    Ok(d)
}

/// The pattern of an interval within its bounds (for the API's document): minutes 1 to 525600,
/// hours 1 to 8760, days 1 to 365.
pub const INTERVAL_PATTERN: &str = "^(([1-9][0-9]{0,4}|[1-4][0-9]{5}|5[01][0-9]{4}|52[0-4][0-9]{3}|525[0-5][0-9]{2}|525600)m|([1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-5][0-9]|8760)h|([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-5])d)$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_minutes_hours_or_days_within_bounds() {
        assert_eq!(parse_interval("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_interval("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_interval("1d"), Ok(DEFAULT_FULL_LISTING_INTERVAL));
        assert_eq!(parse_interval("1m"), Ok(MIN_FULL_LISTING_INTERVAL));
        assert_eq!(parse_interval("365d"), Ok(MAX_FULL_LISTING_INTERVAL));
        assert_eq!(parse_interval("8760h"), Ok(MAX_FULL_LISTING_INTERVAL));
        assert_eq!(parse_interval("525600m"), Ok(MAX_FULL_LISTING_INTERVAL));
        for out_of_bounds in ["0m", "0d", "366d", "8761h", "525601m", "99999999999d"] {
            let e = parse_interval(out_of_bounds).expect_err(out_of_bounds);
            assert!(e.contains("from 1 minute"), "{out_of_bounds}: {e}");
        }
        for malformed in [
            "",
            "d",
            "1",
            "1s",
            "1w",
            "1 d",
            " 1d",
            "-1d",
            "+1d",
            "1.5h",
            "1D",
            "1dd",
            "١d",
            "1234567890123d",
            "01d",
        ] {
            let e = parse_interval(malformed).expect_err(malformed);
            assert!(e.contains("such as '30m'"), "{malformed:?}: {e}");
        }
    }

    /// The document's pattern accepts exactly what the parser does.
    #[test]
    fn the_pattern_says_what_the_parser_takes() {
        let pattern = regex_lite::Regex::new(INTERVAL_PATTERN).expect("pattern");
        for n in (0..=530_000u64)
            .step_by(7)
            .chain([1, 365, 366, 8760, 8761, 525_600])
        {
            for unit in ["m", "h", "d"] {
                let s = format!("{n}{unit}");
                assert_eq!(pattern.is_match(&s), parse_interval(&s).is_ok(), "{s}");
            }
        }
        for s in ["01d", "1s", "", "1 d", "1m\n"] {
            assert!(!pattern.is_match(s), "{s}");
        }
    }
}
