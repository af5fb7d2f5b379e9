//! The bounces and complaints of a person (`/v1/people/{id}/bounces`) and
//! of a campaign (`/v1/campaigns/{id}/bounces`), newest first.

use axum::Json;
use axum::extract::Path;
use muster_proto::messaging::v1::ListBouncesRequest;

use super::PageParams;
use super::models::{Bounce, Bounces, Page};
use crate::error::HttpError;
use crate::extract::QueryParams;
use crate::upstream::{Reply, TenantApi, Upstream};

async fn list(
    api: &mut TenantApi,
    request: ListBouncesRequest,
) -> Result<Json<Page<Bounces>>, HttpError> {
    let reply = api
        .messaging
        .list_bounces(request)
        .await
        .reply(Upstream::Messaging)?;
    let bounces = reply.bounces.into_iter().map(Bounce::from).collect();
    Ok(Json(Page::new(Bounces { bounces }, reply.next_page_token)))
}

/// `GET /v1/people/{id}/bounces`: one page of the person's bounces.
#[tracing::instrument(
    name = "gateway.bounces.of_person",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn of_person(
    mut api: TenantApi,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<Bounces>>, HttpError> {
    let request = ListBouncesRequest {
        person_id: id,
        page_size: page.page_size,
        page_token: page.page_token,
        ..Default::default()
    };
    list(&mut api, request).await
}

/// `GET /v1/campaigns/{id}/bounces`: one page of the campaign's bounces.
#[tracing::instrument(
    name = "gateway.bounces.of_campaign",
    skip_all,
    fields(tenant_id = %api.tenant, campaign_id = %id)
)]
pub async fn of_campaign(
    mut api: TenantApi,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<Bounces>>, HttpError> {
    let request = ListBouncesRequest {
        campaign_id: id,
        page_size: page.page_size,
        page_token: page.page_token,
        ..Default::default()
    };
    list(&mut api, request).await
}
