//! The run state machine is enforced by PostgreSQL: a change of `runs.status` that is not a move
//! of the machine is refused whoever makes it, and the moves PostgreSQL allows are exactly the
//! ones `RunStatus::can_become` names (which the engine's functions make).

use autoloader::runs::RunStatus;
use autoloader_tests::{scheduled_ingestion, tenant};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// Inserts a manual run already in `status`, its other columns coherent with it.
async fn run_in(pool: &PgPool, ingestion_id: Uuid, status: RunStatus) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into runs (id, ingestion_id, tenant_id, triggered_by, status, attempt, worker_id,
                           lease_expires_at, started_at, finished_at, reason)
         select $1, i.id, i.tenant_id, 'manual', $3, 1,
                case when $3 = 'RUNNING' then 'w' end,
                case when $3 = 'RUNNING' then now() + interval '1 hour' end,
                case when $3 <> 'QUEUED' then now() end,
                case when $3 not in ('QUEUED', 'RUNNING') then now() end,
                'set up by the test'
         from ingestions i where i.id = $2",
    )
    .bind(id)
    .bind(ingestion_id)
    .bind(status.as_str())
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("insert a {status} run: {e}"));
    id
}

/// Moves the run to `to` with its other columns made coherent, as a person at psql might;
/// returns the constraint that refused the update, if one did.
async fn move_to(pool: &PgPool, run_id: Uuid, to: RunStatus) -> Result<(), String> {
    sqlx::query(
        "update runs set status = $2,
                worker_id = case when $2 = 'RUNNING' then 'w' else worker_id end,
                lease_expires_at = case when $2 = 'RUNNING' then now() + interval '1 hour' end,
                started_at = case when $2 = 'QUEUED' then null else coalesce(started_at, now()) end,
                finished_at = case when $2 in ('QUEUED', 'RUNNING') then null else now() end
         where id = $1",
    )
    .bind(run_id)
    .bind(to.as_str())
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(|e| match &e {
        sqlx::Error::Database(d) => d.constraint().unwrap_or("(none)").to_owned(),
        _ => panic!("update failed outside PostgreSQL's checks: {e}"),
    })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn postgres_allows_exactly_the_moves_of_the_state_machine(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let ingestion = scheduled_ingestion(&pool, t, "events", "0 0 1 1 *", json!({})).await;
    let mut allowed = Vec::new();
    for from in RunStatus::ALL {
        for to in RunStatus::ALL.into_iter().filter(|to| *to != from) {
            let run = run_in(&pool, ingestion, from).await;
            let result = move_to(&pool, run, to).await;
            if from.can_become(to) {
                assert_eq!(result, Ok(()), "{from} -> {to} is a move of the machine");
                allowed.push(format!("{from}->{to}"));
            } else {
                assert_eq!(
                    result,
                    Err("runs_status_transition".to_owned()),
                    "{from} -> {to} must be refused by the transition trigger"
                );
                let status: String = sqlx::query_scalar("select status from runs where id = $1")
                    .bind(run)
                    .fetch_one(&pool)
                    .await
                    .expect("read back");
                assert_eq!(
                    status,
                    from.as_str(),
                    "a refused move leaves the run as it was"
                );
            }
            sqlx::query("delete from runs where id = $1")
                .bind(run)
                .execute(&pool)
                .await
                .expect("clean up");
        }
    }
    assert_eq!(
        allowed,
        [
            "QUEUED->RUNNING",
            "QUEUED->CANCELLED",
            "RUNNING->QUEUED",
            "RUNNING->SUCCESS",
            "RUNNING->FAILED",
        ],
        "the machine has these five moves and no others"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_finished_run_cannot_be_revived_at_a_psql_prompt(pool: PgPool) {
    let t = tenant(&pool, "acme").await;
    let ingestion = scheduled_ingestion(&pool, t, "events", "0 0 1 1 *", json!({})).await;
    let done = run_in(&pool, ingestion, RunStatus::Success).await;
    // The tempting shortcut: requeue a finished run by hand instead of triggering a new one.
    let err = sqlx::query("update runs set status = 'QUEUED', finished_at = null where id = $1")
        .bind(done)
        .execute(&pool)
        .await
        .expect_err("a SUCCESS run stays SUCCESS");
    let msg = err.to_string();
    assert!(msg.contains("cannot go from SUCCESS to QUEUED"), "{msg}");
    // Changing anything but the status stays possible (a heartbeat, a note).
    sqlx::query("update runs set reason = 'checked by hand' where id = $1")
        .bind(done)
        .execute(&pool)
        .await
        .expect("other columns may change");
}
