//! Signed unsubscribe tokens: they name one delivery of one organization and
//! cannot be forged or altered without the service's secret. Messaging issues
//! them and honours them; the gateway reads them too, so that a link's pages
//! name its organization and speak its language even when messaging cannot
//! answer.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::TenantId;
use crate::auth::Signer;

const CONTEXT: &str = "unsubscribe";

/// Makes and reads unsubscribe tokens.
#[derive(Clone)]
pub struct UnsubscribeTokens(Signer);

impl UnsubscribeTokens {
    /// Tokens signed with `secret` (`auth.token_secret`).
    pub fn new(secret: &str) -> Self {
        Self(Signer::new(secret))
    }

    /// Tokens signed by `signer` (over `auth.token_secret`).
    pub fn with_signer(signer: Signer) -> Self {
        Self(signer)
    }

    /// The token of one delivery.
    pub fn issue(&self, tenant: TenantId, delivery: Uuid) -> String {
        let mut payload = Vec::with_capacity(32);
        payload.extend_from_slice(tenant.as_uuid().as_bytes());
        payload.extend_from_slice(delivery.as_bytes());
        let body = URL_SAFE_NO_PAD.encode(&payload);
        let signature = self.0.sign(CONTEXT, body.as_bytes());
        format!("{body}.{signature}")
    }

    /// The organization and delivery a genuine token names.
    pub fn read(&self, token: &str) -> Option<(TenantId, Uuid)> {
        let (body, signature) = token.trim().split_once('.')?;
        if !self.0.verify(CONTEXT, body.as_bytes(), signature) {
            return None;
        }
        let payload = URL_SAFE_NO_PAD.decode(body).ok()?;
        let (tenant, delivery) = payload.split_at_checked(16)?;
        Some((
            TenantId::from_uuid(Uuid::from_slice(tenant).ok()?),
            Uuid::from_slice(delivery).ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_to_its_delivery() {
        let tokens = UnsubscribeTokens::new("secret");
        let (tenant, delivery) = (TenantId::new(), Uuid::now_v7());
        assert_eq!(
            tokens.read(&tokens.issue(tenant, delivery)),
            Some((tenant, delivery))
        );
    }

    #[test]
    fn an_altered_or_foreign_token_reads_as_nothing() {
        let tokens = UnsubscribeTokens::new("secret");
        let token = tokens.issue(TenantId::new(), Uuid::now_v7());
        let mut altered = token.clone().into_bytes();
        altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(tokens.read(std::str::from_utf8(&altered).unwrap()), None);
        assert_eq!(UnsubscribeTokens::new("other").read(&token), None);
        assert_eq!(tokens.read("garbage"), None);
    }
}
