//! The schedule model: what the user typed (`hourly`, `daily` at HH:MM, `weekly` at HH:MM, or a
//! `custom` 5-field cron, in an IANA time zone), parsed once at the API boundary into a
//! [`Schedule`] that cannot be invalid, and the fire instants it implies.
//!
//! Invariants:
//! * A [`Schedule`] only comes from [`Schedule::parse`]; its cron expression is valid and can
//!   fire (an expression like `0 0 30 2 *` is rejected), and `time` is present exactly for daily
//!   and weekly schedules.
//! * Fire instants are whole local minutes, strictly increasing, never duplicated.
//! * DST: a schedule whose hour field names specific hours ("fixed-hour": `2`, `1-3`, `0,12`,
//!   the daily/weekly presets) fires once per named wall time — at the first occurrence when the
//!   clock falls back, and at the end of the gap when it springs forward (several times in one
//!   gap collapse into one fire). A schedule with a `*` or stepped hour field ("wildcard-hour")
//!   is about elapsed time: it fires at both occurrences of a repeated wall time and skips wall
//!   times that do not exist.
//! * No input makes anything here panic.
//!
//! Parsing never stops at the first problem: [`ScheduleError`] lists every problem found, each
//! tagged with the API field it belongs to.

mod cron;
mod next;
pub mod span;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dst;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use cron::CronExpr;
use next::Kind;

pub const FIELD_FREQUENCY: &str = "schedule_frequency";
pub const FIELD_TIME: &str = "schedule_time";
pub const FIELD_TIMEZONE: &str = "schedule_timezone";
pub const FIELD_CRON: &str = "schedule_cron";

/// How often an ingestion runs, as the user chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Hourly,
    Daily,
    Weekly,
    Custom,
}

impl Frequency {
    pub const ALL: [Frequency; 4] = [
        Frequency::Hourly,
        Frequency::Daily,
        Frequency::Weekly,
        Frequency::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Hourly => "hourly",
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Custom => "custom",
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Frequency {
    type Err = ScheduleError;

    /// Exact lowercase names only, as the API documents them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Frequency::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                ScheduleError::single(
                    FIELD_FREQUENCY,
                    format!(
                        "schedule_frequency must be one of: hourly, daily, weekly, custom \
                         (got '{s}')"
                    ),
                )
            })
    }
}

/// A wall-clock time of day, minute precision. Serialized as "HH:MM".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalTime {
    hour: u8,
    minute: u8,
}

impl LocalTime {
    /// 00:00: the time of a daily or weekly schedule that names none (the product spec's
    /// `_parse_schedule_time`: "Defaults to 00:00 if not provided").
    pub const MIDNIGHT: LocalTime = LocalTime { hour: 0, minute: 0 };

    pub fn new(hour: u8, minute: u8) -> Option<LocalTime> {
        (hour < 24 && minute < 60).then_some(LocalTime { hour, minute })
    }

    pub fn hour(self) -> u8 {
        self.hour
    }

    pub fn minute(self) -> u8 {
        self.minute
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl FromStr for LocalTime {
    type Err = ScheduleError;

    /// Exactly `^([01]\d|2[0-3]):([0-5]\d)$`: two digits each, so "9:00" and "1430" are
    /// rejected rather than guessed at.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = match s.as_bytes() {
            [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) => {
                let hour = (h1 - b'0') * 10 + (h2 - b'0');
                let minute = (m1 - b'0') * 10 + (m2 - b'0');
                LocalTime::new(hour, minute)
            }
            _ => None,
        };
        parsed.ok_or_else(|| {
            ScheduleError::single(
                FIELD_TIME,
                "schedule_time must be HH:MM (e.g. '14:30')".into(),
            )
        })
    }
}

impl Serialize for LocalTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The schedule fields exactly as the API receives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScheduleInput<'a> {
    pub frequency: Option<&'a str>,
    pub time: Option<&'a str>,
    /// `None` means "UTC".
    pub timezone: Option<&'a str>,
    pub cron: Option<&'a str>,
}

/// One problem with one API field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a schedule, each naming the API field it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_problems(.problems))]
pub struct ScheduleError {
    pub problems: Vec<FieldProblem>,
}

fn join_problems(problems: &[FieldProblem]) -> String {
    let parts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl ScheduleError {
    fn single(field: &'static str, message: String) -> ScheduleError {
        ScheduleError {
            problems: vec![FieldProblem { field, message }],
        }
    }
}

/// One upcoming fire, with what a user needs to understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fire {
    pub at: DateTime<Utc>,
    /// The wall time in the schedule's zone when it fires.
    pub local: DateTime<Tz>,
    /// The wall time the cron named. Differs from `local` only when shifted by a DST gap.
    pub nominal_local: NaiveDateTime,
    pub shifted_by_dst_gap: bool,
    /// The second occurrence of a wall time that a fall-back overlap repeats.
    pub repeated_in_dst_overlap: bool,
}

/// A validated schedule. Cannot be constructed invalid.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    frequency: Frequency,
    time: Option<LocalTime>,
    timezone: Tz,
    expression: String,
    cron: CronExpr,
}

/// An empty or all-blank field is treated as absent: HTML forms and some clients send "" for
/// "not set", and "required" is the more useful message than "bad format".
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

/// Checks a cron expression on its own, whatever frequency it comes with: any `schedule_cron`
/// given must parse (the product spec's `validate_cron`).
pub fn check_cron(text: &str) -> Result<(), Vec<FieldProblem>> {
    CronExpr::parse(text.trim()).map(drop).map_err(|messages| {
        messages
            .into_iter()
            .map(|message| FieldProblem {
                field: FIELD_CRON,
                message,
            })
            .collect()
    })
}

impl Schedule {
    /// Parse the user's fields exactly as the API receives them. A daily or weekly schedule
    /// without a time is one at 00:00; whether a time is required is the caller's rule
    /// (`ScheduleFields::validate`: only when the schedule is enabled).
    pub fn parse(input: &ScheduleInput<'_>) -> Result<Schedule, ScheduleError> {
        let mut problems = Vec::new();
        let mut problem = |field, message: String| problems.push(FieldProblem { field, message });

        let frequency = match present(input.frequency) {
            None => {
                problem(FIELD_FREQUENCY, "schedule_frequency is required".into());
                None
            }
            Some(text) => text
                .parse::<Frequency>()
                .map_err(|e| {
                    e.problems
                        .into_iter()
                        .for_each(|p| problem(p.field, p.message))
                })
                .ok(),
        };

        // The format is checked whatever the frequency, so a typo is caught even where the
        // value would be ignored.
        let time = match present(input.time) {
            None => None,
            Some(text) => match text.parse::<LocalTime>() {
                Ok(time) => Some(time),
                Err(e) => {
                    e.problems
                        .into_iter()
                        .for_each(|p| problem(p.field, p.message));
                    None
                }
            },
        };
        let timezone = match present(input.timezone) {
            None => Some(Tz::UTC),
            Some(name) => match name.parse::<Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    problem(FIELD_TIMEZONE, format!("unknown timezone '{name}'"));
                    None
                }
            },
        };

        // The cron field belongs to custom schedules only; elsewhere it is ignored unread.
        let mut custom = None;
        if frequency == Some(Frequency::Custom) {
            match present(input.cron).map(str::trim) {
                None => problem(
                    FIELD_CRON,
                    "schedule_cron is required for custom schedules".into(),
                ),
                Some(text) => match CronExpr::parse(text) {
                    Ok(cron) => custom = Some((text.to_string(), cron)),
                    Err(messages) => messages.into_iter().for_each(|m| problem(FIELD_CRON, m)),
                },
            }
        }

        if !problems.is_empty() {
            return Err(ScheduleError { problems });
        }
        let (Some(frequency), Some(timezone)) = (frequency, timezone) else {
            return Err(internal("frequency or timezone missing without a problem"));
        };
        let (time, expression) = match (frequency, time, custom) {
            (Frequency::Hourly, _, _) => (None, "0 * * * *".to_string()),
            // No time means 00:00, as the product spec's `_parse_schedule_time` says. Whether a
            // time is required is a rule about enabled schedules: `ScheduleFields::validate`.
            (Frequency::Daily, t, _) => {
                let t = t.unwrap_or(LocalTime::MIDNIGHT);
                (Some(t), format!("{} {} * * *", t.minute, t.hour))
            }
            (Frequency::Weekly, t, _) => {
                let t = t.unwrap_or(LocalTime::MIDNIGHT);
                (Some(t), format!("{} {} * * 0", t.minute, t.hour))
            }
            (Frequency::Custom, _, Some((expression, _))) => (None, expression),
            (Frequency::Custom, _, None) => {
                return Err(internal("required field missing without a problem"))
            }
        };
        let cron = CronExpr::parse(&expression).map_err(|messages| ScheduleError {
            problems: messages
                .into_iter()
                .map(|message| FieldProblem {
                    field: FIELD_CRON,
                    message,
                })
                .collect(),
        })?;
        Ok(Schedule {
            frequency,
            time,
            timezone,
            expression,
            cron,
        })
    }

    pub fn frequency(&self) -> Frequency {
        self.frequency
    }

    /// The time of day for daily and weekly schedules; `None` for hourly and custom (a time
    /// given with those is checked for format, then ignored).
    pub fn time(&self) -> Option<LocalTime> {
        self.time
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The effective cron expression: hourly "0 * * * *", daily "M H * * *", weekly "M H * * 0";
    /// custom: the user's expression as given (trimmed), so "@daily" stays "@daily".
    pub fn cron_expression(&self) -> &str {
        &self.expression
    }

    /// The first fire instant strictly after `after`. `None` only if the schedule never fires
    /// again, which for a validated schedule happens only at the end of chrono's range.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        next::next_fire(&self.cron, self.timezone, after).map(|fire| fire.at)
    }

    /// The next `n` fire instants strictly after `from`.
    pub fn upcoming(&self, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.fires(from).take(n).map(|fire| fire.at).collect()
    }

    /// The next `n` fires strictly after `from`, with detail for display.
    pub fn upcoming_detailed(&self, from: DateTime<Utc>, n: usize) -> Vec<Fire> {
        self.fires(from)
            .take(n)
            .map(|fire| Fire {
                at: fire.at,
                local: fire.at.with_timezone(&self.timezone),
                nominal_local: fire.nominal,
                shifted_by_dst_gap: fire.kind == Kind::ShiftedByGap,
                repeated_in_dst_overlap: fire.kind == Kind::RepeatedInOverlap,
            })
            .collect()
    }

    fn fires(&self, from: DateTime<Utc>) -> impl Iterator<Item = next::Resolved> + '_ {
        let mut after = from;
        std::iter::from_fn(move || {
            let fire = next::next_fire(&self.cron, self.timezone, after)?;
            after = fire.at;
            Some(fire)
        })
    }
}

/// Unreachable by construction; reported as an error rather than a panic all the same.
fn internal(what: &str) -> ScheduleError {
    ScheduleError::single(FIELD_FREQUENCY, format!("internal error: {what}"))
}
