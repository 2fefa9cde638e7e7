//! Database access shared by every process: the connection pool and the embedded migrations.
//!
//! The migrations in `migrations/` are compiled into the binaries, so a deployed
//! `autoloader-api` can bring any database up to date without the source tree.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

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
pub async fn connect(config: &DatabaseConfig, application_name: &str) -> Result<PgPool> {
    let options: PgConnectOptions = config.database_url.parse().map_err(Error::BadUrl)?;
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.application_name(application_name))
        .await
        .map_err(Error::Connect)
}

/// Applies every pending migration. Safe to run from several processes at once: sqlx holds an
/// advisory lock while it migrates.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
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
    use super::unavailable;

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
}
