//! What a schedule's missed ticks become under its catch-up policy: the ticker's plan for one
//! locked tick row, worked out without the database.
//!
//! Missed ticks are those that fell while the schedule was paused (the tick row's
//! `catchup_after` up to the resume), and due ticks a ticker finds late (no ticker ran). Under
//! every policy each of them ends up in a run or in a MISSED row that counts it, so the run
//! history has no silent gap:
//!
//! * `skip`: the paused window is one MISSED row; late ticks follow the misfire rules (late by
//!   more than the grace: one MISSED row; within it: a run, coalesced as `SCHEDULER_COALESCE`
//!   says).
//! * `once`: one run for the newest tick, its data interval starting where the oldest missed
//!   tick's did, its reason counting what it covers.
//! * `all`: the newest `max_catchup_runs` ticks become the tick row's backlog, queued one at a
//!   time, oldest first (the ticker queues the head whenever the ingestion has no active load:
//!   `runs_one_active_per_ingestion` decides); older ones are one MISSED row. Ticks that come due
//!   while a backlog waits join its end, so the order holds; past `max_catchup_runs` the
//!   backlog's oldest are recorded MISSED.
//!
//! Every loop is bounded: windows are enumerated by [`span`] (a few times
//! [`autoloader::schedule::span::ENUMERATION_CAP`] ticks at most, whatever the window) and a
//! backlog is never longer than `max_catchup_runs` (at most 1,000, a database check).

use autoloader::ingestions::catchup::{Catchup, CatchupPolicy};
use autoloader::schedule::span::{span, Range, Span, Tick, ENUMERATION_CAP};
use autoloader::schedule::Schedule;
use autoloader::ticks::Backlog;
use chrono::{DateTime, Utc};

/// A run or MISSED row the plan asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Its tick (`scheduled_for`): for a range, the range's last tick.
    pub tick: DateTime<Utc>,
    pub interval_start: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// Ticks it stands for.
    pub ticks: u64,
}

impl Planned {
    fn run((tick, interval_start): Tick, reason: Option<String>) -> Planned {
        Planned {
            tick,
            interval_start,
            reason,
            ticks: 1,
        }
    }

    fn missed(r: &Range, why: &str) -> Planned {
        Planned {
            tick: r.last,
            interval_start: r.interval_start,
            reason: Some(format!("{} {why}", r.describe())),
            ticks: r.count,
        }
    }
}

/// The plan for one tick row.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Runs to queue now; one refused by an active load is recorded SKIPPED.
    pub runs: Vec<Planned>,
    /// MISSED rows, each counting a range of ticks.
    pub missed: Vec<Planned>,
    /// What the row owes from now on (`all` only), and the tick after its head.
    pub backlog: Option<(Backlog, Option<DateTime<Utc>>)>,
}

/// How many of a window's newest ticks the plan needs listed (the rest it counts).
pub fn keep(policy: CatchupPolicy, paused: bool) -> usize {
    match policy.mode {
        Catchup::Skip if paused => 0,
        // Late ticks within the grace run; no grace holds more than this many in practice.
        Catchup::Skip => ENUMERATION_CAP,
        Catchup::Once => 1,
        Catchup::All => policy.max_runs,
    }
}

/// The ticks that fell while the schedule was paused, from `after` (the pause) to `resumed`.
pub fn paused_span(
    schedule: &Schedule,
    policy: CatchupPolicy,
    after: DateTime<Utc>,
    resumed: DateTime<Utc>,
) -> Option<Span> {
    let s = span(
        schedule,
        schedule.next_after(after),
        None,
        resumed,
        keep(policy, true),
    );
    s.whole().is_some().then_some(s)
}

/// What the backlog `b`, the paused window and the due ticks become under `policy`.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    schedule: &Schedule,
    policy: CatchupPolicy,
    backlog: Option<Backlog>,
    paused: Option<Span>,
    due: Option<Span>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    coalesce: bool,
) -> Settled {
    let mut out = Settled::default();
    let max = policy.max_runs;
    match policy.mode {
        Catchup::Skip => {
            if let Some(b) = backlog {
                out.missed.push(Planned::missed(
                    &range_of(b),
                    "were waiting to catch up; not run (catchup is now skip)",
                ));
            }
            if let Some(w) = paused.and_then(|p| p.whole()) {
                out.missed.push(Planned::missed(
                    &w,
                    "fell while the schedule was paused; not run (catchup: skip)",
                ));
            }
            if let Some(mut d) = due {
                d.count_before(now - grace);
                if let Some(late) = d.older {
                    out.missed.push(Planned::missed(
                        &late,
                        &format!(
                            "were more than {}s late (no worker was ticking); not run",
                            grace.num_seconds()
                        ),
                    ));
                }
                runnable(&mut out, d.kept, coalesce);
            }
        }
        Catchup::Once => {
            let single_due = backlog.is_none()
                && paused.is_none()
                && due
                    .as_ref()
                    .and_then(Span::whole)
                    .is_some_and(|w| w.count == 1);
            let ranges = backlog
                .map(range_of)
                .into_iter()
                .chain(paused.and_then(|p| p.whole()))
                .chain(due.and_then(|d| d.whole()));
            if let Some(all) = ranges.reduce(Range::then) {
                let reason = (!single_due)
                    .then(|| format!("caught up {} in one run (catchup: once)", all.describe()));
                out.runs
                    .push(Planned::run((all.last, all.interval_start), reason));
            }
        }
        Catchup::All => {
            let mut owed: Vec<Tick> = Vec::new();
            let single_due = backlog.is_none()
                && paused.is_none()
                && due
                    .as_ref()
                    .and_then(Span::whole)
                    .is_some_and(|w| w.count == 1);
            let too_old = format!("not run: older than the newest {max} (max_catchup_runs)");
            if let Some(p) = paused {
                if let Some(o) = p.older {
                    let why = format!("fell while the schedule was paused; {too_old}");
                    out.missed.push(Planned::missed(&o, &why));
                }
                owed.extend(p.kept);
            }
            if let Some(d) = due {
                if let Some(o) = d.older {
                    let why = format!("were missed; {too_old}");
                    out.missed.push(Planned::missed(&o, &why));
                }
                owed.extend(d.kept);
            }
            if single_due {
                runnable(&mut out, owed, coalesce);
                return out;
            }
            if let Some(b) = backlog {
                owed.retain(|(t, _)| *t > b.last);
            }
            if owed.len() > max {
                let excess: Vec<Tick> = owed.drain(..owed.len() - max).collect();
                if let Some(r) = range_from(&excess) {
                    out.missed
                        .push(Planned::missed(&r, &format!("were missed; {too_old}")));
                }
            }
            let mut backlog = backlog;
            if let Some(b) = backlog {
                let total = b.count as usize + owed.len();
                if total > max {
                    let (dropped, rest) = drop_front(schedule, b, total - max);
                    out.missed.push(Planned::missed(
                        &dropped,
                        &format!("were waiting to catch up; {too_old}"),
                    ));
                    backlog = rest;
                }
            }
            let owed_range = range_from(&owed);
            let merged = match (backlog, owed_range) {
                (Some(b), Some(o)) => Some(Backlog {
                    last: o.last,
                    count: b.count + o.count as i32,
                    ..b
                }),
                (Some(b), None) => Some(b),
                (None, Some(o)) => Some(Backlog {
                    next: o.first,
                    start: o.interval_start,
                    last: o.last,
                    count: o.count as i32,
                }),
                (None, None) => None,
            };
            out.backlog = merged.map(|b| (b, schedule.next_after(b.next)));
        }
    }
    out
}

/// The backlog after its head ran (or was found taken): the next tick, or nothing left.
pub fn after_head(b: Backlog, after: Option<DateTime<Utc>>) -> Option<Backlog> {
    let next = after.filter(|n| *n <= b.last && b.count > 1)?;
    Some(Backlog {
        next,
        start: Some(b.next),
        last: b.last,
        count: b.count - 1,
    })
}

/// Late ticks within the grace: one run each, or one for all when coalescing.
fn runnable(out: &mut Settled, ticks: Vec<Tick>, coalesce: bool) {
    if coalesce && ticks.len() > 1 {
        let (first, start) = ticks[0];
        let (last, _) = ticks[ticks.len() - 1];
        out.runs.push(Planned::run(
            (last, start),
            Some(format!(
                "coalesced {} late ticks from {} to {}",
                ticks.len(),
                first.to_rfc3339(),
                last.to_rfc3339()
            )),
        ));
    } else {
        out.runs
            .extend(ticks.into_iter().map(|t| Planned::run(t, None)));
    }
}

fn range_of(b: Backlog) -> Range {
    Range {
        first: b.next,
        last: b.last,
        count: b.count.max(0) as u64,
        exact: true,
        interval_start: b.start,
    }
}

fn range_from(ticks: &[Tick]) -> Option<Range> {
    let (first, start) = *ticks.first()?;
    let (last, _) = *ticks.last()?;
    Some(Range {
        first,
        last,
        count: ticks.len() as u64,
        exact: true,
        interval_start: start,
    })
}

/// The backlog's `k` oldest ticks as a range, and what is left (`k` is at most its count, at
/// most 1,000).
fn drop_front(schedule: &Schedule, b: Backlog, k: usize) -> (Range, Option<Backlog>) {
    let k = k.min(b.count.max(0) as usize);
    if k >= b.count as usize {
        return (range_of(b), None);
    }
    let mut last = b.next;
    for _ in 1..k {
        match schedule.next_after(last) {
            Some(t) if t < b.last => last = t,
            _ => break,
        }
    }
    let dropped = Range {
        first: b.next,
        last,
        count: k as u64,
        exact: true,
        interval_start: b.start,
    };
    let rest = schedule
        .next_after(last)
        .filter(|n| *n <= b.last)
        .map(|next| Backlog {
            next,
            start: Some(last),
            last: b.last,
            count: b.count - k as i32,
        });
    (dropped, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoloader::schedule::ScheduleInput;
    use chrono::TimeZone;

    fn hourly() -> Schedule {
        Schedule::parse(&ScheduleInput {
            frequency: Some("custom"),
            time: None,
            timezone: Some("UTC"),
            cron: Some("0 * * * *"),
        })
        .expect("schedule")
    }

    fn h(n: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, n, 0, 0)
            .single()
            .expect("an instant")
    }

    fn policy(mode: Catchup, max_runs: usize) -> CatchupPolicy {
        CatchupPolicy { mode, max_runs }
    }

    const GRACE: chrono::Duration = chrono::Duration::minutes(5);

    #[test]
    fn a_pause_under_each_policy() {
        let s = hourly();
        // Paused at 00:30, resumed at 10:10: ticks 01:00..10:00.
        let now = h(10) + chrono::Duration::minutes(10);
        let plan = |p: CatchupPolicy| {
            let paused = paused_span(&s, p, h(0) + chrono::Duration::minutes(30), now);
            settle(&s, p, None, paused, None, now, GRACE, true)
        };

        let skip = plan(policy(Catchup::Skip, 100));
        assert!(skip.runs.is_empty() && skip.backlog.is_none());
        assert_eq!(skip.missed.len(), 1);
        assert_eq!((skip.missed[0].tick, skip.missed[0].ticks), (h(10), 10));

        let once = plan(policy(Catchup::Once, 100));
        assert!(once.missed.is_empty() && once.backlog.is_none());
        assert_eq!(once.runs.len(), 1);
        assert_eq!(once.runs[0].tick, h(10));
        let why = once.runs[0].reason.clone().expect("reason");
        assert!(why.starts_with("caught up 10 tick(s) from "), "{why}");

        let all = plan(policy(Catchup::All, 4));
        assert!(all.runs.is_empty());
        let (b, next) = all.backlog.expect("backlog");
        assert_eq!((b.next, b.last, b.count), (h(7), h(10), 4));
        assert_eq!((b.start, next), (Some(h(6)), Some(h(8))));
        assert_eq!(all.missed.len(), 1);
        assert_eq!((all.missed[0].tick, all.missed[0].ticks), (h(6), 6));
    }

    #[test]
    fn a_backlog_is_worked_off_one_tick_at_a_time_and_ends() {
        let b = Backlog {
            next: h(1),
            start: None,
            last: h(3),
            count: 3,
        };
        let s = hourly();
        let second = after_head(b, s.next_after(b.next)).expect("second");
        assert_eq!(
            (second.next, second.start, second.count),
            (h(2), Some(h(1)), 2)
        );
        let third = after_head(second, s.next_after(second.next)).expect("third");
        assert_eq!((third.next, third.count), (h(3), 1));
        assert_eq!(after_head(third, s.next_after(third.next)), None);
    }

    #[test]
    fn new_ticks_join_a_waiting_backlog_and_its_oldest_give_way_past_the_cap() {
        let s = hourly();
        let b = Backlog {
            next: h(1),
            start: None,
            last: h(3),
            count: 3,
        };
        // Two more ticks come due while the backlog waits; the cap is 4.
        let due = span(&s, Some(h(4)), Some(h(3)), h(5), 4);
        let out = settle(
            &s,
            policy(Catchup::All, 4),
            Some(b),
            None,
            Some(due),
            h(5),
            GRACE,
            true,
        );
        assert!(out.runs.is_empty());
        let (b, _) = out.backlog.expect("backlog");
        assert_eq!(
            (b.next, b.last, b.count, b.start),
            (h(2), h(5), 4, Some(h(1)))
        );
        assert_eq!(out.missed.len(), 1);
        assert_eq!((out.missed[0].tick, out.missed[0].ticks), (h(1), 1));
    }

    #[test]
    fn one_on_time_tick_is_an_ordinary_run_under_every_policy() {
        let s = hourly();
        for mode in [Catchup::Skip, Catchup::Once, Catchup::All] {
            let due = span(
                &s,
                Some(h(2)),
                Some(h(1)),
                h(2),
                keep(policy(mode, 10), false),
            );
            let out = settle(
                &s,
                policy(mode, 10),
                None,
                None,
                Some(due),
                h(2),
                GRACE,
                true,
            );
            assert_eq!(
                out,
                Settled {
                    runs: vec![Planned::run((h(2), Some(h(1))), None)],
                    ..Settled::default()
                },
                "{mode:?}"
            );
        }
    }

    #[test]
    fn an_outage_past_the_grace_under_each_policy() {
        let s = hourly();
        let now = h(10);
        let due = |p| span(&s, Some(h(1)), Some(h(0)), now, keep(p, false));
        let skip = policy(Catchup::Skip, 100);
        let out = settle(&s, skip, None, None, Some(due(skip)), now, GRACE, true);
        assert_eq!(out.missed.len(), 1);
        assert_eq!(out.missed[0].ticks, 9);
        assert_eq!(out.runs.len(), 1);
        assert_eq!(out.runs[0].tick, h(10));

        let once = policy(Catchup::Once, 100);
        let out = settle(&s, once, None, None, Some(due(once)), now, GRACE, true);
        assert!(out.missed.is_empty());
        assert_eq!(
            (out.runs[0].tick, out.runs[0].interval_start),
            (h(10), Some(h(0)))
        );

        let all = policy(Catchup::All, 100);
        let out = settle(&s, all, None, None, Some(due(all)), now, GRACE, true);
        assert!(out.missed.is_empty() && out.runs.is_empty());
        let (b, _) = out.backlog.expect("backlog");
        assert_eq!((b.next, b.last, b.count), (h(1), h(10), 10));
    }

    #[test]
    fn switching_away_from_all_settles_the_backlog() {
        let s = hourly();
        let b = Backlog {
            next: h(1),
            start: None,
            last: h(3),
            count: 3,
        };
        let out = settle(
            &s,
            policy(Catchup::Skip, 100),
            Some(b),
            None,
            None,
            h(4),
            GRACE,
            true,
        );
        assert_eq!((out.missed.len(), out.missed[0].ticks), (1, 3));
        assert!(out.backlog.is_none());
        let out = settle(
            &s,
            policy(Catchup::Once, 100),
            Some(b),
            None,
            None,
            h(4),
            GRACE,
            true,
        );
        assert_eq!(out.runs.len(), 1);
        assert_eq!(out.runs[0].tick, h(3));
    }
}
