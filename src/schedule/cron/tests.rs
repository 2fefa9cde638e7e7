//! The cron language on naive wall times. Expected weekdays and dates were checked with
//! Python's `datetime`.

use super::*;

fn dt(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("test datetime")
}

fn cron(expr: &str) -> CronExpr {
    CronExpr::parse(expr).expect("valid test expression")
}

fn error(expr: &str) -> Vec<String> {
    CronExpr::parse(expr).expect_err("expression should be rejected")
}

/// The next `n` naive matches strictly after `from`.
fn matches(expr: &str, from: &str, n: usize) -> Vec<String> {
    let c = cron(expr);
    let mut at = dt(from);
    (0..n)
        .map(|_| {
            at = c
                .next_match(at + Duration::minutes(1))
                .expect("expression fires");
            at.format("%Y-%m-%d %H:%M %a").to_string()
        })
        .collect()
}

#[test]
fn lists_ranges_and_steps() {
    assert_eq!(
        matches("0,15,45 9-10 * * *", "2025-01-01 00:00", 7),
        [
            "2025-01-01 09:00 Wed",
            "2025-01-01 09:15 Wed",
            "2025-01-01 09:45 Wed",
            "2025-01-01 10:00 Wed",
            "2025-01-01 10:15 Wed",
            "2025-01-01 10:45 Wed",
            "2025-01-02 09:00 Thu",
        ]
    );
    // 10-30/10 is 10,20,30; 50/4 means 50 through 59 step 4: 50,54,58.
    assert_eq!(
        matches("10-30/10,50/4 3 * * *", "2025-01-01 00:00", 7),
        [
            "2025-01-01 03:10 Wed",
            "2025-01-01 03:20 Wed",
            "2025-01-01 03:30 Wed",
            "2025-01-01 03:50 Wed",
            "2025-01-01 03:54 Wed",
            "2025-01-01 03:58 Wed",
            "2025-01-02 03:10 Thu",
        ]
    );
    // */7 restarts at every hour: 56 is followed by 00.
    assert_eq!(
        matches("*/7 * * * *", "2025-01-01 00:50", 3),
        [
            "2025-01-01 00:56 Wed",
            "2025-01-01 01:00 Wed",
            "2025-01-01 01:07 Wed"
        ]
    );
    // A stepped day-of-month counts from 1: 1, 11, 21, 31.
    assert_eq!(
        matches("0 0 */10 * *", "2025-01-01 00:00", 4),
        [
            "2025-01-11 00:00 Sat",
            "2025-01-21 00:00 Tue",
            "2025-01-31 00:00 Fri",
            "2025-02-01 00:00 Sat"
        ]
    );
}

#[test]
fn names_and_sundays() {
    // 2025-03-01 is a Saturday.
    assert_eq!(
        matches("0 12 * mar-Apr MON-fri", "2025-03-01 00:00", 2),
        ["2025-03-03 12:00 Mon", "2025-03-04 12:00 Tue"]
    );
    assert_eq!(
        matches("0 12 * DEC sat,Sun", "2025-01-01 00:00", 3),
        [
            "2025-12-06 12:00 Sat",
            "2025-12-07 12:00 Sun",
            "2025-12-13 12:00 Sat"
        ]
    );
    for sunday in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN", "0 0 * * 6-7"] {
        assert!(
            matches(sunday, "2025-01-01 00:00", 2).contains(&"2025-01-05 00:00 Sun".into()),
            "{sunday}"
        );
    }
    assert_eq!(cron("0 0 * * 0"), cron("0 0 * * 7"));
    assert_eq!(cron("0 0 * * 0-7").days_of_week, 0x7f);
}

#[test]
fn macros_expand_to_their_fields() {
    assert_eq!(cron("@yearly"), cron("0 0 1 1 *"));
    assert_eq!(cron("@annually"), cron("0 0 1 1 *"));
    assert_eq!(cron("@monthly"), cron("0 0 1 * *"));
    assert_eq!(cron("@weekly"), cron("0 0 * * 0"));
    assert_eq!(cron("@daily"), cron("0 0 * * *"));
    assert_eq!(cron(" @midnight "), cron("0 0 * * *"));
    assert_eq!(cron("@hourly"), cron("0 * * * *"));
    assert_eq!(cron("@DAILY"), cron("0 0 * * *"));
}

#[test]
fn dom_dow_or_rule() {
    // Both restricted: every 13th and every Friday. 2025-06-13 is itself a Friday.
    assert_eq!(
        matches("0 0 13 * FRI", "2025-05-31 00:00", 5),
        [
            "2025-06-06 00:00 Fri",
            "2025-06-13 00:00 Fri",
            "2025-06-20 00:00 Fri",
            "2025-06-27 00:00 Fri",
            "2025-07-04 00:00 Fri"
        ]
    );
    assert_eq!(
        matches("0 0 13 * FRI", "2025-07-04 00:00", 2),
        ["2025-07-11 00:00 Fri", "2025-07-13 00:00 Sun"]
    );
    // A star-led field (even `*/2`) switches to AND: odd days that are also Mondays.
    assert_eq!(
        matches("0 0 */2 * MON", "2025-01-01 00:00", 3),
        [
            "2025-01-13 00:00 Mon",
            "2025-01-27 00:00 Mon",
            "2025-02-03 00:00 Mon"
        ]
    );
}

#[test]
fn whitespace_between_fields() {
    assert_eq!(cron(" 5  4\t* *   1 "), cron("5 4 * * 1"));
}

#[test]
fn leap_days_and_sparse_expressions() {
    assert_eq!(
        matches("0 12 29 2 *", "2025-01-01 00:00", 2),
        ["2028-02-29 12:00 Tue", "2032-02-29 12:00 Sun"]
    );
    // 2100 is not a leap year.
    assert_eq!(
        matches("0 12 29 2 *", "2096-03-01 00:00", 1),
        ["2104-02-29 12:00 Fri"]
    );
    // Feb 29 on a Sunday: 2004, 2032, ... then a 40-year gap across 2100.
    assert_eq!(
        matches("0 0 29 2 */7", "2088-03-01 00:00", 1),
        ["2128-02-29 00:00 Sun"]
    );
}

#[test]
fn next_match_is_inclusive_and_rounds_up() {
    let c = cron("30 2 * * *");
    assert_eq!(
        c.next_match(dt("2025-01-01 02:30")),
        Some(dt("2025-01-01 02:30"))
    );
    let late = dt("2025-01-01 02:30") + Duration::milliseconds(1);
    assert_eq!(c.next_match(late), Some(dt("2025-01-02 02:30")));
    assert!(c.matches(dt("2025-01-02 02:30")));
    assert!(!c.matches(late));
    assert_eq!(c.next_match(NaiveDateTime::MAX), None);
}

#[test]
fn fixed_hour_classification() {
    for (expr, fixed) in [
        ("30 2 * * *", true),
        ("0 1-3 * * *", true),
        ("0 0,12 * * *", true),
        ("@daily", true),
        ("* * * * *", false),
        ("0 */6 * * *", false),
        ("0 0-23/2 * * *", false),
        ("0 2/3 * * *", false),
        ("@hourly", false),
    ] {
        assert_eq!(cron(expr).fixed_hour(), fixed, "{expr}");
    }
}

#[test]
fn field_errors_name_field_token_and_range() {
    let cases: &[(&str, &str)] = &[
        ("61 * * * *", "minute 61 out of range (0-59)"),
        ("* 24 * * *", "hour 24 out of range (0-23)"),
        ("* * 0 * *", "day-of-month 0 out of range (1-31)"),
        ("* * 32 * *", "day-of-month 32 out of range (1-31)"),
        ("* * * 13 *", "month 13 out of range (1-12)"),
        ("* * * * 8", "day-of-week 8 out of range (0-7)"),
        (
            "99999999999 * * * *",
            "minute 99999999999 out of range (0-59)",
        ),
        ("* * * FOO *", "unknown name 'FOO' in month"),
        ("* * * * MONDAY", "unknown name 'MONDAY' in day-of-week"),
        ("MON * * * *", "invalid value 'MON' in minute"),
        ("* * * * 1x", "invalid value '1x' in day-of-week"),
        ("? * * * *", "invalid value '?' in minute"),
        (
            "* 5-2 * * *",
            "range 5-2 is reversed in hour (wrap-around ranges are not supported)",
        ),
        (
            "* * * * FRI-MON",
            "range FRI-MON is reversed in day-of-week (wrap-around ranges are not supported)",
        ),
        ("*/0 * * * *", "step must be at least 1 in minute ('*/0')"),
        ("* 1-5/0 * * *", "step must be at least 1 in hour ('1-5/0')"),
        ("*/60 * * * *", "step 60 out of range in minute (1-59)"),
        ("*/ * * * *", "invalid step '' in minute ('*/')"),
        ("*/x * * * *", "invalid step 'x' in minute ('*/x')"),
        ("1,,2 * * * *", "empty list item in minute"),
        ("5- * * * *", "invalid range '5-' in minute"),
        ("*-5 * * * *", "invalid range '*-5' in minute"),
        ("0 0 30 2 *", "day-of-month 30 never occurs in month(s) FEB"),
        (
            "0 0 31 4,6 *",
            "day-of-month 31 never occurs in month(s) APR,JUN",
        ),
        (
            "0 0 30,31 FEB */2",
            "day-of-month 30,31 never occurs in month(s) FEB",
        ),
        (
            "@reboot",
            "@reboot is not supported: a schedule must name a time of day",
        ),
        (
            "@fortnightly",
            "unknown macro '@fortnightly' (expected one of: @yearly, @annually, @monthly, \
             @weekly, @daily, @midnight, @hourly)",
        ),
        (
            "",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 0",
        ),
        (
            "* * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 4",
        ),
        (
            "0 * * * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 6",
        ),
    ];
    for (expr, message) in cases {
        assert_eq!(error(expr), [message.to_string()], "{expr}");
    }
}

#[test]
fn all_field_errors_are_collected() {
    assert_eq!(
        error("61 24 0,32 13 8"),
        [
            "minute 61 out of range (0-59)",
            "hour 24 out of range (0-23)",
            "day-of-month 0 out of range (1-31)",
            "day-of-month 32 out of range (1-31)",
            "month 13 out of range (1-12)",
            "day-of-week 8 out of range (0-7)",
        ]
    );
}

#[test]
fn restricted_day_of_week_rescues_impossible_dates() {
    // OR rule: Feb 30 never happens, but Mondays in February do.
    assert!(CronExpr::parse("0 0 30 2 MON").is_ok());
    assert!(CronExpr::parse("0 0 29 2 *").is_ok());
}
