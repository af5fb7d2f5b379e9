//! The public webhooks through which bounces and complaints come back:
//! `POST /webhooks/ses` (Amazon SES through SNS), `POST /webhooks/mailgun`,
//! and `POST /webhooks/dsn`, where an inbound mail relay pipes what arrives
//! at the bounce address as a raw message. Each needs the configured shared
//! secret as `?token=`; SNS messages must carry Amazon's signature and
//! Mailgun events their organization's; messaging parses and records the
//! reports.

mod mailgun;
mod sns;
mod x509;

pub use sns::Verifier as SnsVerifier;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::routing::post;
use axum::{Json, Router};
use muster_proto::messaging::v1 as pb;
use muster_proto::messaging::v1::ingest_bounce_request::Source;
use muster_runtime::{ApiError, TenantId};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::error::HttpError;
use crate::settings::WebhookSettings;
use crate::startup::AppState;
use crate::upstream::{MessagingClient, Reply, Upstream};

/// A returned message with its original attached can be large.
const MAX_MESSAGE_BYTES: usize = 32 << 20;
/// SNS messages are at most 256 KiB; Mailgun events are smaller.
const MAX_JSON_BYTES: usize = 1 << 20;
/// What of a returned message goes on to messaging: the status parts come
/// before the returned original, which may be cut without harm.
const MAX_FORWARDED_BYTES: usize = 2 << 20;

/// The `/webhooks/*` routes; no API key, a shared token instead.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/ses", post(ses).layer(json_limit()))
        .route("/webhooks/mailgun", post(mailgun).layer(json_limit()))
        .route(
            "/webhooks/dsn",
            post(dsn).layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES)),
        )
}

fn json_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_JSON_BYTES)
}

/// `?token=` of a webhook URL.
#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `?token=&organization=` of the Mailgun webhook URL: the organization
/// whose signing key the events are signed with.
#[derive(Deserialize)]
struct MailgunQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    organization: String,
}

/// Refuses a request without the configured token, and every request while
/// none is configured.
fn authorize(settings: &WebhookSettings, query: &TokenQuery) -> Result<(), HttpError> {
    let expected = settings.token.as_str();
    if expected.is_empty() {
        return Err(HttpError::unauthenticated(
            "webhooks are off: the gateway has no webhooks.token configured",
        ));
    }
    // Comparing digests keeps the comparison's timing from telling the token.
    if Sha256::digest(query.token.as_bytes()) != Sha256::digest(expected.as_bytes()) {
        return Err(HttpError::unauthenticated("wrong or missing webhook token"));
    }
    Ok(())
}

/// `POST /webhooks/ses`: an SNS message, signed by Amazon SNS. A
/// subscription confirmation is logged for an operator to confirm, never
/// fetched from here. Raw message delivery (unsigned) is refused.
#[tracing::instrument(name = "gateway.webhooks.ses", skip_all)]
async fn ses(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    authorize(&state.webhooks, &query)?;
    let envelope: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(message) = envelope.as_object().filter(|m| m.contains_key("Type")) else {
        return Err(HttpError::invalid(
            "body",
            "not an SNS message: expected its JSON envelope (turn raw message delivery off)",
        ));
    };
    state.sns.verify(message).await?;
    let field = |name: &str| envelope.get(name).and_then(Value::as_str).unwrap_or("");
    match field("Type") {
        "SubscriptionConfirmation" => {
            tracing::warn!(
                topic_arn = field("TopicArn"),
                subscribe_url = field("SubscribeURL"),
                "SNS subscription awaits confirmation: an operator must open its SubscribeURL"
            );
            return Ok(ignored("subscription confirmation"));
        }
        "UnsubscribeConfirmation" => {
            tracing::warn!(topic_arn = field("TopicArn"), "SNS subscription ended");
            return Ok(ignored("unsubscribe confirmation"));
        }
        _ => {}
    }
    let messaging = state.upstreams.public_messaging();
    ingest(messaging, provider("ses", body), Unreadable::Refuse).await
}

/// `POST /webhooks/mailgun?organization=<id>`: a Mailgun event (JSON),
/// signed with that organization's webhook signing key and not seen before.
/// It reaches only that organization's deliveries.
#[tracing::instrument(name = "gateway.webhooks.mailgun", skip_all, fields(tenant_id))]
async fn mailgun(
    State(state): State<AppState>,
    Query(query): Query<MailgunQuery>,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    let token = TokenQuery { token: query.token };
    authorize(&state.webhooks, &token)?;
    let tenant = organization(&query.organization)?;
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant));

    let signature = mailgun::signature_of(&body)?;
    let key = crate::tenants::mailgun_signing_key(&state.pool, tenant)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            HttpError::unauthenticated(format!(
                "organization {tenant} has no Mailgun signing key (or does not exist): \
                 set it with `muster-gateway set-mailgun-key`"
            ))
        })?;
    mailgun::verify(&key, &signature, chrono::Utc::now().timestamp())?;
    if !mailgun::spend(&state.pool, tenant, &signature.token).await? {
        return Err(ApiError::AlreadyExists(
            "this Mailgun event was received before (its token is spent): a replay is refused"
                .into(),
        )
        .into());
    }

    let messaging = state.upstreams.messaging_for(tenant);
    let answer = ingest(messaging, provider("mailgun", body), Unreadable::Refuse).await;
    if answer.is_err() {
        mailgun::refund(&state.pool, tenant, &signature.token).await;
    }
    answer
}

/// The organization a Mailgun webhook URL names.
fn organization(raw: &str) -> Result<TenantId, HttpError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(TenantId::from_uuid)
        .map_err(|_| {
            HttpError::invalid(
                "organization",
                "the Mailgun webhook URL must name its organization: \
                 /webhooks/mailgun?token=…&organization=<organization id>",
            )
        })
}

/// `POST /webhooks/dsn`: a message as received at the bounce address
/// (`message/rfc822`). Auto-replies arrive there too: a message that is no
/// report is acknowledged and ignored, so the relay does not bounce it on.
#[tracing::instrument(name = "gateway.webhooks.dsn", skip_all)]
async fn dsn(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    body: Bytes,
) -> Result<Json<Value>, HttpError> {
    authorize(&state.webhooks, &query)?;
    let raw = body.slice(..body.len().min(MAX_FORWARDED_BYTES));
    let messaging = state.upstreams.public_messaging();
    let source = Source::RawMessage(raw.to_vec());
    ingest(messaging, source, Unreadable::Acknowledge).await
}

fn provider(name: &str, body: Bytes) -> Source {
    Source::Provider(pb::ProviderNotification {
        provider: name.into(),
        body: body.to_vec(),
    })
}

/// What a webhook answers for a body messaging cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    /// 400: the provider's dashboard shows the failure to an operator.
    Refuse,
    /// 200: nobody is there to read a failure.
    Acknowledge,
}

/// Hands a report to messaging. A report about mail that is not ours (or
/// no longer exists) is acknowledged, so that the provider stops posting it.
async fn ingest(
    mut messaging: MessagingClient,
    source: Source,
    unreadable: Unreadable,
) -> Result<Json<Value>, HttpError> {
    let request = pb::IngestBounceRequest {
        source: Some(source),
    };
    let reply = messaging.ingest_bounce(request).await;
    let skipped = match &reply {
        Err(status) if status.code() == Code::NotFound => Some(status.message().to_owned()),
        Err(status)
            if status.code() == Code::InvalidArgument && unreadable == Unreadable::Acknowledge =>
        {
            Some(status.message().to_owned())
        }
        _ => None,
    };
    if let Some(reason) = skipped {
        tracing::info!(reason, "report acknowledged and ignored");
        return Ok(ignored(&reason));
    }

    let reply = reply.reply(Upstream::Messaging)?;
    let bounces: Vec<Value> = reply.bounces.iter().map(bounce_json).collect();
    Ok(Json(
        json!({ "recorded": bounces.len(), "bounces": bounces }),
    ))
}

/// The answer to a request that records nothing, and why.
fn ignored(reason: &str) -> Json<Value> {
    Json(json!({ "recorded": 0, "ignored": reason }))
}

fn bounce_json(bounce: &pb::IngestedBounce) -> Value {
    let kind = match pb::BounceKind::try_from(bounce.kind).unwrap_or_default() {
        pb::BounceKind::Permanent => "permanent",
        pb::BounceKind::Transient => "transient",
        pb::BounceKind::Complaint => "complaint",
        pb::BounceKind::Unspecified => "unspecified",
    };
    json!({
        "delivery_id": bounce.delivery_id,
        "kind": kind,
        "status": bounce.status,
        "suppressed": bounce.suppressed,
        "duplicate": bounce.duplicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(configured: &str, given: &str) -> bool {
        let settings = WebhookSettings {
            token: configured.into(),
            sns_cert_url_prefixes: Vec::new(),
        };
        let query = TokenQuery {
            token: given.into(),
        };
        authorize(&settings, &query).is_ok()
    }

    #[test]
    fn only_the_configured_token_opens_the_webhooks() {
        assert!(check("hook-secret", "hook-secret"));
        assert!(!check("hook-secret", "hook-secreT"));
        assert!(!check("hook-secret", ""));
    }

    #[test]
    fn webhooks_stay_shut_while_no_token_is_configured() {
        assert!(!check("", ""));
        assert!(!check("", "anything"));
    }
}
