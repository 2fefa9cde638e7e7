//! The OpenAPI document states the rules a user notices: the bounds of `page`, `page_size` and
//! `count`, the closed `options` object with each key's type, the patterns of names, times and
//! cron expressions, and the links from a created resource to what can be done with it.

use autoloader_tests::TestApi;
use serde_json::Value;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &autoloader::db::MIGRATOR;

async fn document(api: &TestApi) -> Value {
    api.client
        .get(api.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json")
}

/// `schema` with `$ref`s followed, and a nullable `oneOf` (`null` or a schema) unwrapped.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(alternatives) = schema["oneOf"].as_array() {
        let non_null: Vec<&Value> = alternatives
            .iter()
            .filter(|s| s["type"] != "null")
            .collect();
        if let [only] = non_null[..] {
            return resolve(doc, only);
        }
    }
    schema
}

fn property<'a>(doc: &'a Value, component: &str, field: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][component]["properties"][field];
    assert!(schema.is_object(), "{component}.{field} is not documented");
    resolve(doc, schema)
}

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| resolve(doc, &p["schema"]))
        .unwrap_or_else(|| panic!("{method} {path} does not document {name}"))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn query_parameters_state_their_bounds(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let doc = document(&api).await;
    for (path, method) in [
        ("/api/v1/ingestions", "get"),
        ("/api/v1/ingestions/{id}/runs", "get"),
    ] {
        let page = parameter(&doc, path, method, "page");
        assert_eq!(page["minimum"], 1, "{path} page");
        let size = parameter(&doc, path, method, "page_size");
        assert_eq!(
            (&size["minimum"], &size["maximum"]),
            (&1.into(), &200.into())
        );
        let status = parameter(&doc, path, method, "status");
        assert!(status["enum"].is_array(), "{path} status is an enum");
    }
    let files = "/api/v1/ingestions/{id}/files";
    let limit = parameter(&doc, files, "get", "limit");
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&1.into(), &1000.into())
    );
    let status = parameter(&doc, files, "get", "status");
    assert_eq!(status["enum"], serde_json::json!(["loaded", "rejected"]));
    assert!(parameter(&doc, files, "get", "cursor")["pattern"].is_string());
    let count = parameter(&doc, "/api/v1/ingestions/{id}/schedule", "get", "count");
    assert_eq!(
        (&count["minimum"], &count["maximum"]),
        (&1.into(), &100.into())
    );
    let count = property(&doc, "SchedulePreviewRequest", "count");
    assert_eq!(
        (&count["minimum"], &count["maximum"]),
        (&1.into(), &100.into())
    );
    let id = parameter(&doc, "/api/v1/ingestions/{id}", "get", "id");
    assert_eq!(id["format"], "uuid");
    // The document's run statuses are the state machine's, every one of them.
    let statuses = parameter(&doc, "/api/v1/ingestions/{id}/runs", "get", "status");
    let listed: Vec<&str> = statuses["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let machine: Vec<&str> = autoloader::runs::RunStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(listed, machine);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn options_is_a_closed_object_of_known_keys(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let doc = document(&api).await;
    for component in ["IngestionCreate", "IngestionPatch"] {
        let options = property(&doc, component, "options");
        assert_eq!(
            options["additionalProperties"], false,
            "{component}.options"
        );
        let mut documented: Vec<&str> = options["properties"]
            .as_object()
            .expect("options lists its keys")
            .keys()
            .map(String::as_str)
            .collect();
        let mut known: Vec<&str> = autoloader::ingestions::options::OPTION_KEYS
            .iter()
            .map(|(k, _)| *k)
            .collect();
        documented.sort();
        known.sort();
        assert_eq!(documented, known);
        let files = resolve(&doc, &options["properties"]["max_files_per_run"]);
        assert_eq!(
            (&files["minimum"], &files["maximum"]),
            (&1.into(), &100_000.into())
        );
        let modes = |key: &str| resolve(&doc, &options["properties"][key])["enum"].clone();
        assert_eq!(
            modes("schema_evolution"),
            serde_json::json!(["add_new_columns", "rescue", "fail_on_new_columns", "none"])
        );
        assert_eq!(
            modes("on_error"),
            serde_json::json!(["abort", "skip_file", "skip_record"])
        );
        for key in ["schema_hints", "metadata_columns"] {
            let described = resolve(&doc, &options["properties"][key])["description"].as_str();
            assert!(
                described.is_some_and(|d| !d.is_empty()),
                "{key} is described"
            );
        }
        let delimiter = resolve(&doc, &options["properties"]["csv_delimiter"]);
        assert!(
            delimiter["pattern"].is_string(),
            "csv_delimiter is one character"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn strings_state_their_patterns(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let doc = document(&api).await;
    for (component, field) in [
        ("IngestionCreate", "name"),
        ("IngestionPatch", "name"),
        ("TenantCreate", "name"),
    ] {
        let name = property(&doc, component, field);
        let pattern = name["pattern"].as_str().expect("name pattern");
        assert!(
            pattern.contains(r"\u0000-\u001F"),
            "{component}.{field} refuses control characters: {pattern}"
        );
        assert_eq!(
            (&name["minLength"], &name["maxLength"]),
            (&1.into(), &200.into())
        );
    }
    let cron = &doc["components"]["schemas"]["CronExpression"];
    assert!(cron["pattern"].is_string(), "the cron syntax is documented");
    for field in ["schedule_time", "destination_table", "source_path"] {
        let schema = property(&doc, "IngestionCreate", field);
        assert!(schema["pattern"].is_string(), "{field} has a pattern");
    }
    // Every format the API accepts, and no other.
    for component in ["IngestionCreate", "IngestionPatch"] {
        let formats: Vec<&str> = property(&doc, component, "format_type")["enum"]
            .as_array()
            .expect("formats are an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(formats, ["json", "csv", "parquet", "avro"], "{component}");
        for f in &formats {
            autoloader::ingestions::definition::FormatType::parse(f).expect("accepted");
        }
    }
    let zones = property(&doc, "IngestionCreate", "schedule_timezone")["enum"]
        .as_array()
        .expect("zones are an enum");
    for zone in ["UTC", "Europe/Paris", "America/New_York"] {
        assert!(zones.iter().any(|z| z == zone), "{zone} is listed");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn created_resources_link_to_their_operations(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let doc = document(&api).await;
    let links = &doc["paths"]["/api/v1/ingestions"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["GetIngestion"]["parameters"]["id"],
        "$response.body#/id"
    );
    let links = &doc["paths"]["/api/v1/ingestions/{id}/run"]["post"]["responses"]["202"]["links"];
    assert_eq!(
        links["GetRun"]["parameters"]["run_id"],
        "$response.body#/id"
    );
    let links = &doc["paths"]["/api/v1/admin/tenants"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["CreateToken"]["parameters"]["tenant_id"],
        "$response.body#/tenant_id"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn files_and_rejections_are_documented(pool: PgPool) {
    let api = TestApi::spawn(pool).await;
    let doc = document(&api).await;
    for field in ["files_rejected", "records_rejected"] {
        assert_eq!(property(&doc, "RunResponse", field)["type"], "integer");
    }
    let records = property(&doc, "RunResponse", "rejected_records");
    assert_eq!(records["type"], "array");
    let record = resolve(&doc, &records["items"]);
    for field in ["file", "record", "column", "reason"] {
        assert!(record["properties"][field].is_object(), "record.{field}");
    }
    for field in [
        "path",
        "status",
        "size_bytes",
        "etag",
        "last_modified",
        "rows_loaded",
        "records_rejected",
        "run_id",
        "attempt",
        "snapshot_id",
        "error",
        "loaded_at",
    ] {
        property(&doc, "FileResponse", field);
    }
    property(&doc, "FilePage", "next_cursor");
    let paths = property(&doc, "RetryRequest", "paths");
    assert_eq!(
        (&paths["minItems"], &paths["maxItems"]),
        (&1.into(), &1000.into())
    );
    let path = resolve(&doc, &paths["items"]);
    assert_eq!(path["maxLength"], 4096);
    let retry = &doc["paths"]["/api/v1/ingestions/{id}/files/retry"]["post"];
    for code in ["200", "404", "422"] {
        assert!(retry["responses"][code].is_object(), "retry answers {code}");
    }
    assert!(retry["responses"]["422"]["content"]["application/problem+json"].is_object());
    let links = &doc["paths"]["/api/v1/ingestions"]["post"]["responses"]["201"]["links"];
    for link in ["ListFiles", "RetryFiles"] {
        assert_eq!(links[link]["parameters"]["id"], "$response.body#/id");
    }
}
