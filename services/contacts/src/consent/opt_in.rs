//! Double opt-in: a subscription from a public form is recorded pending and
//! confirmed only through the signed, expiring link messaging e-mails to the
//! address ([`muster_runtime::confirmation`]).

use chrono::Utc;
use muster_proto::contacts::v1 as pb;
use muster_runtime::confirmation::{ConfirmationTokens, Unusable};
use muster_runtime::language::Language;
use muster_runtime::privacy::AddressHasher;
use muster_runtime::{ApiError, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

use super::api::parse_purpose;
use super::store::{self, Letterhead, Statement};
use super::{Channel, Kind, LegalBasis, State};
use crate::domain::{EmailAddress, nfc};
use crate::events;

/// Longest name, notice and evidence value a form may send.
const MAX_NAME: usize = 200;
const MAX_NOTICE: usize = 10_000;
const MAX_EVIDENCE: usize = 10;

fn name(raw: &str, field: &str) -> Result<Option<String>, ApiError> {
    let name = nfc(raw.trim());
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_NAME} characters, without control characters"),
        ));
    }
    Ok((!name.is_empty()).then_some(name))
}

/// How the confirmation e-mail is headed: the organization's name (kept as
/// the gateway sent it; messaging puts it on one line) and its language:
/// the one of the page the person saw, or the organization's for a
/// statement recorded through the API.
pub(super) fn letterhead(organization: &str, language: &str) -> Result<Letterhead, ApiError> {
    let organization = nfc(organization.trim());
    if organization.chars().count() > MAX_NAME {
        return Err(ApiError::invalid(
            "organization_name",
            format!("at most {MAX_NAME} characters"),
        ));
    }
    let language = match language.trim() {
        "" => "",
        tag => Language::from_tag(tag)
            .map(Language::tag)
            .ok_or_else(|| ApiError::invalid("language", "give fr, en, or nothing"))?,
    };
    Ok(Letterhead {
        organization,
        language: language.to_owned(),
    })
}

fn evidence(raw: std::collections::HashMap<String, String>) -> Result<serde_json::Value, ApiError> {
    if raw.len() > MAX_EVIDENCE || raw.values().any(|v| v.chars().count() > 1_000) {
        return Err(ApiError::invalid(
            "evidence",
            format!("at most {MAX_EVIDENCE} entries of at most 1,000 characters"),
        ));
    }
    let map: serde_json::Map<String, serde_json::Value> =
        raw.into_iter().map(|(k, v)| (k, v.into())).collect();
    Ok(map.into())
}

/// Records a form subscription of `tenant`: the person found by address or
/// created, their e-mail consent for the purpose asked for (pending), and
/// the request for the confirmation e-mail.
pub async fn subscribe(
    pool: &PgPool,
    hasher: &AddressHasher,
    tenant: TenantId,
    request: pb::SubscribeRequest,
) -> Result<pb::SubscribeResponse, ApiError> {
    let email = EmailAddress::parse(&request.email)
        .map_err(|error| ApiError::invalid("email", error.reason))?;
    let first_name = name(&request.first_name, "first_name")?;
    let last_name = name(&request.last_name, "last_name")?;
    let purpose = parse_purpose(&request.purpose, "purpose")?;
    let notice = request.notice.trim();
    if notice.chars().count() > MAX_NOTICE || notice.contains('\0') {
        return Err(ApiError::invalid(
            "notice",
            "give the notice's version, or its text in at most 10,000 characters",
        ));
    }
    let letterhead = letterhead(&request.organization_name, &request.language)?;
    let evidence = evidence(request.evidence)?;

    let mut tx = pool.begin().await?;
    // An erased address is neither created again nor written to, as an
    // import would not; the form answers as for any address, so it does not
    // tell who was erased.
    let hash = hasher.hash(email.key());
    let erased = crate::privacy::erased_among(&mut tx, tenant, std::slice::from_ref(&hash))
        .await
        .map_err(ApiError::from)?;
    if !erased.is_empty() {
        tracing::info!(tenant_id = %tenant, "form subscription of an erased address ignored");
        return Ok(pb::SubscribeResponse::default());
    }
    let created: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO people (id, tenant_id, email, email_key, first_name, last_name)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, email_key) DO NOTHING RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(email.as_str())
    .bind(email.key())
    .bind(&first_name)
    .bind(&last_name)
    .fetch_optional(&mut *tx)
    .await?;
    let person = match created {
        Some(id) => {
            events::person_changed(tenant, events::PERSON_CREATED)
                .enqueue(&mut tx, events::person_bodies(&[id]))
                .await?;
            id
        }
        None => {
            sqlx::query_scalar("SELECT id FROM people WHERE tenant_id = $1 AND email_key = $2")
                .bind(tenant)
                .bind(email.key())
                .fetch_one(&mut *tx)
                .await?
        }
    };
    let statement = Statement {
        person,
        channel: Channel::Email,
        purpose,
        kind: Kind::Request,
        legal_basis: LegalBasis::Consent,
        source: "form".into(),
        notice: notice.to_owned(),
        occurred_at: Utc::now(),
        evidence,
    };
    store::record_headed(
        &mut tx,
        tenant,
        std::slice::from_ref(&statement),
        &letterhead,
    )
    .await?;
    tx.commit().await?;

    tracing::info!(tenant_id = %tenant, person_id = %person, purpose, created = created.is_some(),
        "form subscription recorded");
    let current = store::one(pool, tenant, person, Channel::Email, purpose).await?;
    Ok(pb::SubscribeResponse {
        person_id: person.to_string(),
        state: current.state,
    })
}

/// Confirms the pending consent a link's token names; a second click finds
/// it granted and changes nothing.
pub async fn confirm(
    pool: &PgPool,
    tokens: &ConfirmationTokens,
    request: pb::ConfirmConsentRequest,
) -> Result<pb::ConfirmConsentResponse, ApiError> {
    let now = Utc::now();
    let asked = tokens
        .read(&request.token, now)
        .map_err(|unusable| match unusable {
            Unusable::Invalid => ApiError::invalid("token", unusable.to_string()),
            Unusable::Expired => ApiError::FailedPrecondition(
                "the link has expired; subscribe again to receive a new one".into(),
            ),
        })?;
    let channel = Channel::parse(&asked.channel)
        .ok_or_else(|| ApiError::invalid("token", "names an unknown channel"))?;
    let purpose = super::purpose(&asked.purpose)
        .ok_or_else(|| ApiError::invalid("token", "names an unknown purpose"))?;
    let mut evidence = match evidence(request.evidence)? {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    evidence.insert("confirmed_at".into(), now.to_rfc3339().into());
    evidence.insert("confirmation".into(), "double opt-in link".into());

    let (tenant, person) = (asked.tenant, asked.person);
    let mut tx = pool.begin().await?;
    let pending: Option<(String, String, String)> = sqlx::query_as(
        "SELECT state, source, notice FROM consents
         WHERE tenant_id = $1 AND person_id = $2 AND channel = $3 AND purpose = $4",
    )
    .bind(tenant)
    .bind(person)
    .bind(channel.as_str())
    .bind(purpose)
    .fetch_optional(&mut *tx)
    .await?;
    let (source, notice) = match pending {
        Some((state, source, notice)) if state == State::Pending.as_str() => (source, notice),
        Some((state, ..)) if state == State::Granted.as_str() => {
            let current = store::one(pool, tenant, person, channel, purpose).await?;
            return Ok(pb::ConfirmConsentResponse {
                current: Some(current),
                confirmed_now: false,
            });
        }
        None if crate::merge::survivor_of(&mut tx, tenant, person)
            .await?
            .is_some() =>
        {
            // A pending request is not carried over by a merge: confirming it
            // would grant on the survivor's own address.
            return Err(ApiError::FailedPrecondition(
                "this address's record was merged with another since the e-mail was sent; \
                 subscribe again to receive a new link"
                    .into(),
            ));
        }
        _ => {
            return Err(ApiError::FailedPrecondition(
                "nothing is waiting for confirmation: the subscription was withdrawn or \
                 erased since the e-mail was sent; subscribe again"
                    .into(),
            ));
        }
    };
    let statement = Statement {
        person,
        channel,
        purpose,
        kind: Kind::Confirm,
        legal_basis: LegalBasis::Consent,
        source,
        notice,
        occurred_at: now,
        evidence: evidence.into(),
    };
    let applied = store::record(&mut tx, tenant, std::slice::from_ref(&statement)).await?;
    tx.commit().await?;

    tracing::info!(tenant_id = %tenant, person_id = %person, purpose, "consent confirmed");
    let current = store::one(pool, tenant, person, channel, purpose).await?;
    Ok(pb::ConfirmConsentResponse {
        current: Some(current),
        confirmed_now: !applied.is_empty(),
    })
}
