//! The OpenAPI 3.1 document, generated from the handlers' annotations and the request and
//! response types, served at `/openapi.json`, with an interactive page at `/docs`.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::{admin, audit, dry_runs, files, ingestions, metrics, runs, schedules, stats, tables};

#[derive(OpenApi)]
#[openapi(
    info(title = "Autoloader", description = "Loads files from object storage into Apache Iceberg tables on schedules."),
    paths(
        ingestions::create, ingestions::list, ingestions::read, ingestions::replace, ingestions::patch,
        ingestions::remove, ingestions::schedule_info, ingestions::enable, ingestions::disable,
        dry_runs::dry_run_saved, dry_runs::dry_run_unsaved,
        runs::trigger, runs::history, runs::read, runs::cancel,
        stats::stats,
        files::list, files::retry,
        tables::table, tables::maintain,
        schedules::preview,
        admin::create_tenant, admin::list_tenants, admin::get_tenant, admin::patch_tenant,
        admin::create_token, admin::list_tokens, admin::revoke_token,
        metrics::metrics,
        audit::ingestion_events, audit::admin_audit,
    ),
    components(schemas(crate::model::RunStatusName, crate::rules::CronExpression, crate::stats::StatsWindow)),
    modifiers(&Security),
    tags(
        (name = "ingestions", description = "What to load, from where, into which table"),
        (name = "schedules", description = "When ingestions run"),
        (name = "runs", description = "Run history, statistics and manual triggers"),
        (name = "files", description = "An ingestion's ledger of loaded and rejected files, and retrying rejected ones"),
        (name = "tables", description = "An ingestion's Iceberg table: its facts, and maintenance (compaction, snapshot expiry, orphan removal)"),
        (name = "admin", description = "Tenants and tokens (admin token)"),
        (name = "audit", description = "Who changed what, when, through which request"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme("admin", bearer());
        components.add_security_scheme("metrics", bearer());
        document_problems(openapi);
        document_links(openapi);
    }
}

/// What a response's ids lead to: the operations a client (or a stateful fuzzer) can call next
/// with them. Given explicitly, so nothing is guessed from `Location` headers.
fn document_links(openapi: &mut utoipa::openapi::OpenApi) {
    const INGESTION: &str = "/api/v1/ingestions/{id}";
    let ingestion_ops: &[(&str, &str, &str)] = &[
        ("GetIngestion", INGESTION, "get"),
        ("ReplaceIngestion", INGESTION, "put"),
        ("PatchIngestion", INGESTION, "patch"),
        ("DeleteIngestion", INGESTION, "delete"),
        ("GetSchedule", "/api/v1/ingestions/{id}/schedule", "get"),
        (
            "EnableSchedule",
            "/api/v1/ingestions/{id}/schedule/enable",
            "post",
        ),
        (
            "DisableSchedule",
            "/api/v1/ingestions/{id}/schedule/disable",
            "post",
        ),
        ("TriggerRun", "/api/v1/ingestions/{id}/run", "post"),
        ("ListRuns", "/api/v1/ingestions/{id}/runs", "get"),
        ("GetStats", "/api/v1/ingestions/{id}/stats", "get"),
        ("ListFiles", "/api/v1/ingestions/{id}/files", "get"),
        ("RetryFiles", "/api/v1/ingestions/{id}/files/retry", "post"),
        ("GetTable", "/api/v1/ingestions/{id}/table", "get"),
        (
            "QueueMaintenance",
            "/api/v1/ingestions/{id}/maintenance",
            "post",
        ),
        ("ListEvents", "/api/v1/ingestions/{id}/events", "get"),
    ];
    let run_ops: &[(&str, &str, &str)] = &[
        ("GetRun", "/api/v1/runs/{run_id}", "get"),
        ("CancelRun", "/api/v1/runs/{run_id}/cancel", "post"),
    ];
    const TENANT: &str = "/api/v1/admin/tenants/{tenant_id}";
    const TOKENS: &str = "/api/v1/admin/tenants/{tenant_id}/tokens";
    let tenant_ops: &[(&str, &str, &str)] = &[
        ("GetTenant", TENANT, "get"),
        ("PatchTenant", TENANT, "patch"),
        ("CreateToken", TOKENS, "post"),
        ("ListTokens", TOKENS, "get"),
    ];
    let token_ops: &[(&str, &str, &str)] =
        &[("RevokeToken", "/api/v1/admin/tokens/{token_id}", "delete")];
    let ingestion = ("id", "$response.body#/id", ingestion_ops);
    let run = ("run_id", "$response.body#/id", run_ops);
    let tenant = ("tenant_id", "$response.body#/tenant_id", tenant_ops);
    let token = ("token_id", "$response.body#/token_id", token_ops);
    let sources: &[(&str, &str, &str, &[_])] = &[
        ("/api/v1/ingestions", "post", "201", &[ingestion]),
        (INGESTION, "put", "200", &[ingestion]),
        (INGESTION, "patch", "200", &[ingestion]),
        ("/api/v1/ingestions/{id}/run", "post", "202", &[run]),
        ("/api/v1/admin/tenants", "post", "201", &[tenant, token]),
        (
            "/api/v1/admin/tenants/{tenant_id}/tokens",
            "post",
            "201",
            &[token],
        ),
    ];
    for (path, method, status, targets) in sources {
        let Some(response) = openapi
            .paths
            .paths
            .get_mut(*path)
            .and_then(|item| operation(item, method))
            .and_then(|op| op.responses.responses.get_mut(*status))
        else {
            continue;
        };
        let RefOr::T(response) = response else {
            continue;
        };
        for (param, value, ops) in *targets {
            for (name, target, target_method) in *ops {
                let pointer = format!("#/paths/{}/{target_method}", target.replace('/', "~1"));
                let link = LinkBuilder::new()
                    .operation_ref(pointer)
                    .parameter(*param, *value)
                    .build();
                response.links.insert((*name).to_owned(), RefOr::T(link));
            }
        }
    }
}

fn operation<'a>(
    item: &'a mut utoipa::openapi::PathItem,
    method: &str,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    match method {
        "get" => item.get.as_mut(),
        "put" => item.put.as_mut(),
        "post" => item.post.as_mut(),
        "patch" => item.patch.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

/// Every error is a problem document: mark error responses `application/problem+json`, and list
/// the errors any operation can answer with (so a client, or a fuzzer, knows to expect them).
fn document_problems(openapi: &mut utoipa::openapi::OpenApi) {
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    PROBLEM,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for item in openapi.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let secured = op.security.is_some();
            let has_body = op.request_body.is_some();
            let responses = &mut op.responses.responses;
            for (code, response) in responses.iter_mut() {
                if let (true, RefOr::T(r)) =
                    (code.starts_with('4') || code.starts_with('5'), response)
                {
                    if let Some(content) = r.content.shift_remove("application/json") {
                        r.content.insert(PROBLEM.to_owned(), content);
                    }
                }
            }
            let mut add = |code: &str, description: &str| {
                responses
                    .entry(code.to_owned())
                    .or_insert_with(|| problem(description));
            };
            add(
                "400",
                "Malformed request: a path or query parameter, or the body's JSON",
            );
            if secured {
                add("401", "Missing, unknown or revoked token");
                add(
                    "429",
                    "Too many requests from this token (AUTOLOADER_TOKEN_RATE_LIMIT), or a tenant's \
                     rate quota; Retry-After gives the seconds to wait",
                );
            }
            if has_body {
                add("413", "Body larger than the API accepts");
                add("415", "Body is not application/json");
            }
            add("422", "Invalid request: `errors` names each field at fault");
            add("500", "The server failed; the body carries no internals");
            add(
                "503",
                "The database cannot be reached just now (a failover, a restart); Retry-After \
                 gives the seconds to wait",
            );
        }
    }
}

const PROBLEM: &str = "application/problem+json";

/// The document as served. utoipa 5 writes a link's fields in snake case (`operation_ref`); the
/// OpenAPI names are camel case, so they are renamed here.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let paths = doc.get_mut("paths").and_then(|p| p.as_object_mut());
    let operations = paths
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    let responses = operations
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    let links = responses
        .filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut()))
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in [
            ("operation_ref", "operationRef"),
            ("operation_id", "operationId"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.to_owned(), v);
            }
        }
    }
    doc
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(document()) }))
        .route("/docs", get(docs))
        .route("/docs/docs.js", get(docs_js))
        .route("/docs/docs.css", get(docs_css))
}

/// The page at `/docs` and its two assets, compiled into the binary: nothing is loaded from
/// another origin, and the Content-Security-Policy says so to the browser.
const DOCS_HTML: &str = include_str!("../assets/docs.html");
const DOCS_JS: &str = include_str!("../assets/docs.js");
const DOCS_CSS: &str = include_str!("../assets/docs.css");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

async fn docs() -> impl IntoResponse {
    asset("text/html; charset=utf-8", DOCS_HTML)
}

async fn docs_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", DOCS_JS)
}

async fn docs_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", DOCS_CSS)
}
