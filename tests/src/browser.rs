//! Debian's headless Chromium, driven through the DevTools protocol ([`crate::cdp`]) for the
//! dashboard's browser tests.
//!
//! One Chromium per test binary, started on first use and shared: each test connects its own
//! websocket (tests run on their own runtimes) and opens pages in its own browser context, so
//! cookies never leak between tests or tenants. Chromium runs under a small shell watchdog that
//! reads the test process's pipe: when the test binary exits, however it exits, the pipe closes
//! and the watchdog ends Chromium and removes its profile directory.
//!
//! No Chromium (`/usr/bin/chromium`, or `AUTOLOADER_CHROMIUM`) or no axe-core
//! (`tests/browser/node_modules`, from `scripts/chromium.sh`): [`Browser::connect`] returns `None`
//! after a loud `SKIPPED:` line on the test's stderr (which `scripts/test-summary.sh` counts), or
//! panics when `CI=true`: on CI a missing browser is a failure, never a pass.
//!
//! Every wait is bounded and fails with what it waited for, the page's address and the start of
//! its HTML.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::cdp::{wait_event, Connection, Event};

/// How long a page load or a condition in a page may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The Chromium process shared by a test binary's tests.
struct Shared {
    ws_url: String,
    // Held for the watchdog: closing it (at exit) ends Chromium.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn chromium_path() -> PathBuf {
    std::env::var_os("AUTOLOADER_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// axe-core's browser script, as `scripts/chromium.sh` installs it.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js")
}

/// Says loudly, on the real stderr (past the test harness's capture), that `test` is skipped and
/// why; on CI, fails instead.
fn skip(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}: on CI (CI=true) the browser tests must run; see scripts/chromium.sh");
    }
    let rule = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{rule}\nSKIPPED: {why} (browser test {test}). Run scripts/chromium.sh (as root it installs \
         Chromium).\n{rule}"
    );
}

fn launch() -> Result<Shared, String> {
    let chromium = chromium_path();
    let profile =
        std::env::temp_dir().join(format!("autoloader-chromium-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&profile).map_err(|e| format!("create {}: {e}", profile.display()))?;
    // The watchdog: Chromium in the background, then a read that returns when the test process's
    // end closes the pipe; then Chromium is ended and its profile removed.
    let script = r#"dir="$1"; shift; "$@" >"$dir.log" 2>&1 & pid=$!; read -r _; kill -TERM "$pid" 2>/dev/null; wait "$pid"; rm -rf "$dir" "$dir.log""#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("sh")
        .arg(&profile)
        .arg(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            "--lang=en-GB",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start {}: {e}", chromium.display()))?;
    let stdin = child.stdin.take().expect("piped stdin");
    // Chromium writes its port, then the browser target's path, once it listens.
    let port_file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return Ok(Shared {
                    ws_url: format!("ws://127.0.0.1:{port}{path}"),
                    _stdin: Mutex::new(stdin),
                    _child: Mutex::new(child),
                });
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(profile.with_extension("log")).unwrap_or_default();
            return Err(format!(
                "Chromium exited ({status}) before it listened:\n{log}"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "Chromium wrote no {} within 30 s",
                port_file.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test's connection to the shared Chromium.
pub struct Browser {
    conn: Arc<Connection>,
}

impl Browser {
    /// Connects to the shared Chromium, starting it on first use. `None` (after a loud skip line)
    /// when there is no Chromium or no axe-core here; panics on CI instead.
    pub async fn connect(test: &str) -> Option<Browser> {
        let chromium = chromium_path();
        if !chromium.exists() {
            skip(test, &format!("no Chromium at {}", chromium.display()));
            return None;
        }
        if !axe_path().exists() {
            skip(test, &format!("no axe-core at {}", axe_path().display()));
            return None;
        }
        static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(launch).as_ref().expect("start Chromium");
        let conn = Connection::connect(&shared.ws_url)
            .await
            .expect("connect to Chromium");
        Some(Browser {
            conn: Arc::new(conn),
        })
    }

    /// A new page in a new browser context (its own cookies), serving `base` (`http://host:port`).
    pub async fn page(&self, base: &str) -> Page {
        let conn = Arc::clone(&self.conn);
        let context = conn
            .call(
                None,
                "Target.createBrowserContext",
                json!({ "disposeOnDetach": true }),
            )
            .await
            .expect("create a browser context")["browserContextId"]
            .as_str()
            .expect("browserContextId")
            .to_owned();
        let target = conn
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": context }),
            )
            .await
            .expect("create a page")["targetId"]
            .as_str()
            .expect("targetId")
            .to_owned();
        let session = conn
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await
            .expect("attach to the page")["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        let page = Page {
            conn,
            session,
            context,
            base: base.trim_end_matches('/').to_owned(),
            problems: Arc::default(),
            in_flight: Arc::default(),
            watcher: None,
        };
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            page.cmd(domain, json!({})).await;
        }
        let mut page = page;
        page.watch_problems();
        page.set_width(1280).await;
        page
    }
}

/// One page (tab) in its own browser context.
pub struct Page {
    conn: Arc<Connection>,
    session: String,
    context: String,
    pub base: String,
    /// What went wrong in the page's scripts: uncaught exceptions, console errors, CSP refusals.
    problems: Arc<Mutex<Vec<String>>>,
    /// Requests sent and not yet answered (id → type and URL), for failure messages.
    in_flight: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

/// An axe-core violation of impact serious or critical.
#[derive(Debug)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    pub targets: Vec<String>,
}

impl Page {
    /// Sends a command to this page; panics with the browser's answer when it fails.
    pub async fn cmd(&self, method: &str, params: Value) -> Value {
        self.conn
            .call(Some(&self.session), method, params)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn watch_problems(&mut self) {
        let mut rx = self.conn.subscribe();
        let session = self.session.clone();
        let problems = Arc::clone(&self.problems);
        let in_flight = Arc::clone(&self.in_flight);
        self.watcher = Some(tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                if ev.session.as_deref() != Some(&session) {
                    continue;
                }
                let id = ev.params["requestId"].as_str().unwrap_or("").to_owned();
                match ev.method.as_str() {
                    "Network.requestWillBeSent" => {
                        let what = format!(
                            "{} {} {}",
                            ev.params["type"].as_str().unwrap_or("?"),
                            ev.params["request"]["method"].as_str().unwrap_or("?"),
                            ev.params["request"]["url"].as_str().unwrap_or("?")
                        );
                        in_flight.lock().expect("in-flight lock").insert(id, what);
                    }
                    "Network.loadingFinished" | "Network.loadingFailed" => {
                        in_flight.lock().expect("in-flight lock").remove(&id);
                    }
                    _ => {}
                }
                let problem = match ev.method.as_str() {
                    "Runtime.exceptionThrown" => Some(format!(
                        "uncaught: {}",
                        ev.params["exceptionDetails"]["exception"]["description"]
                            .as_str()
                            .or(ev.params["exceptionDetails"]["text"].as_str())
                            .unwrap_or("?")
                    )),
                    // Network errors (a 401 or 404 page, a closed event stream) are what some
                    // tests ask for; script, security (CSP) and other errors are not.
                    "Log.entryAdded"
                        if ev.params["entry"]["level"] == "error"
                            && ev.params["entry"]["source"] != "network" =>
                    {
                        Some(format!(
                            "console ({}): {}",
                            ev.params["entry"]["source"].as_str().unwrap_or("?"),
                            ev.params["entry"]["text"].as_str().unwrap_or("?")
                        ))
                    }
                    "Runtime.consoleAPICalled" if ev.params["type"] == "error" => {
                        Some(format!("console.error: {}", ev.params["args"][0]["value"]))
                    }
                    _ => None,
                };
                if let Some(p) = problem {
                    problems.lock().expect("problems lock").push(p);
                }
            }
        }));
    }

    /// The script errors seen so far (uncaught exceptions, console errors, CSP refusals).
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().expect("problems lock").clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs `action`, then waits for a page of this tab to finish loading; returns the HTTP status
    /// of the last document response (after redirects).
    pub async fn expect_load<F: std::future::Future<Output = ()>>(
        &self,
        what: &str,
        action: F,
    ) -> u16 {
        let mut rx = self.conn.subscribe();
        action.await;
        let session = self.session.clone();
        let mut status = 0;
        let loaded = wait_event(&mut rx, WAIT, |ev: &Event| {
            if ev.session.as_deref() != Some(&session) {
                return None;
            }
            match ev.method.as_str() {
                "Network.responseReceived" if ev.params["type"] == "Document" => {
                    status = ev.params["response"]["status"].as_u64().unwrap_or(0) as u16;
                    None
                }
                "Page.loadEventFired" => Some(()),
                _ => None,
            }
        })
        .await;
        if loaded.is_none() {
            panic!(
                "timed out after {WAIT:?} waiting for a page to load after {what}\n{}",
                self.snapshot().await
            );
        }
        status
    }

    /// Runs `action`; when it starts a navigation within a second (a form posted), waits for the
    /// new page to load. For actions a page may answer either with a new page or in place.
    pub async fn settle<F: std::future::Future<Output = ()>>(&self, what: &str, action: F) {
        let mut rx = self.conn.subscribe();
        action.await;
        let session = self.session.clone();
        let mine = |ev: &Event| ev.session.as_deref() == Some(session.as_str());
        let started = wait_event(&mut rx, Duration::from_secs(1), |ev: &Event| {
            (mine(ev)
                && matches!(
                    ev.method.as_str(),
                    "Page.frameStartedNavigating"
                        | "Page.frameRequestedNavigation"
                        | "Page.frameStartedLoading"
                ))
            .then_some(())
        })
        .await;
        if started.is_none() {
            return;
        }
        let loaded = wait_event(&mut rx, WAIT, |ev: &Event| {
            (mine(ev) && ev.method == "Page.loadEventFired").then_some(())
        })
        .await;
        if loaded.is_none() {
            panic!(
                "timed out after {WAIT:?} waiting for the page to load after {what}\n{}",
                self.snapshot().await
            );
        }
    }

    /// Opens `path` (under the base URL); returns the final document's HTTP status.
    ///
    /// Chromium fails requests in flight when the machine's network interfaces change
    /// (`ERR_NETWORK_CHANGED`, e.g. while network namespaces come and go): a GET is opened again,
    /// at most twice.
    pub async fn goto(&self, path: &str) -> u16 {
        let url = self.url(path);
        let mut tries = 0;
        loop {
            let mut error = None;
            let status = self
                .expect_load(&format!("opening {url}"), async {
                    let res = self.cmd("Page.navigate", json!({ "url": url })).await;
                    error = res["errorText"].as_str().map(str::to_owned);
                })
                .await;
            match error {
                None => return status,
                Some(e) if e.contains("ERR_NETWORK_CHANGED") && tries < 2 => tries += 1,
                Some(e) => panic!("open {url}: {e}"),
            }
        }
    }

    /// Evaluates `js` in the page (awaiting a promise), returning its value as JSON. A thrown
    /// error panics with its message.
    pub async fn eval(&self, js: &str) -> Value {
        let res = self
            .cmd(
                "Runtime.evaluate",
                json!({ "expression": js, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        if let Some(ex) = res.get("exceptionDetails") {
            panic!(
                "script failed in the page: {}\nscript: {}\n{}",
                ex["exception"]["description"]
                    .as_str()
                    .unwrap_or(&ex.to_string()),
                truncate(js, 300),
                self.snapshot().await
            );
        }
        res["result"]["value"].clone()
    }

    /// The page's address and the start of its HTML, for failure messages.
    pub async fn snapshot(&self) -> String {
        let res = self
            .conn
            .call_within(
                Some(&self.session),
                "Runtime.evaluate",
                json!({
                    "expression": "location.href + '\\n' + (document.body ? document.body.outerHTML : document.documentElement.outerHTML)",
                    "returnByValue": true
                }),
                Duration::from_secs(5),
            )
            .await;
        let page = match res {
            Ok(v) => format!(
                "page now: {}",
                truncate(v["result"]["value"].as_str().unwrap_or(""), 4000)
            ),
            Err(e) => format!("page now: unreadable ({e})"),
        };
        let pending: Vec<String> = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .values()
            .cloned()
            .collect();
        let streams = pending
            .iter()
            .filter(|r| r.starts_with("EventSource"))
            .count();
        let hint = if streams >= 6 {
            "\n(six or more event streams are open, pages left behind included: Chromium's six \
             HTTP/1.1 connections per host are used up, so a new request waits for ever)"
        } else {
            ""
        };
        format!("{page}\nrequests in flight: {pending:#?}{hint}")
    }

    /// Waits until `js` (an expression) is truthy; returns its value. Panics after [`WAIT`] with
    /// `what` and the page's HTML.
    pub async fn wait(&self, what: &str, js: &str) -> Value {
        self.wait_for(what, js, WAIT).await
    }

    /// [`Page::wait`] with its own bound.
    pub async fn wait_for(&self, what: &str, js: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let probe =
            format!("(() => {{ try {{ return ({js}); }} catch (e) {{ return null; }} }})()");
        let mut last_error = None;
        loop {
            // Between two documents (a form's POST and its redirect) the page may have no context
            // to evaluate in: that is "not yet", not a failure.
            // An evaluation sent while a navigation commits may never be answered: ask again.
            let v = self
                .conn
                .call_within(
                    Some(&self.session),
                    "Runtime.evaluate",
                    json!({ "expression": probe, "returnByValue": true }),
                    Duration::from_secs(2),
                )
                .await
                .map(|res| res["result"]["value"].clone())
                .unwrap_or_else(|e| {
                    last_error = Some(e);
                    Value::Null
                });
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let error = last_error
                    .map(|e| format!(" (last evaluation: {e})"))
                    .unwrap_or_default();
                panic!(
                    "timed out after {timeout:?} waiting for {what}{error}\n{}",
                    self.snapshot().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `selector`, trimmed; `None` when there is none.
    pub async fn text(&self, selector: &str) -> Option<String> {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.textContent.trim().replace(/\\s+/g, ' ') : null; }})()",
            js_str(selector)
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Whether an element matches `selector`.
    pub async fn exists(&self, selector: &str) -> bool {
        self.eval(&format!(
            "document.querySelector({}) !== null",
            js_str(selector)
        ))
        .await
        .as_bool()
        .unwrap_or(false)
    }

    /// Waits for `selector`, then clicks it as a user would (scrolled into view, a real click).
    pub async fn click(&self, selector: &str) {
        self.wait(
            &format!("{selector} to be there"),
            &format!("document.querySelector({})", js_str(selector)),
        )
        .await;
        let point = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); e.scrollIntoView({{block: 'center'}});
                   const r = e.getBoundingClientRect();
                   return r.width > 0 && r.height > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()",
                js_str(selector)
            ))
            .await;
        let (Some(x), Some(y)) = (point[0].as_f64(), point[1].as_f64()) else {
            panic!(
                "{selector} is not visible, so it cannot be clicked\n{}",
                self.snapshot().await
            );
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.cmd(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Focuses `selector` and types `text` over what it holds (select-all, then real text input);
    /// a `<select>` gets the option of that value chosen, and a time or date input that value,
    /// with their input and change events (their segmented editors take no text input).
    pub async fn fill(&self, selector: &str, text: &str) {
        self.wait(
            &format!("{selector} to be there"),
            &format!("document.querySelector({})", js_str(selector)),
        )
        .await;
        let is_select = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); e.focus();
                   if (e.tagName === 'SELECT' || ['time', 'date', 'datetime-local'].includes(e.type)) {{
                     if (e.tagName === 'SELECT' && ![...e.options].some(o => o.value === {val})) throw new Error('no option ' + {val} + ' in ' + {sel});
                     e.value = {val}; e.dispatchEvent(new Event('input', {{bubbles: true}}));
                     e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }}
                   e.select(); return false; }})()",
                sel = js_str(selector),
                val = js_str(text)
            ))
            .await;
        if is_select == Value::Bool(true) {
            return;
        }
        if text.is_empty() {
            self.press("Delete").await;
        } else {
            self.cmd("Input.insertText", json!({ "text": text })).await;
        }
    }

    /// The current value of the form control `selector`.
    pub async fn value(&self, selector: &str) -> Option<String> {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.value : null; }})()",
            js_str(selector)
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Presses and releases a key (`Enter`, `Tab`, `Escape`, `Delete`) as a keyboard would.
    pub async fn press(&self, key: &str) {
        let (code, vk, text) = match key {
            "Enter" => ("Enter", 13, "\r"),
            "Tab" => ("Tab", 9, ""),
            "Escape" => ("Escape", 27, ""),
            "Delete" => ("Delete", 46, ""),
            "Space" => ("Space", 32, " "),
            other => panic!("press: no key {other}"),
        };
        let key_name = if key == "Space" { " " } else { key };
        let mut down = json!({ "type": "keyDown", "key": key_name, "code": code, "windowsVirtualKeyCode": vk });
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.cmd("Input.dispatchKeyEvent", down).await;
        self.cmd(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key_name, "code": code, "windowsVirtualKeyCode": vk }),
        )
        .await;
    }

    /// The id (or tag) of the focused element.
    pub async fn focused(&self) -> String {
        self.eval("document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ''")
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Lays the page out `width` CSS pixels wide (a phone below 600).
    pub async fn set_width(&self, width: u32) {
        let mobile = width < 600;
        self.cmd(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": if mobile { 844 } else { 900 },
                "deviceScaleFactor": 1,
                "mobile": mobile,
            }),
        )
        .await;
    }

    /// Whether the page is wider than its viewport (a horizontal scroll bar at this width).
    pub async fn overflows_horizontally(&self) -> bool {
        self.eval("document.documentElement.scrollWidth > window.innerWidth + 1")
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// A PNG of the whole page (at most 5000 px tall) written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let metrics = self.cmd("Page.getLayoutMetrics", json!({})).await;
        let width = metrics["cssContentSize"]["width"]
            .as_f64()
            .unwrap_or(1280.0);
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(900.0)
            .min(5000.0);
        let shot = self
            .cmd(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Runs axe-core over the page; returns its serious and critical violations.
    pub async fn axe(&self) -> Vec<Violation> {
        static AXE: OnceLock<String> = OnceLock::new();
        let source = AXE.get_or_init(|| {
            std::fs::read_to_string(axe_path())
                .unwrap_or_else(|e| panic!("read {}: {e}", axe_path().display()))
        });
        if self.eval("typeof window.axe === 'undefined'").await == Value::Bool(true) {
            self.eval(source).await;
        }
        let found = self
            .eval(
                "axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                                targets: v.nodes.map(n => n.target.join(' ')) })))",
            )
            .await;
        found
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|v| Violation {
                id: v["id"].as_str().unwrap_or("").to_owned(),
                impact: v["impact"].as_str().unwrap_or("").to_owned(),
                help: v["help"].as_str().unwrap_or("").to_owned(),
                targets: v["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The cookies of this page's browser context for its base URL, as the DevTools protocol
    /// gives them (`name`, `value`, `httpOnly`, `sameSite`, `path`, ...).
    pub async fn cookies(&self) -> Vec<Value> {
        let res = self
            .cmd("Network.getCookies", json!({ "urls": [self.url("/ui/")] }))
            .await;
        res["cookies"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(w) = &self.watcher {
            w.abort();
        }
        self.conn.send_and_forget(
            "Target.disposeBrowserContext",
            json!({ "browserContextId": self.context }),
        );
    }
}

/// `s` as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
