//! Test harness: serves the real API router on an ephemeral port against a test's own database.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use sqlx::PgPool;

/// A running API on 127.0.0.1:<random port>, stopped when dropped.
pub struct TestApi {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl TestApi {
    pub async fn spawn(pool: PgPool) -> TestApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let app = autoloader_api::app(autoloader_api::AppState { pool });
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        TestApi {
            addr,
            client: reqwest::Client::new(),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}
