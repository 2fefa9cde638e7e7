//! S3 and Iceberg helpers for the ingestion tests.
//!
//! The S3 endpoint is moto's server (`scripts/s3.sh`), or whatever `AUTOLOADER_TEST_S3_ENDPOINT`
//! names (`make test` sets it). The server accepts any credentials; the tests use access key
//! [`ACCESS_KEY`] / secret [`SECRET_KEY`], region [`REGION`] and path-style addressing
//! (`http://127.0.0.1:PORT/BUCKET/KEY`). Buckets live as long as the server, which the test
//! processes share: give each test its own bucket name.
//!
//! [`iceberg_read`] reads a table back with pyiceberg (`tests/py/iceberg_read.py`, from the venv
//! `scripts/pyenv.sh` builds), an implementation independent of the one under test. When that
//! venv cannot be built, the pyiceberg checks are skipped with a loud banner instead of failing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStoreExt, PutPayload, RetryConfig};
use serde_json::Value;

/// Access key the tests sign with (the server accepts any).
pub const ACCESS_KEY: &str = "test";
/// Secret key the tests sign with (the server accepts any).
pub const SECRET_KEY: &str = "test";
/// Region the tests use.
pub const REGION: &str = "us-east-1";
/// Name of the Iceberg catalog [`iceberg_read`] reads from.
pub const ICEBERG_CATALOG: &str = "autoloader";

const ENDPOINT_VAR: &str = "AUTOLOADER_TEST_S3_ENDPOINT";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Runs one of the repository's scripts and returns its trimmed stdout, or a description of the
/// failure with its stderr.
fn run_script(script: &str, args: &[&str]) -> Result<String, String> {
    let path = repo_root().join("scripts").join(script);
    let out = Command::new(&path)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}):\n{stderr}",
            path.display(),
            args.join(" "),
            out.status
        ));
    }
    if stdout.is_empty() {
        return Err(format!(
            "{} {} printed nothing on stdout:\n{stderr}",
            path.display(),
            args.join(" ")
        ));
    }
    Ok(stdout)
}

/// The S3 endpoint for tests, e.g. `http://127.0.0.1:54340`: `AUTOLOADER_TEST_S3_ENDPOINT` when
/// set, otherwise the server `scripts/s3.sh start` starts (once per test process; it keeps
/// running afterwards, `scripts/s3.sh stop` stops it).
pub fn endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let url = match std::env::var(ENDPOINT_VAR) {
                Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
                _ => run_script("s3.sh", &["start"]).unwrap_or_else(|e| {
                    panic!(
                        "no S3 endpoint for the tests: {ENDPOINT_VAR} is unset and the local \
                         S3 server did not start.\n{e}"
                    )
                }),
            };
            url.trim_end_matches('/').to_owned()
        })
        .clone()
}

/// An object store client for `bucket` on the test endpoint, signing with the test credentials.
pub fn store(bucket: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_bucket_name(bucket)
        // A local server either answers or is broken: fail fast rather than back off for minutes.
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        })
        .build()
        .unwrap_or_else(|e| panic!("S3 client for bucket {bucket}: {e}"))
}

/// Creates `name` on the test endpoint; a bucket that already exists is fine. (`object_store`
/// has no bucket operations; the server takes an unsigned `PUT /bucket`.)
pub async fn create_bucket(name: &str) {
    let url = format!("{}/{name}", endpoint());
    let res = reqwest::Client::new()
        .put(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    let exists = status.as_u16() == 409 && body.contains("BucketAlreadyOwnedByYou");
    assert!(
        status.is_success() || exists,
        "create bucket {name}: PUT {url} answered {status}: {body}"
    );
}

/// Writes `body` to `bucket`/`key`.
pub async fn put_object(bucket: &str, key: &str, body: Vec<u8>) {
    store(bucket)
        .put(&ObjectPath::from(key), PutPayload::from(body))
        .await
        .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e}"));
}

/// Deletes `bucket`/`key` (deleting a missing key is not an error in S3).
pub async fn delete_object(bucket: &str, key: &str) {
    store(bucket)
        .delete(&ObjectPath::from(key))
        .await
        .unwrap_or_else(|e| panic!("delete s3://{bucket}/{key}: {e}"));
}

/// The python of the test venv (`scripts/pyenv.sh`, run once per test process), or `None` when
/// it cannot be built, after a banner on stderr saying the pyiceberg checks are skipped.
pub fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| match run_script("pyenv.sh", &[]) {
            Ok(path) => Some(PathBuf::from(path)),
            Err(e) => {
                let rule = "!".repeat(78);
                eprintln!(
                    "\n{rule}\n\
                     !! pyiceberg checks are SKIPPED in this test run.\n\
                     !! The Python venv (scripts/pyenv.sh) could not be built, so tables are\n\
                     !! not read back with an independent Iceberg reader. Why:\n\
                     {}\n\
                     !! Fix it and run scripts/pyenv.sh by hand to check.\n\
                     {rule}\n",
                    e.lines()
                        .map(|l| format!("!!   {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                None
            }
        })
        .clone()
}

/// Reads Iceberg table `table` (`namespace.name`) of the catalog in `database_url` (a
/// `postgres://` URL, as given to Autoloader) and warehouse `warehouse` (`file:///abs/path` or
/// `/abs/path`, or `s3://bucket/prefix` on the test server) with pyiceberg. Returns the reader's JSON: `row_count`, `columns`, `rows` (sorted,
/// timestamps as ISO 8601 strings), `snapshots` (each with `snapshot_id` and `summary`); see
/// `tests/py/iceberg_read.py`. `None` only when [`python`] is `None`; a failed read panics.
pub fn iceberg_read(database_url: &str, warehouse: &str, table: &str) -> Option<Value> {
    iceberg_read_filtered(database_url, warehouse, table, None)
}

/// [`iceberg_read`], and with `filter` (pyiceberg's row filter syntax, `"region == 'eu'"`) also
/// a scan with that filter: `filtered.planned_files` (the data files left after pruning) and
/// `filtered.rows`. The output also has `partition_spec` and `data_files` (each file's path and
/// partition values).
pub fn iceberg_read_filtered(
    database_url: &str,
    warehouse: &str,
    table: &str,
    filter: Option<&str>,
) -> Option<Value> {
    let python = python()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/iceberg_read.py");
    let mut command = Command::new(&python);
    if warehouse.starts_with("s3://") {
        command
            .env("ICEBERG_READ_S3_ENDPOINT", endpoint())
            .env("ICEBERG_READ_S3_ACCESS_KEY_ID", ACCESS_KEY)
            .env("ICEBERG_READ_S3_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("ICEBERG_READ_S3_REGION", REGION);
    }
    let out = command
        .arg(&script)
        .args(["--uri", database_url])
        .args(["--warehouse", warehouse])
        .args(["--catalog", ICEBERG_CATALOG])
        .args(["--table", table])
        .args(filter.map(|f| ["--filter", f]).into_iter().flatten())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "reading Iceberg table {table} with pyiceberg failed ({}):\n{stderr}",
        out.status
    );
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iceberg_read.py printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Some(value)
}
