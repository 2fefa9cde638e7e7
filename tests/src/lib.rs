//! Test harness: the real API router on an ephemeral port, real worker processes, and fixtures,
//! each against a test's own database (`#[sqlx::test]` makes a fresh one per test).
#![forbid(unsafe_code)]

pub mod browser;
pub mod cdp;
pub mod loader;
pub mod netns;
pub mod s3;
pub mod table;

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The admin token test APIs are started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The S3 endpoints the tests' API and workers allow, as an operator would list its own server:
/// the test S3 server runs on loopback.
pub const TEST_S3_ALLOWLIST: &str = "127.0.0.0/8,localhost";

/// The key the tests' API seals secrets with and their workers open them with (32 bytes, base64).
pub const TEST_SECRET_KEY: &str = "dGVzdC1rZXktdGhhdC1pcy0zMi1ieXRlcy1sb25nISE=";

/// [`TEST_SECRET_KEY`] as keys.
pub fn test_secret_keys() -> Option<autoloader::secrets::SecretKeys> {
    Some(autoloader::secrets::SecretKeys::new(TEST_SECRET_KEY, None).expect("test key"))
}

/// [`TEST_S3_ALLOWLIST`] as a policy.
pub fn test_egress() -> autoloader::ingestions::egress::EgressPolicy {
    let entries: Vec<&str> = TEST_S3_ALLOWLIST.split(',').collect();
    autoloader::ingestions::egress::EgressPolicy::parse(&entries).expect("test allowlist")
}

/// A running API on 127.0.0.1:<random port>, stopped when dropped.
pub struct TestApi {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    listener_task: tokio::task::JoinHandle<()>,
}

impl TestApi {
    pub async fn spawn(pool: PgPool) -> TestApi {
        TestApi::spawn_with_state(
            autoloader_api::AppState::new(pool, Some(ADMIN_TOKEN))
                .with_egress(test_egress())
                .with_secret_keys(test_secret_keys()),
        )
        .await
    }

    /// An API that accepts local sources under `roots`.
    pub async fn spawn_with_roots(pool: PgPool, roots: &[PathBuf]) -> TestApi {
        let roots = autoloader::ingestions::roots::FileRoots::new(roots).expect("file roots");
        TestApi::spawn_with_state(
            autoloader_api::AppState::new(pool, Some(ADMIN_TOKEN))
                .with_file_roots(roots)
                .with_egress(test_egress())
                .with_secret_keys(test_secret_keys()),
        )
        .await
    }

    /// An API serving `state` as it is (tokens, roots, caches set by the caller).
    pub async fn spawn_with_state(state: autoloader_api::AppState) -> TestApi {
        let listener_task = state.listen();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let app = autoloader_api::app(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        TestApi {
            addr,
            client: reqwest::Client::new(),
            server,
            listener_task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates a tenant through the admin API; returns (tenant id, token).
    pub async fn tenant(&self, name: &str) -> (Uuid, String) {
        let res = self
            .client
            .post(self.url("/api/v1/admin/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("create tenant");
        assert_eq!(res.status(), 201, "create tenant");
        let body: Value = res.json().await.expect("json");
        let id = body["tenant_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("tenant_id");
        (id, body["token"].as_str().expect("token").to_owned())
    }

    /// Lets `tenant`'s local sources read under `roots` (an admin's PATCH).
    pub async fn give_roots(&self, tenant: Uuid, roots: &[std::path::PathBuf]) {
        let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let (status, _, body) = self
            .call(
                "PATCH",
                &format!("/api/v1/admin/tenants/{tenant}"),
                ADMIN_TOKEN,
                Some(serde_json::json!({ "file_roots": roots })),
            )
            .await;
        assert_eq!(status, 200, "give file roots: {body}");
    }

    /// Sends `method path` with `token` and an optional JSON body; returns (status, content
    /// type, body as JSON, or as a JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, ctype, body)
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.server.abort();
        self.listener_task.abort();
    }
}

/// A UUIDv7 made at `at`, as the engine makes run ids: its first 48 bits are that instant in ms.
pub fn uuid_v7_at(at: chrono::DateTime<chrono::Utc>) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(at.timestamp()).expect("an instant after 1970"),
        at.timestamp_subsec_nanos(),
    ))
}

/// The URL of the database behind `pool` (a `#[sqlx::test]` database), for child processes.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests");
    let name = pool
        .connect_options()
        .get_database()
        .expect("pool names its database")
        .to_owned();
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (base.as_str(), String::new()),
    };
    let root = without_query
        .rsplit_once('/')
        .map_or(without_query, |(r, _)| r);
    format!("{root}/{name}{query}")
}

pub async fn tenant(pool: &PgPool, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("insert into tenants (id, name) values ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await
        .expect("insert tenant");
    id
}

/// An ingestion with a custom cron schedule in UTC, enabled, whose runs the test executor
/// (`test-worker`) runs as `knobs` says (stored as its description).
pub async fn scheduled_ingestion(
    pool: &PgPool,
    tenant_id: Uuid,
    name: &str,
    cron: &str,
    knobs: Value,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                 destination_table, description, schedule_frequency, schedule_cron,
                                 schedule_timezone, schedule_enabled)
         values ($1, $2, $3, 'local', 'file:///data/in/', 'json', 'analytics.events', $4,
                 'custom', $5, 'UTC', true)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(name)
    .bind(knobs.to_string())
    .bind(cron)
    .execute(pool)
    .await
    .expect("insert ingestion");
    id
}

/// Queues a manual run, as the API's trigger does.
pub async fn manual_run(pool: &PgPool, ingestion_id: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by)
         select $1, id, tenant_id, 'manual' from ingestions where id = $2",
    )
    .bind(id)
    .bind(ingestion_id)
    .execute(pool)
    .await
    .expect("queue manual run");
    id
}

/// Asserts that a problem document's `errors` name `field` with a message containing `needle`.
pub fn assert_field_error(body: &Value, field: &str, needle: &str) {
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors
            .iter()
            .any(|e| e["field"] == field
                && e["message"].as_str().is_some_and(|m| m.contains(needle))),
        "expected an error on {field} containing {needle:?}, got {body}"
    );
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`. Waiting for a
/// condition, not sleeping for a guess: the test goes on the moment the condition holds.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shipped `autoloader-worker` binary, built beside the test executables (`cargo test
/// --workspace` builds it).
pub fn worker_bin() -> PathBuf {
    shipped_bin("autoloader-worker")
}

/// The shipped `autoloader-api` binary, for its commands (`rotate-secrets`, `create-token`).
pub fn api_bin() -> PathBuf {
    shipped_bin("autoloader-api")
}

fn shipped_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p {name}`",
        bin.display()
    );
    bin
}

/// Writes a Parquet file of one row group holding `columns`, as pyarrow-like writers make them.
pub fn write_parquet(path: &std::path::Path, columns: Vec<(&str, arrow_array::ArrayRef)>) {
    let batch = arrow_array::RecordBatch::try_from_iter(columns).expect("batch");
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

/// A fresh directory under the system temp dir, for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autoloader-{name}-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.canonicalize().expect("canonical temp dir")
}

/// A worker process (a real binary), killed when dropped. Its log goes to a file the test reads.
pub struct WorkerProcess {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts `bin` (e.g. `env!("CARGO_BIN_EXE_test-worker")`) against `database_url` with the
    /// worker id `name`, fast leases, and the extra `env`.
    pub fn spawn(bin: &str, database_url: &str, name: &str, env: &[(&str, &str)]) -> WorkerProcess {
        WorkerProcess::spawn_in(&[], bin, database_url, name, env)
    }

    /// [`WorkerProcess::spawn`], run through `prefix` (e.g. `ip netns exec NAME`: inside a
    /// network namespace, [`netns::Host::prefix`]).
    pub fn spawn_in(
        prefix: &[String],
        bin: &str,
        database_url: &str,
        name: &str,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let log = std::env::temp_dir().join(format!("autoloader-{name}-{}.log", Uuid::now_v7()));
        let file = File::create(&log).expect("create log file");
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.env_clear()
            .env("DATABASE_URL", database_url)
            .env("AUTOLOADER_WORKER_ID", name)
            .env("AUTOLOADER_LOG_FORMAT", "json")
            .env("AUTOLOADER_DB_MAX_CONNECTIONS", "8")
            .env("SCHEDULER_LEASE_TTL", "2")
            .env("SCHEDULER_HEARTBEAT_INTERVAL", "0.5")
            .env("SCHEDULER_POLL_INTERVAL", "60")
            .env("AUTOLOADER_S3_ENDPOINT_ALLOWLIST", TEST_S3_ALLOWLIST)
            .env("AUTOLOADER_SECRET_KEY", TEST_SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn worker");
        WorkerProcess {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (TERM, KILL, STOP, CONT).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{sig} {}", self.pid());
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit and returns its exit code (None if killed by a signal).
    /// `None` while the process runs; its exit code (or -1 for a signal) once it has ended.
    pub fn try_exit_code(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .expect("try_wait")
            .map(|status| status.code().unwrap_or(-1))
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let name = self.name.clone();
        let child = &mut self.child;
        wait_for(&format!("{name} to exit"), timeout, || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await
        .code()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
