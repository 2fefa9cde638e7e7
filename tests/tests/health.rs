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

#[sqlx::test(migrator = "autoloader::db::MIGRATOR")]
async fn metrics_ask_for_their_token_when_one_is_set(pool: PgPool) {
    let state = autoloader_api::AppState::new(pool.clone(), Some(autoloader_tests::ADMIN_TOKEN))
        .with_metrics_token(Some("scrape-me"));
    let api = TestApi::spawn_with_state(state).await;
    let scrape = |token: Option<&'static str>| {
        let mut req = api.client.get(api.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    for token in [None, Some("wrong"), Some(autoloader_tests::ADMIN_TOKEN)] {
        let res = scrape(token).await.expect("GET /metrics");
        assert_eq!(res.status(), 401, "{token:?}");
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert_eq!(ctype, "application/problem+json");
        let body = res.text().await.expect("body");
        assert!(!body.contains("autoloader_queue_depth"), "{body}");
    }
    let res = scrape(Some("scrape-me")).await.expect("GET /metrics");
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .expect("body")
        .contains("autoloader_queue_depth"));

    // Unset, /metrics answers whoever reaches it, as before.
    let open = TestApi::spawn(pool).await;
    let res = open
        .client
        .get(open.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200);
}

/// `/docs` is served from the binary: the page and its script and style come from this server,
/// nothing names another origin, and the Content-Security-Policy forbids loading from one.
#[sqlx::test(migrator = "autoloader::db::MIGRATOR")]
async fn docs_load_nothing_from_another_origin(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let mut assets = Vec::new();
    for (path, kind) in [
        ("/docs", "text/html"),
        ("/docs/docs.js", "text/javascript"),
        ("/docs/docs.css", "text/css"),
    ] {
        let res = api.client.get(api.url(path)).send().await.expect("GET");
        assert_eq!(res.status(), 200, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        let body = res.text().await.expect("body");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} names another origin"
        );
        assets.push(body);
    }
    assert!(assets[0].contains(r#"src="/docs/docs.js""#));
    assert!(assets[1].contains(r#"fetch("/openapi.json")"#));
}
