//! Signed, expiring links by which a person confirms a pending consent (a
//! double opt-in). Signed like the unsubscribe links: the runtime's
//! [`Signer`] over a URL-safe body under a context of their own, so neither
//! kind of token can stand for the other. Messaging issues them; the gateway
//! and contacts read them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::TenantId;
use crate::auth::Signer;

const CONTEXT: &str = "consent-confirmation";

/// What a confirmation link asks to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub tenant: TenantId,
    pub person: Uuid,
    /// "email".
    pub channel: String,
    /// Empty: the channel's general consent.
    pub purpose: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("the link is not one of ours: it was cut or changed")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

/// Makes and reads confirmation tokens.
#[derive(Clone)]
pub struct ConfirmationTokens(Signer);

impl ConfirmationTokens {
    /// Tokens signed with `secret` (`auth.token_secret`).
    pub fn new(secret: &str) -> Self {
        Self(Signer::new(secret))
    }

    /// Tokens signed by `signer` (over `auth.token_secret`).
    pub fn with_signer(signer: Signer) -> Self {
        Self(signer)
    }

    /// The token of `confirmation`.
    pub fn issue(&self, confirmation: &Confirmation) -> String {
        let mut payload = Vec::with_capacity(64);
        payload.extend_from_slice(confirmation.tenant.as_uuid().as_bytes());
        payload.extend_from_slice(confirmation.person.as_bytes());
        payload.extend_from_slice(&confirmation.expires_at.timestamp().to_be_bytes());
        payload.extend_from_slice(confirmation.channel.as_bytes());
        payload.push(b'.');
        payload.extend_from_slice(confirmation.purpose.as_bytes());
        let body = URL_SAFE_NO_PAD.encode(&payload);
        let signature = self.0.sign(CONTEXT, body.as_bytes());
        format!("{body}.{signature}")
    }

    /// What a genuine token asks, if it has not expired at `now`.
    pub fn read(&self, token: &str, now: DateTime<Utc>) -> Result<Confirmation, Unusable> {
        let (body, signature) = token.trim().split_once('.').ok_or(Unusable::Invalid)?;
        if !self.0.verify(CONTEXT, body.as_bytes(), signature) {
            return Err(Unusable::Invalid);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Unusable::Invalid)?;
        let (tenant, rest) = payload.split_at_checked(16).ok_or(Unusable::Invalid)?;
        let (person, rest) = rest.split_at_checked(16).ok_or(Unusable::Invalid)?;
        let (expires, target) = rest.split_at_checked(8).ok_or(Unusable::Invalid)?;
        let target = std::str::from_utf8(target).map_err(|_| Unusable::Invalid)?;
        let (channel, purpose) = target.split_once('.').ok_or(Unusable::Invalid)?;
        let expires = i64::from_be_bytes(expires.try_into().map_err(|_| Unusable::Invalid)?);
        let expires_at = DateTime::from_timestamp(expires, 0).ok_or(Unusable::Invalid)?;
        if expires_at <= now {
            return Err(Unusable::Expired);
        }
        Ok(Confirmation {
            tenant: TenantId::from_uuid(Uuid::from_slice(tenant).map_err(|_| Unusable::Invalid)?),
            person: Uuid::from_slice(person).map_err(|_| Unusable::Invalid)?,
            channel: channel.to_owned(),
            purpose: purpose.to_owned(),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn confirmation() -> Confirmation {
        Confirmation {
            tenant: TenantId::new(),
            person: Uuid::now_v7(),
            channel: "email".into(),
            purpose: "newsletter".into(),
            expires_at: DateTime::from_timestamp(Utc::now().timestamp() + 3_600, 0).unwrap(),
        }
    }

    #[test]
    fn a_token_reads_back_to_what_it_confirms_until_it_expires() {
        let tokens = ConfirmationTokens::new("secret");
        let asked = confirmation();
        let token = tokens.issue(&asked);
        assert_eq!(tokens.read(&token, Utc::now()), Ok(asked.clone()));
        let later = asked.expires_at + Duration::seconds(1);
        assert_eq!(tokens.read(&token, later), Err(Unusable::Expired));
    }

    #[test]
    fn an_altered_foreign_or_unsubscribe_token_is_invalid() {
        let tokens = ConfirmationTokens::new("secret");
        let token = tokens.issue(&confirmation());
        let mut altered = token.clone().into_bytes();
        altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(tokens.read(&altered, Utc::now()), Err(Unusable::Invalid));
        assert_eq!(
            ConfirmationTokens::new("other").read(&token, Utc::now()),
            Err(Unusable::Invalid)
        );
        let (body, _) = token.split_once('.').unwrap();
        let other_context = Signer::new("secret").sign("unsubscribe", body.as_bytes());
        let swapped = format!("{body}.{other_context}");
        assert_eq!(tokens.read(&swapped, Utc::now()), Err(Unusable::Invalid));
        assert_eq!(tokens.read("garbage", Utc::now()), Err(Unusable::Invalid));
    }
}
