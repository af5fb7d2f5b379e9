//! Personal data that must outlive its own erasure in a form that reveals
//! nothing: an erased address is kept only as a keyed hash, so that its
//! opt-out still holds when the address is seen again (a re-import, a
//! campaign) while the address itself cannot be read back.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The key of [`AddressHasher`] from configuration (`privacy.suppression_key`).
#[derive(Clone, Deserialize)]
pub struct PrivacySettings {
    /// Per-deployment secret; every service of a deployment must share it,
    /// and it must never change (hashes made under another key match
    /// nothing). Set it from the environment.
    pub suppression_key: String,
}

impl std::fmt::Debug for PrivacySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacySettings")
            .field("suppression_key", &"<redacted>")
            .finish()
    }
}

/// The `privacy.suppression_key` of the common defaults: local development only.
pub const DEVELOPMENT_SUPPRESSION_KEY: &str = "muster-local-development-suppression-key";

/// Hashes e-mail addresses with HMAC-SHA256 under the deployment's key.
#[derive(Clone)]
pub struct AddressHasher {
    key: Arc<[u8]>,
}

impl AddressHasher {
    /// A hasher over `settings.suppression_key`.
    pub fn new(settings: &PrivacySettings) -> Self {
        if settings.suppression_key == DEVELOPMENT_SUPPRESSION_KEY {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "privacy.suppression_key is the development default: erased addresses \
                     can be confirmed by guessing; set MUSTER_PRIVACY__SUPPRESSION_KEY"
                )
            });
        }
        Self {
            key: settings.suppression_key.as_bytes().into(),
        }
    }

    /// The lower-case hex HMAC-SHA256 of the trimmed, lower-cased `address`:
    /// 64 characters and never an `@`, so it cannot be taken for an address
    /// where both are stored in one column.
    pub fn hash(&self, address: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(address.trim().to_lowercase().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(key: &str) -> AddressHasher {
        AddressHasher::new(&PrivacySettings {
            suppression_key: key.into(),
        })
    }

    #[test]
    fn the_hash_ignores_case_and_surrounding_spaces() {
        let hasher = hasher("k");
        assert_eq!(
            hasher.hash(" Jean.Dupont@Example.ORG "),
            hasher.hash("jean.dupont@example.org")
        );
    }

    #[test]
    fn the_hash_is_hex_without_the_address() {
        let hash = hasher("k").hash("jean@example.org");
        assert_eq!(hash.len(), 64);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase())
        );
        assert!(!hash.contains("jean"));
    }

    #[test]
    fn another_key_gives_another_hash() {
        assert_ne!(
            hasher("one").hash("jean@example.org"),
            hasher("two").hash("jean@example.org")
        );
    }

    #[test]
    fn the_hash_is_the_documented_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hasher("Jefe").hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
