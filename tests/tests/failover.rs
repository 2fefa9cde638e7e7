//! A PostgreSQL switchover, survived by the shipped API and worker without a restart.
//!
//! Each test builds what an HA pair looks like: a private primary cluster and a streaming standby
//! made from it with `pg_basebackup -R`. The processes reach the database through one stable
//! address, a TCP forwarder standing for the managed service's endpoint (a VIP, a DNS name,
//! pgbouncer). Then the switchover: the endpoint goes dark, the primary stops (`-m fast`, as a
//! planned switchover does: every commit reaches the standby first), and once the test has seen
//! what it came for happen in the dark, the standby is promoted and the endpoint leads to it.
//! Afterwards the same processes serve requests, finish the runs the outage cut, run new ones
//! and listen for wake-ups again, with nothing lost or done twice.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoloader_tests::{api_bin, temp_dir, wait_for, worker_bin, WorkerProcess, ADMIN_TOKEN};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tokio::net::{TcpListener, TcpStream};

/// The database's name and user in both clusters.
const DB: &str = "autoloader";

/// The newest PostgreSQL server binaries installed (`scripts/pg.sh` installs them).
fn bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL server binaries under /usr/lib/postgresql (scripts/pg.sh installs them)",
        )
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

/// The OS user PostgreSQL runs as: ourselves, or (as root, which PostgreSQL refuses) the user
/// `scripts/pg.sh` uses: `postgres`, else `autoloader`.
fn os_user() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    for user in ["postgres", "autoloader"] {
        if Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(user.to_owned());
        }
    }
    panic!("running as root with neither a `postgres` nor an `autoloader` user: run scripts/pg.sh start once");
}

/// A PostgreSQL program, run as the cluster's user.
fn pg_command(user: &Option<String>, program: &str) -> Command {
    let bin = bindir().join(program);
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.current_dir("/");
    cmd
}

/// Runs a PostgreSQL program as the cluster's user; panics with its output when it fails.
fn pg(user: &Option<String>, program: &str, args: &[&str]) {
    let out = pg_command(user, program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One PostgreSQL cluster of the pair.
struct Cluster {
    data: PathBuf,
    port: u16,
    user: Option<String>,
    running: bool,
}

impl Cluster {
    fn data(&self) -> &str {
        self.data.to_str().expect("utf-8 path")
    }

    fn url(&self) -> String {
        format!("postgres://{DB}@127.0.0.1:{}/{DB}", self.port)
    }

    /// Sets this cluster's own settings (appended: later lines win over a copied primary's).
    fn configure(&self) {
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = ''\n\
             max_connections = 100\nshared_buffers = 32MB\nfsync = off\nwal_keep_size = '256MB'\n",
            self.port
        );
        let path = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&path, text).expect("write postgresql.conf");
    }

    fn start(&mut self) {
        let log = self
            .data
            .parent()
            .expect("dir")
            .join(format!("{}.log", self.port));
        pg(
            &self.user,
            "pg_ctl",
            &[
                "-D",
                self.data(),
                "-l",
                log.to_str().expect("log"),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        self.running = true;
    }

    fn stop_fast(&mut self) {
        pg(
            &self.user,
            "pg_ctl",
            &["-D", self.data(), "-m", "fast", "-w", "stop"],
        );
        self.running = false;
    }
}

impl Cluster {
    fn stop_immediately(&mut self) {
        if self.running {
            let _ = pg_command(&self.user, "pg_ctl")
                .args(["-D", self.data(), "-m", "immediate", "-w", "stop"])
                .output();
            self.running = false;
        }
    }
}

/// A primary and a streaming standby made from it, in a fresh directory the cluster's user owns,
/// with the database `autoloader` on it.
async fn pair(dir: &Path) -> (Cluster, Cluster) {
    let user = os_user();
    if let Some(u) = &user {
        let ok = Command::new("chown")
            .arg(u)
            .arg(dir)
            .status()
            .expect("chown");
        assert!(ok.success(), "chown {u} {}", dir.display());
    }
    let mut primary = Cluster {
        data: dir.join("primary"),
        port: free_port(),
        user: user.clone(),
        running: false,
    };
    pg(
        &user,
        "initdb",
        &[
            "-D",
            primary.data(),
            "-U",
            DB,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
    );
    primary.configure();
    primary.start();
    let mut admin = PgConnection::connect(&format!(
        "postgres://{DB}@127.0.0.1:{}/postgres",
        primary.port
    ))
    .await
    .expect("connect to the primary");
    sqlx::query(&format!("create database {DB}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    drop(admin);
    let mut standby = Cluster {
        data: dir.join("standby"),
        port: free_port(),
        user: user.clone(),
        running: false,
    };
    let port = primary.port.to_string();
    pg(
        &user,
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            DB,
            "-D",
            standby.data(),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
    );
    standby.configure();
    standby.start();
    (primary, standby)
}

/// The HA pair behind its endpoint, in a directory removed at the end.
struct Switchover {
    dir: PathBuf,
    primary: Cluster,
    standby: Cluster,
    endpoint: Endpoint,
}

impl Switchover {
    async fn new() -> Switchover {
        let dir = temp_dir("failover");
        let (primary, standby) = pair(&dir).await;
        let endpoint = Endpoint::start(primary.port).await;
        Switchover {
            dir,
            primary,
            standby,
            endpoint,
        }
    }

    /// The outage begins: the endpoint goes dark and the primary stops, sending the standby
    /// every commit first.
    fn stop_primary(&mut self) {
        self.endpoint.point_at(0);
        self.primary.stop_fast();
    }

    /// The outage ends: the standby is promoted and the endpoint leads to it.
    fn promote_standby(&mut self) {
        pg(
            &self.standby.user,
            "pg_ctl",
            &["-D", self.standby.data(), "-w", "promote"],
        );
        self.endpoint.point_at(self.standby.port);
    }
}

impl Drop for Switchover {
    fn drop(&mut self) {
        self.primary.stop_immediately();
        self.standby.stop_immediately();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The stable address clients are given: forwards each connection to whichever cluster it
/// points at now (0: none; connections are then closed at once, as a moving VIP refuses them).
struct Endpoint {
    port: u16,
    target: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    async fn start(target: u16) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Arc::new(AtomicU16::new(target));
        let to = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let port = to.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if port == 0 {
                        return;
                    }
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Endpoint { port, target, task }
    }

    fn point_at(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("postgres://{DB}@127.0.0.1:{}/{DB}", self.port)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTP to the API process.
struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    /// (status, body); `None` when no answer came within 20 s or the connection failed.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(20));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        let text = res.text().await.ok()?;
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_call(method, path, token, body)
            .await
            .unwrap_or_else(|| panic!("{method} {path}: no answer"))
    }

    async fn status(&self, path: &str) -> Option<u16> {
        self.try_call("GET", path, "", None).await.map(|(s, _)| s)
    }

    async fn trigger(&self, token: &str, ingestion: &str) -> String {
        let (status, run) = self
            .call(
                "POST",
                &format!("/api/v1/ingestions/{ingestion}/run"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 202, "trigger: {run}");
        run["id"].as_str().expect("run id").to_owned()
    }

    async fn run(&self, token: &str, run: &str) -> Value {
        let (status, body) = self
            .call("GET", &format!("/api/v1/runs/{run}"), token, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn finished(&self, token: &str, run: &str) -> Value {
        wait_for("the run to finish", Duration::from_secs(60), || async {
            let r = self.run(token, run).await;
            matches!(r["status"].as_str(), Some("SUCCESS" | "FAILED")).then_some(r)
        })
        .await
    }
}

/// `n` JSON lines with ids `from..from + n`.
fn lines(from: i64, n: i64) -> Vec<u8> {
    (from..from + n)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"row {i}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Connections to the database of `url` named `application`, by whether they wait on `LISTEN`.
async fn listeners(url: &str, application: &str) -> i64 {
    let Ok(mut c) = PgConnection::connect(url).await else {
        return 0;
    };
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where application_name = $1 and query ilike 'listen%'",
    )
    .bind(application)
    .fetch_one(&mut c)
    .await
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_is_survived_without_a_restart_and_loses_nothing() {
    let mut ha = Switchover::new().await;
    let root = temp_dir("failover-files");
    let source = root.join("in");
    std::fs::create_dir_all(&source).expect("source dir");
    let warehouse = temp_dir("failover-warehouse");
    let roots = root.display().to_string();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let mut api = WorkerProcess::spawn(
        api_bin().to_str().expect("path"),
        &ha.endpoint.url(),
        "failover-api",
        &[
            ("AUTOLOADER_API_ADDR", api_addr.as_str()),
            ("AUTOLOADER_ADMIN_TOKEN", ADMIN_TOKEN),
            ("AUTOLOADER_FILE_ROOTS", roots.as_str()),
        ],
    );
    let http = Http {
        base: format!("http://{api_addr}"),
        client: reqwest::Client::new(),
    };
    wait_for("the API to be ready", Duration::from_secs(30), || async {
        (http.status("/readyz").await == Some(200)).then_some(())
    })
    .await;

    // A tenant and an ingestion of the source directory, run by hand only.
    let (status, tenant) = http
        .call(
            "POST",
            "/api/v1/admin/tenants",
            ADMIN_TOKEN,
            Some(json!({ "name": "ops" })),
        )
        .await;
    assert_eq!(status, 201, "{tenant}");
    let token = tenant["token"].as_str().expect("token").to_owned();
    let tenant_id = tenant["tenant_id"].as_str().expect("tenant id");
    let (status, body) = http
        .call(
            "PATCH",
            &format!("/api/v1/admin/tenants/{tenant_id}"),
            ADMIN_TOKEN,
            Some(json!({ "file_roots": [roots] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, ingestion) = http
        .call(
            "POST",
            "/api/v1/ingestions",
            &token,
            Some(json!({
                "name": "events through a switchover",
                "source_type": "local",
                "source_path": format!("file://{}/", source.display()),
                "format_type": "json",
                "destination_table": "ops.events",
                "schedule_frequency": "hourly",
                "schedule_timezone": "UTC",
                "schedule_enabled": false,
            })),
        )
        .await;
    assert_eq!(status, 201, "{ingestion}");
    let table = ingestion["iceberg_table"]
        .as_str()
        .expect("iceberg_table")
        .to_owned();
    let ingestion = ingestion["id"].as_str().expect("id").to_owned();

    // The worker: a lease longer than the switchover, a retry for the commit it cuts (the
    // setting docs/DEPLOYMENT.md asks of HA deployments), and a 3 s pause before each commit,
    // so a run is waiting to commit when the primary stops.
    let warehouse_url = format!("file://{}", warehouse.display());
    let mut worker = WorkerProcess::spawn(
        worker_bin().to_str().expect("path"),
        &ha.endpoint.url(),
        "failover-worker",
        &[
            ("AUTOLOADER_FILE_ROOTS", roots.as_str()),
            ("AUTOLOADER_WAREHOUSE", warehouse_url.as_str()),
            ("SCHEDULER_LEASE_TTL", "30"),
            ("SCHEDULER_HEARTBEAT_INTERVAL", "2"),
            ("SCHEDULER_RETRIES", "1"),
            ("SCHEDULER_RETRY_BACKOFF", "1"),
            ("AUTOLOADER_FAILPOINT", "pause-before-commit"),
        ],
    );

    // Before: a run loads the first file.
    std::fs::write(source.join("a.jsonl"), lines(1, 100)).expect("write");
    let first = http.trigger(&token, &ingestion).await;
    let run = http.finished(&token, &first).await;
    assert_eq!(run["status"], "SUCCESS", "{run}\n{}", worker.log());

    // The switchover, while the second run waits to commit.
    std::fs::write(source.join("b.jsonl"), lines(101, 100)).expect("write");
    let second = http.trigger(&token, &ingestion).await;
    wait_for(
        "the second run to wait before its commit",
        Duration::from_secs(30),
        || async { (worker.log().matches("pause-before-commit").count() >= 2).then_some(()) },
    )
    .await;
    let outage = Instant::now();
    ha.stop_primary();

    // Readiness says the database is away; liveness does not (no restart for a database blip);
    // requests are told to come back.
    let ready = http.status("/readyz").await;
    assert_eq!(ready, Some(503), "/readyz during the outage");
    assert_eq!(
        http.status("/healthz").await,
        Some(200),
        "/healthz during the outage"
    );
    let res = http
        .client
        .get(format!("{}/api/v1/ingestions/{ingestion}", http.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the API answers in the outage");
    assert_eq!(res.status(), 503, "a request during the outage");
    assert!(
        res.headers().contains_key("retry-after"),
        "{:?}",
        res.headers()
    );
    let problem: Value = res.json().await.expect("problem");
    assert_eq!(
        problem["type"], "/problems/database-unavailable",
        "{problem}"
    );

    // The outage lasts until the run has tried to commit and failed, and tried to requeue
    // itself for its retry.
    wait_for(
        "the cut commit to be retried",
        Duration::from_secs(30),
        || async {
            worker
                .log()
                .contains("cannot requeue the run for its retry yet")
                .then_some(())
        },
    )
    .await;
    ha.promote_standby();
    wait_for(
        "the API to be ready again",
        Duration::from_secs(30),
        || async { (http.status("/readyz").await == Some(200)).then_some(()) },
    )
    .await;
    let api_back = outage.elapsed();

    // The cut run is retried on the new primary by the same worker process, and loads its file.
    let run = http.finished(&token, &second).await;
    assert_eq!(run["status"], "SUCCESS", "{run}\n{}", worker.log());
    assert_eq!(run["attempt"], 2, "the cut attempt, then its retry: {run}");
    assert_eq!(run["worker_id"], "failover-worker", "{run}");
    let run_back = outage.elapsed();

    // After: the worker and the API listen on the new primary, and a new run is claimed there.
    wait_for(
        "the worker and the API to LISTEN on the new primary",
        Duration::from_secs(30),
        || async {
            (listeners(&ha.standby.url(), "autoloader-worker").await >= 3
                && listeners(&ha.standby.url(), "autoloader-api").await >= 1)
                .then_some(())
        },
    )
    .await;
    std::fs::write(source.join("c.jsonl"), lines(201, 100)).expect("write");
    let third = http.trigger(&token, &ingestion).await;
    let run = http.finished(&token, &third).await;
    assert_eq!(run["status"], "SUCCESS", "{run}\n{}", worker.log());
    eprintln!(
        "failover.rs: the API was ready {:.1}s after the primary stopped; the cut run finished {:.1}s after",
        api_back.as_secs_f64(),
        run_back.as_secs_f64()
    );

    // Nothing lost, nothing twice: the runs, the ledger, the table.
    let (_, runs) = http
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/runs"),
            &token,
            None,
        )
        .await;
    let mut statuses: Vec<(String, String)> = runs["items"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_owned(),
                r["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    statuses.sort();
    let mut want: Vec<(String, String)> = [&first, &second, &third]
        .iter()
        .map(|id| ((*id).clone(), "SUCCESS".to_owned()))
        .collect();
    want.sort();
    assert_eq!(statuses, want, "{runs}");
    let (_, files) = http
        .call(
            "GET",
            &format!("/api/v1/ingestions/{ingestion}/files"),
            &token,
            None,
        )
        .await;
    let ledger: Vec<(String, i64)> = files["items"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap_or("");
            (
                path.rsplit('/').next().unwrap_or("").to_owned(),
                f["rows_loaded"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        ledger,
        vec![
            ("a.jsonl".to_owned(), 100),
            ("b.jsonl".to_owned(), 100),
            ("c.jsonl".to_owned(), 100)
        ],
        "{files}"
    );
    let scanned = autoloader_tests::table::scan(&ha.standby.url(), &warehouse, &table)
        .await
        .expect("the table exists");
    assert_eq!(
        autoloader_tests::loader::ids(&scanned.rows),
        (1..=300).collect::<Vec<i64>>(),
        "every row exactly once"
    );
    assert_eq!(scanned.snapshots, 3, "one commit per run");

    // The same two processes from start to end.
    assert_eq!(worker.try_exit_code(), None, "the worker kept running");
    assert_eq!(api.try_exit_code(), None, "the API kept running");
    drop(worker);
    drop(api);
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&warehouse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finishes_during_the_outage_is_recorded_once_the_database_is_back() {
    let mut ha = Switchover::new().await;
    let pool = sqlx::PgPool::connect(&ha.primary.url())
        .await
        .expect("pool");
    autoloader::db::migrate(&pool).await.expect("migrate");
    let tenant = autoloader_tests::tenant(&pool, "ops").await;
    // A run that takes 3 s and touches the database only to be claimed and recorded.
    let ingestion = autoloader_tests::scheduled_ingestion(
        &pool,
        tenant,
        "three seconds",
        "0 0 1 1 *",
        json!({ "test_sleep_ms": 3000 }),
    )
    .await;
    pool.close().await;
    let worker = WorkerProcess::spawn(
        env!("CARGO_BIN_EXE_test-worker"),
        &ha.endpoint.url(),
        "outage-worker",
        &[
            ("SCHEDULER_LEASE_TTL", "30"),
            ("SCHEDULER_HEARTBEAT_INTERVAL", "2"),
        ],
    );
    wait_for("the worker to start", Duration::from_secs(30), || async {
        worker.log().contains("worker started").then_some(())
    })
    .await;
    let pool = sqlx::PgPool::connect(&ha.primary.url())
        .await
        .expect("pool");
    let run = autoloader_tests::manual_run(&pool, ingestion).await;
    let status = |url: String| async move {
        let mut c = PgConnection::connect(&url).await.expect("connect");
        sqlx::query_as::<_, (String, i32)>("select status, attempt from runs where id = $1")
            .bind(run)
            .fetch_one(&mut c)
            .await
            .expect("run")
    };
    wait_for("the run to start", Duration::from_secs(30), || async {
        (status(ha.primary.url()).await.0 == "RUNNING").then_some(())
    })
    .await;
    pool.close().await;

    // The run finishes while the database is away: its outcome waits in the worker.
    ha.stop_primary();
    wait_for(
        "the outcome to wait for the database",
        Duration::from_secs(30),
        || async {
            worker
                .log()
                .lines()
                .any(|l| {
                    l.contains("the database did not take the claim or outcomes")
                        && l.contains("\"outcomes\":1")
                })
                .then_some(())
        },
    )
    .await;
    ha.promote_standby();

    // Written once the database is back: the run is not executed again after its lease.
    let (status, attempt) = wait_for(
        "the outcome to be recorded",
        Duration::from_secs(60),
        || async {
            let s = status(ha.standby.url()).await;
            (s.0 != "RUNNING").then_some(s)
        },
    )
    .await;
    assert_eq!(
        (status.as_str(), attempt),
        ("SUCCESS", 1),
        "{}",
        worker.log()
    );
    assert_eq!(
        worker.log().matches("\"run claimed\"").count(),
        1,
        "executed once: {}",
        worker.log()
    );
}
