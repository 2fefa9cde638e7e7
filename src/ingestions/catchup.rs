//! The catch-up policy of an ingestion: what becomes of the ticks its schedule missed while it
//! was paused, or while no ticker ran for longer than the misfire grace time.
//!
//! * `skip`: none runs; they are recorded as one MISSED row with their count and window (what
//!   the scheduler always did).
//! * `once`: one run, for the newest, whose data interval covers them all.
//! * `all`: one run each, oldest first and never two at once, the newest `max_catchup_runs` of
//!   them; older ones are recorded as one MISSED row.
//!
//! Stored in `ingestions.catchup` and `ingestions.max_catchup_runs`, each with a check
//! constraint that refuses any other value, whoever writes.

/// The policy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Catchup {
    #[default]
    Skip,
    Once,
    All,
}

/// The most runs `catchup = all` may owe one schedule (the database refuses more).
pub const MAX_CATCHUP_RUNS: i32 = 1000;

/// `max_catchup_runs` when a definition does not say.
pub const DEFAULT_MAX_CATCHUP_RUNS: i32 = 100;

impl Catchup {
    pub fn as_str(self) -> &'static str {
        match self {
            Catchup::Skip => "skip",
            Catchup::Once => "once",
            Catchup::All => "all",
        }
    }

    pub fn parse(s: &str) -> Result<Catchup, String> {
        match s {
            "skip" => Ok(Catchup::Skip),
            "once" => Ok(Catchup::Once),
            "all" => Ok(Catchup::All),
            other => Err(format!(
                "catchup must be skip, once or all (got '{}')",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    /// The default of a new ingestion from `SCHEDULER_COALESCE`: coalescing late ticks (true,
    /// the default) is what `skip` keeps doing; running each late tick (false) is `all`.
    pub fn from_coalesce(coalesce: bool) -> Catchup {
        if coalesce {
            Catchup::Skip
        } else {
            Catchup::All
        }
    }
}

/// A stored policy; a value no check allows (a row written before the constraints, or a future
/// mode) reads as `skip`, today's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchupPolicy {
    pub mode: Catchup,
    /// 1..=[`MAX_CATCHUP_RUNS`].
    pub max_runs: usize,
}

impl CatchupPolicy {
    pub fn stored(mode: &str, max_runs: i32) -> CatchupPolicy {
        CatchupPolicy {
            mode: Catchup::parse(mode).unwrap_or_default(),
            max_runs: max_runs.clamp(1, MAX_CATCHUP_RUNS) as usize,
        }
    }
}

/// Checks `max_catchup_runs` as a request sends it.
pub fn check_max_runs(n: i64) -> Result<i32, String> {
    if (1..=i64::from(MAX_CATCHUP_RUNS)).contains(&n) {
        Ok(n as i32)
    } else {
        Err(format!(
            "max_catchup_runs must be between 1 and {MAX_CATCHUP_RUNS} (got {n})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_name_themselves() {
        for m in [Catchup::Skip, Catchup::Once, Catchup::All] {
            assert_eq!(Catchup::parse(m.as_str()), Ok(m));
        }
        let e = Catchup::parse("ALL").expect_err("case matters");
        assert!(e.contains("skip, once or all"), "{e}");
        assert_eq!(Catchup::from_coalesce(true), Catchup::Skip);
        assert_eq!(Catchup::from_coalesce(false), Catchup::All);
        assert_eq!(CatchupPolicy::stored("weird", 0).mode, Catchup::Skip);
        assert_eq!(CatchupPolicy::stored("all", 0).max_runs, 1);
    }

    #[test]
    fn max_runs_is_bounded() {
        assert_eq!(check_max_runs(1), Ok(1));
        assert_eq!(check_max_runs(1000), Ok(1000));
        assert!(check_max_runs(0).is_err());
        assert!(check_max_runs(1001).is_err());
        assert!(check_max_runs(i64::MAX).is_err());
    }
}
