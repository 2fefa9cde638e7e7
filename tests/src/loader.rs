//! One ingestion test's world: an API that allows local sources under a fresh root, a source
//! directory under it, a warehouse (a local directory or an S3 prefix), the shipped worker
//! binary, and ways to read back the run, the table and the ledger.

use std::path::PathBuf;
use std::time::Duration;

use autoloader_worker::ingest::warehouse::WarehouseStorageFactory;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::table::{scan_url, Scanned};
use crate::{database_url, temp_dir, wait_for, worker_bin, TestApi, WorkerProcess};

/// The tenant a world's ingestions belong to.
const TENANT: &str = "data-eng";

/// How long a test waits for a run to finish.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Loader {
    pub api: TestApi,
    pub token: String,
    pub pool: PgPool,
    /// The test database's URL, for workers and the catalog.
    pub url: String,
    pub root: PathBuf,
    pub source: PathBuf,
    /// The tenant's Iceberg namespace: its destination `a.b` is the table `<namespace>.a.b`.
    pub namespace: String,
    /// The warehouse as workers are given it: `file:///…` or `s3://bucket/prefix`.
    pub warehouse: String,
    storage: WarehouseStorageFactory,
    worker_env: Vec<(String, String)>,
    local_warehouse: Option<PathBuf>,
}

impl Loader {
    /// A world whose warehouse is a fresh local directory.
    pub async fn new(pool: PgPool, name: &str) -> Loader {
        let dir = temp_dir(&format!("{name}-warehouse"));
        let mut l = Loader::with_warehouse(
            pool,
            name,
            format!("file://{}", dir.display()),
            WarehouseStorageFactory::from_env(),
            Vec::new(),
        )
        .await;
        l.local_warehouse = Some(dir);
        l
    }

    /// A world whose warehouse is `warehouse`, reached by the test through `storage` and by
    /// workers through `worker_env`.
    pub async fn with_warehouse(
        pool: PgPool,
        name: &str,
        warehouse: String,
        storage: WarehouseStorageFactory,
        worker_env: Vec<(String, String)>,
    ) -> Loader {
        let root = temp_dir(name);
        let source = root.join("in");
        std::fs::create_dir_all(&source).expect("source dir");
        let api = TestApi::spawn_with_roots(pool.clone(), std::slice::from_ref(&root)).await;
        let (tenant, token) = api.tenant(TENANT).await;
        api.give_roots(tenant, std::slice::from_ref(&root)).await;
        Loader {
            api,
            token,
            url: database_url(&pool),
            pool,
            root,
            source,
            namespace: autoloader::tenants::derive_namespace(TENANT),
            warehouse,
            storage,
            worker_env,
            local_warehouse: None,
        }
    }

    /// The shipped worker binary, allowed to read under the root, writing to the warehouse.
    pub fn worker(&self, name: &str, extra: &[(&str, &str)]) -> WorkerProcess {
        self.worker_in(&[], name, extra)
    }

    /// [`Loader::worker`], run through `prefix` (inside a network namespace:
    /// [`crate::netns::Host::prefix`]).
    pub fn worker_in(
        &self,
        prefix: &[String],
        name: &str,
        extra: &[(&str, &str)],
    ) -> WorkerProcess {
        let roots = self.root.display().to_string();
        let mut env: Vec<(&str, &str)> = vec![
            ("AUTOLOADER_FILE_ROOTS", roots.as_str()),
            ("AUTOLOADER_WAREHOUSE", self.warehouse.as_str()),
        ];
        env.extend(
            self.worker_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        env.extend_from_slice(extra);
        WorkerProcess::spawn_in(
            prefix,
            worker_bin().to_str().expect("utf-8 path"),
            &self.url,
            name,
            &env,
        )
    }

    /// Writes a source file.
    pub fn write(&self, name: &str, content: &[u8]) {
        std::fs::write(self.source.join(name), content).expect("write source file");
    }

    /// Creates an ingestion of the source directory in `format` into `table` through the API,
    /// every minute in UTC; `extra` adds or overrides fields.
    pub async fn ingestion(&self, format: &str, table: &str, extra: Value) -> Uuid {
        let mut body = json!({
            "name": format!("{format} into {table}"),
            "source_type": "local",
            "source_path": format!("file://{}/", self.source.display()),
            "format_type": format,
            "destination_table": table,
            "schedule_frequency": "custom",
            // Once a year: a tick never fires by itself inside a test, where it would race the
            // runs the test triggers (`scheduled_run` pulls the tick forward when one is wanted).
            "schedule_cron": "0 0 1 1 *",
            "schedule_enabled": true,
            "schedule_timezone": "UTC",
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.api.create_ingestion(&self.token, body).await
    }

    /// Triggers a run by hand and waits for it to finish; returns the run as the API shows it.
    pub async fn run_by_hand(&self, ingestion: Uuid) -> Value {
        let run = self.api.trigger(&self.token, ingestion).await;
        self.finished(run["id"].as_str().expect("run id")).await
    }

    /// Waits for `run_id` to finish; returns it as the API shows it.
    pub async fn finished(&self, run_id: &str) -> Value {
        self.api.finished_run(&self.token, run_id).await
    }

    /// Scans the tenant's table `table` (a destination, `a.b`: the Iceberg table
    /// `<namespace>.a.b`); `None` when it does not exist.
    pub async fn table(&self, table: &str) -> Option<Scanned> {
        let id = format!("{}.{table}", self.namespace);
        scan_url(&self.url, &self.warehouse, &self.storage, &id).await
    }

    /// Scans the Iceberg table `id` (a full identifier); `None` when it does not exist.
    pub async fn table_at(&self, id: &str) -> Option<Scanned> {
        scan_url(&self.url, &self.warehouse, &self.storage, id).await
    }

    /// The ledger of `ingestion`: (file name in the source directory, rows loaded), by name.
    /// Every path in it must be a full `file://` URL in the source directory.
    pub async fn ledger(&self, ingestion: Uuid) -> Vec<(String, i64)> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select path, rows_loaded from loaded_files where ingestion_id = $1 order by path",
        )
        .bind(ingestion)
        .fetch_all(&self.pool)
        .await
        .expect("ledger");
        let dir = format!("file://{}/", self.source.display());
        rows.into_iter()
            .map(|(path, n)| {
                let name = path
                    .strip_prefix(&dir)
                    .unwrap_or_else(|| panic!("ledger path {path} is not under {dir}"));
                (name.to_owned(), n)
            })
            .collect()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some(dir) = &self.local_warehouse {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The `id` column of `rows`, sorted.
pub fn ids(rows: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    v.sort_unstable();
    v
}

impl TestApi {
    /// Creates an ingestion; asserts 201 and returns its id.
    pub async fn create_ingestion(&self, token: &str, body: Value) -> Uuid {
        let (status, _, res) = self
            .call("POST", "/api/v1/ingestions", token, Some(body))
            .await;
        assert_eq!(status, 201, "create ingestion: {res}");
        res["id"].as_str().expect("id").parse().expect("uuid")
    }

    /// Triggers a manual run; asserts 202 and returns the run.
    pub async fn trigger(&self, token: &str, ingestion: Uuid) -> Value {
        let (status, _, run) = self
            .call(
                "POST",
                &format!("/api/v1/ingestions/{ingestion}/run"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 202, "trigger: {run}");
        run
    }

    /// Fires `ingestion`'s schedule now (its tick pulled into the past, and kept there, instead of
    /// waiting for the cron), waits for the run the ticker makes of it to finish, and returns it.
    pub async fn scheduled_run(&self, pool: &PgPool, token: &str, ingestion: Uuid) -> Value {
        sqlx::query(
            "update schedule_ticks set next_fire_at = now() - interval '1 second', recompute = false
             where ingestion_id = $1",
        )
        .bind(ingestion)
        .execute(pool)
        .await
        .expect("pull the tick forward");
        let runs = format!("/api/v1/ingestions/{ingestion}/runs");
        let run_id = wait_for("a scheduled run", RUN_TIMEOUT, || async {
            let (_, _, runs) = self.call("GET", &runs, token, None).await;
            runs["items"][0]["id"].as_str().map(str::to_owned)
        })
        .await;
        self.finished_run(token, &run_id).await
    }

    /// Waits until run `run_id` is SUCCESS or FAILED; returns it as the API shows it.
    pub async fn finished_run(&self, token: &str, run_id: &str) -> Value {
        wait_for("the run to finish", RUN_TIMEOUT, || async {
            let (_, _, run) = self
                .call("GET", &format!("/api/v1/runs/{run_id}"), token, None)
                .await;
            matches!(run["status"].as_str(), Some("SUCCESS" | "FAILED")).then_some(run)
        })
        .await
    }
}
