//! The page shell every dashboard page shares (header, navigation, live state, sign-out), and
//! the small formatters the pages use: ages, durations, sizes, schedules in words.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::session::UiSession;

/// Which navigation link is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Ingestions,
    Fleet,
    None,
}

/// A whole page: `title` in the tab and the one `h1` of `main`.
pub fn page(title: &str, session: Option<&UiSession>, nav: Nav, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Autoloader" }
                link rel="stylesheet" href=(assets::css_url());
                link rel="icon" type="image/svg+xml" href=(assets::icon_url());
                @if let Some(s) = session {
                    meta name="csrf-token" content=(s.csrf);
                }
                script src=(assets::js_url()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Autoloader" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            a #nav-ingestions href="/ui/ingestions"
                                aria-current=[(nav == Nav::Ingestions).then_some("page")] { "Ingestions" }
                            a #nav-fleet href="/ui/fleet"
                                aria-current=[(nav == Nav::Fleet).then_some("page")] { "Fleet" }
                        }
                        span.who { "Signed in as " strong #whoami { (s.who()) } }
                        span #live-state data-state="reconnecting" role="status" aria-live="polite" { "reconnecting" }
                        form #sign-out-form method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button #sign-out type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (main)
                }
                @if session.is_some() {
                    dialog #confirm aria-labelledby="confirm-title" {
                        form method="dialog" {
                            h2 #confirm-title { "Are you sure?" }
                            p #confirm-text {}
                            div #confirm-reason-box hidden {
                                label for="confirm-reason" { "Reason" }
                                textarea #confirm-reason name="confirm-reason" rows="3" maxlength="1000" {}
                            }
                            div.buttons {
                                button #confirm-cancel type="button" value="cancel" { "Cancel" }
                                button #confirm-ok type="button" value="ok" { "Confirm" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `markup` as an HTML response with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// An error page (a 404, a refusal) inside the shell.
pub fn error_page(session: Option<&UiSession>, status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    respond(
        status,
        page(
            title,
            session,
            Nav::None,
            html! { p.error role="alert" { (detail) } p { a href="/ui/ingestions" { "Back to the ingestions" } } },
        ),
    )
}

/// "3 min ago", "2 h ago", "in 5 min".
pub fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let (n, future) = if secs < 0 {
        (-secs, true)
    } else {
        (secs, false)
    };
    let text = if n < 60 {
        format!("{n} s")
    } else if n < 3600 {
        format!("{} min", n / 60)
    } else if n < 86_400 {
        format!("{} h", n / 3600)
    } else {
        format!("{} d", n / 86_400)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Milliseconds as "850 ms", "12.3 s", "4 min 5 s", "2 h 3 min".
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "–".to_owned();
    }
    if ms < 1000.0 {
        return format!("{ms:.0} ms");
    }
    let s = ms / 1000.0;
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let s = s.round() as i64;
    if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// Bytes as "512 B", "1.5 KiB", "3.2 MiB".
pub fn bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

/// A schedule in words with its zone: "daily at 09:00 Europe/London", "hourly UTC",
/// "cron 0 */2 * * * UTC", "manual only".
pub fn schedule_words(
    frequency: Option<&str>,
    time: Option<&str>,
    cron: Option<&str>,
    zone: &str,
) -> String {
    match (frequency, time, cron) {
        (Some("custom"), _, Some(cron)) => format!("cron {cron} {zone}"),
        (Some("hourly"), _, _) => format!("hourly {zone}"),
        (Some(f @ ("daily" | "weekly")), Some(t), _) if !t.is_empty() => {
            format!("{f} at {t} {zone}")
        }
        (Some(f), _, _) => format!("{f} {zone}"),
        (None, _, _) => "manual only".to_owned(),
    }
}

/// An instant as "2026-03-29 09:00 BST (08:00 UTC)" in `zone`.
pub fn local_and_utc(at: DateTime<Utc>, zone: &str) -> String {
    let utc = at.format("%Y-%m-%d %H:%M UTC").to_string();
    match zone.parse::<Tz>() {
        Ok(tz) if tz != Tz::UTC => format!(
            "{} ({})",
            at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
            at.format("%H:%M UTC")
        ),
        _ => utc,
    }
}

/// Whether the UTC offset of `zone` differs at `at` from now's: the next run crosses a DST
/// change.
pub fn crosses_dst(now: DateTime<Utc>, at: DateTime<Utc>, zone: &str) -> bool {
    use chrono::Offset;
    let Ok(tz) = zone.parse::<Tz>() else {
        return false;
    };
    now.with_timezone(&tz).offset().fix() != at.with_timezone(&tz).offset().fix()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_read_as_words_with_their_zone() {
        assert_eq!(
            schedule_words(Some("daily"), Some("09:00"), None, "Europe/London"),
            "daily at 09:00 Europe/London"
        );
        assert_eq!(
            schedule_words(Some("custom"), None, Some("*/5 * * * *"), "UTC"),
            "cron */5 * * * * UTC"
        );
        assert_eq!(schedule_words(None, None, None, "UTC"), "manual only");
    }

    #[test]
    fn a_run_after_the_clocks_change_is_flagged() {
        let before = Utc
            .with_ymd_and_hms(2026, 3, 28, 12, 0, 0)
            .single()
            .expect("an instant");
        let after = Utc
            .with_ymd_and_hms(2026, 3, 30, 8, 0, 0)
            .single()
            .expect("an instant");
        assert!(crosses_dst(before, after, "Europe/London"));
        assert!(!crosses_dst(before, after, "UTC"));
        assert_eq!(
            local_and_utc(after, "Europe/London"),
            "2026-03-30 09:00 BST (08:00 UTC)"
        );
    }

    #[test]
    fn durations_and_sizes_read_short() {
        assert_eq!(duration_ms(850.0), "850 ms");
        assert_eq!(duration_ms(12_345.0), "12.3 s");
        assert_eq!(duration_ms(245_000.0), "4 min 5 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
