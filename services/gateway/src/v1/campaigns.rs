//! `/v1/campaigns`: campaigns and their launch, pause, resume and cancel.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use muster_proto::messaging::v1::{
    CampaignActionRequest, CreateCampaignRequest, GetCampaignRequest, ListCampaignsRequest,
};

use super::PageParams;
use super::models::{Campaign, Campaigns, NewCampaign, Page};
use crate::error::HttpError;
use crate::extract::{JsonBody, QueryParams};
use crate::upstream::{Reply, TenantApi, Upstream};

/// `POST /v1/campaigns`: a draft campaign.
#[tracing::instrument(
    name = "gateway.campaigns.create",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn create(
    mut api: TenantApi,
    JsonBody(campaign): JsonBody<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), HttpError> {
    let request = CreateCampaignRequest {
        campaign: Some(campaign.into()),
    };
    let created = api
        .messaging
        .create_campaign(request)
        .await
        .reply(Upstream::Messaging)?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// `GET /v1/campaigns`: one page of campaigns.
#[tracing::instrument(name = "gateway.campaigns.list", skip_all, fields(tenant_id = %api.tenant))]
pub async fn list(
    mut api: TenantApi,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<Campaigns>>, HttpError> {
    let request = ListCampaignsRequest {
        page_size: page.page_size,
        page_token: page.page_token,
    };
    let reply = api
        .messaging
        .list_campaigns(request)
        .await
        .reply(Upstream::Messaging)?;

    let campaigns = reply.campaigns.into_iter().map(Campaign::from).collect();
    Ok(Json(Page::new(
        Campaigns { campaigns },
        reply.next_page_token,
    )))
}

/// `GET /v1/campaigns/{id}`.
#[tracing::instrument(
    name = "gateway.campaigns.get",
    skip_all,
    fields(tenant_id = %api.tenant, campaign_id = %id)
)]
pub async fn get(mut api: TenantApi, Path(id): Path<String>) -> Result<Json<Campaign>, HttpError> {
    let campaign = api
        .messaging
        .get_campaign(GetCampaignRequest { id })
        .await
        .reply(Upstream::Messaging)?;
    Ok(Json(campaign.into()))
}

/// What `POST /v1/campaigns/{id}/<action>` asks of a campaign.
#[derive(Debug, Clone, Copy)]
enum Action {
    Launch,
    Pause,
    Resume,
    Cancel,
}

#[tracing::instrument(
    name = "gateway.campaigns.act",
    skip_all,
    fields(tenant_id = %api.tenant, campaign_id = %id, ?action)
)]
async fn act(mut api: TenantApi, id: String, action: Action) -> Result<Json<Campaign>, HttpError> {
    let request = CampaignActionRequest { id };
    let messaging = &mut api.messaging;
    let reply = match action {
        Action::Launch => messaging.launch_campaign(request).await,
        Action::Pause => messaging.pause_campaign(request).await,
        Action::Resume => messaging.resume_campaign(request).await,
        Action::Cancel => messaging.cancel_campaign(request).await,
    };
    Ok(Json(reply.reply(Upstream::Messaging)?.into()))
}

/// `POST /v1/campaigns/{id}/launch`: a second launch changes nothing.
pub async fn launch(api: TenantApi, Path(id): Path<String>) -> Result<Json<Campaign>, HttpError> {
    act(api, id, Action::Launch).await
}

/// `POST /v1/campaigns/{id}/pause`.
pub async fn pause(api: TenantApi, Path(id): Path<String>) -> Result<Json<Campaign>, HttpError> {
    act(api, id, Action::Pause).await
}

/// `POST /v1/campaigns/{id}/resume`.
pub async fn resume(api: TenantApi, Path(id): Path<String>) -> Result<Json<Campaign>, HttpError> {
    act(api, id, Action::Resume).await
}

/// `POST /v1/campaigns/{id}/cancel`.
pub async fn cancel(api: TenantApi, Path(id): Path<String>) -> Result<Json<Campaign>, HttpError> {
    act(api, id, Action::Cancel).await
}
