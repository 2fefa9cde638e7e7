//! The dashboard's script, style sheet and icon, compiled into the binary and served under a URL that
//! carries a hash of their content, so browsers may keep them for a year and still never run a
//! stale copy after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const JS: &str = include_str!("assets/app.js");
const CSS: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");

fn hashed(name: &str, ext: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}.{hex}.{ext}")
}

static JS_NAME: LazyLock<String> = LazyLock::new(|| hashed("app", "js", JS));
static CSS_NAME: LazyLock<String> = LazyLock::new(|| hashed("app", "css", CSS));
static ICON_NAME: LazyLock<String> = LazyLock::new(|| hashed("icon", "svg", ICON));

pub fn js_url() -> String {
    format!("/ui/assets/{}", *JS_NAME)
}

pub fn css_url() -> String {
    format!("/ui/assets/{}", *CSS_NAME)
}

pub fn icon_url() -> String {
    format!("/ui/assets/{}", *ICON_NAME)
}

/// `GET /ui/assets/{file}`: the current script or style sheet; any other name is 404.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, ctype) = if file == *JS_NAME {
        (JS, "text/javascript; charset=utf-8")
    } else if file == *CSS_NAME {
        (CSS, "text/css; charset=utf-8")
    } else if file == *ICON_NAME {
        (ICON, "image/svg+xml")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response()
}
