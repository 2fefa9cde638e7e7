//! The dashboard (`/ui`) in Debian's headless Chromium, against the real API, a real worker
//! process and PostgreSQL: what a user signs in to, sees, clicks and waits for. The pages keep
//! to the contract of element ids in docs/ARCHITECTURE.md ("The dashboard"); the browser is driven
//! through the DevTools protocol (`autoloader_tests::browser`).
//!
//! Without Chromium or axe-core these tests say SKIPPED loudly (and fail on CI); see
//! scripts/chromium.sh.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use autoloader_tests::browser::{js_str, Browser, Page};
use autoloader_tests::loader::Loader;
use autoloader_tests::{api_bin, database_url, wait_for, ADMIN_TOKEN, TEST_SECRET_KEY};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// How long a run may take to show up finished in the page.
const RUN_WAIT: Duration = Duration::from_secs(60);

/// A world with a tenant (`data-eng`), a source directory holding a few JSON files, and an API.
async fn world(pool: PgPool, name: &str) -> Loader {
    let w = Loader::new(pool, name).await;
    for i in 0..3 {
        w.write(
            &format!("part-{i}.json"),
            format!(
                "{{\"id\": {i}, \"kind\": \"click\"}}\n{{\"id\": {}, \"kind\": \"view\"}}\n",
                i + 100
            )
            .as_bytes(),
        );
    }
    w
}

/// Signs in with `token` using only the keyboard: Tab to the token field, type, Enter.
async fn sign_in(page: &Page, token: &str) {
    page.goto("/ui/login").await;
    for _ in 0..10 {
        if page.focused().await == "token" {
            break;
        }
        page.press("Tab").await;
    }
    assert_eq!(page.focused().await, "token", "Tab reaches the token field");
    page.fill("#token", token).await;
    let status = page.expect_load("signing in", page.press("Enter")).await;
    assert_eq!(status, 200, "{}", page.snapshot().await);
    page.wait(
        "the ingestions page after sign-in",
        "location.pathname === '/ui/ingestions'",
    )
    .await;
}

/// Waits for `#live-state` to say `state` (its text and its `data-state`).
async fn wait_live_state(page: &Page, state: &str) {
    page.wait_for(
        &format!("the live state to say {state}"),
        &format!(
            "(() => {{ const e = document.querySelector('#live-state');
               return e && e.textContent.trim() === {s} && e.dataset.state === {s}; }})()",
            s = js_str(state)
        ),
        Duration::from_secs(30),
    )
    .await;
}

/// Clicks `button`, which opens the confirmation dialog, then confirms it (with `reason` in the
/// dialog's reason field when given).
async fn confirm(page: &Page, button: &str, reason: Option<&str>) {
    page.click(button).await;
    page.wait(
        "the confirmation dialog",
        "document.querySelector('dialog#confirm').open",
    )
    .await;
    if let Some(r) = reason {
        page.fill("textarea#confirm-reason", r).await;
    }
    page.settle(&format!("confirming {button}"), page.click("#confirm-ok"))
        .await;
}

/// The status text of run `run` in the page's run table, when it is there.
fn run_status_js(run: &str) -> String {
    format!(
        "(() => {{ const c = document.querySelector('table#runs tr[data-run-id={}] [data-col=status]');
           return c ? c.textContent.trim() : null; }})()",
        js_str(run)
    )
}

/// The id of the newest run row whose status is `status`.
async fn wait_run_with_status(page: &Page, status: &str) -> String {
    page.wait(
        &format!("a {status} run in the run table"),
        &format!(
            "(() => {{ const r = [...document.querySelectorAll('table#runs tr[data-run-id]')]
               .find(r => r.querySelector('[data-col=status]')?.textContent.trim() === {});
               return r ? r.dataset.runId : null; }})()",
            js_str(status)
        ),
    )
    .await
    .as_str()
    .expect("run id")
    .to_owned()
}

/// The ids of the rows of the ingestion list.
async fn listed_ids(page: &Page) -> Vec<String> {
    page.eval("[...document.querySelectorAll('table#ingestions tr[data-ingestion-id]')].map(r => r.dataset.ingestionId)")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_tenant_signs_in_manages_ingestions_and_watches_a_run_live(pool: PgPool) {
    let Some(browser) =
        Browser::connect("a_tenant_signs_in_manages_ingestions_and_watches_a_run_live").await
    else {
        return;
    };
    let w = world(pool, "ui-flow").await;
    let orders = w
        .ingestion("json", "raw.orders", json!({ "name": "orders" }))
        .await;
    let (_, token_b) = w.api.tenant("marketing").await;
    let base = format!("http://{}", w.api.addr);
    let page = browser.page(&base).await;

    // Without a session every page leads to the sign-in page; a refused token says so.
    page.goto("/ui/ingestions").await;
    page.wait(
        "the redirect to the sign-in page",
        "location.pathname === '/ui/login'",
    )
    .await;
    page.fill("#token", "not-a-token").await;
    let status = page
        .expect_load("a refused sign-in", page.click("#sign-in"))
        .await;
    assert_eq!(status, 401, "{}", page.snapshot().await);
    let error = page.text("#login-error[role=alert]").await;
    assert!(
        error.is_some_and(|e| !e.is_empty()),
        "{}",
        page.snapshot().await
    );

    // Signed in: who I am, the live stream open, and a cookie scripts cannot read.
    sign_in(&page, &w.token).await;
    let whoami = page.text("#whoami").await.unwrap_or_default();
    assert!(whoami.contains("data-eng"), "whoami: {whoami:?}");
    wait_live_state(&page, "live").await;
    let cookies = page.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "autoloader_session")
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"))
        .clone();
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert_eq!(session["path"], "/ui", "{session}");
    let script_cookies = page.eval("document.cookie").await;
    assert!(
        !script_cookies
            .as_str()
            .unwrap_or("")
            .contains("autoloader_session"),
        "{script_cookies}"
    );

    // The ingestion made through the API is listed, with its destination and schedule.
    let row = format!("table#ingestions tr[data-ingestion-id='{orders}']");
    page.wait(
        "the API's ingestion in the list",
        &format!("document.querySelector({})", js_str(&row)),
    )
    .await;
    let name = page.text(&format!("{row} [data-col=name] a")).await;
    assert_eq!(name.as_deref(), Some("orders"));
    let dest = page
        .text(&format!("{row} [data-col=destination]"))
        .await
        .unwrap_or_default();
    assert!(dest.contains("raw.orders"), "destination: {dest:?}");
    let schedule = page
        .text(&format!("{row} [data-col=schedule]"))
        .await
        .unwrap_or_default();
    assert!(schedule.contains("UTC"), "schedule: {schedule:?}");

    // A new ingestion through the form: a refused field shows the API's message by that field
    // and keeps what was typed; the preview follows the schedule as it is typed.
    page.expect_load("the new-ingestion form", page.click("a#new-ingestion"))
        .await;
    assert_eq!(page.eval("location.pathname").await, "/ui/ingestions/new");
    let source = format!("file://{}/", w.source.display());
    for (field, value) in [
        ("name", "clicks"),
        ("source_type", "local"),
        ("source_path", source.as_str()),
        ("format_type", "json"),
        ("destination_table", "raw.clicks"),
        ("schedule_frequency", "daily"),
        ("schedule_time", "09:00"),
        ("schedule_timezone", "Mars/Olympus"),
    ] {
        page.fill(&format!("form#ingestion-form #{field}"), value)
            .await;
    }
    page.click("#schedule_enabled").await;
    assert_eq!(
        page.eval("document.querySelector('#schedule_enabled').checked")
            .await,
        true
    );
    let status = page
        .expect_load("saving a refused ingestion", page.click("button#save"))
        .await;
    assert_eq!(status, 422, "{}", page.snapshot().await);
    let message = page
        .wait(
            "the timezone's message",
            "document.querySelector('[data-error-for=schedule_timezone]')?.textContent.trim()",
        )
        .await;
    assert!(
        message
            .as_str()
            .unwrap_or("")
            .contains("unknown timezone 'Mars/Olympus'"),
        "message: {message}"
    );
    assert_eq!(
        page.eval("document.querySelector('#schedule_timezone').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    assert_eq!(
        page.value("#name").await.as_deref(),
        Some("clicks"),
        "the typed name is kept"
    );
    assert_eq!(
        page.value("#source_path").await.as_deref(),
        Some(source.as_str())
    );
    assert_eq!(
        page.value("#destination_table").await.as_deref(),
        Some("raw.clicks")
    );
    assert_eq!(
        page.value("#schedule_timezone").await.as_deref(),
        Some("Mars/Olympus")
    );
    assert_eq!(
        page.eval("document.querySelector('#schedule_enabled').checked")
            .await,
        true
    );
    page.eval("window.__autoloaderSamePage = true").await;
    page.fill("#schedule_timezone", "Europe/London").await;
    page.wait(
        "the schedule preview to list next runs while typing",
        "document.querySelectorAll('#schedule-preview li').length > 0",
    )
    .await;
    assert_eq!(
        page.eval("window.__autoloaderSamePage === true").await,
        true,
        "the preview reloaded the page"
    );
    page.expect_load("saving the ingestion", page.click("button#save"))
        .await;
    let path = page
        .wait(
            "the new ingestion's page",
            "/^\\/ui\\/ingestions\\/[0-9a-f-]{36}$/.test(location.pathname) && location.pathname",
        )
        .await;
    let clicks: Uuid = path.as_str().expect("path")["/ui/ingestions/".len()..]
        .parse()
        .expect("uuid");
    let definition = page.text("#definition").await.unwrap_or_default();
    assert!(
        definition.contains("raw.clicks"),
        "definition: {definition}"
    );
    assert!(
        definition.contains("Europe/London"),
        "definition: {definition}"
    );

    // Run it now with no worker about: the run waits QUEUED, and cancelling it ends it.
    confirm(&page, "button#run-now", None).await;
    let queued = wait_run_with_status(&page, "QUEUED").await;
    confirm(
        &page,
        &format!("button[data-action=cancel][data-run-id='{queued}']"),
        None,
    )
    .await;
    page.wait(
        "the cancelled run",
        &format!("{} === 'CANCELLED'", run_status_js(&queued)),
    )
    .await;
    let (_, _, run) = w
        .api
        .call("GET", &format!("/api/v1/runs/{queued}"), &w.token, None)
        .await;
    assert_eq!(run["status"], "CANCELLED", "{run}");

    // Disabled with a reason: the page shows the reason.
    confirm(
        &page,
        "button#disable",
        Some("source moved to the new bucket"),
    )
    .await;
    page.wait(
        "the paused reason",
        "document.querySelector('#paused-reason')?.textContent.includes('source moved to the new bucket')",
    )
    .await;
    let (_, _, ing) = w
        .api
        .call(
            "GET",
            &format!("/api/v1/ingestions/{clicks}"),
            &w.token,
            None,
        )
        .await;
    assert_eq!(ing["schedule_enabled"], false, "{ing}");

    // The API's ingestion: run now, then run now again while the first is QUEUED (the 409).
    page.goto(&format!("/ui/ingestions/{orders}")).await;
    confirm(&page, "button#run-now", None).await;
    let run = wait_run_with_status(&page, "QUEUED").await;
    confirm(&page, "button#run-now", None).await;
    let refusal = page
        .wait(
            "the 409 message",
            "(() => { const m = document.querySelector('#action-message.error[role=alert]');
               return m && m.textContent.includes('already') ? m.textContent.trim() : null; })()",
        )
        .await;
    assert!(
        refusal.as_str().unwrap_or("").contains("QUEUED"),
        "{refusal}"
    );

    // Watch the run's status cell from now on, without reloading: QUEUED, RUNNING (the worker's
    // commit waits 3 s), SUCCESS.
    page.eval(&format!(
        "(() => {{ window.__autoloaderSamePage = true; window.__statuses = [];
           const read = () => {read};
           const note = () => {{ const s = read(); if (s && window.__statuses[window.__statuses.length - 1] !== s) window.__statuses.push(s); }};
           note();
           new MutationObserver(note).observe(document.body, {{ subtree: true, childList: true, characterData: true }}); }})()",
        read = run_status_js(&run)
    ))
    .await;
    let worker = w.worker(
        "ui-worker",
        &[("AUTOLOADER_FAILPOINT", "pause-before-commit")],
    );
    page.wait_for(
        "the run to succeed in the page",
        &format!("{} === 'SUCCESS'", run_status_js(&run)),
        RUN_WAIT,
    )
    .await;
    let seen = page.eval("window.__statuses").await;
    assert_eq!(
        seen,
        json!(["QUEUED", "RUNNING", "SUCCESS"]),
        "the statuses the page showed"
    );
    assert_eq!(
        page.eval("window.__autoloaderSamePage === true").await,
        true,
        "the page reloaded"
    );
    let files = page
        .text(&format!(
            "table#runs tr[data-run-id='{run}'] [data-col=files]"
        ))
        .await
        .unwrap_or_default();
    assert!(files.contains('3'), "files loaded: {files:?}");
    drop(worker);

    // Tenant B, in its own browser context, sees none of it.
    let other = browser.page(&base).await;
    sign_in(&other, &token_b).await;
    other
        .wait("the empty list", "document.querySelector('#no-ingestions')")
        .await;
    assert_eq!(listed_ids(&other).await, Vec::<String>::new());
    let status = other.goto(&format!("/ui/ingestions/{orders}")).await;
    assert_eq!(status, 404, "{}", other.snapshot().await);
    let body = other.eval("document.body.textContent").await;
    assert!(
        !body.as_str().unwrap_or("").contains("raw.orders"),
        "{body}"
    );
    assert!(
        other.problems().is_empty(),
        "script errors: {:?}",
        other.problems()
    );

    // A POST without the session's CSRF token is refused, and the session still works after it.
    let cookie = format!(
        "autoloader_session={}",
        session["value"].as_str().expect("cookie value")
    );
    let res = no_redirects()
        .post(format!("{base}/ui/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .expect("logout without csrf");
    assert_eq!(res.status(), 403);
    let res = no_redirects()
        .get(format!("{base}/ui/ingestions"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200);

    // Signing out returns to the sign-in page, and the old cookie opens nothing any more.
    page.goto("/ui/ingestions").await;
    page.expect_load("signing out", page.click("button#sign-out"))
        .await;
    page.wait(
        "the sign-in page after sign-out",
        "location.pathname === '/ui/login'",
    )
    .await;
    page.goto("/ui/ingestions").await;
    assert_eq!(page.eval("location.pathname").await, "/ui/login");
    let res = no_redirects()
        .get(format!("{base}/ui/ingestions"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("list with the old cookie");
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers().get("location").and_then(|l| l.to_str().ok()),
        Some("/ui/login")
    );
    assert!(
        page.problems().is_empty(),
        "script errors: {:?}",
        page.problems()
    );
}

/// Where screenshots go: `$AUTOLOADER_SCREENSHOTS_DIR` (`make screenshots` sets docs/screenshots),
/// else `.local/screenshots` in the checkout.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("AUTOLOADER_SCREENSHOTS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/screenshots"),
        PathBuf::from,
    )
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_page_passes_axe_at_desktop_and_phone_width(pool: PgPool) {
    let Some(browser) = Browser::connect("every_page_passes_axe_at_desktop_and_phone_width").await
    else {
        return;
    };
    let w = world(pool, "ui-axe").await;
    let orders = w
        .ingestion(
            "json",
            "raw.orders",
            json!({ "name": "orders", "schedule_frequency": "daily", "schedule_time": "09:00",
                    "schedule_timezone": "Europe/London", "schedule_cron": null }),
        )
        .await;
    let paused = w
        .ingestion("json", "raw.clicks", json!({ "name": "clicks" }))
        .await;
    let (status, _, body) = w
        .api
        .call(
            "POST",
            &format!("/api/v1/ingestions/{paused}/schedule/disable"),
            &w.token,
            Some(json!({ "reason": "waiting for the new bucket" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let _worker = w.worker("ui-axe-worker", &[]);
    let run = w.run_by_hand(orders).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");

    let base = format!("http://{}", w.api.addr);
    let page = browser.page(&base).await;
    let pages = [
        ("login", "/ui/login".to_owned()),
        ("ingestions", "/ui/ingestions".to_owned()),
        ("ingestion", format!("/ui/ingestions/{orders}")),
        ("new-ingestion", "/ui/ingestions/new".to_owned()),
        ("fleet", "/ui/fleet".to_owned()),
    ];
    let shots = screenshot_dir();
    let mut failures = Vec::new();
    for (name, path) in &pages {
        if *name == "ingestions" {
            sign_in(&page, &w.token).await;
        }
        for width in [1280, 390] {
            page.set_width(width).await;
            let status = page.goto(path).await;
            assert_eq!(
                status,
                200,
                "{name} at {width}px: {}",
                page.snapshot().await
            );
            if *name != "login" {
                wait_live_state(&page, "live").await;
            }
            for v in page.axe().await {
                failures.push(format!(
                    "{name} at {width}px: {} ({}): {}\n    {}",
                    v.id,
                    v.impact,
                    v.help,
                    v.targets.join("\n    ")
                ));
            }
            if width == 390 && page.overflows_horizontally().await {
                failures.push(format!("{name} at 390px: the page scrolls sideways"));
            }
            if width == 1280 || *name == "ingestions" {
                page.screenshot(&shots.join(format!("{name}-{width}.png")))
                    .await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "accessibility and layout failures:\n{}",
        failures.join("\n")
    );
    assert!(
        page.problems().is_empty(),
        "script errors: {:?}",
        page.problems()
    );
}

/// The shipped API binary on `port`, killed when dropped (its log printed when the test fails).
struct ApiProcess {
    child: Child,
    log: PathBuf,
}

impl ApiProcess {
    fn start(database_url: &str, port: u16) -> ApiProcess {
        let log = std::env::temp_dir().join(format!("autoloader-ui-api-{}.log", Uuid::now_v7()));
        let child = Command::new(api_bin())
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("AUTOLOADER_API_ADDR", format!("127.0.0.1:{port}"))
            .env("AUTOLOADER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("AUTOLOADER_SECRET_KEY", TEST_SECRET_KEY)
            .env("AUTOLOADER_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("api log")))
            .spawn()
            .expect("start autoloader-api");
        ApiProcess { child, log }
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- log of autoloader-api ----\n{log}");
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn wait_up(base: &str) {
    let url = format!("{base}/healthz");
    wait_for("the API to answer", Duration::from_secs(30), || async {
        reqwest::get(&url)
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_state_says_reconnecting_while_the_api_is_away(pool: PgPool) {
    let Some(browser) =
        Browser::connect("the_live_state_says_reconnecting_while_the_api_is_away").await
    else {
        return;
    };
    let url = database_url(&pool);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut api = ApiProcess::start(&url, port);
    wait_up(&base).await;
    let res = reqwest::Client::new()
        .post(format!("{base}/api/v1/admin/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "name": "data-eng" }))
        .send()
        .await
        .expect("create tenant");
    assert_eq!(res.status(), 201);
    let token = res.json::<serde_json::Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let page = browser.page(&base).await;
    sign_in(&page, &token).await;
    wait_live_state(&page, "live").await;
    page.eval("window.__autoloaderSamePage = true").await;

    drop(api);
    wait_live_state(&page, "reconnecting").await;
    api = ApiProcess::start(&url, port);
    wait_up(&base).await;
    wait_live_state(&page, "live").await;
    assert_eq!(
        page.eval("window.__autoloaderSamePage === true").await,
        true,
        "the page reloaded"
    );
    drop(api);
}
