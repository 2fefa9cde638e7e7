//! The HTTP client of tenants' S3 sources. A tenant's endpoint is hostile input, so its client,
//! unlike `object_store`'s default one:
//!
//! * **follows no redirect**: a `3xx` answer fails the request (`object_store` reports its status)
//!   instead of sending the worker to whatever `Location` names, an internal address included;
//! * **checks every address it connects to**: names are resolved by [`PinnedResolver`], which
//!   checks the addresses against the operator's allowlist ([`EgressPolicy::check_resolved`])
//!   and hands the connector exactly those it checked, so the connection goes where the check
//!   looked, whatever the name resolves to a moment later (DNS rebinding). A refusal is not
//!   retried. An IP-literal endpoint is never resolved: the allowlist checked the literal
//!   itself before the run;
//! * **never shows an error response's body**: of a non-2xx answer only the status and the S3
//!   error code (`<Code>`, a short identifier) reach `object_store`, and so the run's error; at
//!   most [`ERROR_BODY_PEEK`] bytes of the body are read to find the code;
//! * **ignores the worker's `HTTP(S)_PROXY` variables** for a custom endpoint: the allowlist is
//!   enforced by the worker connecting directly (with AWS itself, the proxy variables still
//!   apply).
//!
//! The operator's own clients (the warehouse) keep `object_store`'s defaults.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use autoloader::ingestions::egress::{Allowed, EgressPolicy};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService,
};
use object_store::{ClientConfigKey, ClientOptions};

/// Bytes of an error response's body read to find its S3 error code; the rest is dropped unread.
pub const ERROR_BODY_PEEK: usize = 16 << 10;

/// `object_store`'s defaults, which sources keep.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves a host name to its addresses.
pub type Lookup = Arc<dyn Fn(String) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> + Send + Sync>;

/// The system resolver (`getaddrinfo`, through tokio).
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        }
        .boxed()
    })
}

/// The client factory `object_store` builds a source's S3 client with (see the module's
/// documentation).
#[derive(Clone)]
pub struct SourceConnector {
    policy: EgressPolicy,
    how: Allowed,
    lookup: Lookup,
}

impl std::fmt::Debug for SourceConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConnector")
            .field("how", &self.how)
            .finish_non_exhaustive()
    }
}

impl SourceConnector {
    /// For an endpoint the policy allowed `how` (see [`EgressPolicy::check`]).
    pub fn new(policy: EgressPolicy, how: Allowed) -> SourceConnector {
        SourceConnector::with_lookup(policy, how, system_lookup())
    }

    /// The same, resolving names with `lookup`.
    pub fn with_lookup(policy: EgressPolicy, how: Allowed, lookup: Lookup) -> SourceConnector {
        SourceConnector {
            policy,
            how,
            lookup,
        }
    }

    /// The `reqwest` client: no redirects, names resolved through [`PinnedResolver`].
    pub fn client(&self, options: &ClientOptions) -> reqwest::Result<reqwest::Client> {
        let flag = |key| options.get_config_value(&key).as_deref() == Some("true");
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("autoloader/", env!("CARGO_PKG_VERSION")))
            .https_only(!flag(ClientConfigKey::AllowHttp))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .dns_resolver(Arc::new(PinnedResolver {
                policy: self.policy.clone(),
                how: self.how,
                lookup: self.lookup.clone(),
            }));
        if flag(ClientConfigKey::Http1Only) {
            b = b.http1_only();
        }
        if flag(ClientConfigKey::Http2Only) {
            b = b.http2_prior_knowledge();
        }
        if self.how != Allowed::Aws {
            b = b.no_proxy();
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

/// The allowlist refused the addresses a name resolved to.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// Resolves a name, checks its addresses against the policy, and returns exactly those: the
/// connection is made to an address that was checked.
struct PinnedResolver {
    policy: EgressPolicy,
    how: Allowed,
    lookup: Lookup,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let (policy, how, lookup) = (self.policy.clone(), self.how, self.lookup.clone());
        Box::pin(async move {
            let addrs = lookup(host.clone()).await?;
            if addrs.is_empty() {
                return Err(Box::new(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} resolves to no address"),
                )) as BoxError);
            }
            policy
                .check_resolved(how, &addrs)
                .map_err(|m| Box::new(Refused(format!("{host}: {m}"))) as BoxError)?;
            // Port 0: the connector puts the URL's port in.
            let pinned: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(pinned)
        })
    }
}

/// `reqwest`, with error responses' bodies replaced by their S3 error code and a refused address
/// made a final (not retried) error.
#[derive(Debug)]
struct SourceService {
    client: reqwest::Client,
}

#[async_trait]
impl HttpService for SourceService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let res = match HttpService::call(&self.client, req).await {
            Ok(res) => res,
            Err(e) => return Err(refused(e)),
        };
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

/// `e`, or, when the allowlist refused the address, a final error saying so (a connect error
/// would be retried for minutes).
fn refused(e: HttpError) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return HttpError::new(HttpErrorKind::Unknown, Refused(r.0.clone()));
        }
        source = s.source();
    }
    e
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

    fn lookup_to(ip: &'static str) -> Lookup {
        Arc::new(move |_host| async move { Ok(vec![ip.parse().expect("ip")]) }.boxed())
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
    async fn a_name_resolving_inside_is_refused_at_connect_and_not_retried() {
        let (port, hits) = server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
        let policy = EgressPolicy::parse(&["*.s3.test"]).expect("policy");
        let how = policy.check(Some("https://eu.s3.test")).expect("allowed");
        // The name passed the check before the run; at connect time it answers 127.0.0.1.
        let connector = SourceConnector::with_lookup(policy, how, lookup_to("127.0.0.1"));
        let s = store(&format!("https://eu.s3.test:{port}"), connector);
        let started = std::time::Instant::now();
        let e = s
            .get(&Path::from("k.json"))
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("eu.s3.test: s3_endpoint resolves to 127.0.0.1"),
            "{e}"
        );
        assert!(!e.contains("retries"), "not retried: {e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_connection_goes_to_the_address_that_was_checked() {
        let (port, hits) = server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".into()).await;
        let policy = EgressPolicy::parse(&["*.s3.test", "127.0.0.1/32"]).expect("policy");
        let how = policy.check(Some("https://eu.s3.test")).expect("allowed");
        let connector = SourceConnector::with_lookup(policy, how, lookup_to("127.0.0.1"));
        let client = connector
            .client(&ClientOptions::new().with_allow_http(true))
            .expect("client");
        let res = client
            .get(format!("http://eu.s3.test:{port}/"))
            .send()
            .await
            .expect("reaches the listed address");
        assert_eq!(res.status(), 200);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
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
        let policy = EgressPolicy::parse(&["127.0.0.0/8"]).expect("policy");
        let url = format!("http://127.0.0.1:{port}");
        let how = policy.check(Some(&url)).expect("allowed");
        let s = store(&url, SourceConnector::new(policy.clone(), how));
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
        let s = store(&url, SourceConnector::new(policy, how));
        let e = s
            .get(&Path::from("k.json"))
            .await
            .expect_err("307")
            .to_string();
        assert!(e.contains("307"), "{e}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
