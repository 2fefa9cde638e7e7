//! The 5-field cron language (Vixie cron / cronie dialect) and matching on naive local
//! wall-clock times.
//!
//! Owns: parsing an expression into bit sets, the static "can this ever fire?" check, and the
//! naive iterator that yields matching wall times in increasing order. Knows nothing about time
//! zones; `next.rs` maps the wall times it yields onto instants.
//!
//! Invariants of a [`CronExpr`]: every set is non-empty and within its field's range, day-of-week
//! 7 has been folded into 0, and some (month, day) pair can match, so [`CronExpr::next_match`]
//! finds a match within one 400-year Gregorian cycle of any start inside chrono's range.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

/// A parsed expression, as bit sets (bit `n` set = value `n` allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CronExpr {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    /// Vixie cron applies the OR rule only when neither day field starts with `*`; it decides by
    /// the text, so `*/2` counts as a star even though it restricts.
    dom_star: bool,
    dow_star: bool,
    /// Hour field names specific hours (no `*`, no step). Decides DST handling, see `next.rs`.
    fixed_hour: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names, the first of which means `min` (empty = names not accepted).
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// Longest day-of-month each month can have; February counts its leap day, because an
/// expression that fires only on Feb 29 still fires.
const MAX_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Beyond this the search gives up. The Gregorian calendar, weekdays included, repeats every 400
/// years, so an expression that has not matched within 401 years never will.
const SEARCH_YEARS: i32 = 401;

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl CronExpr {
    /// Parses an expression, returning every problem found (each a complete message without the
    /// API field name).
    pub(super) fn parse(expression: &str) -> Result<CronExpr, Vec<String>> {
        let expression = expression.trim();
        if expression.starts_with('@') {
            return Self::parse_macro(expression);
        }
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(vec![format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            )]);
        };

        let mut problems = Vec::new();
        let mut field = |spec: &FieldSpec, text: &str| match parse_field(spec, text) {
            Ok(bits) => bits,
            Err(mut found) => {
                problems.append(&mut found);
                0
            }
        };
        let minutes = field(&MINUTE, minute);
        let hours = field(&HOUR, hour);
        let days_of_month = field(&DAY_OF_MONTH, dom);
        let months = field(&MONTH, month);
        let dow_bits = field(&DAY_OF_WEEK, dow);
        if !problems.is_empty() {
            return Err(problems);
        }

        // Sunday is both 0 and 7; fold so matching only needs bits 0-6.
        let days_of_week = ((dow_bits | (dow_bits >> 7)) & 0x7f) as u8;
        let expr = CronExpr {
            minutes,
            hours: hours as u32,
            days_of_month: days_of_month as u32,
            months: months as u16,
            days_of_week,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
            fixed_hour: !hour.starts_with('*') && !hour.contains('/'),
        };
        expr.check_can_fire(dom)?;
        Ok(expr)
    }

    fn parse_macro(expression: &str) -> Result<CronExpr, Vec<String>> {
        let lower = expression.to_ascii_lowercase();
        if lower == "@reboot" {
            return Err(vec![
                "@reboot is not supported: a schedule must name a time of day".to_string(),
            ]);
        }
        match MACROS.iter().find(|(name, _)| *name == lower) {
            Some((_, fields)) => Self::parse(fields),
            None => Err(vec![format!(
                "unknown macro '{expression}' (expected one of: @yearly, @annually, @monthly, \
                 @weekly, @daily, @midnight, @hourly)"
            )]),
        }
    }

    /// When the day-of-week field is a star, days are ANDed, so a day-of-month that no allowed
    /// month has (Feb 30, Apr 31) means the expression can never fire. Rejecting it here keeps
    /// `next_match` from scanning 400 years to learn the same thing.
    fn check_can_fire(&self, dom_text: &str) -> Result<(), Vec<String>> {
        if !self.dow_star {
            return Ok(());
        }
        let possible = (1..=12u32)
            .filter(|m| self.months & (1 << m) != 0)
            .any(|m| {
                let max_day = MAX_DAYS[(m - 1) as usize];
                self.days_of_month & bits_through(max_day) != 0
            });
        if possible {
            return Ok(());
        }
        let months: Vec<&str> = (1..=12usize)
            .filter(|m| self.months & (1 << m) != 0)
            .map(|m| MONTH_NAMES[m - 1])
            .collect();
        Err(vec![format!(
            "day-of-month {dom_text} never occurs in month(s) {}",
            months.join(",")
        )])
    }

    pub(super) fn fixed_hour(&self) -> bool {
        self.fixed_hour
    }

    /// Whether one wall time matches; the iterator does not need it, the tests' oracle does.
    #[cfg(test)]
    pub(super) fn matches(&self, at: NaiveDateTime) -> bool {
        at.second() == 0
            && at.nanosecond() == 0
            && self.minutes & (1 << at.minute()) != 0
            && self.hours & (1 << at.hour()) != 0
            && self.months & (1 << at.month()) != 0
            && self.day_matches(at.date())
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching wall time at or after `from` (rounded up to a whole minute). Jumps
    /// field by field, so sparse expressions (Feb 29) cost a few steps per year, not per minute.
    pub(super) fn next_match(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let from = ceil_minute(from)?;
        let last_year = from.year().checked_add(SEARCH_YEARS)?;
        let mut date = from.date();
        let mut hour = from.hour();
        let mut minute = from.minute();
        loop {
            if date.year() > last_year {
                return None;
            }
            if self.months & (1 << date.month()) == 0 {
                date = self.next_month_start(date)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = date.succ_opt()?;
                (hour, minute) = (0, 0);
                continue;
            }
            let Some(h) = next_bit(u64::from(self.hours), hour) else {
                date = date.succ_opt()?;
                (hour, minute) = (0, 0);
                continue;
            };
            if h != hour {
                (hour, minute) = (h, 0);
            }
            match next_bit(self.minutes, minute) {
                Some(m) => return date.and_hms_opt(hour, m, 0),
                None => (hour, minute) = (hour + 1, 0),
            }
        }
    }

    /// First day of the next allowed month after `date`'s month (the mask is never empty).
    fn next_month_start(&self, date: NaiveDate) -> Option<NaiveDate> {
        let later = u64::from(self.months) & (!0u64 << (date.month() + 1));
        match later {
            0 => {
                let first = next_bit(u64::from(self.months), 1)?;
                NaiveDate::from_ymd_opt(date.year().checked_add(1)?, first, 1)
            }
            bits => NaiveDate::from_ymd_opt(date.year(), bits.trailing_zeros(), 1),
        }
    }
}

/// Smallest set bit at position `from` or above.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    match bits & (!0u64 << from) {
        0 => None,
        rest => Some(rest.trailing_zeros()),
    }
}

/// Bits 0 through `n` inclusive.
fn bits_through(n: u32) -> u32 {
    if n >= 31 {
        !0
    } else {
        (1 << (n + 1)) - 1
    }
}

fn ceil_minute(at: NaiveDateTime) -> Option<NaiveDateTime> {
    let floor = at.with_second(0)?.with_nanosecond(0)?;
    if floor == at {
        Some(at)
    } else {
        floor.checked_add_signed(Duration::minutes(1))
    }
}

/// One field: a comma-separated list of `*`, `v`, `a-b`, each optionally `/step`
/// (`a/step` runs from `a` to the field's maximum, as in cronie).
fn parse_field(spec: &FieldSpec, text: &str) -> Result<u64, Vec<String>> {
    let mut bits = 0u64;
    let mut problems = Vec::new();
    for item in text.split(',') {
        match parse_item(spec, item) {
            Ok(item_bits) => bits |= item_bits,
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(bits)
    } else {
        Err(problems)
    }
}

fn parse_item(spec: &FieldSpec, item: &str) -> Result<u64, String> {
    let name = spec.name;
    if item.is_empty() {
        return Err(format!("empty list item in {name}"));
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(spec, item, step)?)),
        None => (item, None),
    };
    let (low, high) = if range == "*" {
        (spec.min, spec.max)
    } else if let Some((a, b)) = range.split_once('-') {
        if a.is_empty() || b.is_empty() || a == "*" || b == "*" {
            return Err(format!("invalid range '{range}' in {name}"));
        }
        let (low, high) = (parse_value(spec, a)?, parse_value(spec, b)?);
        if low > high {
            return Err(format!(
                "range {a}-{b} is reversed in {name} (wrap-around ranges are not supported)"
            ));
        }
        (low, high)
    } else {
        let value = parse_value(spec, range)?;
        match step {
            Some(_) => (value, spec.max),
            None => (value, value),
        }
    };
    let step = step.unwrap_or(1) as usize;
    Ok((low..=high)
        .step_by(step)
        .fold(0u64, |acc, v| acc | (1 << v)))
}

fn parse_step(spec: &FieldSpec, item: &str, step: &str) -> Result<u32, String> {
    let name = spec.name;
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid step '{step}' in {name} ('{item}')"));
    }
    match step.parse::<u32>() {
        Ok(0) => Err(format!("step must be at least 1 in {name} ('{item}')")),
        Ok(n) if n <= spec.max => Ok(n),
        _ => Err(format!(
            "step {step} out of range in {name} (1-{})",
            spec.max
        )),
    }
}

fn parse_value(spec: &FieldSpec, token: &str) -> Result<u32, String> {
    let name = spec.name;
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(format!(
                "{name} {token} out of range ({}-{})",
                spec.min, spec.max
            )),
        };
    }
    if !spec.names.is_empty() && token.bytes().all(|b| b.is_ascii_alphabetic()) {
        return match spec
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(token))
        {
            Some(index) => Ok(spec.min + index as u32),
            None => Err(format!("unknown name '{token}' in {name}")),
        };
    }
    Err(format!("invalid value '{token}' in {name}"))
}

#[cfg(test)]
mod tests;
