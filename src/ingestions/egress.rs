//! Where a tenant's S3 endpoint may point: the operator's allowlist
//! (`AUTOLOADER_S3_ENDPOINT_ALLOWLIST`). A tenant's endpoint is hostile input: without a policy a
//! worker would send signed requests to any host, port and path it can reach (loopback admin
//! ports, the cloud metadata service at 169.254.169.254).
//!
//! * An ingestion without `s3_endpoint` uses AWS: always allowed.
//! * Any other endpoint must match an entry: `host`, `host:port`, `*.suffix` (any host under
//!   it, any port), or a CIDR network for IP literals (`10.0.0.0/8`, `127.0.0.1/32`, `::1/128`).
//!   With no entries, no custom endpoint is allowed.
//! * It is checked when an ingestion is written (422 naming `options.s3_endpoint`) and again by
//!   the worker before each run, on the addresses the name resolves to then: a name matched by a
//!   `*.suffix` entry may not resolve to a loopback, private, link-local or otherwise internal
//!   address unless a CIDR entry lists that address. A DNS answer can change after that check,
//!   so the worker's S3 client for a source resolves each name itself, checks the addresses with
//!   [`EgressPolicy::check_resolved`] and connects only to those (its `ingest::http`).

use std::net::IpAddr;

/// An endpoint as a URL with nothing but a scheme, a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// Lower-case host name, or an IP literal.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/]`; anything more (user info, a path, a query) is refused.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("s3_endpoint must be an http:// or https:// URL".into());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\']) {
            return Err(
                "s3_endpoint must be a scheme, a host and an optional port, nothing more".into(),
            );
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']').ok_or("s3_endpoint: unclosed '['")?;
                (addr.to_owned(), after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            },
        };
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("s3_endpoint: the port must be a number from 1 to 65535")?,
        };
        let host = host.to_ascii_lowercase();
        let valid = host.parse::<IpAddr>().is_ok()
            || (!host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        if !valid {
            return Err(format!(
                "s3_endpoint: '{host}' is not a host name or address"
            ));
        }
        Ok(Endpoint { https, host, port })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Host { name: String, port: Option<u16> },
    Suffix(String),
    Net { base: IpAddr, prefix: u8 },
}

/// The operator's allowlist of S3 endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    entries: Vec<Entry>,
}

/// How an allowed endpoint was allowed, for the check at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// No custom endpoint: AWS.
    Aws,
    /// Named by the operator (a host entry, or an address in a listed network).
    Listed,
    /// Under a `*.suffix` entry: its addresses must be public, or listed.
    BySuffix,
}

fn in_net(addr: IpAddr, base: IpAddr, prefix: u8) -> bool {
    match (addr, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast, documentation and the
/// like: addresses a tenant's endpoint has no business reaching unless the operator lists them.
pub fn is_internal(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

impl EgressPolicy {
    /// Parses the allowlist's entries (each trimmed; empty ones are skipped).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<EgressPolicy, String> {
        let mut out = Vec::new();
        for raw in entries {
            let e = raw.as_ref().trim().to_ascii_lowercase();
            if e.is_empty() {
                continue;
            }
            let bad = || {
                format!("AUTOLOADER_S3_ENDPOINT_ALLOWLIST: '{e}' is not host[:port], *.suffix or a CIDR network")
            };
            if let Some((addr, prefix)) = e.split_once('/') {
                let base: IpAddr = addr.parse().map_err(|_| bad())?;
                let max = if base.is_ipv4() { 32 } else { 128 };
                let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max).ok_or_else(bad)?;
                out.push(Entry::Net { base, prefix });
            } else if let Some(suffix) = e.strip_prefix("*.") {
                Endpoint::parse(&format!("https://{suffix}")).map_err(|_| bad())?;
                out.push(Entry::Suffix(suffix.to_owned()));
            } else {
                let probe = Endpoint::parse(&format!("https://{e}")).map_err(|_| bad())?;
                let has_port = if e.starts_with('[') {
                    e.contains("]:")
                } else {
                    e.contains(':')
                };
                out.push(Entry::Host {
                    name: probe.host,
                    port: has_port.then_some(probe.port),
                });
            }
        }
        Ok(EgressPolicy { entries: out })
    }

    /// Whether a tenant may use `endpoint` (`None`: AWS). The message names the rule broken.
    pub fn check(&self, endpoint: Option<&str>) -> Result<Allowed, String> {
        let Some(url) = endpoint else {
            return Ok(Allowed::Aws);
        };
        let ep = Endpoint::parse(url)?;
        for entry in &self.entries {
            match entry {
                Entry::Host { name, port }
                    if *name == ep.host && port.is_none_or(|p| p == ep.port) =>
                {
                    return Ok(Allowed::Listed)
                }
                Entry::Net { base, prefix }
                    if ep.ip().is_some_and(|a| in_net(a, *base, *prefix)) =>
                {
                    return Ok(Allowed::Listed)
                }
                Entry::Suffix(s) if ep.ip().is_none() && ep.host.ends_with(&format!(".{s}")) => {
                    if !ep.https {
                        return Err(format!(
                            "s3_endpoint: plain http only to endpoints the allowlist names; \
                             {} is allowed by '*.{s}' for https only",
                            ep.host
                        ));
                    }
                    return Ok(Allowed::BySuffix);
                }
                _ => {}
            }
        }
        Err(format!(
            "s3_endpoint {}:{} is not in the operator's allowlist (AUTOLOADER_S3_ENDPOINT_ALLOWLIST)",
            ep.host, ep.port
        ))
    }

    /// Checks the addresses an endpoint allowed `how` resolves to now, before a run connects.
    pub fn check_resolved(&self, how: Allowed, addrs: &[IpAddr]) -> Result<(), String> {
        if how != Allowed::BySuffix {
            return Ok(());
        }
        let listed = |a: IpAddr| {
            self.entries
                .iter()
                .any(|e| matches!(e, Entry::Net { base, prefix } if in_net(a, *base, *prefix)))
        };
        match addrs.iter().find(|a| is_internal(**a) && !listed(**a)) {
            Some(a) => Err(format!(
                "s3_endpoint resolves to {a}, an internal address the allowlist does not list"
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> EgressPolicy {
        EgressPolicy::parse(entries).expect("allowlist")
    }

    #[test]
    fn no_allowlist_allows_aws_and_nothing_else() {
        let p = EgressPolicy::default();
        assert_eq!(p.check(None), Ok(Allowed::Aws));
        for url in [
            "http://169.254.169.254",
            "http://127.0.0.1:8080",
            "https://minio.example.com",
            "http://[::1]:9000",
        ] {
            assert!(p.check(Some(url)).is_err(), "{url}");
        }
    }

    #[test]
    fn entries_match_hosts_ports_suffixes_and_networks() {
        let p = policy(&[
            "minio.internal:9000",
            "*.s3.example.com",
            "127.0.0.1/32",
            "fd00::/8",
        ]);
        assert_eq!(
            p.check(Some("http://minio.internal:9000")),
            Ok(Allowed::Listed)
        );
        assert!(
            p.check(Some("http://minio.internal:9001")).is_err(),
            "another port"
        );
        assert_eq!(
            p.check(Some("https://eu.s3.example.com/")),
            Ok(Allowed::BySuffix)
        );
        assert!(
            p.check(Some("http://eu.s3.example.com")).is_err(),
            "http only when named"
        );
        assert!(p.check(Some("https://s3.example.com.evil.net")).is_err());
        assert!(
            p.check(Some("https://evil-s3.example.com")).is_err(),
            "not under the suffix"
        );
        assert_eq!(p.check(Some("http://127.0.0.1:54340")), Ok(Allowed::Listed));
        assert!(p.check(Some("http://127.0.0.2:54340")).is_err());
        assert_eq!(p.check(Some("http://[fd12::1]:9000")), Ok(Allowed::Listed));
        assert!(p.check(Some("http://169.254.169.254")).is_err());
    }

    #[test]
    fn an_endpoint_is_a_scheme_a_host_and_a_port_and_nothing_more() {
        let p = policy(&["minio.internal"]);
        for url in [
            "http://minio.internal@169.254.169.254",
            "http://minio.internal/latest/meta-data",
            "http://minio.internal?x=1",
            "http://minio.internal:0",
            "http://minio.internal:99999",
            "ftp://minio.internal",
            "http://",
            "http://minio..internal",
        ] {
            assert!(p.check(Some(url)).is_err(), "{url}");
        }
    }

    #[test]
    fn a_suffix_name_may_not_resolve_to_an_internal_address_unless_listed() {
        let p = policy(&["*.s3.example.com", "10.1.0.0/16"]);
        let how = p.check(Some("https://eu.s3.example.com")).expect("allowed");
        let public: IpAddr = "52.95.1.1".parse().expect("ip");
        assert_eq!(p.check_resolved(how, &[public]), Ok(()));
        for internal in [
            "127.0.0.1",
            "169.254.169.254",
            "10.0.0.5",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "100.64.0.1",
        ] {
            let a: IpAddr = internal.parse().expect("ip");
            assert!(p.check_resolved(how, &[public, a]).is_err(), "{internal}");
        }
        let listed: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(p.check_resolved(how, &[listed]), Ok(()));
    }

    #[test]
    fn bad_entries_are_refused_at_start() {
        for bad in ["10.0.0.0/33", "not a host", "*.", "1.2.3.4/x"] {
            assert!(EgressPolicy::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
