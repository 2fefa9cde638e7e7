//! Parsing, presets and error reporting. Expected instants were checked independently with
//! Python's `zoneinfo` (tzdata 2025b) and a brute-force minute scan, not taken from this code.

use super::*;

pub(super) fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

pub(super) fn input<'a>(
    frequency: Option<&'a str>,
    time: Option<&'a str>,
    timezone: Option<&'a str>,
    cron: Option<&'a str>,
) -> ScheduleInput<'a> {
    ScheduleInput {
        frequency,
        time,
        timezone,
        cron,
    }
}

pub(super) fn custom(cron: &str, timezone: &str) -> Schedule {
    Schedule::parse(&input(Some("custom"), None, Some(timezone), Some(cron)))
        .expect("valid custom schedule")
}

fn preset(frequency: &str, time: Option<&str>, timezone: Option<&str>) -> Schedule {
    Schedule::parse(&input(Some(frequency), time, timezone, None)).expect("valid preset")
}

fn problems(input: &ScheduleInput<'_>) -> Vec<String> {
    Schedule::parse(input)
        .expect_err("schedule should be rejected")
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

pub(super) fn iso(instants: &[DateTime<Utc>]) -> Vec<String> {
    instants
        .iter()
        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        .collect()
}

#[test]
fn presets_map_to_cron_expressions() {
    let hourly = preset("hourly", None, None);
    assert_eq!(hourly.cron_expression(), "0 * * * *");
    assert_eq!(hourly.frequency(), Frequency::Hourly);
    assert_eq!(hourly.time(), None);
    assert_eq!(hourly.timezone(), Tz::UTC);

    let daily = preset("daily", Some("14:30"), Some("Europe/London"));
    assert_eq!(daily.cron_expression(), "30 14 * * *");
    assert_eq!(daily.time(), LocalTime::new(14, 30));
    assert_eq!(daily.timezone(), Tz::Europe__London);

    let weekly = preset("weekly", Some("02:00"), None);
    assert_eq!(weekly.cron_expression(), "0 2 * * 0");
    // 2025-11-05 is a Wednesday; the following Sundays are 11-09, 11-16, 11-23.
    assert_eq!(
        iso(&weekly.upcoming(utc("2025-11-05T14:30:00Z"), 3)),
        [
            "2025-11-09T02:00Z",
            "2025-11-16T02:00Z",
            "2025-11-23T02:00Z"
        ]
    );
}

#[test]
fn hourly_ignores_a_given_time_and_fires_on_the_hour() {
    let hourly = preset("hourly", Some("14:30"), None);
    assert_eq!(hourly.time(), None);
    assert_eq!(
        iso(&hourly.upcoming(utc("2025-01-01T10:00:00Z"), 2)),
        ["2025-01-01T11:00Z", "2025-01-01T12:00Z"]
    );
}

#[test]
fn custom_keeps_the_expression_as_given() {
    let schedule = custom("  @daily ", "UTC");
    assert_eq!(schedule.cron_expression(), "@daily");
    assert_eq!(schedule.time(), None);
    let spaced = custom("0  */6\t* * *", "UTC");
    assert_eq!(spaced.cron_expression(), "0  */6\t* * *");
    assert_eq!(
        iso(&spaced.upcoming(utc("2025-01-01T00:00:00Z"), 5)),
        [
            "2025-01-01T06:00Z",
            "2025-01-01T12:00Z",
            "2025-01-01T18:00Z",
            "2025-01-02T00:00Z",
            "2025-01-02T06:00Z"
        ]
    );
}

#[test]
fn custom_cron_is_ignored_for_presets() {
    let daily = Schedule::parse(&input(Some("daily"), Some("09:00"), None, Some("not cron")))
        .expect("cron ignored for daily");
    assert_eq!(daily.cron_expression(), "0 9 * * *");
}

#[test]
fn spec_example_daily_utc() {
    let daily = preset("daily", Some("02:00"), Some("UTC"));
    let from = utc("2025-11-05T14:30:00Z");
    assert_eq!(daily.next_after(from), Some(utc("2025-11-06T02:00:00Z")));
    assert_eq!(
        iso(&daily.upcoming(from, 5)),
        [
            "2025-11-06T02:00Z",
            "2025-11-07T02:00Z",
            "2025-11-08T02:00Z",
            "2025-11-09T02:00Z",
            "2025-11-10T02:00Z"
        ]
    );
}

#[test]
fn next_after_is_strictly_after() {
    let daily = preset("daily", Some("02:00"), None);
    assert_eq!(
        daily.next_after(utc("2025-11-06T02:00:00Z")),
        Some(utc("2025-11-07T02:00:00Z"))
    );
    assert_eq!(
        daily.next_after(utc("2025-11-06T01:59:59.999Z")),
        Some(utc("2025-11-06T02:00:00Z"))
    );
    let every_minute = custom("* * * * *", "UTC");
    assert_eq!(
        every_minute.next_after(utc("2025-11-06T02:00:30Z")),
        Some(utc("2025-11-06T02:01:00Z"))
    );
    assert!(daily.upcoming(utc("2025-11-06T02:00:00Z"), 0).is_empty());
}

#[test]
fn end_of_time_is_none_not_a_panic() {
    let daily = preset("daily", Some("02:00"), Some("America/New_York"));
    assert_eq!(daily.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert!(daily.upcoming(DateTime::<Utc>::MAX_UTC, 3).is_empty());
    // New York's local time at the start of chrono's range is before its start: no panic.
    let _ = daily.next_after(DateTime::<Utc>::MIN_UTC);
    let utc_daily = preset("daily", Some("02:00"), None);
    assert!(utc_daily.next_after(DateTime::<Utc>::MIN_UTC).is_some());
    assert_eq!(utc_daily.next_after(DateTime::<Utc>::MAX_UTC), None);
}

#[test]
fn frequency_and_local_time_round_trip() {
    for f in Frequency::ALL {
        assert_eq!(f.to_string().parse::<Frequency>().expect("own name"), f);
        let json = serde_json::to_string(&f).expect("serialize");
        assert_eq!(json, format!("\"{f}\""));
    }
    assert!("Daily".parse::<Frequency>().is_err());
    let t: LocalTime = "07:05".parse().expect("valid time");
    assert_eq!(
        (t.hour(), t.minute(), t.to_string()),
        (7, 5, "07:05".into())
    );
    assert_eq!(serde_json::to_string(&t).expect("serialize"), "\"07:05\"");
    let back: LocalTime = serde_json::from_str("\"23:59\"").expect("deserialize");
    assert_eq!(
        back,
        LocalTime {
            hour: 23,
            minute: 59
        }
    );
    assert!(serde_json::from_str::<LocalTime>("\"24:00\"").is_err());
    assert_eq!(LocalTime::new(24, 0), None);
}

#[test]
fn frequency_errors() {
    assert_eq!(
        problems(&input(None, None, None, None)),
        ["schedule_frequency: schedule_frequency is required"]
    );
    assert_eq!(
        problems(&input(Some(""), None, None, None)),
        ["schedule_frequency: schedule_frequency is required"]
    );
    assert_eq!(
        problems(&input(Some("monthly"), None, None, None)),
        ["schedule_frequency: schedule_frequency must be one of: hourly, daily, weekly, custom (got 'monthly')"]
    );
    assert_eq!(
        problems(&input(Some("Daily"), Some("09:00"), None, None)),
        ["schedule_frequency: schedule_frequency must be one of: hourly, daily, weekly, custom (got 'Daily')"]
    );
}

#[test]
fn time_errors() {
    const BAD: &str = "schedule_time: schedule_time must be HH:MM (e.g. '14:30')";
    for bad in [
        "9:00",
        "24:00",
        "12:60",
        "1430",
        "12:3",
        "12:30 ",
        "+1:30",
        "１２:３０",
        "ab:cd",
    ] {
        assert_eq!(
            problems(&input(Some("daily"), Some(bad), None, None)),
            [BAD],
            "{bad:?}"
        );
        // Checked for format even where the time is otherwise ignored.
        assert_eq!(
            problems(&input(Some("hourly"), Some(bad), None, None)),
            [BAD],
            "{bad:?}"
        );
    }
    for good in ["00:00", "09:05", "19:59", "23:59"] {
        assert!(Schedule::parse(&input(Some("daily"), Some(good), None, None)).is_ok());
    }
    // No time means 00:00 (the product spec's `_parse_schedule_time`); that a time is
    // required of an enabled schedule is `ScheduleFields::validate`'s rule.
    let daily = Schedule::parse(&input(Some("daily"), None, None, None)).expect("00:00");
    assert_eq!(
        (daily.cron_expression(), daily.time()),
        ("0 0 * * *", LocalTime::new(0, 0))
    );
    let weekly = Schedule::parse(&input(Some("weekly"), Some(" "), None, None)).expect("00:00");
    assert_eq!(weekly.cron_expression(), "0 0 * * 0");
}

#[test]
fn timezone_errors_and_default() {
    assert_eq!(
        problems(&input(Some("hourly"), None, Some("Mars/Olympus"), None)),
        ["schedule_timezone: unknown timezone 'Mars/Olympus'"]
    );
    // Exact IANA names only.
    assert_eq!(
        problems(&input(Some("hourly"), None, Some("europe/london"), None)),
        ["schedule_timezone: unknown timezone 'europe/london'"]
    );
    assert_eq!(preset("hourly", None, None).timezone(), Tz::UTC);
    assert_eq!(preset("hourly", None, Some("")).timezone(), Tz::UTC);
    assert_eq!(
        preset("hourly", None, Some("Asia/Kathmandu")).timezone(),
        Tz::Asia__Kathmandu
    );
}

#[test]
fn cron_errors_are_reported_under_schedule_cron() {
    let cases: &[(Option<&str>, &str)] = &[
        (None, "schedule_cron is required for custom schedules"),
        (Some(""), "schedule_cron is required for custom schedules"),
        (
            Some("   "),
            "schedule_cron is required for custom schedules",
        ),
        (
            Some("0 * * * * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week), got 6",
        ),
        (
            Some("0 * * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week), got 4",
        ),
        (Some("61 * * * *"), "minute 61 out of range (0-59)"),
        (Some("0 24 * * *"), "hour 24 out of range (0-23)"),
        (Some("0 0 0 * *"), "day-of-month 0 out of range (1-31)"),
        (Some("0 0 32 * *"), "day-of-month 32 out of range (1-31)"),
        (Some("0 0 * 13 *"), "month 13 out of range (1-12)"),
        (Some("0 0 * * 8"), "day-of-week 8 out of range (0-7)"),
        (Some("0 0 * FOO *"), "unknown name 'FOO' in month"),
        (Some("0 0 * * FUN"), "unknown name 'FUN' in day-of-week"),
        (
            Some("0 5-2 * * *"),
            "range 5-2 is reversed in hour (wrap-around ranges are not supported)",
        ),
        (
            Some("*/0 * * * *"),
            "step must be at least 1 in minute ('*/0')",
        ),
        (
            Some("0 0 30 2 *"),
            "day-of-month 30 never occurs in month(s) FEB",
        ),
        (
            Some("0 0 31 4,6 *"),
            "day-of-month 31 never occurs in month(s) APR,JUN",
        ),
        (
            Some("@reboot"),
            "@reboot is not supported: a schedule must name a time of day",
        ),
    ];
    for (cron, message) in cases {
        let found = Schedule::parse(&input(Some("custom"), None, None, *cron))
            .expect_err("cron should be rejected");
        assert_eq!(
            found.problems,
            [FieldProblem {
                field: "schedule_cron",
                message: message.to_string()
            }],
            "{cron:?}"
        );
        assert_eq!(found.to_string(), format!("schedule_cron: {message}"));
    }
}

#[test]
fn every_problem_is_collected() {
    let error = Schedule::parse(&input(
        Some("custom"),
        Some("25:00"),
        Some("Mars/Olympus"),
        Some("61 24 * * *"),
    ))
    .expect_err("everything is wrong");
    assert_eq!(
        error.to_string(),
        "schedule_time: schedule_time must be HH:MM (e.g. '14:30'); \
         schedule_timezone: unknown timezone 'Mars/Olympus'; \
         schedule_cron: minute 61 out of range (0-59); \
         schedule_cron: hour 24 out of range (0-23)"
    );
    assert_eq!(
        problems(&input(
            Some("weekly"),
            None,
            Some("Nowhere"),
            Some("ignored")
        )),
        ["schedule_timezone: unknown timezone 'Nowhere'"]
    );
    // An unknown frequency cannot say whether time or cron are needed, but a malformed time
    // and an unknown zone are still wrong.
    assert_eq!(
        problems(&input(Some("monthly"), Some("9:00"), Some("Mars/Olympus"), Some("x"))),
        [
            "schedule_frequency: schedule_frequency must be one of: hourly, daily, weekly, custom (got 'monthly')",
            "schedule_time: schedule_time must be HH:MM (e.g. '14:30')",
            "schedule_timezone: unknown timezone 'Mars/Olympus'"
        ]
    );
}

#[test]
fn custom_cron_features_through_the_public_api() {
    // 7 and 0 are both Sunday; 2025-01-05 is a Sunday.
    for expr in ["0 8 * * 7", "0 8 * * 0", "0 8 * * sun", "@weekly"] {
        let first = custom(expr, "UTC").next_after(utc("2025-01-01T00:00:00Z"));
        let hour = if expr == "@weekly" { "00" } else { "08" };
        assert_eq!(
            first,
            Some(utc(&format!("2025-01-05T{hour}:00:00Z"))),
            "{expr}"
        );
    }
    // DOM/DOW OR rule: every 13th and every Friday (2025-06-13 is a Friday, 07-13 a Sunday).
    assert_eq!(
        iso(&custom("0 0 13 * FRI", "UTC").upcoming(utc("2025-07-01T00:00:00Z"), 3)),
        [
            "2025-07-04T00:00Z",
            "2025-07-11T00:00Z",
            "2025-07-13T00:00Z"
        ]
    );
    assert_eq!(
        iso(&custom("@monthly", "UTC").upcoming(utc("2025-01-15T00:00:00Z"), 2)),
        ["2025-02-01T00:00Z", "2025-03-01T00:00Z"]
    );
    assert_eq!(
        iso(&custom("@yearly", "UTC").upcoming(utc("2025-01-15T00:00:00Z"), 1)),
        ["2026-01-01T00:00Z"]
    );
}
