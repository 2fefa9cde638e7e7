//! Mapping the cron's naive wall times onto real instants in a time zone.
//!
//! Owns the DST rules (see the module docs of `schedule`): a wall time that exists once fires
//! then; in a fall-back overlap a fixed-hour schedule fires at the first occurrence only and a
//! wildcard-hour schedule at both; in a spring-forward gap a fixed-hour schedule fires at the
//! first instant after the gap and a wildcard-hour schedule skips the time.
//!
//! Two paths compute the same function:
//! * [`next_exact`] walks naive candidates from three hours before `after`'s wall time and maps
//!   each through the zone. Three hours bounds how far a real instant's wall time can run behind
//!   the wall time of an earlier instant: no overlap since 1995 in the bundled tzdb is longer.
//! * [`next_fast`] handles the overwhelmingly common case where no transition is near: if the
//!   zone's offset is the same at `after - 3h` and at `candidate + 3h`, and those are under 24
//!   hours apart, no transition lies between them (no zone has two offset changes within 30
//!   hours of each other in the bundled tzdb, at any date), so every wall time in the window
//!   maps 1:1 with that offset and the first naive match is the answer. A test compares both
//!   paths over thousands of instants.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::{GapInfo, Tz};

use super::cron::CronExpr;

/// How a fire instant relates to the wall time the cron named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The named wall time, at its only (or first) occurrence.
    Exact,
    /// The named wall time fell in a spring-forward gap; fires when the gap ends.
    ShiftedByGap,
    /// The second occurrence of a wall time repeated by a fall-back overlap.
    RepeatedInOverlap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Resolved {
    pub(super) at: DateTime<Utc>,
    pub(super) nominal: NaiveDateTime,
    pub(super) kind: Kind,
}

const WINDOW: Duration = Duration::hours(3);
const FAST_PATH_SPAN: Duration = Duration::hours(24);

/// The first fire strictly after `after`.
pub(super) fn next_fire(cron: &CronExpr, tz: Tz, after: DateTime<Utc>) -> Option<Resolved> {
    next_fast(cron, tz, after).or_else(|| next_exact(cron, tz, after))
}

fn offset_seconds(tz: Tz, at: NaiveDateTime) -> i32 {
    tz.offset_from_utc_datetime(&at).fix().local_minus_utc()
}

/// `None` means "not applicable here", not "never fires".
pub(super) fn next_fast(cron: &CronExpr, tz: Tz, after: DateTime<Utc>) -> Option<Resolved> {
    let utc = after.naive_utc();
    let offset = Duration::seconds(i64::from(offset_seconds(tz, utc)));
    let local = utc.checked_add_signed(offset)?;
    // Matches are whole minutes, so "strictly after" starts at the next whole minute.
    let start = local
        .with_second(0)?
        .with_nanosecond(0)?
        .checked_add_signed(Duration::minutes(1))?;
    let nominal = cron.next_match(start)?;
    let at = nominal.checked_sub_signed(offset)?;
    let low = utc.checked_sub_signed(WINDOW)?;
    let high = at.checked_add_signed(WINDOW)?;
    if high - low >= FAST_PATH_SPAN {
        return None;
    }
    let expected = offset.num_seconds();
    if i64::from(offset_seconds(tz, low)) != expected
        || i64::from(offset_seconds(tz, high)) != expected
    {
        return None;
    }
    Some(Resolved {
        at: at.and_utc(),
        nominal,
        kind: Kind::Exact,
    })
}

pub(super) fn next_exact(cron: &CronExpr, tz: Tz, after: DateTime<Utc>) -> Option<Resolved> {
    // `naive_local` would panic at the edges of chrono's range.
    let local_after = after
        .naive_utc()
        .checked_add_offset(tz.offset_from_utc_datetime(&after.naive_utc()).fix())?;
    let mut cursor = local_after
        .checked_sub_signed(WINDOW)
        .unwrap_or(NaiveDateTime::MIN);
    let mut best: Option<Resolved> = None;
    let mut first_hit: Option<NaiveDateTime> = None;
    while let Some(nominal) = cron.next_match(cursor) {
        if first_hit.is_some_and(|first| nominal - first > WINDOW) {
            break;
        }
        for fire in resolve(cron, tz, nominal).into_iter().flatten() {
            if fire.at > after {
                first_hit.get_or_insert(nominal);
                best = Some(match best {
                    Some(current) if !better(&fire, &current) => current,
                    _ => fire,
                });
            }
        }
        let Some(next) = nominal.checked_add_signed(Duration::minutes(1)) else {
            break;
        };
        cursor = next;
    }
    best
}

/// Earlier wins. At the same instant (a gap-shifted time landing on a time the cron also names),
/// the unshifted one wins: it is a real match, the shift is incidental.
fn better(candidate: &Resolved, current: &Resolved) -> bool {
    candidate.at < current.at
        || (candidate.at == current.at
            && current.kind == Kind::ShiftedByGap
            && candidate.kind != Kind::ShiftedByGap)
}

/// The instants one naive match fires at: none, one, or (wildcard hour in an overlap) two.
pub(super) fn resolve(cron: &CronExpr, tz: Tz, nominal: NaiveDateTime) -> [Option<Resolved>; 2] {
    let fire = |at: DateTime<Tz>, kind| Resolved {
        at: at.with_timezone(&Utc),
        nominal,
        kind,
    };
    match tz.from_local_datetime(&nominal) {
        LocalResult::Single(at) => [Some(fire(at, Kind::Exact)), None],
        LocalResult::Ambiguous(a, b) => {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            let repeat = (!cron.fixed_hour()).then(|| fire(second, Kind::RepeatedInOverlap));
            [Some(fire(first, Kind::Exact)), repeat]
        }
        LocalResult::None if cron.fixed_hour() => [
            gap_end(tz, nominal).map(|at| fire(at, Kind::ShiftedByGap)),
            None,
        ],
        LocalResult::None => [None, None],
    }
}

/// The first instant after the gap containing `nominal`. Several nominal times in one gap all
/// map here, which is how they collapse into a single fire.
fn gap_end(tz: Tz, nominal: NaiveDateTime) -> Option<DateTime<Tz>> {
    GapInfo::new(&nominal, &tz)?.end
}
