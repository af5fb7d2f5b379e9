//! `/v1/segments`: counting the people a filter selects.

use axum::Json;
use muster_proto::contacts::v1::CountSegmentRequest;

use super::models::{SegmentCount, SegmentFilter};
use crate::error::HttpError;
use crate::extract::JsonBody;
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
