//! `POST /api/v1/schedules/preview`: validates schedule fields exactly as creating an ingestion
//! does and shows the runs they would produce, storing nothing (the spec's FR-10).

use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};

use autoloader::ingestions::definition::ScheduleFields;
use autoloader::schedule::Schedule;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::model::{SchedulePreviewRequest, SchedulePreviewResponse, UpcomingRun};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/schedules/preview", post(preview))
}

/// Most upcoming runs one request may ask for.
pub const MAX_COUNT: i64 = 100;

/// Parses `count` (1 to 100, default 5).
pub fn parse_count(raw: Option<&str>) -> ApiResult<usize> {
    match raw.map(str::parse::<i64>) {
        None => Ok(5),
        Some(Ok(n)) => count_in_range(n),
        Some(Err(_)) => Err(ApiError::field(
            "count",
            "count must be a whole number from 1 to 100",
        )),
    }
}

fn count_in_range(n: i64) -> ApiResult<usize> {
    if (1..=MAX_COUNT).contains(&n) {
        Ok(n as usize)
    } else {
        Err(ApiError::field(
            "count",
            format!("count must be from 1 to {MAX_COUNT} (got {n})"),
        ))
    }
}

/// The next `count` fires after `from`, as instants and with local detail.
pub fn upcoming(
    schedule: &Schedule,
    from: DateTime<Utc>,
    count: usize,
) -> (Vec<DateTime<Utc>>, Vec<UpcomingRun>) {
    let fires = schedule.upcoming_detailed(from, count);
    let instants = fires.iter().map(|f| f.at).collect();
    let detail = fires
        .into_iter()
        .map(|f| UpcomingRun {
            at: f.at,
            local: f.local.to_rfc3339(),
            nominal_local: f.nominal_local.format("%Y-%m-%dT%H:%M:%S").to_string(),
            shifted_by_dst_gap: f.shifted_by_dst_gap,
            repeated_in_dst_overlap: f.repeated_in_dst_overlap,
        })
        .collect();
    (instants, detail)
}

#[utoipa::path(post, path = "/api/v1/schedules/preview", tag = "schedules", request_body = SchedulePreviewRequest,
    responses((status = 200, body = SchedulePreviewResponse), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn preview(
    _tenant: Tenant,
    ApiJson(req): ApiJson<SchedulePreviewRequest>,
) -> ApiResult<Json<SchedulePreviewResponse>> {
    let mut errors = Vec::new();
    let from = match req.from.as_deref() {
        None => Utc::now(),
        Some(s) => {
            match DateTime::parse_from_rfc3339(s) {
                Ok(t) => t.with_timezone(&Utc),
                Err(_) => {
                    errors.push(crate::error::FieldError {
                    field: "from".into(),
                    message: format!("from must be an RFC 3339 instant such as 2025-11-05T14:30:00Z (got '{s}')"),
                });
                    Utc::now()
                }
            }
        }
    };
    let count = match req.count.map(count_in_range) {
        None => 5,
        Some(Ok(n)) => n,
        Some(Err(ApiError::Validation(mut e))) => {
            errors.append(&mut e);
            5
        }
        Some(Err(other)) => return Err(other),
    };
    // A preview is of a schedule that would run, so it is validated as an enabled one.
    let fields = ScheduleFields {
        frequency: req.schedule_frequency,
        time: req.schedule_time,
        timezone: req.schedule_timezone.or_else(|| Some("UTC".to_owned())),
        cron: req.schedule_cron,
        enabled: true,
    };
    let schedule = match fields.validate() {
        Ok(Some(s)) if errors.is_empty() => s,
        Ok(_) => return Err(ApiError::Validation(errors)),
        Err(problems) => {
            errors.extend(problems.into_iter().map(Into::into));
            return Err(ApiError::Validation(errors));
        }
    };
    let (upcoming_runs, upcoming_runs_local) = upcoming(&schedule, from, count);
    Ok(Json(SchedulePreviewResponse {
        frequency: schedule.frequency().to_string(),
        cron_expression: schedule.cron_expression().to_owned(),
        timezone: schedule.timezone().name().to_owned(),
        from,
        upcoming_runs,
        upcoming_runs_local,
    }))
}
