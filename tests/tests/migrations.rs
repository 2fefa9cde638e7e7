//! Upgrades: a database as an earlier release left it, migrated forward, keeps its tenants,
//! tables and local sources working.

use sqlx::PgPool;
use uuid::Uuid;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

/// Applies the migrations up to `last` (a version), as that release would have.
async fn migrate_to(pool: &PgPool, after: i64, last: i64) {
    for m in MIGRATOR
        .iter()
        .filter(|m| m.version > after && m.version <= last)
    {
        sqlx::raw_sql(&m.sql)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", m.version));
    }
}

const BEFORE_TENANT_NAMESPACES: i64 = 20261130000013;
const TENANT_NAMESPACES: i64 = 20261130000014;

#[sqlx::test(migrations = false)]
async fn tenants_and_their_tables_move_into_namespaces_on_upgrade(pool: PgPool) {
    migrate_to(&pool, 0, BEFORE_TENANT_NAMESPACES).await;
    let acme = Uuid::now_v7();
    let same_name = Uuid::now_v7();
    let digits = Uuid::now_v7();
    for (id, name) in [
        (acme, "Acme Corp"),
        (same_name, "acme-corp"),
        (digits, "42 labs"),
    ] {
        sqlx::query("insert into tenants (id, name) values ($1, $2)")
            .bind(id)
            .bind(name)
            .execute(&pool)
            .await
            .expect("tenant");
    }
    // Acme's ingestion is the older one into the shared name: the table stays Acme's.
    for (tenant, source_type, source, table, age) in [
        (
            acme,
            "local",
            "file:///data/acme/",
            "analytics.events",
            "2 days",
        ),
        (
            same_name,
            "s3",
            "s3://bucket-one/x/",
            "analytics.events",
            "1 day",
        ),
        (digits, "local", "file:///data/labs/", "raw.labs", "1 hour"),
    ] {
        sqlx::query(
            "insert into ingestions (id, tenant_id, name, source_type, source_path, format_type,
                                     destination_table, created_at)
             values ($1, $2, $3, $4, $5, 'json', $3, now() - $6::interval)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(table)
        .bind(source_type)
        .bind(source)
        .bind(age)
        .execute(&pool)
        .await
        .expect("ingestion");
    }
    sqlx::query(
        "insert into iceberg_catalog.iceberg_tables
             (catalog_name, table_namespace, table_name, metadata_location)
         values ('autoloader', 'analytics', 'events', 'file:///wh/analytics/events/metadata/1.json'),
                ('autoloader', 'raw', 'labs', 'file:///wh/raw/labs/metadata/1.json')",
    )
    .execute(&pool)
    .await
    .expect("catalog rows");

    migrate_to(&pool, BEFORE_TENANT_NAMESPACES, TENANT_NAMESPACES).await;

    let tenants: Vec<(String, String, Vec<String>)> =
        sqlx::query_as("select name, namespace, file_roots from tenants order by name")
            .fetch_all(&pool)
            .await
            .expect("tenants");
    let ns = |name: &str| {
        tenants
            .iter()
            .find(|t| t.0 == name)
            .map(|t| t.1.clone())
            .expect("tenant")
    };
    assert_eq!(ns("Acme Corp"), "acme_corp");
    assert!(
        ns("acme-corp").starts_with("acme_corp_") && ns("acme-corp") != "acme_corp",
        "a name folding to a taken namespace gets a suffix: {tenants:?}"
    );
    assert_eq!(ns("42 labs"), "t_42_labs");
    let roots = |name: &str| tenants.iter().find(|t| t.0 == name).map(|t| t.2.clone());
    assert_eq!(roots("Acme Corp"), Some(vec!["/data/acme/".to_owned()]));
    assert_eq!(
        roots("acme-corp"),
        Some(vec![]),
        "no local sources, no roots"
    );

    let tables: Vec<(String, String, String)> = sqlx::query_as(
        "select table_namespace, table_name, metadata_location from iceberg_catalog.iceberg_tables
         order by table_namespace",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    assert_eq!(
        tables,
        [
            (
                "acme_corp.analytics".to_owned(),
                "events".to_owned(),
                "file:///wh/analytics/events/metadata/1.json".to_owned()
            ),
            (
                "t_42_labs.raw".to_owned(),
                "labs".to_owned(),
                "file:///wh/raw/labs/metadata/1.json".to_owned()
            ),
        ],
        "each table under its owner's namespace, its files where they were"
    );
    let namespaces: Vec<String> = sqlx::query_scalar(
        "select namespace from iceberg_catalog.iceberg_namespace_properties order by namespace",
    )
    .fetch_all(&pool)
    .await
    .expect("namespaces");
    for want in [
        "acme_corp",
        "acme_corp.analytics",
        "t_42_labs",
        "t_42_labs.raw",
    ] {
        assert!(
            namespaces.iter().any(|n| n == want),
            "{want} in {namespaces:?}"
        );
    }

    // The rest of the migrations apply on top, as `make run` would.
    migrate_to(&pool, TENANT_NAMESPACES, i64::MAX).await;
}
