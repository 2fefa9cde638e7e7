//! S3 client settings, the same way for the warehouse (the operator's, from the worker's `AWS_*`
//! environment) and for sources (a tenant's, from its ingestion's options only, unless the
//! operator lets sources use the worker's credentials).

use std::fmt;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use serde::{Deserialize, Serialize};

use super::http::SourceConnector;

/// Region used when neither the settings nor the environment name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// `(bucket, key)` of an `s3://` or `s3a://` location; `None` for any other scheme. The bucket
/// may be empty (`s3:///x`): callers report that.
pub fn split_s3(location: &str) -> Option<(&str, &str)> {
    let rest = location
        .strip_prefix("s3://")
        .or_else(|| location.strip_prefix("s3a://"))?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// S3 settings given explicitly instead of through `AWS_*` variables. Each one set overrides the
/// environment; unset ones come from it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Settings {
    /// Endpoint URL of an S3-compatible server, e.g. `http://127.0.0.1:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// `true`: `https://bucket.endpoint/key`; `false`: `https://endpoint/bucket/key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_hosted_style_request: Option<bool>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field(
                "virtual_hosted_style_request",
                &self.virtual_hosted_style_request,
            )
            .finish()
    }
}

/// An ingestion's `s3_*` options as client settings (sources and the warehouse build their S3
/// clients the same way).
impl From<&autoloader::ingestions::options::S3Options> for S3Settings {
    fn from(o: &autoloader::ingestions::options::S3Options) -> S3Settings {
        S3Settings {
            endpoint: o.endpoint.clone(),
            region: o.region.clone(),
            access_key_id: o.access_key_id.clone(),
            secret_access_key: o.secret_access_key.clone(),
            allow_http: o.allow_http,
            virtual_hosted_style_request: o.path_style.map(|p| !p),
        }
    }
}

impl S3Settings {
    /// The client builder for `bucket`: the environment, these settings over it, then the
    /// defaults (region, path-style requests with a custom endpoint). For the warehouse, which
    /// is the operator's.
    pub fn builder(&self, bucket: &str) -> AmazonS3Builder {
        let env_style = std::env::var_os("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_some();
        self.apply(
            AmazonS3Builder::from_env().with_bucket_name(bucket),
            env_style,
        )
    }

    /// The client builder for a tenant's source in `bucket`: its own settings and nothing of
    /// the worker's. The worker's `AWS_*` environment (keys, role, endpoint) is used only when
    /// the operator allows it (`worker_credentials`, `AUTOLOADER_ALLOW_WORKER_CREDENTIALS`);
    /// otherwise a source without keys of its own is read anonymously, never with the worker's
    /// keys or instance role.
    ///
    /// Its requests go through `connector` (see [`super::http`]): no redirects, addresses
    /// checked at connect time, no error body shown.
    pub fn source_builder(
        &self,
        bucket: &str,
        worker_credentials: bool,
        connector: SourceConnector,
    ) -> AmazonS3Builder {
        if worker_credentials {
            return self.builder(bucket).with_http_connector(connector);
        }
        let b = self.apply(AmazonS3Builder::new().with_bucket_name(bucket), false);
        let own_keys = self.access_key_id.is_some() && self.secret_access_key.is_some();
        b.with_skip_signature(!own_keys)
            .with_http_connector(connector)
    }

    fn apply(&self, mut b: AmazonS3Builder, env_style: bool) -> AmazonS3Builder {
        if let Some(v) = &self.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &self.region {
            b = b.with_region(v);
        }
        if let Some(v) = &self.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &self.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = self.allow_http {
            b = b.with_allow_http(v);
        }
        if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
            b = b.with_region(DEFAULT_REGION);
        }
        let has_endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint).is_some()
            || b.get_config_value(&AmazonS3ConfigKey::S3Endpoint).is_some();
        match self.virtual_hosted_style_request {
            Some(v) => b = b.with_virtual_hosted_style_request(v),
            None if has_endpoint && !env_style => {
                b = b.with_virtual_hosted_style_request(false);
            }
            None => {}
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws() -> SourceConnector {
        SourceConnector::new(
            autoloader::ingestions::egress::EgressPolicy::default(),
            autoloader::ingestions::egress::Allowed::Aws,
        )
    }

    #[test]
    fn a_source_never_borrows_the_workers_credentials_unless_allowed() {
        // The worker's own keys, as a deployment gives them (no other test of this binary
        // reads them).
        std::env::set_var("AWS_ACCESS_KEY_ID", "WORKER");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "worker-secret");
        let tenant = S3Settings {
            endpoint: Some("https://s3.tenant.example".into()),
            ..S3Settings::default()
        };
        // No keys of its own: anonymous, whatever the worker's environment holds.
        let b = tenant.source_builder("bucket", false, aws());
        assert_eq!(b.get_config_value(&AmazonS3ConfigKey::AccessKeyId), None);
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::SkipSignature)
                .as_deref(),
            Some("true")
        );
        // Its own keys: those, signed.
        let own = S3Settings {
            access_key_id: Some("TENANT".into()),
            secret_access_key: Some("tenant-secret".into()),
            ..tenant.clone()
        };
        let b = own.source_builder("bucket", false, aws());
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::AccessKeyId)
                .as_deref(),
            Some("TENANT")
        );
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::SkipSignature)
                .as_deref(),
            Some("false")
        );
        // Allowed by the operator, or for the warehouse (the operator's): the environment.
        for b in [
            tenant.source_builder("bucket", true, aws()),
            S3Settings::default().builder("wh"),
        ] {
            assert_eq!(
                b.get_config_value(&AmazonS3ConfigKey::AccessKeyId)
                    .as_deref(),
                Some("WORKER")
            );
        }
    }

    #[test]
    fn s3_locations_split_into_bucket_and_key() {
        assert_eq!(
            split_s3("s3://bucket/wh/ns/t/metadata/00000.metadata.json"),
            Some(("bucket", "wh/ns/t/metadata/00000.metadata.json"))
        );
        assert_eq!(split_s3("s3a://bucket/k"), Some(("bucket", "k")));
        assert_eq!(split_s3("s3://bucket"), Some(("bucket", "")));
        assert_eq!(split_s3("s3:///k"), Some(("", "k")));
        assert_eq!(split_s3("file:///tmp/wh"), None);
        assert_eq!(split_s3("/tmp/wh"), None);
    }
}
