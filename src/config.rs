//! Configuration shared by the binaries, read from flags or the environment (and `.env`).
//!
//! Each binary flattens the groups it needs into its own `clap` parser, so `--help` documents
//! every setting with its environment variable and default. Values are validated here, at the
//! boundary: past this module a lease TTL is a positive `Duration`, never a string.

use std::time::Duration;

use clap::Args;

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL, e.g. postgres://user:password@127.0.0.1:5432/autoloader.
    /// `make run` and `make test` start a local cluster and set it when it is unset.
    /// One host, which must always lead to the primary (a managed endpoint, a VIP, a DNS name):
    /// several hosts and target_session_attrs are refused, as the driver cannot honour them.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = DatabaseUrlParser)]
    pub database_url: String,

    /// Largest number of pooled database connections this process opens.
    #[arg(long, env = "AUTOLOADER_DB_MAX_CONNECTIONS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    // Bounds on every wait for the database (docs/ARCHITECTURE.md, "When the network fails").
    /// Seconds a statement waits for a pooled connection (the pool is busy, or a new connection
    /// is being opened) before it fails.
    #[arg(long, env = "AUTOLOADER_DB_ACQUIRE_TIMEOUT", default_value = "10",
          value_parser = parse_seconds)]
    pub db_acquire_timeout: Duration,

    /// Seconds the process waits for its first connection when it starts. Later connections are
    /// opened while a statement waits for one, within AUTOLOADER_DB_ACQUIRE_TIMEOUT.
    #[arg(long, env = "AUTOLOADER_DB_CONNECT_TIMEOUT", default_value = "10",
          value_parser = parse_seconds)]
    pub db_connect_timeout: Duration,

    /// PostgreSQL's `statement_timeout` for this process's sessions, in seconds (0: off).
    /// Statements that may rightly take longer (migrations) lift it for themselves. The
    /// engine's own statements wait for an answer at most this long and a sixth (35 s when off),
    /// then drop their connection: a connection that went quiet is never waited on forever.
    #[arg(long, env = "AUTOLOADER_DB_STATEMENT_TIMEOUT", default_value = "30",
          value_parser = parse_seconds_or_off)]
    pub db_statement_timeout: Duration,

    /// PostgreSQL's `lock_timeout`, in seconds (0: off): a statement waiting longer for a lock
    /// fails instead of queueing behind it.
    #[arg(long, env = "AUTOLOADER_DB_LOCK_TIMEOUT", default_value = "10",
          value_parser = parse_seconds_or_off)]
    pub db_lock_timeout: Duration,

    /// PostgreSQL's `idle_in_transaction_session_timeout`, in seconds (0: off): the server ends a
    /// session that holds a transaction open and says nothing for this long, releasing its locks.
    #[arg(long, env = "AUTOLOADER_DB_IDLE_IN_TRANSACTION_TIMEOUT", default_value = "60",
          value_parser = parse_seconds_or_off)]
    pub db_idle_in_transaction_timeout: Duration,

    /// TCP keepalive on every connection, in seconds of silence before the first probe (0: off).
    /// Probes follow every third of that (at least 1 s), and 3 unanswered probes (or unanswered
    /// data for as long) end the connection: with 10, PostgreSQL drops a vanished worker's
    /// session, and releases its locks, within about 20 s.
    #[arg(long, env = "AUTOLOADER_DB_TCP_KEEPALIVE", default_value = "10",
          value_parser = parse_seconds_or_off)]
    pub db_tcp_keepalive: Duration,
}

impl DatabaseConfig {
    /// How long the engine waits for the answer to one of its statements before it drops the
    /// connection: the statement timeout (30 s when off) plus a sixth of it (0.5 to 5 s) for the
    /// server's cancel to come back.
    pub fn answer_bound(&self) -> Duration {
        let statement = if self.db_statement_timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            self.db_statement_timeout
        };
        statement + (statement / 6).clamp(Duration::from_millis(500), Duration::from_secs(5))
    }
}

/// How the scheduler fires ticks and runs them (the names of the product spec's settings).
#[derive(Debug, Clone, Args)]
pub struct SchedulerConfig {
    /// Most runs one worker process executes at once.
    #[arg(long, env = "SCHEDULER_MAX_WORKERS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_workers: u32,

    /// Seconds a tick may be late (e.g. while every process was down) and still produce a run.
    /// Ticks missed by more are recorded as one MISSED run per schedule.
    #[arg(long, env = "SCHEDULER_MISFIRE_GRACE_TIME", default_value = "300",
          value_parser = parse_seconds)]
    pub misfire_grace_time: Duration,

    /// When several ticks of one schedule are late but within the grace time, run once for all
    /// of them (true) or once for each (false).
    #[arg(long, env = "SCHEDULER_COALESCE", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub coalesce: bool,

    /// Seconds a worker's lease on a run lasts without a heartbeat; after that the run is
    /// considered lost and is requeued.
    #[arg(long, env = "SCHEDULER_LEASE_TTL", default_value = "30", value_parser = parse_seconds)]
    pub lease_ttl: Duration,

    /// Seconds between lease heartbeats; must be well under the lease TTL (a third is usual).
    #[arg(long, env = "SCHEDULER_HEARTBEAT_INTERVAL", default_value = "10",
          value_parser = parse_seconds)]
    pub heartbeat_interval: Duration,

    /// Seconds a stopping worker waits for its running runs before giving their leases back
    /// (requeued for another worker).
    #[arg(long, env = "SCHEDULER_SHUTDOWN_TIMEOUT", default_value = "60", value_parser = parse_seconds)]
    pub shutdown_timeout: Duration,

    /// Claims a run may use: after this many lost leases it fails with reason `worker lost`.
    #[arg(long, env = "SCHEDULER_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=100))]
    pub max_attempts: i32,

    /// Automatic retries of a run whose executor reports a transient error. The spec's default
    /// is none: a failed run waits for its next tick or a manual trigger.
    #[arg(long, env = "SCHEDULER_RETRIES", default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..=100))]
    pub retries: i32,

    /// Seconds before the first retry; each further retry waits twice as long.
    #[arg(long, env = "SCHEDULER_RETRY_BACKOFF", default_value = "30", value_parser = parse_seconds)]
    pub retry_backoff: Duration,

    /// Most due ticks one ticker transaction materialises. Bigger batches materialise a burst
    /// sooner (fewer transactions); each batch's runs become visible when it commits.
    #[arg(long, env = "SCHEDULER_TICK_BATCH_SIZE", default_value_t = 2000,
          value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub tick_batch_size: i64,

    /// Seconds between safety looks at the tick table and the run queue, in case a
    /// notification was lost. Wake-ups are otherwise by notification and the next tick's time.
    #[arg(long, env = "SCHEDULER_POLL_INTERVAL", default_value = "30", value_parser = parse_seconds)]
    pub poll_interval: Duration,

    /// Days a finished run is kept; older ones are deleted by every worker process when it starts
    /// and then hourly. Must be longer than the misfire grace time. Unset: every run is kept.
    #[arg(long, env = "SCHEDULER_RUN_RETENTION_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub run_retention_days: Option<u32>,
}

impl SchedulerConfig {
    /// Checks the settings against each other; each message names the variable at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval * 2 > self.lease_ttl {
            return Err(format!(
                "SCHEDULER_HEARTBEAT_INTERVAL ({}s) must be at most half of SCHEDULER_LEASE_TTL ({}s), \
                 or a busy worker loses its lease between two heartbeats",
                self.heartbeat_interval.as_secs_f64(),
                self.lease_ttl.as_secs_f64()
            ));
        }
        if let Some(days) = self.run_retention_days {
            if Duration::from_secs(u64::from(days) * 86_400) <= self.misfire_grace_time {
                return Err(format!(
                    "SCHEDULER_RUN_RETENTION_DAYS ({days} days) must be longer than \
                     SCHEDULER_MISFIRE_GRACE_TIME ({}s), or a tick whose run was pruned could \
                     run again",
                    self.misfire_grace_time.as_secs_f64()
                ));
            }
        }
        Ok(())
    }
}

/// The catch-up policy of ingestions created without one (the API's reading of the workers'
/// `SCHEDULER_COALESCE`).
#[derive(Debug, Clone, Args)]
pub struct CatchupConfig {
    /// The default `catchup` of new ingestions: true (coalesce late ticks, as the workers do)
    /// gives `skip`, false gives `all` (one run per missed tick). Set it as the workers have it.
    #[arg(long = "coalesce", env = "SCHEDULER_COALESCE", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub coalesce: bool,
}

impl CatchupConfig {
    pub fn default_catchup(&self) -> crate::ingestions::catchup::Catchup {
        crate::ingestions::catchup::Catchup::from_coalesce(self.coalesce)
    }
}

/// Which loops a worker process runs.
#[derive(Debug, Clone, Args)]
pub struct RoleConfig {
    /// Name of this process in `runs.worker_id` (default: host:pid:random).
    #[arg(long, env = "AUTOLOADER_WORKER_ID")]
    pub worker_id: Option<String>,

    /// Run only the ticker (materialise due ticks), executing no runs.
    #[arg(long, env = "AUTOLOADER_TICKER_ONLY", conflicts_with = "no_ticker")]
    pub ticker_only: bool,

    /// Run no ticker in this process, only workers (other processes must tick).
    #[arg(long, env = "AUTOLOADER_NO_TICKER")]
    pub no_ticker: bool,
}

/// Where local sources may read from.
#[derive(Debug, Clone, Args)]
pub struct FileRootsConfig {
    /// Directories `file://` sources may read from, colon-separated. A source outside them (after
    /// following symlinks) is refused. Unset: local sources are refused.
    #[arg(
        long = "file-roots",
        env = "AUTOLOADER_FILE_ROOTS",
        value_delimiter = ':'
    )]
    pub file_roots: Vec<std::path::PathBuf>,
}

impl FileRootsConfig {
    pub fn resolve(&self) -> Result<crate::ingestions::roots::FileRoots, String> {
        crate::ingestions::roots::FileRoots::new(&self.file_roots)
    }
}

/// Where tenants' S3 endpoints may point.
#[derive(Debug, Clone, Args)]
pub struct EgressConfig {
    /// S3 endpoints tenants may give (`options.s3_endpoint`), comma-separated: `host`,
    /// `host:port`, `*.suffix` (https only, and never to an internal address unless a network
    /// below lists it) or a CIDR network for IP literals (`10.0.0.0/8`, `127.0.0.1/32`). Unset:
    /// no custom endpoint, AWS only.
    #[arg(
        long = "s3-endpoint-allowlist",
        env = "AUTOLOADER_S3_ENDPOINT_ALLOWLIST",
        value_delimiter = ','
    )]
    pub s3_endpoint_allowlist: Vec<String>,
}

impl EgressConfig {
    pub fn resolve(&self) -> Result<crate::ingestions::egress::EgressPolicy, String> {
        crate::ingestions::egress::EgressPolicy::parse(&self.s3_endpoint_allowlist)
    }
}

/// The operator's caps on what one run may read, whatever a tenant's options say.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// Largest file a run reads, in bytes; a larger one fails its run, naming the file and this
    /// cap.
    #[arg(long, env = "AUTOLOADER_MAX_FILE_BYTES", default_value_t = crate::ingestions::options::Limits::default().max_file_bytes,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_file_bytes: u64,

    /// Most bytes one run reads: the ceiling of an ingestion's `options.max_bytes_per_run`
    /// (refused above it when written; a stored larger value is cut to it).
    #[arg(long, env = "AUTOLOADER_MAX_BYTES_PER_RUN", default_value_t = crate::ingestions::options::Limits::default().max_bytes_per_run,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bytes_per_run: u64,

    /// Longest record a run reads, in bytes: one JSON document (a JSON-lines line, or one element
    /// of a file that is a JSON array) or one CSV line. A longer one fails its run, naming the
    /// file and this cap; no more than about this much of it is held in memory.
    #[arg(long, env = "AUTOLOADER_MAX_RECORD_BYTES", default_value_t = crate::ingestions::options::Limits::default().max_record_bytes,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_record_bytes: u64,
}

impl LimitsConfig {
    pub fn limits(&self) -> crate::ingestions::options::Limits {
        crate::ingestions::options::Limits {
            max_file_bytes: self.max_file_bytes,
            max_bytes_per_run: self.max_bytes_per_run,
            max_record_bytes: self.max_record_bytes,
        }
    }
}

/// The operator's defaults for tenants' quotas (a tenant's own value, set by an admin, wins) and
/// the API's rate limit per token.
#[derive(Debug, Clone, Copy, Args)]
pub struct QuotaConfig {
    /// Most ingestions a tenant may have; creating one more answers 403.
    #[arg(long, env = "AUTOLOADER_DEFAULT_MAX_INGESTIONS", default_value_t = QuotaConfig::DEFAULT.default_max_ingestions,
          value_parser = clap::value_parser!(i32).range(0..))]
    pub default_max_ingestions: i32,

    /// Most runs of one tenant RUNNING at once across every worker. Unset: no cap. Give every
    /// tenant a cap below the fleet's slots and no tenant can hold all of them.
    #[arg(long, env = "AUTOLOADER_DEFAULT_MAX_CONCURRENT_RUNS",
          value_parser = clap::value_parser!(i32).range(1..))]
    pub default_max_concurrent_runs: Option<i32>,

    /// Most manual triggers a tenant may make in a minute; more answer 429.
    #[arg(long, env = "AUTOLOADER_DEFAULT_MAX_MANUAL_RUNS_PER_MINUTE", default_value_t = QuotaConfig::DEFAULT.default_max_manual_runs_per_minute,
          value_parser = clap::value_parser!(i32).range(0..))]
    pub default_max_manual_runs_per_minute: i32,

    /// Requests per second one API token may make (bursts of twice as many pass); more answer
    /// 429. 0: no limit.
    #[arg(long, env = "AUTOLOADER_TOKEN_RATE_LIMIT", default_value_t = QuotaConfig::DEFAULT.token_rate_limit,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub token_rate_limit: u32,
}

impl QuotaConfig {
    /// The defaults, as the flags and `Default` both take them.
    pub const DEFAULT: QuotaConfig = QuotaConfig {
        default_max_ingestions: 1000,
        default_max_concurrent_runs: None,
        default_max_manual_runs_per_minute: 60,
        token_rate_limit: 50,
    };
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig::DEFAULT
    }
}

/// The worker process's own metrics.
#[derive(Debug, Clone, Copy, Args)]
pub struct WorkerMetricsConfig {
    /// Serve this process's metrics in Prometheus text at `http://<addr>/metrics` (claims,
    /// lost leases, rescues, run durations and lateness, ticker batches, ...). Unset: not
    /// served. Bind it to an address only the scraper reaches.
    #[arg(long, env = "AUTOLOADER_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Table maintenance: the operator's defaults for ingestions' settings
/// ([`crate::ingestions::maintenance`]) and how often the scheduler queues maintenance runs.
#[derive(Debug, Clone, Copy, Args)]
pub struct MaintenanceConfig {
    /// Whether workers queue maintenance runs by themselves (ingestions with
    /// `maintenance: auto`); `false` leaves only `POST .../maintenance`.
    #[arg(long = "maintenance", env = "AUTOLOADER_MAINTENANCE", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub auto: bool,

    /// Snapshots older than this are expired (unless among the last kept), e.g. 7d, 36h.
    #[arg(long, env = "AUTOLOADER_SNAPSHOT_RETENTION", default_value = "7d", value_parser = parse_window)]
    pub snapshot_retention: Duration,

    /// The last N snapshots are kept whatever their age.
    #[arg(long, env = "AUTOLOADER_MIN_SNAPSHOTS_TO_KEEP", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub min_snapshots_to_keep: u32,

    /// Bytes a compacted data file aims at; files under 75% of it are small.
    #[arg(long, env = "AUTOLOADER_TARGET_FILE_SIZE", default_value_t = 128 << 20,
          value_parser = clap::value_parser!(u64).range(1 << 20..=4 << 30))]
    pub target_file_size: u64,

    /// Unreferenced files (other than those of attempts that can no longer commit) younger than
    /// this are never removed, e.g. 3d.
    #[arg(long, env = "AUTOLOADER_ORPHAN_SAFETY_WINDOW", default_value = "3d", value_parser = parse_window)]
    pub orphan_safety_window: Duration,

    /// A table is compacted at most this often, and only with at least
    /// AUTOLOADER_COMPACT_MIN_FILES small files.
    #[arg(long, env = "AUTOLOADER_COMPACTION_INTERVAL", default_value = "1h", value_parser = parse_interval)]
    pub compaction_interval: Duration,

    /// Small data files that make a table due for compaction.
    #[arg(long, env = "AUTOLOADER_COMPACT_MIN_FILES", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub compact_min_files: u32,

    /// Snapshot expiry and orphan removal run at most this often per table.
    #[arg(long, env = "AUTOLOADER_CLEANUP_INTERVAL", default_value = "1d", value_parser = parse_interval)]
    pub cleanup_interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            auto: true,
            snapshot_retention: Duration::from_secs(7 * 86_400),
            min_snapshots_to_keep: 1,
            target_file_size: 128 << 20,
            orphan_safety_window: Duration::from_secs(3 * 86_400),
            compaction_interval: Duration::from_secs(3600),
            compact_min_files: 10,
            cleanup_interval: Duration::from_secs(86_400),
        }
    }
}

/// A retention or safety window: 1h to 3650d.
fn parse_window(s: &str) -> Result<Duration, String> {
    use crate::ingestions::maintenance::{parse_duration, MAX_WINDOW, MIN_WINDOW};
    let d = parse_duration(s)?;
    if (MIN_WINDOW..=MAX_WINDOW).contains(&d) {
        Ok(d)
    } else {
        Err(format!("'{s}' must be from 1h to 3650d"))
    }
}

/// How often something happens: 1s to 3650d.
fn parse_interval(s: &str) -> Result<Duration, String> {
    use crate::ingestions::maintenance::{parse_duration, MAX_WINDOW};
    let d = parse_duration(s)?;
    if d >= Duration::from_secs(1) && d <= MAX_WINDOW {
        Ok(d)
    } else {
        Err(format!("'{s}' must be from 1s to 3650d"))
    }
}

/// The keys secrets are sealed with at rest (see [`crate::secrets`]).
#[derive(Clone, Default, Args)]
pub struct SecretKeyConfig {
    /// 32 bytes in base64 (`openssl rand -base64 32`): seals the secret options of ingestions
    /// (AES-256-GCM). The API refuses to store a secret without it; the worker needs it to open
    /// them. `make run` generates one under .local/.
    #[arg(long, env = "AUTOLOADER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// The key before the current one, still opened while `autoloader-api rotate-secrets`
    /// seals everything again under AUTOLOADER_SECRET_KEY.
    #[arg(long, env = "AUTOLOADER_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    pub secret_key_previous: Option<String>,
}

impl std::fmt::Debug for SecretKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeyConfig")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "********"))
            .field(
                "secret_key_previous",
                &self.secret_key_previous.as_ref().map(|_| "********"),
            )
            .finish()
    }
}

impl SecretKeyConfig {
    /// The keys; `None` when AUTOLOADER_SECRET_KEY is unset or empty.
    pub fn resolve(&self) -> Result<Option<crate::secrets::SecretKeys>, String> {
        match self.secret_key.as_deref().filter(|k| !k.trim().is_empty()) {
            None if self
                .secret_key_previous
                .as_deref()
                .is_some_and(|k| !k.trim().is_empty()) =>
            {
                Err("AUTOLOADER_SECRET_KEY_PREVIOUS is set but AUTOLOADER_SECRET_KEY is not".into())
            }
            None => Ok(None),
            Some(current) => {
                crate::secrets::SecretKeys::new(current, self.secret_key_previous.as_deref())
                    .map(Some)
            }
        }
    }
}

/// Parses a positive number of seconds, fractions allowed ("0.5").
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 31_536_000.0 {
        return Err(format!(
            "'{s}' must be a positive number of seconds up to one year"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a number of seconds as [`parse_seconds`] does, or `0`: off ([`Duration::ZERO`]).
pub fn parse_seconds_or_off(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_seconds(s).map_err(|e| format!("{e}, or 0 for off")),
    }
}

/// Reads `.env` from the working directory if there is one. Variables already set win.
pub fn load_dotenv() {
    // A missing file is the normal case; a malformed one is worth saying out loud.
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => eprintln!("warning: ignoring .env: {e}"),
    }
}

/// Checks `DATABASE_URL` with [`parse_database_url`]; a refusal names the problem and never the
/// value (clap's own errors would print the URL, password and all).
#[derive(Clone)]
struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let refuse =
            |m: String| clap::Error::raw(clap::error::ErrorKind::ValueValidation, m + "\n");
        let url = value
            .to_str()
            .ok_or_else(|| refuse("DATABASE_URL is not valid UTF-8".to_owned()))?;
        parse_database_url(url).map_err(refuse)
    }
}

/// A `DATABASE_URL` the driver can honour: one host, and no `target_session_attrs` but `any`.
/// sqlx 0.8 connects to a single host and ignores `target_session_attrs` (with a warning in the
/// log), so a libpq-style URL naming a primary and its standbys would either fail to parse or
/// connect to whichever host it names first, standby or not. Such a URL is refused at start,
/// saying what to give instead; the URL itself (and its password) is never repeated.
fn parse_database_url(url: &str) -> Result<String, String> {
    const INSTEAD: &str = "give one address that always leads to the primary: the managed \
        service's endpoint, a VIP, a DNS name your failover moves, or pgbouncer \
        (docs/DEPLOYMENT.md, \"Failover\")";
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or("");
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let query_hosts = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| {
            matches!(k, "host" | "hostaddr" | "port")
                && (v.contains(',') || v.to_ascii_lowercase().contains("%2c"))
        });
    if hosts.contains(',') || query_hosts {
        return Err(format!(
            "DATABASE_URL names several hosts; the PostgreSQL driver connects to one: {INSTEAD}"
        ));
    }
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if key == "target_session_attrs" && value != "any" {
            return Err(format!(
                "DATABASE_URL asks for target_session_attrs={value}, which the PostgreSQL driver \
                 does not honour: {INSTEAD}"
            ));
        }
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        scheduler: SchedulerConfig,
        #[command(flatten)]
        quotas: QuotaConfig,
        #[command(flatten)]
        maintenance: MaintenanceConfig,
    }

    #[test]
    fn maintenance_defaults_are_the_documented_ones() {
        let m = Cli::try_parse_from(["x"])
            .expect("defaults parse")
            .maintenance;
        let d = MaintenanceConfig::default();
        assert_eq!(
            (m.auto, m.snapshot_retention, m.min_snapshots_to_keep),
            (d.auto, d.snapshot_retention, d.min_snapshots_to_keep)
        );
        assert_eq!(
            (
                m.target_file_size,
                m.orphan_safety_window,
                m.compaction_interval
            ),
            (
                d.target_file_size,
                d.orphan_safety_window,
                d.compaction_interval
            )
        );
        assert_eq!(
            (m.compact_min_files, m.cleanup_interval),
            (d.compact_min_files, d.cleanup_interval)
        );
        let set =
            Cli::try_parse_from(["x", "--maintenance", "false", "--snapshot-retention", "2d"])
                .expect("parse")
                .maintenance;
        assert!(!set.auto);
        assert_eq!(set.snapshot_retention, Duration::from_secs(2 * 86_400));
        assert!(Cli::try_parse_from(["x", "--orphan-safety-window", "5m"]).is_err());
        assert!(Cli::try_parse_from(["x", "--target-file-size", "10"]).is_err());
    }

    #[test]
    fn quota_defaults_are_the_documented_ones() {
        let q = Cli::try_parse_from(["x"]).expect("defaults parse").quotas;
        let d = QuotaConfig::default();
        assert_eq!(
            (q.default_max_ingestions, q.default_max_concurrent_runs),
            (d.default_max_ingestions, d.default_max_concurrent_runs)
        );
        assert_eq!(
            (q.default_max_manual_runs_per_minute, q.token_rate_limit),
            (d.default_max_manual_runs_per_minute, d.token_rate_limit)
        );
        let capped =
            Cli::try_parse_from(["x", "--default-max-concurrent-runs", "4"]).expect("parse");
        assert_eq!(capped.quotas.default_max_concurrent_runs, Some(4));
        assert!(Cli::try_parse_from(["x", "--default-max-concurrent-runs", "0"]).is_err());
    }

    #[test]
    fn database_waits_are_bounded_by_default_and_zero_turns_one_off() {
        #[derive(Parser)]
        struct Db {
            #[command(flatten)]
            database: DatabaseConfig,
        }
        let d = Db::try_parse_from(["x", "--database-url", "postgres://h/db"])
            .expect("defaults parse")
            .database;
        let s = Duration::from_secs;
        assert_eq!(
            (
                d.db_acquire_timeout,
                d.db_connect_timeout,
                d.db_statement_timeout
            ),
            (s(10), s(10), s(30))
        );
        assert_eq!(
            (
                d.db_lock_timeout,
                d.db_idle_in_transaction_timeout,
                d.db_tcp_keepalive
            ),
            (s(10), s(60), s(10))
        );
        assert_eq!(d.answer_bound(), s(35));
        let short = Db::try_parse_from(["x", "--database-url", "h", "--db-statement-timeout", "2"])
            .expect("parses")
            .database;
        assert_eq!(short.answer_bound(), Duration::from_millis(2500));
        let off = Db::try_parse_from([
            "x",
            "--database-url",
            "postgres://h/db",
            "--db-statement-timeout",
            "0",
            "--db-tcp-keepalive",
            "0.5",
        ])
        .expect("parses")
        .database;
        assert_eq!(off.db_statement_timeout, Duration::ZERO);
        assert_eq!(
            off.answer_bound(),
            s(35),
            "still bounded when the server's is off"
        );
        assert_eq!(off.db_tcp_keepalive, Duration::from_millis(500));
        for bad in ["-1", "soon"] {
            let err = Db::try_parse_from([
                "x",
                "--database-url",
                "postgres://h/db",
                "--db-lock-timeout",
                bad,
            ]);
            assert!(err.is_err(), "{bad:?} should be rejected");
        }
        assert!(
            Db::try_parse_from(["x", "--database-url", "h", "--db-acquire-timeout", "0"]).is_err(),
            "a pool that never waits is not a setting"
        );
    }

    #[test]
    fn seconds_accept_fractions_and_reject_nonsense() {
        assert_eq!(parse_seconds("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["", "abc", "0", "-1", "NaN", "inf", "1e9"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn defaults_are_the_specs() {
        let cli = Cli::try_parse_from(["x"]).expect("defaults parse");
        let s = cli.scheduler;
        assert_eq!(s.max_workers, 10);
        assert_eq!(s.misfire_grace_time, Duration::from_secs(300));
        assert!(s.coalesce);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn coalesce_takes_the_usual_spellings() {
        for (arg, want) in [
            ("false", false),
            ("0", false),
            ("no", false),
            ("true", true),
            ("1", true),
        ] {
            let cli = Cli::try_parse_from(["x", "--coalesce", arg]).expect("parses");
            assert_eq!(cli.scheduler.coalesce, want, "{arg}");
        }
        assert!(Cli::try_parse_from(["x", "--coalesce", "maybe"]).is_err());
    }

    #[test]
    fn heartbeat_must_fit_in_the_lease() {
        let cli = Cli::try_parse_from(["x", "--lease-ttl", "10", "--heartbeat-interval", "6"])
            .expect("parses");
        let err = cli
            .scheduler
            .validate()
            .expect_err("6s heartbeats cannot keep a 10s lease");
        assert!(err.contains("SCHEDULER_HEARTBEAT_INTERVAL"), "{err}");
    }

    #[test]
    fn retention_must_outlast_the_misfire_grace() {
        let cli = Cli::try_parse_from(["x"]).expect("parses");
        assert_eq!(
            cli.scheduler.run_retention_days, None,
            "every run is kept by default"
        );
        let cli = Cli::try_parse_from(["x", "--run-retention-days", "30"]).expect("parses");
        assert_eq!(cli.scheduler.run_retention_days, Some(30));
        assert!(cli.scheduler.validate().is_ok());
        let cli = Cli::try_parse_from([
            "x",
            "--run-retention-days",
            "2",
            "--misfire-grace-time",
            "172800",
        ])
        .expect("parses");
        let err = cli
            .scheduler
            .validate()
            .expect_err("grace as long as retention");
        assert!(err.contains("SCHEDULER_RUN_RETENTION_DAYS"), "{err}");
        assert!(Cli::try_parse_from(["x", "--run-retention-days", "0"]).is_err());
    }

    #[test]
    fn a_database_url_with_several_hosts_or_session_attributes_is_refused_saying_what_to_do() {
        for ok in [
            "postgres://u:p@db.internal:5432/autoloader",
            "postgres://u:p@db.internal/autoloader?sslmode=require&target_session_attrs=any",
            "postgres:///autoloader?host=/run/postgresql",
        ] {
            assert_eq!(parse_database_url(ok).as_deref(), Ok(ok));
        }
        for (bad, says) in [
            (
                "postgres://u:secret@h1:5432,h2:5432/autoloader",
                "several hosts",
            ),
            (
                "postgres://u:secret@db/autoloader?host=h1,h2",
                "several hosts",
            ),
            (
                "postgres://u:secret@db/autoloader?target_session_attrs=read-write",
                "target_session_attrs=read-write",
            ),
        ] {
            let err = parse_database_url(bad).expect_err(bad);
            assert!(err.contains(says), "{err}");
            assert!(err.contains("docs/DEPLOYMENT.md"), "{err}");
            assert!(
                !err.contains("secret"),
                "the password is never repeated: {err}"
            );
        }
    }
}
