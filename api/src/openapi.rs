//! The OpenAPI 3.1 document, generated from the handlers' annotations and the request and
//! response types, served at `/openapi.json`, with an interactive page at `/docs`.

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::{admin, ingestions, metrics, runs, schedules};

#[derive(OpenApi)]
#[openapi(
    info(title = "Autoloader", description = "Loads files from object storage into Apache Iceberg tables on schedules."),
    paths(
        ingestions::create, ingestions::list, ingestions::read, ingestions::replace, ingestions::patch,
        ingestions::remove, ingestions::schedule_info, ingestions::enable, ingestions::disable,
        runs::trigger, runs::history, runs::read, runs::cancel,
        schedules::preview,
        admin::create_tenant, admin::list_tenants, admin::create_token, admin::revoke_token,
        metrics::metrics,
    ),
    modifiers(&Security),
    tags(
        (name = "ingestions", description = "What to load, from where, into which table"),
        (name = "schedules", description = "When ingestions run"),
        (name = "runs", description = "Run history and manual triggers"),
        (name = "admin", description = "Tenants and tokens (admin token)"),
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
        document_problems(openapi);
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
            }
            if has_body {
                add("413", "Body larger than the API accepts");
                add("415", "Body is not application/json");
            }
            add("422", "Invalid request: `errors` names each field at fault");
            add("500", "The server failed; the body carries no internals");
        }
    }
}

const PROBLEM: &str = "application/problem+json";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/docs", get(docs))
}

async fn docs() -> impl IntoResponse {
    // The page loads its viewer from a CDN in the reader's browser; the server ships no assets.
    Html(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Autoloader API</title></head>
<body>
<script id="api-reference" data-url="/openapi.json"></script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
<noscript>The interactive reference needs JavaScript; the document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
</body></html>"#,
    )
}
