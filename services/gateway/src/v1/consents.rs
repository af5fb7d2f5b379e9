//! `/v1/people/{id}/consents` and `/v1/consent-policy`: the consent ledger.

use axum::Json;
use axum::extract::Path;
use muster_proto::contacts::v1 as proto;
use muster_runtime::language::Language;

use super::PageParams;
use super::models::{
    ConsentHistory, ConsentPolicy, ConsentRecord, Consents, NewConsent, Page, RecordedConsent,
};
use crate::error::HttpError;
use crate::extract::{JsonBody, QueryParams};
use crate::upstream::{Reply, TenantApi, Upstream};

/// `GET /v1/people/{id}/consents`: the current state per channel and purpose.
#[tracing::instrument(
    name = "gateway.consents.list",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn list(mut api: TenantApi, Path(id): Path<String>) -> Result<Json<Consents>, HttpError> {
    let reply = api
        .consent
        .list_consents(proto::ListConsentsRequest { person_id: id })
        .await
        .reply(Upstream::Contacts)?;
    let consents = reply
        .consents
        .into_iter()
        .map(ConsentRecord::from)
        .collect();
    Ok(Json(Consents { consents }))
}

/// `POST /v1/people/{id}/consents`: records a statement. A grant over a
/// withdrawal asks the person to confirm by e-mail; the e-mail names the
/// organization and is written in its language (from its country), as no
/// visitor's browser is there to choose.
#[tracing::instrument(
    name = "gateway.consents.record",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn record(
    mut api: TenantApi,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewConsent>,
) -> Result<Json<RecordedConsent>, HttpError> {
    let language = Language::for_country(&api.default_country);
    let request = body.into_proto(id, &api.organization_name, language);
    let reply = api
        .consent
        .record_consent(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(RecordedConsent {
        current: reply.current.map(ConsentRecord::from),
        applied: reply.applied,
    }))
}

/// `GET /v1/people/{id}/consents/history`: one page of the ledger, oldest first.
#[tracing::instrument(
    name = "gateway.consents.history",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn history(
    mut api: TenantApi,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<ConsentHistory>>, HttpError> {
    let request = proto::ListConsentHistoryRequest {
        person_id: id,
        page_size: page.page_size,
        page_token: page.page_token,
    };
    let reply = api
        .consent
        .list_consent_history(request)
        .await
        .reply(Upstream::Contacts)?;
    let records = reply.records.into_iter().map(ConsentRecord::from).collect();
    Ok(Json(Page::new(
        ConsentHistory { records },
        reply.next_page_token,
    )))
}

/// `GET /v1/consent-policy`.
#[tracing::instrument(
    name = "gateway.consent_policy.get",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn get_policy(mut api: TenantApi) -> Result<Json<ConsentPolicy>, HttpError> {
    let policy = api
        .consent
        .get_consent_policy(proto::GetConsentPolicyRequest {})
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(policy.into()))
}

/// `PUT /v1/consent-policy`: replaces the policy; it applies at once.
#[tracing::instrument(
    name = "gateway.consent_policy.set",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn set_policy(
    mut api: TenantApi,
    JsonBody(policy): JsonBody<ConsentPolicy>,
) -> Result<Json<ConsentPolicy>, HttpError> {
    let request = proto::SetConsentPolicyRequest {
        policy: Some(policy.into()),
    };
    let policy = api
        .consent
        .set_consent_policy(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(policy.into()))
}
