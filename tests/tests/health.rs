//! The operational endpoints, served by the real router over real HTTP.

use autoloader_tests::TestApi;
use sqlx::PgPool;

#[sqlx::test(migrator = "autoloader::db::MIGRATOR")]
async fn healthz_and_readyz_answer_when_the_schema_is_current(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let health = api
        .client
        .get(api.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
    let ready = api
        .client
        .get(api.url("/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(ready.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn readyz_refuses_until_migrations_are_applied(pool: PgPool) {
    let api = TestApi::spawn(pool.clone()).await;
    let health = api
        .client
        .get(api.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(
        health.status(),
        200,
        "liveness does not depend on the schema"
    );

    let ready = api
        .client
        .get(api.url("/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json body");
    assert_eq!(body["detail"], "database migrations are pending");

    autoloader::db::migrate(&pool).await.expect("migrate");
    let ready = api
        .client
        .get(api.url("/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(ready.status(), 200);
}
