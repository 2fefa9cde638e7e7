//! Bad input gets a 4xx problem document naming the field, never a 500 and never a half-written
//! row. One case per rule of the spec (sections 7.1 and 8.3) and per class of malformed request.

use autoloader_tests::TestApi;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

fn valid() -> Value {
    json!({
        "name": "events", "source_type": "s3", "source_path": "s3://bucket-one/logs/",
        "format_type": "json", "destination_table": "analytics.events",
        "schedule_frequency": "daily", "schedule_time": "02:00", "schedule_timezone": "UTC",
        "schedule_enabled": true
    })
}

fn with(changes: Value) -> Value {
    let mut body = valid();
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            body.as_object_mut().expect("object").remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

/// Asserts a problem document with `status` whose errors name `field` with a message containing
/// `needle`.
fn assert_problem(
    status: u16,
    ctype: &str,
    body: &Value,
    want_status: u16,
    field: &str,
    needle: &str,
) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(ctype, "application/problem+json", "{body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")),
        "{body}"
    );
    assert!(body["detail"].is_string(), "{body}");
    autoloader_tests::assert_field_error(body, field, needle);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn each_schedule_rule_is_enforced_and_nothing_is_written(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let cases = [
        (
            json!({"schedule_frequency": "monthly"}),
            "schedule_frequency",
            "must be one of: hourly, daily, weekly, custom",
        ),
        (
            json!({"schedule_time": "2:00"}),
            "schedule_time",
            "schedule_time must be HH:MM (e.g. '14:30')",
        ),
        (json!({"schedule_time": "24:00"}), "schedule_time", "HH:MM"),
        (json!({"schedule_time": "12:60"}), "schedule_time", "HH:MM"),
        (
            json!({"schedule_time": null}),
            "schedule_time",
            "required for daily",
        ),
        (
            json!({"schedule_frequency": "weekly", "schedule_time": null}),
            "schedule_time",
            "required for weekly",
        ),
        (
            json!({"schedule_frequency": "custom"}),
            "schedule_cron",
            "required for custom",
        ),
        (
            json!({"schedule_frequency": "custom", "schedule_cron": "61 * * * *"}),
            "schedule_cron",
            "minute 61 out of range",
        ),
        (
            json!({"schedule_frequency": "custom", "schedule_cron": "0 0 30 2 *"}),
            "schedule_cron",
            "never",
        ),
        (
            json!({"schedule_frequency": "custom", "schedule_cron": "* * * *"}),
            "schedule_cron",
            "expected 5 fields",
        ),
        (
            json!({"schedule_timezone": "Mars/Olympus"}),
            "schedule_timezone",
            "unknown timezone 'Mars/Olympus'",
        ),
        (
            json!({"schedule_frequency": null, "schedule_time": null}),
            "schedule_frequency",
            "required when schedule_enabled is true",
        ),
    ];
    for (change, field, needle) in cases {
        let (status, ctype, body) = api
            .call(
                "POST",
                "/api/v1/ingestions",
                &token,
                Some(with(change.clone())),
            )
            .await;
        assert_problem(status, &ctype, &body, 422, field, needle);
    }
    let rows: i64 = sqlx::query_scalar("select count(*) from ingestions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 0, "no rejected request left a row");

    // A disabled schedule may be incomplete, but what is given must still be well-formed.
    let (status, _, body) = api
        .call("POST", "/api/v1/ingestions", &token, Some(with(json!({"schedule_enabled": false, "schedule_frequency": null, "schedule_time": null}))))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, ctype, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(with(
                json!({"name": "x", "schedule_enabled": false, "schedule_time": "9am"}),
            )),
        )
        .await;
    assert_problem(status, &ctype, &body, 422, "schedule_time", "HH:MM");
}

/// The product spec's rule: a schedule must be complete only when it is enabled. A disabled daily
/// or weekly schedule without a time means 00:00, a disabled custom one without a cron has no
/// fires yet; enabling either answers 422 naming the missing field; disabling always works.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_disabled_schedule_may_be_incomplete_and_enabling_it_names_what_is_missing(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    for (i, (frequency, cron_shown, missing)) in [
        ("daily", Some("0 0 * * *"), "schedule_time"),
        ("weekly", Some("0 0 * * 0"), "schedule_time"),
        ("custom", None, "schedule_cron"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = with(json!({
            "name": format!("timeless {i}"),
            "schedule_enabled": false,
            "schedule_frequency": frequency,
            "schedule_time": null,
        }));
        let (status, _, created) = api
            .call("POST", "/api/v1/ingestions", &token, Some(body))
            .await;
        assert_eq!(status, 201, "{frequency}: {created}");
        assert!(created["schedule_time"].is_null(), "{created}");
        assert!(created["next_run_time"].is_null(), "{created}");
        let id = created["id"].as_str().expect("id");

        let (status, _, info) = api
            .call(
                "GET",
                &format!("/api/v1/ingestions/{id}/schedule"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{info}");
        assert_eq!(
            info["cron_expression"].as_str(),
            cron_shown,
            "{frequency}: {info}"
        );
        if cron_shown.is_some() {
            let first = info["upcoming_runs"][0]
                .as_str()
                .expect("upcoming runs at 00:00");
            assert!(first.ends_with("T00:00:00Z"), "{first}");
        }

        let (status, ctype, refused) = api
            .call(
                "POST",
                &format!("/api/v1/ingestions/{id}/schedule/enable"),
                &token,
                None,
            )
            .await;
        assert_problem(status, &ctype, &refused, 422, missing, "required");

        let (status, _, off) = api
            .call(
                "POST",
                &format!("/api/v1/ingestions/{id}/schedule/disable"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{off}");
        assert_eq!(off["schedule_enabled"], false);
    }
    let ticks: i64 = sqlx::query_scalar("select count(*) from schedule_ticks")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(ticks, 0, "no refused enable left a schedule running");

    // A cron given beside a preset is not used, but it must still be a cron (`validate_cron`).
    let (status, ctype, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(with(
                json!({"name": "preset", "schedule_cron": "not a cron"}),
            )),
        )
        .await;
    assert_problem(
        status,
        &ctype,
        &body,
        422,
        "schedule_cron",
        "expected 5 fields",
    );
}

/// Switching a schedule off never depends on the rest of the definition: an ingestion whose
/// stored definition today's rules refuse (here: written at a psql prompt) can still be stopped.
#[sqlx::test(migrator = "MIGRATOR")]
async fn disabling_a_schedule_checks_nothing_else(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let (status, _, created) = api
        .call("POST", "/api/v1/ingestions", &token, Some(valid()))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    sqlx::query("update ingestions set options = '{\"no_such_option\": 1}' where id = $1::uuid")
        .bind(id)
        .execute(&pool)
        .await
        .expect("store a definition the API would refuse");
    let (status, ctype, refused) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/enable"),
            &token,
            None,
        )
        .await;
    assert_problem(status, &ctype, &refused, 422, "options.no_such_option", "");
    let (status, _, off) = api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{id}/schedule/disable"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["schedule_enabled"], false);
    assert!(off["next_run_time"].is_null(), "{off}");
    let ticks: i64 = sqlx::query_scalar("select count(*) from schedule_ticks")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(ticks, 0, "the schedule is off");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn each_definition_rule_is_enforced(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let cases = [
        (json!({"name": null}), "name", "name is required"),
        (json!({"name": "   "}), "name", "name is required"),
        // PostgreSQL stores no NUL character: a 422 naming the field, never a 500.
        (
            json!({"description": "before\u{0}after"}),
            "description",
            "NUL character",
        ),
        (
            json!({"options": {"glob": "a\u{0}b"}}),
            "options.glob",
            "NUL character",
        ),
        (
            json!({"name": format!(" {}", "x".repeat(200))}),
            "name",
            "at most 200 characters",
        ),
        (json!({"name": "bell\u{7}"}), "name", "control characters"),
        (
            json!({"source_type": "ftp"}),
            "source_type",
            "must be one of: s3, local",
        ),
        (
            json!({"source_path": "file:///data/in/"}),
            "source_path",
            "s3://bucket/prefix/",
        ),
        (
            json!({"source_type": "local", "source_path": "file:///data/../etc/"}),
            "source_path",
            "'..'",
        ),
        (
            json!({"format_type": "xml"}),
            "format_type",
            "json, csv, parquet, avro",
        ),
        (
            json!({"destination_table": "events"}),
            "destination_table",
            "namespace.table",
        ),
        (
            json!({"destination_table": "analytics.bad-name"}),
            "destination_table",
            "not an identifier",
        ),
        (json!({"options": [1, 2]}), "options", "JSON object"),
        (
            json!({"options": {"colour": "red"}}),
            "options.colour",
            "unknown option 'colour'",
        ),
        (
            json!({"options": {"s3_endpoint": "ftp://example.com"}}),
            "options.s3_endpoint",
            "http:// or https://",
        ),
        (
            json!({"options": {"csv_delimiter": ";"}}),
            "options.csv_delimiter",
            "only applies to the csv format",
        ),
        (
            json!({"format_type": "avro", "options": {"csv_header": false}}),
            "options.csv_header",
            "only applies to the csv format",
        ),
        (
            json!({"format_type": "csv", "options": {"csv_delimiter": ";;"}}),
            "options.csv_delimiter",
            "single ASCII character",
        ),
        (
            json!({"options": {"glob": "logs/{a,b"}}),
            "options.glob",
            "without a '}'",
        ),
        (
            json!({"options": {"max_files_per_run": 0}}),
            "options.max_files_per_run",
            "from 1 to 100000",
        ),
        (
            json!({"options": {"schema_evolution": "addNewColumns"}}),
            "options.schema_evolution",
            "add_new_columns, rescue, fail_on_new_columns, none",
        ),
        (
            json!({"options": {"on_error": "continue"}}),
            "options.on_error",
            "abort, skip_file, skip_record",
        ),
        (
            json!({"options": {"schema_hints": "id varchar(10)"}}),
            "options.schema_hints",
            "unknown type 'varchar(10)'",
        ),
        (
            json!({"options": {"schema_hints": "amount decimal(39,2)"}}),
            "options.schema_hints",
            "precision must be 1 to 38",
        ),
        (
            json!({"options": {"schema_hints": 5}}),
            "options.schema_hints",
            "must be a string",
        ),
        (
            json!({"options": {"metadata_columns": "sometimes"}}),
            "options.metadata_columns",
            "true or false",
        ),
        (
            json!({"options": {"partition_by": "day(ts)"}}),
            "options.partition_by",
            "must be a list of strings",
        ),
        (
            json!({"options": {"partition_by": ["region", "week(ts)"]}}),
            "options.partition_by[1]",
            "unknown transform 'week'",
        ),
        (
            json!({"options": {"partition_by": ["bucket(0, id)"]}}),
            "options.partition_by[0]",
            "from 1 to 1000000",
        ),
        (
            json!({"options": {"partition_by": ["truncate(2000000, sku)"]}}),
            "options.partition_by[0]",
            "from 1 to 1000000",
        ),
        (
            json!({"options": {"partition_by": ["bucket(4, id)", "bucket(8, id)"]}}),
            "options.partition_by[1]",
            "both named 'id_bucket'",
        ),
        (
            json!({"options": {"partition_by": ["day(ts)", "hour(ts)"]}}),
            "options.partition_by[1]",
            "two time transforms of column 'ts'",
        ),
        (
            json!({"options": {"partition_by": [format!("day({})", "c".repeat(257))]}}),
            "options.partition_by[0]",
            "1 to 256 printable",
        ),
        (
            json!({"options": {"partition_by": (0..17).map(|i| format!("c{i}")).collect::<Vec<_>>()}}),
            "options.partition_by",
            "at most 16 fields",
        ),
        (
            json!({"options": {"partition_by": ["day(region)"], "schema_hints": "region string"}}),
            "options.partition_by[0]",
            "column 'region' is string; day applies to date and timestamp columns",
        ),
        (
            json!({"schedule_frequency": "", "schedule_enabled": false}),
            "schedule_frequency",
            "one of: hourly, daily, weekly, custom",
        ),
        (
            json!({"source_type": "local", "source_path": "file:///data/in/"}),
            "source_path",
            "AUTOLOADER_FILE_ROOTS",
        ),
        (json!({"status": "RUNNING"}), "status", "ACTIVE or PAUSED"),
    ];
    for (change, field, needle) in cases {
        let (status, ctype, body) = api
            .call(
                "POST",
                "/api/v1/ingestions",
                &token,
                Some(with(change.clone())),
            )
            .await;
        assert_problem(status, &ctype, &body, 422, field, needle);
    }
    // Several problems at once are all reported.
    let (status, _, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(with(
                json!({"format_type": "xml", "schedule_time": "25:00"}),
            )),
        )
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"format_type") && fields.contains(&"schedule_time"),
        "{body}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn malformed_requests_get_a_precise_4xx(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let post_raw = |body: Vec<u8>, ctype: &'static str| {
        api.client
            .post(api.url("/api/v1/ingestions"))
            .bearer_auth(&token)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    async fn read(res: reqwest::Response) -> (u16, String, Value) {
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ctype, res.json().await.unwrap_or(Value::Null))
    }

    let (status, ctype, body) = read(
        post_raw(b"{\"name\": ".to_vec(), "application/json")
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((status, ctype.as_str()), (400, "application/problem+json"));
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON"),
        "{body}"
    );

    let (status, ctype, body) = read(
        post_raw(
            serde_json::to_vec(&with(json!({"name": 5}))).expect("json"),
            "application/json",
        )
        .await
        .expect("send"),
    )
    .await;
    assert_problem(status, &ctype, &body, 422, "name", "invalid type");

    let (status, ctype, body) = read(
        post_raw(
            serde_json::to_vec(&with(json!({"schedule_enabled": "yes"}))).expect("json"),
            "application/json",
        )
        .await
        .expect("send"),
    )
    .await;
    assert_problem(
        status,
        &ctype,
        &body,
        422,
        "schedule_enabled",
        "invalid type",
    );

    let (status, ctype, body) = read(
        post_raw(
            serde_json::to_vec(&with(json!({"colour": "blue"}))).expect("json"),
            "application/json",
        )
        .await
        .expect("send"),
    )
    .await;
    assert_problem(status, &ctype, &body, 422, "colour", "unknown field");

    let (status, ctype, _) = read(
        post_raw(serde_json::to_vec(&valid()).expect("json"), "text/plain")
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((status, ctype.as_str()), (415, "application/problem+json"));

    let huge = with(json!({"description": "x".repeat(100 * 1024)}));
    let (status, ctype, _) = read(
        post_raw(serde_json::to_vec(&huge).expect("json"), "application/json")
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((status, ctype.as_str()), (413, "application/problem+json"));

    let (status, ctype, body) = api
        .call("GET", "/api/v1/ingestions/not-a-uuid", &token, None)
        .await;
    assert_eq!(
        (status, ctype.as_str()),
        (400, "application/problem+json"),
        "{body}"
    );
    let (status, ctype, body) = api.call("GET", "/api/v1/runs/123/", &token, None).await;
    assert!(
        (400..500).contains(&status) && ctype == "application/problem+json",
        "{status} {body}"
    );

    let (status, ctype, body) = api
        .call("GET", "/api/v1/ingestions?colour=blue", &token, None)
        .await;
    assert_problem(status, &ctype, &body, 400, "colour", "unknown field");
    let (status, ctype, body) = api
        .call("GET", "/api/v1/ingestions?page_size=0", &token, None)
        .await;
    assert_problem(status, &ctype, &body, 422, "page_size", "1 to 200");
    let (status, ctype, body) = api
        .call("GET", "/api/v1/ingestions?status=ON", &token, None)
        .await;
    assert_problem(status, &ctype, &body, 422, "status", "ACTIVE or PAUSED");
    let (status, ctype, body) = api
        .call("GET", "/api/v1/ingestions?name=a%00b", &token, None)
        .await;
    assert_problem(status, &ctype, &body, 422, "name", "NUL character");
    // A struct would take the array of its fields in order; no body of this API is an array.
    let (status, ctype, body) = read(
        post_raw(b"[null, null]".to_vec(), "application/json")
            .await
            .expect("send"),
    )
    .await;
    assert_problem(status, &ctype, &body, 422, "body", "not an array");

    let (status, ctype, _) = api.call("GET", "/api/v1/nothing-here", &token, None).await;
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));
    let (status, ctype, _) = api
        .call("DELETE", "/api/v1/schedules/preview", &token, None)
        .await;
    assert_eq!((status, ctype.as_str()), (405, "application/problem+json"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn preview_validates_like_create_and_stores_nothing(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    for (body, field, needle) in [
        (
            json!({"schedule_frequency": "daily"}),
            "schedule_time",
            "required for daily",
        ),
        (
            json!({"schedule_frequency": "custom", "schedule_cron": "0 0 * * 8"}),
            "schedule_cron",
            "out of range",
        ),
        (
            json!({"schedule_frequency": "hourly", "from": "yesterday"}),
            "from",
            "RFC 3339",
        ),
        (
            json!({"schedule_frequency": "hourly", "count": 0}),
            "count",
            "from 1 to 100",
        ),
        (json!({}), "schedule_frequency", "required"),
    ] {
        let (status, ctype, problem) = api
            .call("POST", "/api/v1/schedules/preview", &token, Some(body))
            .await;
        assert_problem(status, &ctype, &problem, 422, field, needle);
    }
    let (status, _, ok) = api
        .call("POST", "/api/v1/schedules/preview", &token, Some(json!({
            "schedule_frequency": "custom", "schedule_cron": "30 2 * * *", "schedule_timezone": "America/New_York",
            "from": "2025-03-08T12:00:00Z", "count": 2
        })))
        .await;
    assert_eq!(status, 200, "{ok}");
    // 02:30 does not exist in New York on 2025-03-09: it fires when the gap ends, at 03:00 EDT
    // (07:00Z); the next day 02:30 EDT is 06:30Z.
    assert_eq!(
        ok["upcoming_runs"],
        json!(["2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"])
    );
    assert_eq!(ok["upcoming_runs_local"][0]["shifted_by_dst_gap"], true);
    assert_eq!(
        ok["upcoming_runs_local"][0]["local"],
        "2025-03-09T03:00:00-04:00"
    );
    assert_eq!(ok["upcoming_runs_local"][1]["shifted_by_dst_gap"], false);
    let rows: i64 = sqlx::query_scalar("select count(*) from ingestions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 0);
}

/// A tenant's name follows the same rules as an ingestion's, checked as sent.
#[sqlx::test(migrator = "MIGRATOR")]
async fn tenant_names_are_checked_as_sent(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    for (name, needle) in [
        (format!(" {}", "x".repeat(200)), "at most 200 characters"),
        ("tab\there".to_owned(), "control characters"),
        ("   ".to_owned(), "name is required"),
    ] {
        let (status, ctype, body) = api
            .call(
                "POST",
                "/api/v1/admin/tenants",
                autoloader_tests::ADMIN_TOKEN,
                Some(json!({ "name": name })),
            )
            .await;
        assert_problem(status, &ctype, &body, 422, "name", needle);
    }
    let tenants: i64 = sqlx::query_scalar("select count(*) from tenants")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(tenants, 0, "nothing was written");
}

/// A tenant may not raise what a run reads above the operator's ceiling.
#[sqlx::test(migrator = "MIGRATOR")]
async fn max_bytes_per_run_stays_under_the_operators_ceiling(pool: PgPool) {
    let state = autoloader_api::AppState::new(pool, Some(autoloader_tests::ADMIN_TOKEN))
        .with_limits(autoloader::ingestions::options::Limits {
            max_file_bytes: 1 << 30,
            max_bytes_per_run: 1 << 30,
            ..Default::default()
        });
    let api = TestApi::spawn_with_state(state).await;
    let (_, token) = api.tenant("acme").await;
    let (status, ctype, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(with(
                json!({"options": {"max_bytes_per_run": (1u64 << 30) + 1}}),
            )),
        )
        .await;
    assert_problem(
        status,
        &ctype,
        &body,
        422,
        "options.max_bytes_per_run",
        "AUTOLOADER_MAX_BYTES_PER_RUN",
    );
    let (status, _, body) = api
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(with(json!({"options": {"max_bytes_per_run": 1u64 << 30}}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
