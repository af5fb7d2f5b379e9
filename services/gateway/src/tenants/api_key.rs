//! API keys: `mk_` and 40 random base62 characters. Only a key's SHA-256 is
//! stored, so a leaked database does not leak working keys.

use std::fmt;

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

const PREFIX: &str = "mk_";
const RANDOM_CHARS: usize = 40;

/// A well-formed API key; whether it is known is the database's to say.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A new random key.
    pub fn generate() -> Self {
        let random: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(RANDOM_CHARS)
            .map(char::from)
            .collect();
        Self(format!("{PREFIX}{random}"))
    }

    /// The key in `raw`, if it has the shape of one.
    pub fn parse(raw: &str) -> Option<Self> {
        let random = raw.strip_prefix(PREFIX)?;
        let well_formed =
            random.len() == RANDOM_CHARS && random.bytes().all(|b| b.is_ascii_alphanumeric());
        well_formed.then(|| Self(raw.to_owned()))
    }

    /// The SHA-256 of the key, hex-encoded: what the database keeps.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The key itself, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back() {
        let key = ApiKey::generate();
        assert_eq!(key.expose().len(), 43);
        assert_eq!(ApiKey::parse(key.expose()), Some(key));
    }

    #[test]
    fn two_generated_keys_differ() {
        assert_ne!(ApiKey::generate(), ApiKey::generate());
    }

    #[test]
    fn malformed_keys_are_not_keys() {
        let random = "a".repeat(40);
        for raw in [
            String::new(),
            random.clone(),
            format!("sk_{random}"),
            format!("mk_{}", &random[1..]),
            format!("mk_{random}a"),
            format!("mk_{}-", &random[1..]),
            format!("mk_{}é", &random[2..]),
        ] {
            assert_eq!(ApiKey::parse(&raw), None, "{raw:?}");
        }
    }

    #[test]
    fn the_hash_is_the_hex_sha256_of_the_key() {
        let key = ApiKey::parse(&format!("mk_{}", "a".repeat(40))).unwrap();
        let hash = key.hash();
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(hash, hex::encode(Sha256::digest(key.expose())));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = ApiKey::generate();
        assert!(!format!("{key:?}").contains(&key.expose()[3..]));
    }
}
