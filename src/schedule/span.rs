//! The ticks of a schedule in a window, bounded: what a ticker works out for the ticks missed
//! while a schedule was paused or no ticker ran.
//!
//! A window can hold any number of ticks (a minutely schedule paused for a year holds half a
//! million), but a ticker only ever needs the newest few of them one by one (the runs it will
//! queue) and the rest as one counted range (the MISSED row). [`span`] works out at most
//! [`ENUMERATION_CAP`] ticks from the window's start; when the window holds more, it jumps near
//! the window's end (by the gap between the ticks it saw) and works out the newest ones there,
//! so no call ever computes more than a few times the cap, whatever the window. The ticks it
//! jumped over are counted as "at least" ([`Range::exact`] false).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::Schedule;

/// The most ticks one enumeration works out before it jumps to the window's end.
pub const ENUMERATION_CAP: usize = 10_000;

/// Jumps tried (each four times further back) before giving the window's end up.
const PROBES: usize = 8;

/// A tick, with the tick before it (the start of its data interval) when known.
pub type Tick = (DateTime<Utc>, Option<DateTime<Utc>>);

/// Consecutive ticks of a window, counted rather than listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// How many ticks; a lower bound when not [`exact`](Range::exact).
    pub count: u64,
    pub exact: bool,
    /// The tick before `first` (the start of the range's data interval), when known.
    pub interval_start: Option<DateTime<Utc>>,
}

impl Range {
    /// "N tick(s) from A to B" ("at least N" when counted past the cap).
    pub fn describe(&self) -> String {
        format!(
            "{}{} tick(s) from {} to {}",
            if self.exact { "" } else { "at least " },
            self.count,
            self.first.to_rfc3339(),
            self.last.to_rfc3339()
        )
    }

    /// This range followed by `later` (its next ticks).
    pub fn then(self, later: Range) -> Range {
        Range {
            first: self.first,
            last: later.last,
            count: self.count + later.count,
            exact: self.exact && later.exact,
            interval_start: self.interval_start,
        }
    }

    fn push(range: &mut Option<Range>, (t, prev): Tick) {
        match range {
            Some(r) => {
                r.last = t;
                r.count += 1;
            }
            None => {
                *range = Some(Range {
                    first: t,
                    last: t,
                    count: 1,
                    exact: true,
                    interval_start: prev,
                })
            }
        }
    }
}

/// The ticks of a window: the newest `keep` listed, the older ones counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Span {
    /// The ticks before `kept`.
    pub older: Option<Range>,
    /// The newest ticks (at most `keep`), oldest first.
    pub kept: Vec<Tick>,
}

impl Span {
    /// Every tick of the span, as one range.
    pub fn whole(&self) -> Option<Range> {
        let mut all = self.older.clone();
        for t in &self.kept {
            Range::push(&mut all, *t);
        }
        all
    }

    /// Moves the kept ticks before `at` into `older` (they stay in order: they are the oldest).
    pub fn count_before(&mut self, at: DateTime<Utc>) {
        let n = self.kept.iter().take_while(|(t, _)| *t < at).count();
        for t in self.kept.drain(..n) {
            Range::push(&mut self.older, t);
        }
    }
}

/// The ticks of `schedule` from `first` (a tick; inclusive) to `until` (inclusive), `prev`
/// being the tick before `first`: the newest `keep` listed, the rest counted. Works out at most
/// [`ENUMERATION_CAP`] ticks from the start and a few times that near the end.
pub fn span(
    schedule: &Schedule,
    first: Option<DateTime<Utc>>,
    prev: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    keep: usize,
) -> Span {
    span_capped(schedule, first, prev, until, keep, ENUMERATION_CAP)
}

fn span_capped(
    schedule: &Schedule,
    first: Option<DateTime<Utc>>,
    prev: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    keep: usize,
    cap: usize,
) -> Span {
    let cap = cap.max(keep).max(2);
    let head = walk(schedule, first, prev, until, keep, cap);
    if head.finished {
        return Span {
            older: head.older,
            kept: head.kept.into(),
        };
    }
    // Past the cap: jump near the end, by the gap between the ticks seen, and work out the
    // newest `keep` from there.
    let mut seen = head.older.clone();
    for t in &head.kept {
        Range::push(&mut seen, *t);
    }
    let Some(seen) = seen else {
        return Span::default();
    };
    let gap = (seen.last - seen.first) / (head.seen.max(2) as i32 - 1);
    let gap = gap.max(chrono::Duration::minutes(1));
    let mut distance = gap * (2 * keep as i32 + 2);
    for _ in 0..PROBES {
        let from = until
            .checked_sub_signed(distance)
            .map_or(seen.last, |f| f.max(seen.last));
        let contiguous = from == seen.last;
        let tail = walk(
            schedule,
            schedule.next_after(from),
            contiguous.then_some(seen.last),
            until,
            keep,
            cap,
        );
        if tail.finished && contiguous {
            // The tail follows the head: one exact window.
            // The tail's ring is full (so the head's kept ticks are older than it), or it
            // evicted nothing (so its `older` is empty): either way, one ring over both.
            let mut older = head.older;
            let mut kept = head.kept;
            for t in tail.kept {
                if kept.len() == keep {
                    if let Some(old) = kept.pop_front() {
                        Range::push(&mut older, old);
                    }
                }
                kept.push_back(t);
            }
            if let Some(o) = tail.older {
                // Only when the tail's ring filled: the head's ticks all left the ring
                // above, before these, which come after them.
                older = Some(match older {
                    Some(h) => h.then(o),
                    None => o,
                });
            }
            return Span {
                older,
                kept: kept.into(),
            };
        }
        if tail.finished && tail.kept.len() >= keep {
            let skipped = Range {
                exact: false,
                ..seen.clone()
            };
            let older = match tail.older {
                Some(o) => skipped.then(o),
                None => skipped,
            };
            return Span {
                older: Some(inexact(older)),
                kept: tail.kept.into(),
            };
        }
        match distance.checked_mul(4) {
            Some(d) => distance = d,
            None => break,
        }
    }
    // A schedule whose ticks bunch up so that no jump lands near the end: count what was seen,
    // run none of it.
    Span {
        older: Some(Range {
            exact: false,
            ..seen
        }),
        kept: Vec::new(),
    }
}

fn inexact(r: Range) -> Range {
    Range { exact: false, ..r }
}

struct Walk {
    older: Option<Range>,
    kept: VecDeque<Tick>,
    seen: usize,
    /// Reached `until` within the cap.
    finished: bool,
}

fn walk(
    schedule: &Schedule,
    first: Option<DateTime<Utc>>,
    mut prev: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    keep: usize,
    cap: usize,
) -> Walk {
    let mut w = Walk {
        older: None,
        // Most windows hold one tick: grow only when they do not.
        kept: VecDeque::with_capacity(keep.min(4)),
        seen: 0,
        finished: false,
    };
    let mut tick = first;
    while let Some(t) = tick.filter(|t| *t <= until) {
        if w.seen == cap {
            return w;
        }
        if keep == 0 {
            Range::push(&mut w.older, (t, prev));
        } else {
            if w.kept.len() == keep {
                if let Some(old) = w.kept.pop_front() {
                    Range::push(&mut w.older, old);
                }
            }
            w.kept.push_back((t, prev));
        }
        prev = Some(t);
        w.seen += 1;
        tick = schedule.next_after(t);
    }
    w.finished = true;
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleInput;
    use chrono::TimeZone;

    fn cron(expr: &str) -> Schedule {
        Schedule::parse(&ScheduleInput {
            frequency: Some("custom"),
            time: None,
            timezone: Some("UTC"),
            cron: Some(expr),
        })
        .expect("schedule")
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("an instant")
    }

    #[test]
    fn a_short_window_is_listed_and_counted_exactly() {
        let s = cron("0 * * * *");
        let start = at(2026, 1, 1, 0, 30);
        let first = s.next_after(start);
        let sp = span(&s, first, None, at(2026, 1, 1, 10, 0), 3);
        let kept: Vec<_> = sp.kept.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            kept,
            vec![
                at(2026, 1, 1, 8, 0),
                at(2026, 1, 1, 9, 0),
                at(2026, 1, 1, 10, 0)
            ]
        );
        assert_eq!(sp.kept[0].1, Some(at(2026, 1, 1, 7, 0)));
        let older = sp.older.clone().expect("older");
        assert_eq!(
            (older.first, older.last, older.count, older.exact),
            (at(2026, 1, 1, 1, 0), at(2026, 1, 1, 7, 0), 7, true)
        );
        assert_eq!(sp.whole().expect("whole").count, 10);
        // Nothing kept: all counted.
        let none = span(&s, first, None, at(2026, 1, 1, 10, 0), 0);
        assert!(none.kept.is_empty());
        assert_eq!(none.older.expect("older").count, 10);
        // An empty window.
        assert_eq!(span(&s, first, None, start, 5), Span::default());
    }

    #[test]
    fn a_year_of_minutes_is_bounded_and_keeps_the_newest_ticks() {
        let s = cron("* * * * *");
        let from = at(2025, 1, 1, 0, 0);
        let until = at(2026, 1, 1, 0, 0);
        let started = std::time::Instant::now();
        let sp = span(&s, s.next_after(from), Some(from), until, 100);
        // 525,600 ticks: a full walk would take far longer than a handful of caps.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(sp.kept.len(), 100);
        assert_eq!(sp.kept.last().map(|t| t.0), Some(until));
        assert_eq!(sp.kept[0].0, until - chrono::Duration::minutes(99));
        let older = sp.older.expect("older");
        assert_eq!(older.first, at(2025, 1, 1, 0, 1));
        assert!(!older.exact, "jumped over ticks it did not count");
        assert!(older.count >= ENUMERATION_CAP as u64 && older.count < 525_600);
        assert!(older.describe().starts_with("at least "));
        assert_eq!(older.interval_start, Some(from));
    }

    #[test]
    fn counts_stay_exact_when_the_jump_lands_on_what_was_seen() {
        // A small cap forces the jump; the window is only a bit over the cap, so the jump
        // starts where the walk stopped and the count stays exact.
        let s = cron("0 * * * *");
        let from = at(2026, 1, 1, 0, 0);
        let until = at(2026, 1, 2, 0, 0); // 24 ticks after `from`
        let sp = span_capped(&s, s.next_after(from), Some(from), until, 10, 20);
        assert_eq!(sp.kept.len(), 10);
        assert_eq!(sp.kept.last().map(|t| t.0), Some(until));
        let whole = sp.whole().expect("whole");
        assert!(whole.exact);
        assert_eq!(whole.count, 24);
    }

    #[test]
    fn bunched_ticks_are_counted_not_run_when_no_jump_finds_the_end() {
        // Every minute on the first of January only: a cap of 50 sees 50 minutes of one day,
        // and the window ends in a month without ticks.
        let s = cron("* * 1 1 *");
        let from = at(2025, 12, 31, 23, 59);
        let until = at(2027, 6, 1, 0, 0);
        let sp = span_capped(&s, s.next_after(from), Some(from), until, 5, 50);
        let whole = sp.whole().expect("whole");
        assert!(whole.count >= 50);
        if !sp.kept.is_empty() {
            assert!(sp.kept.last().expect("kept").0 <= until);
        }
    }

    #[test]
    fn count_before_moves_the_oldest_kept_ticks() {
        let s = cron("0 * * * *");
        let first = s.next_after(at(2026, 1, 1, 0, 0));
        let mut sp = span(&s, first, None, at(2026, 1, 1, 5, 0), 100);
        sp.count_before(at(2026, 1, 1, 3, 30));
        assert_eq!(sp.kept.len(), 2);
        let older = sp.older.expect("older");
        assert_eq!(
            (older.first, older.last, older.count),
            (at(2026, 1, 1, 1, 0), at(2026, 1, 1, 3, 0), 3)
        );
    }
}
