//! Secrets at rest: every secret option of an ingestion (`s3_secret_access_key`, anything
//! [`is_secret_option`] names) is stored sealed with AES-256-GCM under the operator's
//! `AUTOLOADER_SECRET_KEY`, as
//!
//! ```text
//! enc:v1:<key id>:<base64 of 12-byte nonce ‖ ciphertext ‖ 16-byte tag>
//! ```
//!
//! The key id is the first 8 hex digits of the key's SHA-256, so a psql reader sees which key
//! sealed a value and a rotation knows what is left to do. The tenant's id and the option's name
//! are the additional authenticated data: a sealed value copied to another tenant's ingestion (or
//! to another option) does not open. The API seals; only the worker that runs the ingestion opens,
//! right before it builds the S3 client. `AUTOLOADER_SECRET_KEY_PREVIOUS` still opens values
//! sealed before a rotation; `autoloader-api rotate-secrets` seals every stored secret again under
//! the current key (values stored in plaintext before this existed included).

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ingestions::definition::is_secret_option;

const PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 12;

/// One key: AES-256-GCM and its id.
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn from_base64(what: &str, encoded: &str) -> Result<Key, String> {
        let bytes = B64.decode(encoded.trim()).map_err(|_| {
            format!("{what} must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")
        })?;
        if bytes.len() != 32 {
            return Err(format!(
                "{what} must be 32 bytes in base64 (it decodes to {} bytes)",
                bytes.len()
            ));
        }
        let digest = Sha256::digest(&bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| format!("{what}: bad key"))?;
        Ok(Key { id, cipher })
    }
}

/// The operator's keys: the current one seals, the current and the previous one open.
pub struct SecretKeys {
    current: Key,
    previous: Option<Key>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys")
            .field("current", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|k| &k.id))
            .finish()
    }
}

/// Why a stored secret did not open. Never carries the secret or its ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the stored {option} was sealed with key {key_id}, which is neither AUTOLOADER_SECRET_KEY nor AUTOLOADER_SECRET_KEY_PREVIOUS on this process")]
    UnknownKey { option: String, key_id: String },
    #[error("the stored {option} does not open with its key: it was altered, or belongs to another tenant or option")]
    Forged { option: String },
    #[error("the stored {option} is sealed but this process has no AUTOLOADER_SECRET_KEY")]
    NoKey { option: String },
}

/// What opening a stored value found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Sealed under the current key.
    Current(String),
    /// Sealed under the previous key: rotation has yet to reach it.
    Previous(String),
    /// Stored before sealing existed (or written at psql): in the clear.
    Plaintext(String),
}

impl Opened {
    pub fn into_plaintext(self) -> String {
        match self {
            Opened::Current(s) | Opened::Previous(s) | Opened::Plaintext(s) => s,
        }
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

fn aad(tenant: Uuid, option: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + option.len());
    aad.extend_from_slice(tenant.as_bytes());
    aad.extend_from_slice(option.as_bytes());
    aad
}

impl SecretKeys {
    /// The keys from their base64 forms; each must decode to exactly 32 bytes.
    pub fn new(current: &str, previous: Option<&str>) -> Result<SecretKeys, String> {
        let current = Key::from_base64("AUTOLOADER_SECRET_KEY", current)?;
        let previous = previous
            .filter(|p| !p.trim().is_empty())
            .map(|p| Key::from_base64("AUTOLOADER_SECRET_KEY_PREVIOUS", p))
            .transpose()?;
        Ok(SecretKeys { current, previous })
    }

    /// The current key's id.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext`, the value of `option` of one of `tenant`'s ingestions.
    pub fn seal(&self, tenant: Uuid, option: &str, plaintext: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad(tenant, option),
                },
            )
            .expect("AES-GCM encrypts any message under 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.current.id, B64.encode(bytes))
    }

    /// Opens a stored value of `option` of `tenant`'s ingestion.
    pub fn open(&self, tenant: Uuid, option: &str, stored: &str) -> Result<Opened, OpenError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(Opened::Plaintext(stored.to_owned()));
        };
        let forged = || OpenError::Forged {
            option: option.to_owned(),
        };
        let (key_id, body) = rest.split_once(':').ok_or_else(forged)?;
        let (key, current) = if key_id == self.current.id {
            (&self.current, true)
        } else if let Some(p) = self.previous.as_ref().filter(|p| p.id == key_id) {
            (p, false)
        } else {
            return Err(OpenError::UnknownKey {
                option: option.to_owned(),
                key_id: key_id.chars().take(16).collect(),
            });
        };
        let bytes = B64.decode(body).map_err(|_| forged())?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(forged());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad(tenant, option),
                },
            )
            .map_err(|_| forged())?;
        let plain = String::from_utf8(plain).map_err(|_| forged())?;
        Ok(if current {
            Opened::Current(plain)
        } else {
            Opened::Previous(plain)
        })
    }
}

/// Seals every secret option of `options` that is not sealed yet (a value the client sent).
/// Without keys, a secret to seal is refused, naming the option: this server stores no secret
/// in the clear.
pub fn seal_options(
    keys: Option<&SecretKeys>,
    tenant: Uuid,
    options: &mut Value,
) -> Result<(), (String, String)> {
    let Value::Object(map) = options else {
        return Ok(());
    };
    for (k, v) in map.iter_mut() {
        let Value::String(s) = v else { continue };
        if !is_secret_option(k) || is_sealed(s) {
            continue;
        }
        let Some(keys) = keys else {
            return Err((
                format!("options.{k}"),
                format!(
                    "{k} cannot be stored: this server has no AUTOLOADER_SECRET_KEY to encrypt \
                     secrets with"
                ),
            ));
        };
        *s = keys.seal(tenant, k, s);
    }
    Ok(())
}

/// What [`reseal_options`] did to one ingestion's options.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Values sealed under the previous key, now under the current one.
    pub rotated: usize,
    /// Values stored in the clear, now sealed.
    pub sealed: usize,
}

/// Seals every secret option of `options` under the current key: those under the previous key
/// and those in the clear. A value that does not open is an error (nothing is changed).
pub fn reseal_options(
    keys: &SecretKeys,
    tenant: Uuid,
    options: &mut Value,
) -> Result<Resealed, OpenError> {
    let mut done = Resealed::default();
    let Value::Object(map) = options else {
        return Ok(done);
    };
    let mut updates = Vec::new();
    for (k, v) in map.iter() {
        let Value::String(s) = v else { continue };
        if !is_secret_option(k) {
            continue;
        }
        match keys.open(tenant, k, s)? {
            Opened::Current(_) => {}
            Opened::Previous(p) => {
                done.rotated += 1;
                updates.push((k.clone(), keys.seal(tenant, k, &p)));
            }
            Opened::Plaintext(p) => {
                done.sealed += 1;
                updates.push((k.clone(), keys.seal(tenant, k, &p)));
            }
        }
    }
    for (k, v) in updates {
        map.insert(k, Value::String(v));
    }
    Ok(done)
}

/// Opens the stored value of one secret option for a run: sealed values with the keys, values
/// in the clear as they are. `None` keys open only values in the clear.
pub fn open_secret(
    keys: Option<&SecretKeys>,
    tenant: Uuid,
    option: &str,
    stored: &str,
) -> Result<Opened, OpenError> {
    match keys {
        Some(keys) => keys.open(tenant, option, stored),
        None if is_sealed(stored) => Err(OpenError::NoKey {
            option: option.to_owned(),
        }),
        None => Ok(Opened::Plaintext(stored.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";
    const OPT: &str = "s3_secret_access_key";

    #[test]
    fn a_sealed_secret_opens_only_for_its_tenant_and_option() {
        let keys = SecretKeys::new(K1, None).expect("key");
        let tenant = Uuid::now_v7();
        let sealed = keys.seal(tenant, OPT, "hunter2");
        assert!(
            sealed.starts_with(&format!("enc:v1:{}:", keys.key_id())),
            "{sealed}"
        );
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            keys.open(tenant, OPT, &sealed),
            Ok(Opened::Current("hunter2".into()))
        );
        assert_ne!(
            sealed,
            keys.seal(tenant, OPT, "hunter2"),
            "a fresh nonce each time"
        );
        assert!(matches!(
            keys.open(Uuid::now_v7(), OPT, &sealed),
            Err(OpenError::Forged { .. })
        ));
        assert!(matches!(
            keys.open(tenant, "other_secret", &sealed),
            Err(OpenError::Forged { .. })
        ));
        let mut tampered = sealed.clone();
        let last = tampered.pop().expect("non-empty");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.open(tenant, OPT, &tampered).is_err());
        for junk in ["enc:v1:", "enc:v1:zz", "enc:v1:00000000:!!!"] {
            assert!(keys.open(tenant, OPT, junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn rotation_opens_the_previous_key_and_reseals_under_the_current() {
        let tenant = Uuid::now_v7();
        let old = SecretKeys::new(K1, None).expect("key");
        let mut options = json!({
            OPT: old.seal(tenant, OPT, "old-secret"),
            "db_password": "in-the-clear",
            "glob": "*.json",
        });
        let new = SecretKeys::new(K2, Some(K1)).expect("keys");
        assert_eq!(
            new.open(tenant, OPT, options[OPT].as_str().expect("a string")),
            Ok(Opened::Previous("old-secret".into()))
        );
        let done = reseal_options(&new, tenant, &mut options).expect("reseal");
        assert_eq!(
            done,
            Resealed {
                rotated: 1,
                sealed: 1
            }
        );
        assert_eq!(options["glob"], "*.json", "not a secret: untouched");
        let only_new = SecretKeys::new(K2, None).expect("key");
        for (k, want) in [(OPT, "old-secret"), ("db_password", "in-the-clear")] {
            assert_eq!(
                only_new.open(tenant, k, options[k].as_str().expect("a string")),
                Ok(Opened::Current(want.into()))
            );
        }
        assert_eq!(
            reseal_options(&new, tenant, &mut options).expect("again"),
            Resealed::default(),
            "nothing left to do"
        );
        assert!(matches!(
            old.open(tenant, OPT, options[OPT].as_str().expect("a string")),
            Err(OpenError::UnknownKey { .. })
        ));
    }

    #[test]
    fn without_a_key_no_secret_is_stored() {
        let mut options = json!({OPT: "hunter2"});
        let (field, message) =
            seal_options(None, Uuid::now_v7(), &mut options).expect_err("refused");
        assert_eq!(field, "options.s3_secret_access_key");
        assert!(message.contains("AUTOLOADER_SECRET_KEY"));
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        for bad in ["", "not base64!", "AAAA", &B64.encode([0u8; 31])] {
            assert!(SecretKeys::new(bad, None).is_err(), "{bad:?}");
        }
        assert!(SecretKeys::new(K1, Some("short")).is_err());
        assert!(
            SecretKeys::new(K1, Some("")).is_ok(),
            "an empty previous key is no key"
        );
        assert!(!format!("{:?}", SecretKeys::new(K1, None).expect("key")).contains(K1));
    }
}
