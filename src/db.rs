//! Database access shared by every process: the connection pool and the embedded migrations.
//!
//! The migrations in `migrations/` are compiled into the binaries, so a deployed
//! `autoloader-api` can bring any database up to date without the source tree.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

use crate::config::DatabaseConfig;

/// The schema, applied by `autoloader-api` at start (unless told not to) and by `make migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens a pool named after the process, so `pg_stat_activity` tells whose connection is whose.
/// Every connection carries the session settings of [`session_settings`], and the first one
/// must answer within `AUTOLOADER_DB_CONNECT_TIMEOUT`.
pub async fn connect(config: &DatabaseConfig, application_name: &str) -> Result<PgPool> {
    let options: PgConnectOptions = config.database_url.parse().map_err(Error::BadUrl)?;
    let options = options
        .application_name(application_name)
        .options(session_settings(config));
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_with(options);
    match tokio::time::timeout(config.db_connect_timeout, pool).await {
        Ok(pool) => pool.map_err(Error::Connect),
        Err(_) => Err(Error::Connect(unanswered(config.db_connect_timeout))),
    }
}

/// The session settings every connection starts with (as `-c` options in the startup packet,
/// so they hold from the first statement and survive `RESET ALL`): the statement, lock and
/// idle-in-transaction timeouts, and TCP keepalives on the server's side of the connection,
/// which is how a vanished client's session, and its locks, are let go.
///
/// sqlx 0.8 sets no keepalive on its own sockets (it offers no setting for it), so the client
/// side of a quiet connection is bounded by time instead: see [`answered`].
pub fn session_settings(config: &DatabaseConfig) -> Vec<(&'static str, String)> {
    let ms = |d: Duration| d.as_millis().to_string();
    let mut settings = vec![
        ("statement_timeout", ms(config.db_statement_timeout)),
        ("lock_timeout", ms(config.db_lock_timeout)),
        (
            "idle_in_transaction_session_timeout",
            ms(config.db_idle_in_transaction_timeout),
        ),
    ];
    if let Some(k) = Keepalive::of(config.db_tcp_keepalive) {
        settings.extend([
            ("tcp_keepalives_idle", k.idle.to_string()),
            ("tcp_keepalives_interval", k.interval.to_string()),
            ("tcp_keepalives_count", k.count.to_string()),
            ("tcp_user_timeout", (k.give_up() * 1000).to_string()),
        ]);
    }
    settings
}

/// `url` with [`session_settings`] added as `options[...]` parameters, for pools this crate
/// does not open itself (the Iceberg SQL catalog's).
pub fn url_with_session_settings(config: &DatabaseConfig) -> String {
    let url = &config.database_url;
    let mut out = url.clone();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in session_settings(config) {
        out.push_str(&format!("{sep}options%5B{k}%5D={v}"));
        sep = '&';
    }
    out
}

/// TCP keepalive in whole seconds, as PostgreSQL takes it: probes after `idle` seconds of
/// silence, every `interval` seconds, `count` of them unanswered end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: u64,
    pub interval: u64,
    pub count: u64,
}

impl Keepalive {
    /// The keepalive of `AUTOLOADER_DB_TCP_KEEPALIVE` (`None`: off): probes every third of the
    /// idle time, at least a second apart, three of them.
    pub fn of(idle: Duration) -> Option<Keepalive> {
        if idle.is_zero() {
            return None;
        }
        let idle = idle.as_secs_f64().ceil().max(1.0) as u64;
        Some(Keepalive {
            idle,
            interval: idle.div_ceil(3).max(1),
            count: 3,
        })
    }

    /// Seconds after which a silent peer is given up: the idle time and every probe.
    pub fn give_up(&self) -> u64 {
        self.idle + self.interval * self.count
    }
}

/// The future of [`answered`]'s work on the connection it lends.
pub type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// The error of a wait for the database that got no answer in `bound`.
pub fn unanswered(bound: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "PostgreSQL did not answer within {:.1}s",
            bound.as_secs_f64()
        ),
    ))
}

/// Whether `e` is a wait that got no answer ([`unanswered`]).
pub fn is_unanswered(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
        || matches!(e, sqlx::Error::PoolTimedOut)
}

/// Runs `work` on a connection of `pool` and waits at most `bound` (from now, the wait for the
/// connection included) for its answer. A connection whose statement got no answer in time is
/// closed, never handed back to the pool: a half-open TCP connection (the network went quiet
/// without a reset) would otherwise hang the next statement that took it, and the pool's own
/// check of a returned connection too. The pool opens a fresh one when it is next needed.
pub async fn answered<T, F>(pool: &PgPool, bound: Duration, work: F) -> Result<T, sqlx::Error>
where
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    let mut conn = tokio::time::timeout_at(deadline, pool.acquire())
        .await
        .map_err(|_| unanswered(bound))??;
    match tokio::time::timeout_at(deadline, work(&mut conn)).await {
        Ok(answer) => answer,
        Err(_) => {
            conn.close_on_drop();
            Err(unanswered(bound))
        }
    }
}

/// Applies every pending migration. Safe to run from several processes at once: sqlx holds an
/// advisory lock while it migrates.
///
/// Migrations may rightly run longer than `AUTOLOADER_DB_STATEMENT_TIMEOUT` (an index built on a
/// big table) and wait longer than `AUTOLOADER_DB_LOCK_TIMEOUT` (for another process migrating):
/// they run on a connection of their own with both lifted, closed afterwards.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(Error::Connect)?;
    conn.close_on_drop();
    sqlx::raw_sql("set statement_timeout = 0; set lock_timeout = 0")
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::Migrate(sqlx::migrate::MigrateError::Execute(e)))?;
    MIGRATOR.run(&mut *conn).await?;
    Ok(())
}

/// True when every migration this binary knows has been applied (for readiness checks).
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(pool)
            .await
            .or_else(|e| match &e {
                // No migrations table yet: nothing applied.
                sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => Ok(None),
                _ => Err(e),
            })?;
    Ok(applied.unwrap_or(0) >= latest)
}

/// Whether `e` says the database is away rather than that a statement is wrong: no connection to
/// be had, one that broke (its statement's fate unknown), or a server shutting down, starting, or
/// still a standby (read-only) while a failover completes. Work that failed so is worth trying
/// again once the database is back; a statement PostgreSQL refused is not.
pub fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => unavailable_code(d.code().as_deref()),
        _ => false,
    }
}

/// Whether a SQLSTATE says the database is away (see [`unavailable`]): 08, a connection
/// exception; 57P01–57P03, an admin or crash shutdown, or a server not accepting connections yet;
/// 25006, a read-only transaction (a standby not yet promoted).
pub fn unavailable_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "25006"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_unavailable_and_a_refused_statement_is_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(unavailable(&io));
        assert!(unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!unavailable(&sqlx::Error::RowNotFound));
        assert!(!unavailable(&sqlx::Error::Protocol("bad message".into())));
        for code in ["08006", "57P01", "25006"] {
            assert!(super::unavailable_code(Some(code)), "{code}");
        }
        for code in ["23505", "40001", "57014"] {
            assert!(!super::unavailable_code(Some(code)), "{code}");
        }
    }

    #[test]
    fn keepalive_probes_every_third_of_the_idle_time_three_times() {
        let k = Keepalive::of(Duration::from_secs(10)).expect("on");
        assert_eq!((k.idle, k.interval, k.count, k.give_up()), (10, 4, 3, 22));
        let k = Keepalive::of(Duration::from_millis(500)).expect("on");
        assert_eq!((k.idle, k.interval, k.give_up()), (1, 1, 4));
        assert_eq!(Keepalive::of(Duration::ZERO), None);
    }

    #[test]
    fn session_settings_reach_a_url_for_other_pools() {
        use clap::Parser;
        #[derive(Parser)]
        struct Db {
            #[command(flatten)]
            database: DatabaseConfig,
        }
        let c = Db::try_parse_from(["x", "--database-url", "postgres://u@h/db?sslmode=disable"])
            .expect("parse")
            .database;
        let url = url_with_session_settings(&c);
        let parsed: PgConnectOptions = url.parse().expect("a URL sqlx reads");
        let options = parsed.get_options().expect("options").to_owned();
        for want in [
            "-c statement_timeout=30000",
            "-c lock_timeout=10000",
            "-c idle_in_transaction_session_timeout=60000",
            "-c tcp_keepalives_idle=10",
            "-c tcp_user_timeout=22000",
        ] {
            assert!(options.contains(want), "{want} in {options}");
        }
    }
}
