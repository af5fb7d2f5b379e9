//! `/v1/segments`: counting the people a filter selects, and segments kept
//! under a name.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use muster_proto::contacts::v1::{
    CountSegmentRequest, CreateSavedSegmentRequest, DeleteSavedSegmentRequest,
    GetSavedSegmentRequest, ListSavedSegmentsRequest,
};

use super::PageParams;
use super::models::{
    NewSavedSegment, Page, SavedSegment, SavedSegments, SegmentCount, SegmentFilter,
};
use crate::error::HttpError;
use crate::extract::{JsonBody, QueryParams};
use crate::upstream::{Reply, TenantApi, Upstream};

/// `POST /v1/segments/count` with a segment filter as the body.
#[tracing::instrument(name = "gateway.segments.count", skip_all, fields(tenant_id = %api.tenant))]
pub async fn count(
    mut api: TenantApi,
    JsonBody(filter): JsonBody<SegmentFilter>,
) -> Result<Json<SegmentCount>, HttpError> {
    let request = CountSegmentRequest {
        filter: Some(filter.into()),
    };
    let reply = api
        .contacts
        .count_segment(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(SegmentCount { count: reply.count }))
}

/// `POST /v1/segments`: keeps a filter under a name.
#[tracing::instrument(name = "gateway.segments.create", skip_all, fields(tenant_id = %api.tenant))]
pub async fn create(
    mut api: TenantApi,
    JsonBody(segment): JsonBody<NewSavedSegment>,
) -> Result<(StatusCode, Json<SavedSegment>), HttpError> {
    let request = CreateSavedSegmentRequest {
        name: segment.name,
        filter: Some(segment.filter.into()),
    };
    let created = api
        .contacts
        .create_saved_segment(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// `GET /v1/segments`: one page of saved segments, by name.
#[tracing::instrument(name = "gateway.segments.list", skip_all, fields(tenant_id = %api.tenant))]
pub async fn list(
    mut api: TenantApi,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<SavedSegments>>, HttpError> {
    let request = ListSavedSegmentsRequest {
        page_size: page.page_size,
        page_token: page.page_token,
    };
    let reply = api
        .contacts
        .list_saved_segments(request)
        .await
        .reply(Upstream::Contacts)?;
    let segments = reply.segments.into_iter().map(Into::into).collect();
    Ok(Json(Page::new(
        SavedSegments { segments },
        reply.next_page_token,
    )))
}

/// `GET /v1/segments/{id}`: the definition and how many people match now.
#[tracing::instrument(
    name = "gateway.segments.get",
    skip_all,
    fields(tenant_id = %api.tenant, segment_id = %id)
)]
pub async fn get(
    mut api: TenantApi,
    Path(id): Path<String>,
) -> Result<Json<SavedSegment>, HttpError> {
    let segment = api
        .contacts
        .get_saved_segment(GetSavedSegmentRequest { id })
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(segment.into()))
}

/// `DELETE /v1/segments/{id}`; campaigns already launched keep their people.
#[tracing::instrument(
    name = "gateway.segments.delete",
    skip_all,
    fields(tenant_id = %api.tenant, segment_id = %id)
)]
pub async fn delete(mut api: TenantApi, Path(id): Path<String>) -> Result<StatusCode, HttpError> {
    api.contacts
        .delete_saved_segment(DeleteSavedSegmentRequest { id })
        .await
        .reply(Upstream::Contacts)?;
    Ok(StatusCode::NO_CONTENT)
}
