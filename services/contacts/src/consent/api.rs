//! The gRPC API of the ledger (`muster.contacts.v1.ConsentService`).

use chrono::{Duration, Utc};
use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::consent_service_server::ConsentService;
use muster_runtime::confirmation::ConfirmationTokens;
use muster_runtime::privacy::AddressHasher;
use muster_runtime::{ApiError, auth};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::opt_in::letterhead;
use super::store::{self, Statement};
use super::{Channel, Kind, LegalBasis, PURPOSES, purpose};

/// Longest client name, notice and evidence an API statement may carry.
const MAX_CLIENT: usize = 64;
const MAX_NOTICE: usize = 10_000;
const MAX_EVIDENCE: usize = 50;

/// How far ahead of this clock a statement's time may be (clocks differ).
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The ledger's handlers.
#[derive(Clone)]
pub struct ConsentApi {
    pub pool: PgPool,
    /// Reads the tokens of the links that confirm a pending consent.
    pub tokens: ConfirmationTokens,
    /// Finds addresses that were erased.
    pub hasher: AddressHasher,
}

fn parse_id(raw: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a valid id")))
}

/// The channel named in `field`.
pub fn channel(raw: &str, field: &str) -> Result<Channel, ApiError> {
    Channel::parse(raw.trim()).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("{raw:?} is not a channel; use email, sms, phone or post"),
        )
    })
}

/// The purpose named in `field`.
pub fn parse_purpose(raw: &str, field: &str) -> Result<&'static str, ApiError> {
    purpose(raw).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!(
                "{raw:?} is not a purpose; use one of {} or leave it empty for the channel's \
                 general consent",
                PURPOSES[1..].join(", ")
            ),
        )
    })
}

/// The error of a statement whose basis the policy forbids on its channel.
pub fn forbidden(channel: Channel, basis: LegalBasis) -> ApiError {
    ApiError::invalid(
        "legal_basis",
        format!(
            "the organization's consent policy forbids the basis {basis} on {channel}; record \
             the statement on another basis or change the policy (SetConsentPolicy)"
        ),
    )
}

fn statement(request: pb::RecordConsentRequest) -> Result<Statement, ApiError> {
    let person = parse_id(&request.person_id, "person_id")?;
    let channel = channel(&request.channel, "channel")?;
    let purpose = parse_purpose(&request.purpose, "purpose")?;
    let kind = match pb::ConsentState::try_from(request.state) {
        Ok(pb::ConsentState::Granted) => Kind::Grant,
        Ok(pb::ConsentState::Withdrawn) => Kind::Withdraw,
        _ => {
            return Err(ApiError::invalid(
                "state",
                "state a grant (GRANTED) or a withdrawal (WITHDRAWN); a pending request comes \
                 only from a subscription form",
            ));
        }
    };
    let legal_basis = match (LegalBasis::from_proto(request.legal_basis), kind) {
        (Some(basis), _) => basis,
        (None, Kind::Withdraw) => LegalBasis::Consent,
        (None, _) => {
            return Err(ApiError::invalid(
                "legal_basis",
                "a grant needs its legal basis (consent, contract, legal_obligation, \
                 vital_interests, public_task or legitimate_interests)",
            ));
        }
    };
    let client = request.client.trim();
    if client.is_empty()
        || client.chars().count() > MAX_CLIENT
        || client.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(
            "client",
            format!("name the calling client in at most {MAX_CLIENT} characters, without spaces"),
        ));
    }
    if request.notice.chars().count() > MAX_NOTICE {
        return Err(ApiError::invalid(
            "notice",
            format!("at most {MAX_NOTICE} characters; give the notice's version instead"),
        ));
    }
    let now = Utc::now();
    let occurred_at = match request.time.as_ref() {
        None => now,
        Some(time) => muster_runtime::time::from_proto(time)
            .ok_or_else(|| ApiError::invalid("time", "not a valid instant"))?,
    };
    if occurred_at > now + CLOCK_SKEW {
        return Err(ApiError::invalid(
            "time",
            "is in the future; give the time the person made the statement",
        ));
    }
    if request.evidence.len() > MAX_EVIDENCE {
        return Err(ApiError::invalid(
            "evidence",
            format!("at most {MAX_EVIDENCE} entries"),
        ));
    }
    let evidence: serde_json::Map<String, serde_json::Value> = request
        .evidence
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    Ok(Statement {
        person,
        channel,
        purpose,
        kind,
        legal_basis,
        source: format!("api:{client}"),
        notice: request.notice.trim().to_owned(),
        occurred_at,
        evidence: evidence.into(),
    })
}

fn page_size(requested: i32) -> i64 {
    match requested {
        n if n <= 0 => 100,
        n => n.min(1_000) as i64,
    }
}

#[tonic::async_trait]
impl ConsentService for ConsentApi {
    #[tracing::instrument(name = "contacts.consent.record", skip_all)]
    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let letterhead = letterhead(
            &request.get_ref().organization_name,
            &request.get_ref().language,
        )?;
        let statement = statement(request.into_inner())?;
        let (person, channel, purpose) = (statement.person, statement.channel, statement.purpose);

        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM people WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(person)
                .fetch_optional(&mut *tx)
                .await
                .map_err(ApiError::from)?;
        if exists.is_none() {
            return Err(crate::store::people::missing(&mut tx, tenant, person)
                .await
                .into());
        }
        if statement.kind == Kind::Grant {
            let forbidding = store::forbidding(&mut tx, tenant, statement.legal_basis)
                .await
                .map_err(ApiError::from)?;
            if forbidding.contains(&channel) {
                return Err(forbidden(channel, statement.legal_basis).into());
            }
        }
        let statements = std::slice::from_ref(&statement);
        let applied = store::record_headed(&mut tx, tenant, statements, &letterhead)
            .await
            .map_err(ApiError::from)?;
        tx.commit().await.map_err(ApiError::from)?;

        tracing::info!(tenant_id = %tenant, person_id = %person, channel = %channel, purpose,
            applied = !applied.is_empty(), "consent statement recorded");
        let current = store::one(&self.pool, tenant, person, channel, purpose).await?;
        Ok(Response::new(pb::RecordConsentResponse {
            current: Some(current),
            applied: !applied.is_empty(),
        }))
    }

    async fn list_consents(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let person = parse_id(&request.get_ref().person_id, "person_id")?;
        let consents = store::current(&self.pool, tenant, person).await?;
        Ok(Response::new(pb::ListConsentsResponse { consents }))
    }

    async fn list_consent_history(
        &self,
        request: Request<pb::ListConsentHistoryRequest>,
    ) -> Result<Response<pb::ListConsentHistoryResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let person = parse_id(&request.person_id, "person_id")?;
        let after = match request.page_token.as_str() {
            "" => 0,
            token => token
                .parse()
                .map_err(|_| ApiError::invalid("page_token", "not a token from a previous page"))?,
        };
        let limit = page_size(request.page_size);
        let (records, next) = store::history(&self.pool, tenant, person, after, limit).await?;
        Ok(Response::new(pb::ListConsentHistoryResponse {
            records,
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_consent_policy(
        &self,
        request: Request<pb::GetConsentPolicyRequest>,
    ) -> Result<Response<pb::ConsentPolicy>, Status> {
        let tenant = auth::tenant(&request)?;
        let forbidden = store::policy(&self.pool, tenant).await?;
        Ok(Response::new(to_proto(&forbidden)))
    }

    #[tracing::instrument(name = "contacts.consent.set_policy", skip_all)]
    async fn set_consent_policy(
        &self,
        request: Request<pb::SetConsentPolicyRequest>,
    ) -> Result<Response<pb::ConsentPolicy>, Status> {
        let tenant = auth::tenant(&request)?;
        let policy = request.into_inner().policy.unwrap_or_default();
        let mut forbidden = Vec::new();
        for (i, entry) in policy.forbidden.iter().enumerate() {
            let channel = channel(&entry.channel, &format!("policy.forbidden[{i}].channel"))?;
            let basis = LegalBasis::from_proto(entry.legal_basis).ok_or_else(|| {
                ApiError::invalid(
                    format!("policy.forbidden[{i}].legal_basis"),
                    "name a legal basis (consent, contract, legal_obligation, vital_interests, \
                     public_task or legitimate_interests)",
                )
            })?;
            forbidden.push((channel, basis));
        }
        store::set_policy(&self.pool, tenant, &forbidden).await?;
        tracing::info!(tenant_id = %tenant, entries = forbidden.len(), "consent policy set");
        let forbidden = store::policy(&self.pool, tenant).await?;
        Ok(Response::new(to_proto(&forbidden)))
    }

    #[tracing::instrument(name = "contacts.consent.subscribe", skip_all)]
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let reply =
            super::opt_in::subscribe(&self.pool, &self.hasher, tenant, request.into_inner())
                .await?;
        Ok(Response::new(reply))
    }

    #[tracing::instrument(name = "contacts.consent.confirm", skip_all)]
    async fn confirm_consent(
        &self,
        request: Request<pb::ConfirmConsentRequest>,
    ) -> Result<Response<pb::ConfirmConsentResponse>, Status> {
        auth::caller(&request)?;
        let reply = super::opt_in::confirm(&self.pool, &self.tokens, request.into_inner()).await?;
        Ok(Response::new(reply))
    }
}

fn to_proto(forbidden: &[(Channel, LegalBasis)]) -> pb::ConsentPolicy {
    pb::ConsentPolicy {
        forbidden: forbidden
            .iter()
            .map(|(channel, basis)| pb::ForbiddenBasis {
                channel: channel.as_str().to_owned(),
                legal_basis: basis.to_proto() as i32,
            })
            .collect(),
    }
}
