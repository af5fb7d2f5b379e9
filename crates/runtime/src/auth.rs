//! Caller credentials. The gateway (or an internal service) mints a short-lived
//! token signed with the shared secret; services verify it on every call and
//! take the organization from it, never from a free-form header.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::{ApiError, TenantId};

const PREFIX: &str = "mst1";

/// Who is calling, as a verified credential says.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub tenant: Option<TenantId>,
}

impl Caller {
    /// The caller's organization; calls about an organization's data need one.
    pub fn tenant(&self) -> Result<TenantId, ApiError> {
        self.tenant
            .ok_or_else(|| ApiError::PermissionDenied("this credential has no organization".into()))
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<uuid::Uuid>,
    exp: i64,
}

/// Signs and verifies with one HMAC-SHA256 key.
#[derive(Clone)]
pub struct Signer {
    key: Arc<[u8]>,
}

impl Signer {
    /// A signer over `secret`.
    pub fn new(secret: &str) -> Self {
        if secret == crate::config::DEVELOPMENT_TOKEN_SECRET {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "auth.token_secret is the development default: anyone can forge \
                     credentials and unsubscribe links; set MUSTER_AUTH__TOKEN_SECRET"
                )
            });
        }
        Self {
            key: secret.as_bytes().into(),
        }
    }

    /// The URL-safe signature of `payload` under `context` (keeps uses apart).
    pub fn sign(&self, context: &str, payload: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(context, payload).finalize().into_bytes())
    }

    /// Whether `signature` is `payload`'s under `context`, in constant time.
    pub fn verify(&self, context: &str, payload: &[u8], signature: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.mac(context, payload).verify_slice(&raw).is_ok()
    }

    fn mac(&self, context: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// A bearer token for `subject`, acting for `tenant` when given.
    pub fn mint(&self, subject: &str, tenant: Option<TenantId>, ttl: Duration) -> String {
        let exp = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
        let claims = Claims {
            sub: subject.into(),
            tenant: tenant.map(|t| t.as_uuid()),
            exp,
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signature = self.sign(PREFIX, body.as_bytes());
        format!("{PREFIX}.{body}.{signature}")
    }

    /// The caller a bearer token names, if it is genuine and not expired.
    pub fn check(&self, token: &str) -> Result<Caller, ApiError> {
        let unauthenticated = |why: &str| ApiError::Unauthenticated(why.into());
        let mut parts = token.split('.');
        let (Some(PREFIX), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unauthenticated("malformed credential"));
        };
        if !self.verify(PREFIX, body.as_bytes(), signature) {
            return Err(unauthenticated("credential signature does not verify"));
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or_else(|| unauthenticated("malformed credential"))?;
        if claims.exp < chrono::Utc::now().timestamp() {
            return Err(unauthenticated("credential expired; request a new one"));
        }
        Ok(Caller {
            subject: claims.sub,
            tenant: claims.tenant.map(TenantId::from_uuid),
        })
    }
}

/// Server interceptor: rejects calls without a valid bearer token and
/// attaches the [`Caller`] to the request.
#[derive(Clone)]
pub struct Authenticate(pub Signer);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing bearer credential"))?;
        let caller = self.0.check(token)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The verified caller of a request that went through [`Authenticate`].
pub fn caller<T>(request: &Request<T>) -> Result<&Caller, ApiError> {
    request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::Unauthenticated("missing bearer credential".into()))
}

/// The organization of a request's verified caller.
pub fn tenant<T>(request: &Request<T>) -> Result<TenantId, ApiError> {
    caller(request)?.tenant()
}

/// Client interceptor that attaches one bearer token to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl Bearer {
    /// Attaches `token`.
    pub fn new(token: &str) -> Self {
        Self(format!("Bearer {token}").parse().expect("tokens are ASCII"))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_names_its_tenant() {
        let signer = Signer::new("secret");
        let tenant = TenantId::new();
        let token = signer.mint("gateway", Some(tenant), Duration::from_secs(60));
        let caller = signer.check(&token).unwrap();
        assert_eq!(caller.tenant, Some(tenant));
        assert_eq!(caller.subject, "gateway");
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = Signer::new("other").mint("x", Some(TenantId::new()), Duration::from_secs(60));
        assert!(Signer::new("secret").check(&token).is_err());
    }

    #[test]
    fn a_token_with_a_changed_tenant_is_refused() {
        let signer = Signer::new("secret");
        let token = signer.mint("x", Some(TenantId::new()), Duration::from_secs(60));
        let forged_body = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: "x".into(),
                tenant: Some(uuid::Uuid::nil()),
                exp: i64::MAX,
            })
            .unwrap(),
        );
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            signer
                .check(&format!("{PREFIX}.{forged_body}.{signature}"))
                .is_err()
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let signer = Signer::new("secret");
        let claims = Claims {
            sub: "x".into(),
            tenant: None,
            exp: 1,
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let token = format!("{PREFIX}.{body}.{}", signer.sign(PREFIX, body.as_bytes()));
        assert!(signer.check(&token).is_err());
    }
}
