//! Time-zone and DST behaviour. Every expected instant below was derived by hand from the tz
//! rules named in the comment, then confirmed with Python's `zoneinfo` (tzdata 2025b, the same
//! release chrono-tz 0.10.4 bundles) and an independent brute-force minute scan.

use chrono::{Duration, TimeZone, Timelike};

use super::cron::CronExpr;
use super::next::{next_exact, next_fast, next_fire};
use super::tests::{custom, input, iso, utc};
use super::*;

fn upcoming(cron: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
    iso(&custom(cron, tz).upcoming(utc(from), n))
}

fn daily(time: &str, tz: &str) -> Schedule {
    Schedule::parse(&input(Some("daily"), Some(time), Some(tz), None)).expect("valid daily")
}

#[test]
fn new_york_spring_forward() {
    // 2025-03-09 02:00 EST (-5) -> 03:00 EDT (-4), at 07:00Z. 02:30 does not exist: the
    // fixed-hour schedule fires when the gap ends (03:00 EDT = 07:00Z), then 02:30 EDT = 06:30Z.
    assert_eq!(
        upcoming("30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", 2),
        ["2025-03-09T07:00Z", "2025-03-10T06:30Z"]
    );
    // Wildcard hour skips the missing 02:30: 01:30 EST = 06:30Z, then 03:30 EDT = 07:30Z.
    assert_eq!(
        upcoming("30 * * * *", "America/New_York", "2025-03-09T05:00:00Z", 3),
        [
            "2025-03-09T05:30Z",
            "2025-03-09T06:30Z",
            "2025-03-09T07:30Z"
        ]
    );
}

#[test]
fn new_york_fall_back() {
    // 2025-11-02 02:00 EDT (-4) -> 01:00 EST (-5), at 06:00Z; 01:00-01:59 happens twice.
    // Fixed hour: first occurrence only, 01:30 EDT = 05:30Z (not 01:30 EST = 06:30Z).
    assert_eq!(
        upcoming("30 1 * * *", "America/New_York", "2025-11-01T12:00:00Z", 2),
        ["2025-11-02T05:30Z", "2025-11-03T06:30Z"]
    );
    // Wildcard hour fires at both occurrences: 01:00/01:30 EDT, 01:00/01:30 EST, 02:00 EST.
    assert_eq!(
        upcoming(
            "*/30 * * * *",
            "America/New_York",
            "2025-11-02T04:45:00Z",
            5
        ),
        [
            "2025-11-02T05:00Z",
            "2025-11-02T05:30Z",
            "2025-11-02T06:00Z",
            "2025-11-02T06:30Z",
            "2025-11-02T07:00Z"
        ]
    );
}

#[test]
fn new_york_daily_stays_at_nine_local() {
    // 09:00 EST = 14:00Z before 2025-03-09, 09:00 EDT = 13:00Z after; back on 2025-11-02.
    let nine = daily("09:00", "America/New_York");
    assert_eq!(
        iso(&nine.upcoming(utc("2025-03-07T00:00:00Z"), 4)),
        [
            "2025-03-07T14:00Z",
            "2025-03-08T14:00Z",
            "2025-03-09T13:00Z",
            "2025-03-10T13:00Z"
        ]
    );
    assert_eq!(
        iso(&nine.upcoming(utc("2025-10-31T00:00:00Z"), 4)),
        [
            "2025-10-31T13:00Z",
            "2025-11-01T13:00Z",
            "2025-11-02T14:00Z",
            "2025-11-03T14:00Z"
        ]
    );
    for fire in nine.upcoming_detailed(utc("2025-01-01T00:00:00Z"), 400) {
        assert_eq!((fire.local.hour(), fire.local.minute()), (9, 0), "{fire:?}");
    }
}

#[test]
fn london() {
    // 2025-10-26 02:00 BST (+1) -> 01:00 GMT (+0), at 01:00Z. 09:00 BST = 08:00Z before,
    // 09:00 GMT = 09:00Z from the 26th.
    assert_eq!(
        iso(&daily("09:00", "Europe/London").upcoming(utc("2025-10-23T12:00:00Z"), 4)),
        [
            "2025-10-24T08:00Z",
            "2025-10-25T08:00Z",
            "2025-10-26T09:00Z",
            "2025-10-27T09:00Z"
        ]
    );
    // 2025-03-30 01:00 GMT -> 02:00 BST, at 01:00Z: 01:30 is in the gap, fires at 02:00 BST.
    assert_eq!(
        upcoming("30 1 * * *", "Europe/London", "2025-03-29T12:00:00Z", 1),
        ["2025-03-30T01:00Z"]
    );
    // On 10-26 01:30 happens at 00:30Z (BST) and 01:30Z (GMT); only the first fires.
    assert_eq!(
        upcoming("30 1 * * *", "Europe/London", "2025-10-25T12:00:00Z", 2),
        ["2025-10-26T00:30Z", "2025-10-27T01:30Z"]
    );
}

#[test]
fn sydney_southern_hemisphere() {
    // DST ends 2025-04-06 03:00 AEDT (+11) -> 02:00 AEST (+10), at 16:00Z on 04-05. 02:30
    // happens at 15:30Z (AEDT) and 16:30Z (AEST); fixed hour takes the first.
    assert_eq!(
        upcoming("30 2 * * *", "Australia/Sydney", "2025-04-05T00:00:00Z", 2),
        ["2025-04-05T15:30Z", "2025-04-06T16:30Z"]
    );
    // DST starts 2025-10-05 02:00 AEST -> 03:00 AEDT, at 16:00Z on 10-04. 02:30 is in the
    // gap: fires at 03:00 AEDT = 16:00Z; the next day 02:30 AEDT = 15:30Z.
    assert_eq!(
        upcoming("30 2 * * *", "Australia/Sydney", "2025-10-04T00:00:00Z", 2),
        ["2025-10-04T16:00Z", "2025-10-05T15:30Z"]
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    // Standard +10:30, DST +11. Starts 2025-10-05 02:00 -> 02:30 local, at 15:30Z on 10-04:
    // 02:15 is in the gap, fires at 02:30 local = 15:30Z; next day 02:15 (+11) = 15:15Z.
    assert_eq!(
        upcoming(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2025-10-04T00:00:00Z",
            2
        ),
        ["2025-10-04T15:30Z", "2025-10-05T15:15Z"]
    );
    // Ends 2025-04-06 02:00 (+11) -> 01:30 (+10:30), at 15:00Z on 04-05. 01:45 happens at
    // 14:45Z (+11) and 15:15Z (+10:30); fixed hour takes the first.
    assert_eq!(
        upcoming(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2025-04-05T00:00:00Z",
            2
        ),
        ["2025-04-05T14:45Z", "2025-04-06T15:15Z"]
    );
    // Wildcard: 01:30 and 01:45 at +11 (14:30Z, 14:45Z), again at +10:30 (15:00Z, 15:15Z),
    // then 02:00 (+10:30) = 15:30Z.
    let schedule = custom("*/15 * * * *", "Australia/Lord_Howe");
    let fires = schedule.upcoming_detailed(utc("2025-04-05T14:20:00Z"), 5);
    let at: Vec<_> = fires.iter().map(|f| f.at).collect();
    assert_eq!(
        iso(&at),
        [
            "2025-04-05T14:30Z",
            "2025-04-05T14:45Z",
            "2025-04-05T15:00Z",
            "2025-04-05T15:15Z",
            "2025-04-05T15:30Z"
        ]
    );
    let repeated: Vec<_> = fires.iter().map(|f| f.repeated_in_dst_overlap).collect();
    assert_eq!(repeated, [false, false, true, true, false]);
    assert_eq!(fires[2].nominal_local, fires[0].nominal_local);
}

#[test]
fn kathmandu_quarter_hour_offset() {
    // +05:45 all year: 09:00 local = 03:15Z, and local hours begin at :15 UTC.
    assert_eq!(
        iso(&daily("09:00", "Asia/Kathmandu").upcoming(utc("2025-01-01T00:00:00Z"), 2)),
        ["2025-01-01T03:15Z", "2025-01-02T03:15Z"]
    );
    let hourly = Schedule::parse(&input(Some("hourly"), None, Some("Asia/Kathmandu"), None))
        .expect("valid hourly");
    assert_eq!(
        iso(&hourly.upcoming(utc("2025-01-01T00:00:00Z"), 3)),
        [
            "2025-01-01T00:15Z",
            "2025-01-01T01:15Z",
            "2025-01-01T02:15Z"
        ]
    );
}

#[test]
fn far_future_berlin_2099() {
    // chrono-tz's table runs to the last EU transition of 2099. Spring forward on Sunday
    // 2099-03-29 at 01:00Z (02:00 CET -> 03:00 CEST): 02:00 is in the gap, fires at 01:00Z.
    let two = daily("02:00", "Europe/Berlin");
    assert_eq!(
        iso(&two.upcoming(utc("2099-03-27T00:00:00Z"), 4)),
        [
            "2099-03-27T01:00Z",
            "2099-03-28T01:00Z",
            "2099-03-29T01:00Z",
            "2099-03-30T00:00Z"
        ]
    );
    // Fall back on Sunday 2099-10-25 at 01:00Z: 02:00 CEST (00:00Z) is the first occurrence.
    assert_eq!(
        iso(&two.upcoming(utc("2099-10-23T00:00:00Z"), 4)),
        [
            "2099-10-24T00:00Z",
            "2099-10-25T00:00Z",
            "2099-10-26T01:00Z",
            "2099-10-27T01:00Z"
        ]
    );
}

#[test]
fn leap_day_schedule() {
    assert_eq!(
        upcoming("0 12 29 2 *", "UTC", "2025-01-01T00:00:00Z", 2),
        ["2028-02-29T12:00Z", "2032-02-29T12:00Z"]
    );
    // 2100 is divisible by 100 but not 400: no Feb 29 until 2104.
    assert_eq!(
        upcoming("0 12 29 2 *", "UTC", "2096-03-01T00:00:00Z", 1),
        ["2104-02-29T12:00Z"]
    );
}

#[test]
fn detail_flags_for_gap_and_overlap() {
    let ny = custom("30 2 * * *", "America/New_York");
    let [gap, after] = <[Fire; 2]>::try_from(ny.upcoming_detailed(utc("2025-03-08T12:00:00Z"), 2))
        .expect("two fires");
    assert!(gap.shifted_by_dst_gap && !gap.repeated_in_dst_overlap);
    assert_eq!(gap.nominal_local.to_string(), "2025-03-09 02:30:00");
    assert_eq!(gap.local.to_rfc3339(), "2025-03-09T03:00:00-04:00");
    assert!(!after.shifted_by_dst_gap && !after.repeated_in_dst_overlap);
    assert_eq!(after.nominal_local, after.local.naive_local());

    // Every nominal minute of 02:xx collapses into the one fire at 03:00 EDT, reported with
    // the first nominal time it stands for.
    let collapse = custom("* 2 * * *", "America/New_York");
    let fires = collapse.upcoming_detailed(utc("2025-03-09T06:00:00Z"), 2);
    assert_eq!(fires[0].at, utc("2025-03-09T07:00:00Z"));
    assert_eq!(fires[0].nominal_local.to_string(), "2025-03-09 02:00:00");
    assert!(fires[0].shifted_by_dst_gap);
    assert_eq!(fires[1].at, utc("2025-03-10T06:00:00Z"));
    // With "0 2,3" the shifted 02:00 lands on 03:00 EDT, which the cron also names: one fire,
    // reported as the real 03:00 match rather than as shifted.
    let both = custom("0 2,3 * * *", "America/New_York");
    let fires = both.upcoming_detailed(utc("2025-03-09T06:00:00Z"), 2);
    assert_eq!(
        iso(&[fires[0].at, fires[1].at]),
        ["2025-03-09T07:00Z", "2025-03-10T06:00Z"]
    );
    assert_eq!(fires[0].nominal_local.to_string(), "2025-03-09 03:00:00");
    assert!(!fires[0].shifted_by_dst_gap);
}

/// The DST rules restated from the UTC side, as a brute-force scan over whole UTC minutes:
/// minute `u` fires if its wall time matches (for fixed hours: and `u` is that wall time's
/// first occurrence), or, for fixed hours, if the clock jumped forward into `u` over a
/// matching wall time.
fn oracle(cron: &CronExpr, tz: Tz, after: DateTime<Utc>, limit: Duration) -> Option<DateTime<Utc>> {
    let minute = Duration::minutes(1);
    let mut u = after.with_second(0)?.with_nanosecond(0)? + minute;
    while u <= after + limit {
        let wall = u.with_timezone(&tz).naive_local();
        let first = tz
            .from_local_datetime(&wall)
            .earliest()
            .map(|d| d.with_timezone(&Utc));
        if cron.matches(wall) && (!cron.fixed_hour() || first == Some(u)) {
            return Some(u);
        }
        let previous = (u - minute).with_timezone(&tz).naive_local();
        if cron.fixed_hour() {
            let mut skipped = previous + minute;
            while skipped < wall {
                if cron.matches(skipped) {
                    return Some(u);
                }
                skipped += minute;
            }
        }
        u += minute;
    }
    None
}

const ZONES: [Tz; 7] = [
    Tz::America__New_York,
    Tz::Europe__London,
    Tz::Australia__Sydney,
    Tz::Australia__Lord_Howe,
    Tz::Asia__Kathmandu,
    Tz::Europe__Berlin,
    Tz::UTC,
];

const EXPRESSIONS: [&str; 6] = [
    "* * * * *",
    "*/7 * * * *",
    "30 2 * * *",
    "0 */6 * * *",
    "15 1,2,3 * * 1-5",
    "0 0 29 2 *",
];

/// The 2025 transitions of the zones above, in UTC (New York, London, Sydney, Lord Howe).
const TRANSITIONS: [&str; 8] = [
    "2025-03-09T07:00:00Z",
    "2025-11-02T06:00:00Z",
    "2025-03-30T01:00:00Z",
    "2025-10-26T01:00:00Z",
    "2025-04-05T16:00:00Z",
    "2025-10-04T16:00:00Z",
    "2025-04-05T15:00:00Z",
    "2025-10-04T15:30:00Z",
];

/// Deterministic instants: every 11 minutes 7 seconds across ±8 h of each transition, plus
/// pseudo-random instants (64-bit LCG, Knuth's constants) from 1996 to 2098.
fn sample_instants() -> Vec<DateTime<Utc>> {
    let mut instants = Vec::new();
    for t in TRANSITIONS {
        let t = utc(t);
        for k in -43..=43 {
            instants.push(t + Duration::seconds(k * 667));
        }
    }
    let (start, end) = (
        utc("1996-01-01T00:00:00Z").timestamp(),
        utc("2098-12-31T00:00:00Z").timestamp(),
    );
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..400 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let offset = (state >> 11) % (end - start) as u64;
        let secs = start + offset as i64;
        instants.extend(DateTime::from_timestamp(secs, 0));
    }
    instants
}

#[test]
fn fast_path_agrees_with_exact_path() {
    let instants = sample_instants();
    let (mut fast_used, mut total) = (0, 0);
    for tz in ZONES {
        for expr in EXPRESSIONS {
            let cron = CronExpr::parse(expr).expect("valid expression");
            for &t in &instants {
                total += 1;
                let exact = next_exact(&cron, tz, t);
                assert!(exact.is_some_and(|e| e.at > t), "{expr} {tz} {t}");
                if let Some(fast) = next_fast(&cron, tz, t) {
                    fast_used += 1;
                    assert_eq!(Some(fast), exact, "{expr} in {tz} after {t}");
                }
            }
        }
    }
    assert!(total > 40_000, "{total}");
    // Both paths must really be exercised.
    assert!(
        fast_used > total / 2 && fast_used < total,
        "{fast_used} of {total}"
    );
}

#[test]
fn exact_path_agrees_with_brute_force_near_transitions() {
    let mut instants: Vec<DateTime<Utc>> = Vec::new();
    for t in TRANSITIONS {
        let t = utc(t);
        for k in -13..=13 {
            instants.push(t + Duration::seconds(k * 1_337));
        }
    }
    for tz in ZONES {
        // Leap-day is left out: a minute scan to 2028 is too slow and adds nothing here.
        for expr in &EXPRESSIONS[..5] {
            let cron = CronExpr::parse(expr).expect("valid expression");
            for &t in &instants {
                let expected = oracle(&cron, tz, t, Duration::days(4));
                let got = next_fire(&cron, tz, t).map(|r| r.at);
                assert_eq!(got, expected, "{expr} in {tz} after {t}");
            }
        }
    }
}

#[test]
fn upcoming_is_strictly_increasing_across_transitions() {
    for tz in ZONES {
        for expr in ["* * * * *", "*/30 * * * *", "* 2 * * *", "0,30 1-3 * * *"] {
            let schedule = custom(expr, tz.name());
            let fires = schedule.upcoming(utc("2025-03-01T00:00:00Z"), 3000);
            assert_eq!(fires.len(), 3000);
            assert!(fires.windows(2).all(|w| w[0] < w[1]), "{expr} in {tz}");
            assert!(fires.iter().all(|f| f.second() == 0), "{expr} in {tz}");
        }
    }
}
