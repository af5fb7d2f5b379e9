//! `/v1/duplicates`, `/v1/duplicate-rules` and `/v1/people/{id}/merge`: one
//! record per person.

use axum::Json;
use axum::extract::Path;
use muster_proto::contacts::v1 as contacts;

use super::models::{
    Duplicate, DuplicateParams, DuplicateRules, Duplicates, FoundDuplicates, Merge, MergeRequest,
    Page,
};
use crate::error::HttpError;
use crate::extract::{JsonBody, QueryParams};
use crate::upstream::{Reply, TenantApi, Upstream};

/// `GET /v1/duplicates`: one page of pairs, open ones unless `state` says otherwise.
#[tracing::instrument(name = "gateway.duplicates.list", skip_all, fields(tenant_id = %api.tenant))]
pub async fn list(
    mut api: TenantApi,
    QueryParams(params): QueryParams<DuplicateParams>,
) -> Result<Json<Page<Duplicates>>, HttpError> {
    let request = contacts::ListDuplicatesRequest {
        page_size: params.page_size,
        page_token: params.page_token,
        state: params.state.map(|s| s.to_proto()).unwrap_or_default(),
    };
    let reply = api
        .contacts
        .list_duplicates(request)
        .await
        .reply(Upstream::Contacts)?;
    let duplicates = reply.duplicates.into_iter().map(Duplicate::from).collect();
    Ok(Json(Page::new(
        Duplicates { duplicates },
        reply.next_page_token,
    )))
}

/// `POST /v1/duplicates/find`: detection over every person of the organization.
#[tracing::instrument(name = "gateway.duplicates.find", skip_all, fields(tenant_id = %api.tenant))]
pub async fn find(mut api: TenantApi) -> Result<Json<FoundDuplicates>, HttpError> {
    let found = api
        .contacts
        .find_duplicates(contacts::FindDuplicatesRequest {})
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(FoundDuplicates {
        listed: found.listed,
        merged: found.merged,
    }))
}

/// `POST /v1/duplicates/{id}/dismiss`: the pair is two different people.
#[tracing::instrument(
    name = "gateway.duplicates.dismiss",
    skip_all,
    fields(tenant_id = %api.tenant, duplicate_id = %id)
)]
pub async fn dismiss(
    mut api: TenantApi,
    Path(id): Path<String>,
) -> Result<Json<Duplicate>, HttpError> {
    let pair = api
        .contacts
        .dismiss_duplicate(contacts::DismissDuplicateRequest { id })
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(pair.into()))
}

/// `POST /v1/people/{id}/merge`: `other_id` is merged into the person `id`.
#[tracing::instrument(
    name = "gateway.people.merge",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn merge(
    mut api: TenantApi,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MergeRequest>,
) -> Result<Json<Merge>, HttpError> {
    let request = contacts::MergePeopleRequest {
        survivor_id: id,
        merged_id: body.other_id,
        reason: body.reason,
    };
    let merge = api
        .contacts
        .merge_people(request)
        .await
        .map_err(rest_fields)
        .reply(Upstream::Contacts)?;
    Ok(Json(merge.into()))
}

/// A refusal of MergePeople, naming the request's parts as REST calls them:
/// the path's `id` and the body's `other_id`.
fn rest_fields(status: tonic::Status) -> tonic::Status {
    let message = status.message();
    let renamed = [("survivor_id: ", "id: "), ("merged_id: ", "other_id: ")]
        .into_iter()
        .find_map(|(grpc, rest)| Some(format!("{rest}{}", message.strip_prefix(grpc)?)));
    match renamed {
        Some(message) => tonic::Status::new(status.code(), message),
        None => status,
    }
}

/// `GET /v1/duplicate-rules`.
#[tracing::instrument(name = "gateway.duplicates.rules", skip_all, fields(tenant_id = %api.tenant))]
pub async fn rules(mut api: TenantApi) -> Result<Json<DuplicateRules>, HttpError> {
    let rules = api
        .contacts
        .get_duplicate_rules(contacts::GetDuplicateRulesRequest {})
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(rules.into()))
}

/// `PUT /v1/duplicate-rules`: which exact kinds merge without review.
#[tracing::instrument(
    name = "gateway.duplicates.set_rules",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn set_rules(
    mut api: TenantApi,
    JsonBody(body): JsonBody<DuplicateRules>,
) -> Result<Json<DuplicateRules>, HttpError> {
    let request = contacts::DuplicateRules {
        automatic: body.automatic.iter().map(|k| k.to_proto()).collect(),
    };
    let rules = api
        .contacts
        .set_duplicate_rules(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(rules.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_refusal_names_the_rest_fields() {
        let status = tonic::Status::failed_precondition("merged_id: person x was erased");
        let renamed = rest_fields(status);
        assert_eq!(renamed.code(), tonic::Code::FailedPrecondition);
        assert_eq!(renamed.message(), "other_id: person x was erased");
        let other = rest_fields(tonic::Status::not_found("person y not found"));
        assert_eq!(other.message(), "person y not found");
    }
}
