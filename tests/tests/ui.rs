//! The dashboard at /ui over real HTTP against the real API and PostgreSQL: sign-in and its
//! cookie, the CSRF check, tenant isolation (pages, actions and the event stream), sign-out,
//! the form's per-field messages, the actions' outcomes, and the security headers and assets.
//! What needs a browser (the script, the live updates on screen, axe-core) is tested in Chromium apart.

use std::time::Duration;

use autoloader_tests::{TestApi, ADMIN_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// A browser as far as these tests need one: a session cookie handled by hand, no redirects
/// followed.
struct Browser<'a> {
    api: &'a TestApi,
    client: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn location(&self) -> String {
        self.header("location")
    }

    /// The text of the element with this id (tags stripped), or "" when absent.
    fn text_of(&self, id: &str) -> String {
        let Some(start) = self.body.find(&format!("id=\"{id}\"")) else {
            return String::new();
        };
        let rest = &self.body[start..];
        let open = rest.find('>').map(|i| i + 1).unwrap_or(0);
        let inner = &rest[open..];
        // Enough for these tests: up to the first closing tag of a block.
        let end = ["</p>", "</div>", "</td>", "</span>", "</strong>"]
            .iter()
            .filter_map(|t| inner.find(t))
            .min()
            .unwrap_or(inner.len());
        strip_tags(&inner[..end])
    }

    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf-token\" content=\"")
            .expect("the page carries its CSRF token");
        let rest = &self.body[at + "name=\"csrf-token\" content=\"".len()..];
        rest[..rest.find('"').expect("end of the token")].to_owned()
    }
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in s.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .trim()
        .to_owned()
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl<'a> Browser<'a> {
    fn new(api: &'a TestApi) -> Browser<'a> {
        Browser {
            api,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("autoloader_session={c}")),
            None => req,
        };
        let res = req.send().await.expect("request");
        Page {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.text().await.expect("body"),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(self.api.url(path))).await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(
            self.client
                .post(self.api.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(fields)),
        )
        .await
    }

    /// Signs in with `token`; keeps the cookie.
    async fn sign_in(&mut self, token: &str) -> Page {
        let page = self.post("/ui/login", &[("token", token)]).await;
        if let Some(value) = session_cookie(&page) {
            self.cookie = Some(value);
        }
        page
    }

    /// The CSRF token of the signed-in session (read from a page, as the script does).
    async fn csrf(&self) -> String {
        self.get("/ui/ingestions").await.csrf()
    }
}

/// The value the answer sets the session cookie to, if it sets it.
fn session_cookie(page: &Page) -> Option<String> {
    page.header("set-cookie")
        .lines()
        .find_map(|c| c.strip_prefix("autoloader_session="))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .filter(|c| !c.is_empty())
}

fn definition(name: &str) -> Value {
    json!({
        "name": name, "source_type": "s3", "source_path": "s3://bucket-one/in/",
        "format_type": "json", "destination_table": "raw.events",
        "schedule_frequency": "daily", "schedule_time": "09:00",
        "schedule_timezone": "Europe/London", "schedule_enabled": true
    })
}

async fn create(api: &TestApi, token: &str, name: &str) -> Uuid {
    let (status, _, body) = api
        .call("POST", "/api/v1/ingestions", token, Some(definition(name)))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id")
}

async fn run_count(api: &TestApi, token: &str, id: Uuid) -> u64 {
    let (status, _, body) = api
        .call("GET", &format!("/api/v1/ingestions/{id}/runs"), token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["total"].as_u64().expect("total")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sign_in_sets_a_strict_http_only_cookie_and_pages_carry_the_policy(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (_, token) = api.tenant("acme").await;
    let id = create(&api, &token, "orders").await;
    let mut b = Browser::new(&api);

    let page = b.get("/ui/ingestions").await;
    assert_eq!((page.status, page.location().as_str()), (303, "/ui/login"));
    assert_eq!(b.get("/ui").await.location(), "/ui/ingestions");

    let login = b.get("/ui/login").await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains(r#"<label for="token">"#) && login.body.contains(r#"id="sign-in""#)
    );

    let refused = b.sign_in("al_not-a-token").await;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .text_of("login-error")
            .contains("unknown or revoked token"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"role="alert""#));
    assert!(
        session_cookie(&refused).is_none(),
        "no cookie for a refused token"
    );

    let signed = b.sign_in(&token).await;
    assert_eq!(
        (signed.status, signed.location().as_str()),
        (303, "/ui/ingestions")
    );
    let cookie = signed.header("set-cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let stored: i64 = sqlx::query_scalar("select count(*) from ui_sessions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 1);
    let raw = session_cookie(&signed).expect("a session id");
    let leaked: i64 = sqlx::query_scalar(
        "select count(*) from ui_sessions where id_sha256 = convert_to($1, 'UTF8')",
    )
    .bind(&raw)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(leaked, 0, "the session id itself is not stored");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let over_https = b
        .send(
            b.client
                .post(api.url("/ui/login"))
                .header("x-forwarded-proto", "https")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&[("token", &token)])),
        )
        .await;
    assert!(over_https.header("set-cookie").contains("; Secure"));

    let list = b.get("/ui/ingestions").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.text_of("whoami"), "acme");
    assert!(list.body.contains(&format!(r#"data-ingestion-id="{id}""#)));
    assert!(
        list.body.contains("daily at 09:00 Europe/London"),
        "{}",
        list.body
    );
    assert!(list.body.starts_with("<!DOCTYPE html><html lang=\"en\">"));
    let csp = list.header("content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(list.header("x-frame-options"), "DENY");
    assert!(!list.header("referrer-policy").is_empty());

    // A failing ingestion stands out, and the status filter finds it.
    let other = create(&api, &token, "clicks").await;
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, status, worker_id,
                           started_at, finished_at, error)
         select $1, id, tenant_id, 'manual', 'FAILED', 'w1', now(), now(), 'boom'
         from ingestions where id = $2",
    )
    .bind(autoloader_tests::uuid_v7_at(chrono::Utc::now()))
    .bind(other)
    .execute(&pool)
    .await
    .expect("a failed run");
    let failing = b.get("/ui/ingestions?status=failing").await;
    assert!(
        failing.body.contains(&format!(
            r#"<tr data-ingestion-id="{other}" class="failing">"#
        )),
        "{}",
        failing.body
    );
    assert!(!failing
        .body
        .contains(&format!(r#"data-ingestion-id="{id}""#)));
    assert!(failing
        .body
        .contains(r#"<option value="failing" selected>"#));

    // Every page names only this origin's assets, and the assets are served, cacheable forever.
    for path in [
        "/ui/ingestions",
        &format!("/ui/ingestions/{id}"),
        "/ui/ingestions/new",
        "/ui/fleet",
        "/ui/login",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for attr in ["src=\"", "href=\"", "action=\""] {
            for (i, _) in page.body.match_indices(attr) {
                let url = &page.body[i + attr.len()..];
                assert!(
                    url.starts_with('/') || url.starts_with('#'),
                    "{path}: a URL off this origin: {}",
                    &url[..url.len().min(60)]
                );
            }
        }
        assert!(page.body.contains("<main"), "{path} has a main landmark");
        assert_eq!(page.body.matches("<h1").count(), 1, "{path} has one h1");
    }
    let script = list
        .body
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a script");
    assert!(script.starts_with("/ui/assets/"), "{script}");
    let asset = b.get(script).await;
    assert_eq!(asset.status, 200);
    assert!(asset.header("content-type").starts_with("text/javascript"));
    assert!(asset.header("cache-control").contains("immutable"));
    assert!(asset
        .header("content-security-policy")
        .contains("default-src 'self'"));
    assert_eq!(b.get("/ui/assets/app.0000.js").await.status, 404);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let id = create(&api, &token, "orders").await;
    let mut b = Browser::new(&api);
    b.sign_in(&token).await;
    let run = format!("/ui/ingestions/{id}/run");
    let missing = b.post(&run, &[]).await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(missing.body.contains("CSRF"), "{}", missing.body);
    let wrong = b
        .post(&run, &[("csrf", "0123456789abcdef0123456789abcdef")])
        .await;
    assert_eq!(wrong.status, 403);
    let disabled = b
        .post(&format!("/ui/ingestions/{id}/disable"), &[("reason", "x")])
        .await;
    assert_eq!(disabled.status, 403);
    assert_eq!(run_count(&api, &token, id).await, 0, "no run was queued");
    let (_, _, row) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(row["schedule_enabled"], true, "nothing was disabled");

    // The header works as the form field does.
    let csrf = b.csrf().await;
    let by_header = b
        .send(
            b.client
                .post(api.url(&run))
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(""),
        )
        .await;
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    assert_eq!(run_count(&api, &token, id).await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn run_now_twice_shows_the_409_and_disable_shows_its_reason(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let id = create(&api, &token, "orders").await;
    let mut b = Browser::new(&api);
    b.sign_in(&token).await;
    let csrf = b.csrf().await;

    let first = b
        .post(&format!("/ui/ingestions/{id}/run"), &[("csrf", &csrf)])
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.text_of("action-message"), "Run queued.");
    assert!(
        first
            .body
            .contains(r#"data-col="status" class="status status-queued">QUEUED<"#),
        "{}",
        first.body
    );
    let second = b
        .post(&format!("/ui/ingestions/{id}/run"), &[("csrf", &csrf)])
        .await;
    assert_eq!(second.status, 409);
    let message = second.text_of("action-message");
    assert!(
        message.contains("Conflict (409)") && message.contains("already QUEUED"),
        "{message}"
    );
    assert!(second
        .body
        .contains(r#"id="action-message" role="alert" class="error""#));

    // The queued run can be cancelled from its row.
    let run_id = first
        .body
        .split("data-run-id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the run's row")
        .to_owned();
    assert!(first
        .body
        .contains(&format!(r#"data-action="cancel" data-run-id="{run_id}""#)));
    let cancelled = b
        .post(&format!("/ui/runs/{run_id}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert!(cancelled.body.contains(">CANCELLED<"));

    let reason = "upstream bucket is being migrated";
    let disabled = b
        .post(
            &format!("/ui/ingestions/{id}/disable"),
            &[("csrf", &csrf), ("reason", reason)],
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert!(
        disabled.text_of("paused-reason").contains(reason),
        "{}",
        disabled.body
    );
    let list = b.get("/ui/ingestions").await;
    assert!(
        list.body
            .contains(&format!(r#"<td data-col="paused-reason">{reason}</td>"#)),
        "{}",
        list.body
    );
    let (_, _, row) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(row["paused_reason"], reason);
    assert_eq!(
        row["paused_by"], "first token",
        "the token's name, as the API records it"
    );

    let enabled = b
        .post(&format!("/ui/ingestions/{id}/enable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(enabled.status, 200);
    assert_eq!(enabled.text_of("paused-reason"), "");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_form_shows_the_apis_message_beside_the_refused_field(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token) = api.tenant("acme").await;
    let mut b = Browser::new(&api);
    b.sign_in(&token).await;
    let csrf = b.csrf().await;
    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("name", "clicks"),
        ("source_type", "s3"),
        ("source_path", "s3://bucket-one/clicks/"),
        ("format_type", "json"),
        ("destination_table", "raw.clicks"),
        ("schedule_frequency", "daily"),
        ("schedule_time", "25:99"),
        ("schedule_timezone", "Europe/London"),
        ("schedule_enabled", "on"),
        ("options", ""),
    ];
    let refused = b.post("/ui/ingestions", &fields).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let mut body = definition("clicks");
    body["schedule_time"] = json!("25:99");
    let (status, _, problem) = api
        .call("POST", "/api/v1/ingestions", &token, Some(body))
        .await;
    assert_eq!(status, 422);
    let api_message = problem["errors"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["field"] == "schedule_time"))
        .and_then(|e| e["message"].as_str())
        .expect("the API names schedule_time")
        .to_owned();
    assert_eq!(refused.text_of("schedule_time-error"), api_message);
    assert!(refused.body.contains(r#"data-error-for="schedule_time""#));
    assert!(
        refused.body.contains(
            r#"id="schedule_time" name="schedule_time" value="25:99" aria-invalid="true""#
        ),
        "the value is kept: {}",
        refused.body
    );
    assert!(refused.body.contains(r#"value="clicks""#));

    // Options the form cannot read as JSON are refused beside their field, before the API.
    let mut bad_options = fields.clone();
    bad_options.retain(|(k, _)| *k != "options" && *k != "schedule_time");
    bad_options.extend([("options", "{\"delimiter\": "), ("schedule_time", "09:30")]);
    let refused_options = b.post("/ui/ingestions", &bad_options).await;
    assert_eq!(refused_options.status, 422);
    assert!(
        refused_options
            .text_of("options-error")
            .starts_with("options is not valid JSON"),
        "{}",
        refused_options.body
    );

    let (_, _, list) = api.call("GET", "/api/v1/ingestions", &token, None).await;
    assert_eq!(list["total"], 0, "nothing was created");

    fields.retain(|(k, _)| *k != "schedule_time");
    fields.push(("schedule_time", "09:30"));
    let saved = b.post("/ui/ingestions", &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let id: Uuid = saved
        .location()
        .strip_prefix("/ui/ingestions/")
        .and_then(|s| s.parse().ok())
        .expect("the new ingestion's page");
    let page = b.get(&format!("/ui/ingestions/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("daily at 09:30 Europe/London"));
    let next_runs = page
        .body
        .split(r#"id="next-runs""#)
        .nth(1)
        .and_then(|s| s.split("</ul>").next())
        .unwrap_or("");
    assert_eq!(next_runs.matches("<li").count(), 5, "{next_runs}");

    // The edit form holds the stored values and saves through the API's PUT.
    let edit = b.get(&format!("/ui/ingestions/{id}/edit")).await;
    assert_eq!(edit.status, 200);
    assert!(
        edit.body
            .contains(r#"id="schedule_time" name="schedule_time" value="09:30""#),
        "{}",
        edit.body
    );
    fields.retain(|(k, _)| *k != "schedule_time");
    fields.push(("schedule_time", "10:15"));
    let saved = b.post(&format!("/ui/ingestions/{id}"), &fields).await;
    assert_eq!(
        (saved.status, saved.location()),
        (303, format!("/ui/ingestions/{id}"))
    );
    let (_, _, row) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token, None)
        .await;
    assert_eq!(row["schedule_time"], "10:15");

    // The preview the form asks for while typing.
    let preview = b
        .get("/ui/schedule-preview?schedule_frequency=daily&schedule_time=01:30&schedule_timezone=Europe%2FLondon")
        .await;
    assert_eq!(preview.status, 200);
    let v: Value = serde_json::from_str(&preview.body).expect("json");
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(5), "{v}");
    let bad = b
        .get("/ui/schedule-preview?schedule_frequency=daily&schedule_time=25:00")
        .await;
    let v: Value = serde_json::from_str(&bad.body).expect("json");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("schedule_time")),
        "{v}"
    );
}

/// Reads the event stream for `wait`, returning what it carried.
async fn listen(b: &Browser<'_>, wait: Duration) -> String {
    let req = b.client.get(b.api.url("/ui/events")).header(
        "cookie",
        format!("autoloader_session={}", b.cookie.as_deref().unwrap_or("")),
    );
    let mut res = req.send().await.expect("events");
    assert_eq!(res.status(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, res.chunk()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_tenant_sees_nothing_of_an_ingestion_in_pages_actions_or_events(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let (_, token_a) = api.tenant("acme").await;
    let (_, token_b) = api.tenant("globex").await;
    let id = create(&api, &token_a, "acme-secret-orders").await;
    let mut a = Browser::new(&api);
    a.sign_in(&token_a).await;
    let mut b = Browser::new(&api);
    b.sign_in(&token_b).await;
    let csrf_b = b.csrf().await;

    let list = b.get("/ui/ingestions").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("acme-secret-orders") && !list.body.contains(&id.to_string()));
    assert!(list.body.contains(r#"id="no-ingestions""#));
    for path in [
        format!("/ui/ingestions/{id}"),
        format!("/ui/ingestions/{id}/runs"),
        format!("/ui/ingestions/{id}/edit"),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains("acme-secret-orders"));
    }
    for action in ["run", "disable", "enable", "retry"] {
        let page = b
            .post(
                &format!("/ui/ingestions/{id}/{action}"),
                &[("csrf", &csrf_b), ("reason", "mine now")],
            )
            .await;
        assert_eq!(page.status, 404, "{action}: {}", page.body);
    }
    let edit = b
        .post(
            &format!("/ui/ingestions/{id}"),
            &[("csrf", &csrf_b), ("name", "taken")],
        )
        .await;
    assert_eq!(edit.status, 404, "{}", edit.body);
    assert_eq!(run_count(&api, &token_a, id).await, 0);
    let (_, _, row) = api
        .call("GET", &format!("/api/v1/ingestions/{id}"), &token_a, None)
        .await;
    assert_eq!(
        (row["schedule_enabled"].clone(), row["name"].clone()),
        (json!(true), json!("acme-secret-orders"))
    );

    // A's run is heard on A's stream and not on B's.
    let (heard_a, heard_b, _) = tokio::join!(
        listen(&a, Duration::from_secs(3)),
        listen(&b, Duration::from_secs(3)),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (status, _, body) = api
                .call(
                    "POST",
                    &format!("/api/v1/ingestions/{id}/run"),
                    &token_a,
                    None,
                )
                .await;
            assert_eq!(status, 202, "{body}");
        }
    );
    assert!(
        heard_a.contains(&id.to_string()) && heard_a.contains("QUEUED"),
        "A hears its run: {heard_a}"
    );
    assert!(
        heard_a.contains("event: queue") && heard_a.contains(r#"{"depth":1}"#),
        "{heard_a}"
    );
    assert!(
        heard_b.contains("event: hello"),
        "B's stream is open: {heard_b}"
    );
    assert!(
        !heard_b.contains(&id.to_string()) && !heard_b.contains("QUEUED"),
        "B hears nothing of A: {heard_b}"
    );
    assert!(!heard_b.contains(r#"{"depth":1}"#), "{heard_b}");

    // The admin sees every tenant's, with a tenant column, and changes none.
    let mut admin = Browser::new(&api);
    assert_eq!(admin.sign_in(ADMIN_TOKEN).await.status, 303);
    let all = admin.get("/ui/ingestions").await;
    assert_eq!(all.text_of("whoami"), "admin");
    assert!(
        all.body.contains(r#"<td data-col="tenant">acme</td>"#),
        "{}",
        all.body
    );
    assert_eq!(admin.get(&format!("/ui/ingestions/{id}")).await.status, 200);
    let csrf = admin.csrf().await;
    let refused = admin
        .post(&format!("/ui/ingestions/{id}/run"), &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        run_count(&api, &token_a, id).await,
        1,
        "only A's own trigger"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sign_out_and_a_revoked_token_end_the_session(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let (tenant, token) = api.tenant("acme").await;
    let mut b = Browser::new(&api);
    b.sign_in(&token).await;
    let csrf = b.csrf().await;
    let out_without = b.post("/ui/logout", &[]).await;
    assert_eq!(
        out_without.status, 403,
        "sign-out is a POST with the CSRF token too"
    );
    let out = b.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location().as_str()), (303, "/ui/login"));
    let cleared = out.header("set-cookie");
    assert!(
        cleared.starts_with("autoloader_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let left: i64 = sqlx::query_scalar("select count(*) from ui_sessions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 0, "the session row is gone");
    let after = b.get("/ui/ingestions").await;
    assert_eq!(
        (after.status, after.location().as_str()),
        (303, "/ui/login")
    );

    // A revoked token's session ends at its next request.
    b.sign_in(&token).await;
    assert_eq!(b.get("/ui/ingestions").await.status, 200);
    let (_, _, tokens) = api
        .call(
            "GET",
            &format!("/api/v1/admin/tenants/{tenant}/tokens"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    let token_id = tokens["items"][0]["token_id"]
        .as_str()
        .expect("the token's id")
        .to_owned();
    let (status, _, _) = api
        .call(
            "DELETE",
            &format!("/api/v1/admin/tokens/{token_id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let after = b.get("/ui/ingestions").await;
    assert_eq!(
        (after.status, after.location().as_str()),
        (303, "/ui/login")
    );
    let left: i64 = sqlx::query_scalar("select count(*) from ui_sessions")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 0);
    assert_eq!(b.sign_in(&token).await.status, 401);
}

/// Reads the event stream until `done` holds of what it carried, or `wait` passes.
async fn listen_until(b: &Browser<'_>, wait: Duration, done: impl Fn(&str) -> bool) -> String {
    let req = b.client.get(b.api.url("/ui/events")).header(
        "cookie",
        format!("autoloader_session={}", b.cookie.as_deref().unwrap_or("")),
    );
    let mut res = req.send().await.expect("events");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => {
                seen.push_str("[the stream ended]");
                break;
            }
            Ok(Err(e)) => {
                seen.push_str(&format!("[the stream failed: {e}]"));
                break;
            }
            Err(_) => break,
        }
    }
    seen
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_event_stream_follows_a_run_from_queued_to_success(pool: PgPool) {
    let world = autoloader_tests::loader::Loader::new(pool, "ui-live").await;
    world.write("a.json", b"{\"id\": 1}\n{\"id\": 2}\n");
    let id = world.ingestion("json", "raw.live", json!({})).await;
    let mut worker = world.worker("ui-live-worker", &[]);
    let mut b = Browser::new(&world.api);
    b.sign_in(&world.token).await;
    let csrf = b.csrf().await;
    let (heard, page) = tokio::join!(
        listen_until(&b, Duration::from_secs(60), |s| s.contains("\"SUCCESS\"")),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            b.post(&format!("/ui/ingestions/{id}/run"), &[("csrf", &csrf)])
                .await
        }
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let run_id = page
        .body
        .split("data-run-id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the run's row")
        .to_owned();
    // A run quicker than the stream's reads may be heard of first as RUNNING or SUCCESS; its
    // end is always heard, after any earlier state.
    let at = |status: &str| heard.find(&format!(r#""run_id":"{run_id}","status":"{status}""#));
    let success = at("SUCCESS").unwrap_or_else(|| panic!("SUCCESS heard: {heard}"));
    for earlier in ["QUEUED", "RUNNING"] {
        assert!(
            at(earlier).is_none_or(|i| i < success),
            "{earlier} before SUCCESS: {heard}"
        );
    }
    assert!(heard.contains(&format!(r#""ingestion_id":"{id}""#)));
    // The fragment the page then fetches shows the run's end.
    let runs = b.get(&format!("/ui/ingestions/{id}/runs")).await;
    assert!(
        runs.body
            .contains(r#"class="status status-success">SUCCESS<"#),
        "{}",
        runs.body
    );
    assert!(
        runs.body.contains(r#"<td data-col="rows">2</td>"#),
        "{}",
        runs.body
    );
    worker.signal("TERM");
    worker.wait_exit(Duration::from_secs(30)).await;
}
