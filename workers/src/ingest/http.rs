//! The HTTP client of tenants' S3 sources. A tenant's endpoint is hostile input, so its client,
//! unlike `object_store`'s default one:
//!
//! * **follows no redirect**: a `3xx` answer fails the request (`object_store` reports its status)
//!   instead of sending the worker to whatever `Location` names, an internal address included;
//! * **never shows an error response's body**: of a non-2xx answer only the status and the S3
//!   error code (`<Code>`, a short identifier) reach `object_store`, and so the run's error; at
//!   most [`ERROR_BODY_PEEK`] bytes of the body are read to find the code.
//!
//! The operator's own clients (the warehouse) keep `object_store`'s defaults.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use object_store::{ClientConfigKey, ClientOptions};

/// Bytes of an error response's body read to find its S3 error code; the rest is dropped unread.
pub const ERROR_BODY_PEEK: usize = 16 << 10;

/// `object_store`'s defaults, which sources keep.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The client factory `object_store` builds a source's S3 client with (see the module's
/// documentation).
#[derive(Debug, Clone, Default)]
pub struct SourceConnector {}

impl SourceConnector {
    pub fn new() -> SourceConnector {
        SourceConnector {}
    }

    /// The `reqwest` client: no redirects.
    pub fn client(&self, options: &ClientOptions) -> reqwest::Result<reqwest::Client> {
        let flag = |key| options.get_config_value(&key).as_deref() == Some("true");
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("autoloader/", env!("CARGO_PKG_VERSION")))
            .https_only(!flag(ClientConfigKey::AllowHttp))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT);
        if flag(ClientConfigKey::Http1Only) {
            b = b.http1_only();
        }
        if flag(ClientConfigKey::Http2Only) {
            b = b.http2_prior_knowledge();
        }
        b.build()
    }
}

impl HttpConnector for SourceConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = self
            .client(options)
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(SourceService { client }))
    }
}

/// `reqwest`, with error responses' bodies replaced by their S3 error code.
#[derive(Debug)]
struct SourceService {
    client: reqwest::Client,
}

#[async_trait]
impl HttpService for SourceService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let res = HttpService::call(&self.client, req).await?;
        let status = res.status();
        if status.is_success() || status.is_redirection() || status.is_informational() {
            return Ok(res);
        }
        let (mut parts, body) = res.into_parts();
        let text = match s3_error_code(body).await {
            Some(code) => format!("S3 error code {code}"),
            None => "no S3 error code (the response body is not shown)".to_owned(),
        };
        parts.headers.remove("content-length");
        parts.headers.remove("content-type");
        Ok(HttpResponse::from_parts(
            parts,
            HttpResponseBody::from(text),
        ))
    }
}

/// The `<Code>` of an S3 error document in the first [`ERROR_BODY_PEEK`] bytes of `body`, if it
/// is a plain identifier (letters, digits, `.`, `-`, `_`; at most 64).
async fn s3_error_code(body: HttpResponseBody) -> Option<String> {
    let mut stream = body.bytes_stream();
    let mut head = Vec::new();
    while head.len() < ERROR_BODY_PEEK {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            _ => break,
        }
    }
    head.truncate(ERROR_BODY_PEEK);
    let text = String::from_utf8_lossy(&head);
    let start = text.find("<Code>")? + "<Code>".len();
    let code = &text[start..start + text[start..].find("</Code>")?];
    let plain = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    plain.then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A listener on 127.0.0.1 that answers every request with `answer` and counts connections.
    async fn server(answer: String) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let answer: Arc<str> = answer.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (port, hits)
    }

    fn store(endpoint: &str, connector: SourceConnector) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name("bucket")
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_skip_signature(true)
            .with_http_connector(connector)
            .build()
            .expect("store")
    }

    #[tokio::test]
    async fn an_error_body_shows_its_code_only_and_redirects_are_not_followed() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>\
                    <Message>MARKER-4f2a</Message><RequestId>MARKER-77</RequestId></Error>";
        let (port, _) = server(format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let url = format!("http://127.0.0.1:{port}");
        let s = store(&url, SourceConnector::new());
        let e = s
            .get(&Path::from("k.json"))
            .await
            .expect_err("403")
            .to_string();
        assert!(e.contains("403") && e.contains("AccessDenied"), "{e}");
        assert!(!e.contains("MARKER"), "{e}");

        let (elsewhere, hits) = server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
        let (port, _) = server(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{elsewhere}/x\r\n\
             content-length: 0\r\n\r\n"
        ))
        .await;
        let url = format!("http://127.0.0.1:{port}");
        let s = store(&url, SourceConnector::new());
        let e = s
            .get(&Path::from("k.json"))
            .await
            .expect_err("307")
            .to_string();
        assert!(e.contains("307"), "{e}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
