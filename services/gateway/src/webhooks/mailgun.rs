//! Checking that a Mailgun event was signed with the organization's webhook
//! signing key: `signature` holds a timestamp, a random token and the hex
//! HMAC-SHA256 of the two; a stale timestamp or a token seen before is refused.

use std::time::Duration;

use hmac::{Hmac, Mac};
use muster_runtime::{ApiError, TenantId};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use sqlx::PgPool;

/// How far a signature's timestamp may be from now, either way.
pub const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// Mailgun's tokens are 50 characters; a much longer one is not theirs.
const MAX_TOKEN_CHARS: usize = 256;
const PROVIDER: &str = "mailgun";

/// The `signature` object of a Mailgun webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    /// Seconds since the epoch; Mailgun sends text, a number is tolerated.
    timestamp: Value,
    pub token: String,
    signature: String,
}

#[derive(Deserialize)]
struct Signed {
    signature: Option<Signature>,
}

/// The `signature` object of an event body.
pub fn signature_of(body: &[u8]) -> Result<Signature, ApiError> {
    let signed: Signed = serde_json::from_slice(body)
        .map_err(|_| ApiError::invalid("body", "not a Mailgun event: expected a JSON object"))?;
    signed
        .signature
        .ok_or_else(|| rejected("it has no signature object"))
}

/// Checks `signature` under `key` at `now` (seconds since the epoch).
pub fn verify(key: &str, signature: &Signature, now: i64) -> Result<(), ApiError> {
    let timestamp = match &signature.timestamp {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Err(rejected("its timestamp is not a number of seconds")),
    };
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| rejected("its timestamp is not a number of seconds"))?;
    if seconds.abs_diff(now) > MAX_AGE.as_secs() {
        return Err(rejected(
            "its timestamp is more than 15 minutes from now (a stale or replayed request)",
        ));
    }
    if signature.token.is_empty() || signature.token.chars().count() > MAX_TOKEN_CHARS {
        return Err(rejected("its token is missing or malformed"));
    }
    let expected = hex::decode(signature.signature.trim())
        .map_err(|_| rejected("its signature is not hexadecimal"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("HMAC refused the key")))?;
    mac.update(timestamp.as_bytes());
    mac.update(signature.token.as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| rejected("the signature does not match (is the signing key right?)"))
}

/// Records `token` as used for `tenant`; false when it was used before.
/// Old tokens are forgotten on the way: their timestamps are refused anyway.
pub async fn spend(pool: &PgPool, tenant: TenantId, token: &str) -> Result<bool, ApiError> {
    let mut tx = pool.begin().await?;
    // Kept for an hour: past the furthest timestamp still accepted.
    sqlx::query("DELETE FROM webhook_tokens WHERE received_at < now() - interval '1 hour'")
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO webhook_tokens (tenant_id, provider, token) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(PROVIDER)
    .bind(token)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Makes `token` usable again: its event was not handled, and Mailgun's
/// retry of it must not be taken for a replay.
pub async fn refund(pool: &PgPool, tenant: TenantId, token: &str) {
    let refunded = sqlx::query(
        "DELETE FROM webhook_tokens WHERE tenant_id = $1 AND provider = $2 AND token = $3",
    )
    .bind(tenant)
    .bind(PROVIDER)
    .bind(token)
    .execute(pool)
    .await;
    if let Err(error) = refunded {
        tracing::warn!(tenant_id = %tenant, %error,
            "a mailgun token stays spent: the provider's retry of this event will be refused");
    }
}

/// A refusal of the event, saying why.
fn rejected(why: &str) -> ApiError {
    ApiError::Unauthenticated(format!(
        "not a Mailgun event signed for this organization: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
    const NOW: i64 = 1_736_845_331;

    fn signed(timestamp: Value, token: &str, key: &str) -> Signature {
        let text = match &timestamp {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{text}{token}").as_bytes());
        Signature {
            timestamp,
            token: token.into(),
            signature: hex::encode(mac.finalize().into_bytes()),
        }
    }

    fn refusal(result: Result<(), ApiError>) -> String {
        match result {
            Err(ApiError::Unauthenticated(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_signature_made_with_the_key_verifies() {
        let signature = signed(Value::from(NOW.to_string()), "a8ce0edb2dd8301dee6c", KEY);
        assert!(verify(KEY, &signature, NOW).is_ok());
        assert!(verify(KEY, &signature, NOW + 14 * 60).is_ok());
        let numeric = signed(Value::from(NOW), "a8ce0edb2dd8301dee6c", KEY);
        assert!(verify(KEY, &numeric, NOW).is_ok());
    }

    #[test]
    fn another_key_a_changed_token_or_a_changed_timestamp_is_refused() {
        let signature = signed(Value::from(NOW.to_string()), "a8ce0edb2dd8301dee6c", KEY);
        assert!(refusal(verify("key-other", &signature, NOW)).contains("does not match"));

        let mut token = signature.clone();
        token.token = "a8ce0edb2dd8301dee6d".into();
        assert!(refusal(verify(KEY, &token, NOW)).contains("does not match"));

        let mut timestamp = signature.clone();
        timestamp.timestamp = Value::from((NOW + 1).to_string());
        assert!(refusal(verify(KEY, &timestamp, NOW)).contains("does not match"));

        let mut garbled = signature;
        garbled.signature = "zz".into();
        assert!(refusal(verify(KEY, &garbled, NOW)).contains("hexadecimal"));
    }

    #[test]
    fn a_timestamp_more_than_15_minutes_away_is_refused() {
        let old = signed(Value::from((NOW - 15 * 60 - 1).to_string()), "t", KEY);
        assert!(refusal(verify(KEY, &old, NOW)).contains("15 minutes"));
        let future = signed(Value::from((NOW + 15 * 60 + 1).to_string()), "t", KEY);
        assert!(refusal(verify(KEY, &future, NOW)).contains("15 minutes"));
        let words = signed(Value::from("yesterday"), "t", KEY);
        assert!(refusal(verify(KEY, &words, NOW)).contains("number of seconds"));
    }

    #[test]
    fn an_event_without_a_signature_object_is_refused() {
        let body = br#"{"event-data": {"event": "failed"}}"#;
        assert!(matches!(
            signature_of(body),
            Err(ApiError::Unauthenticated(_))
        ));
        assert!(matches!(
            signature_of(b"[1"),
            Err(ApiError::InvalidArgument { .. })
        ));
        let body = br#"{"signature": {"timestamp": "1", "token": "t", "signature": "00"}}"#;
        assert_eq!(signature_of(body).unwrap().token, "t");
    }
}
