//! `/v1/deliveries/{id}`: one delivery with the bounces reported about it.

use axum::Json;
use axum::extract::Path;
use muster_proto::messaging::v1::GetDeliveryRequest;

use super::models::Delivery;
use crate::error::HttpError;
use crate::upstream::{Reply, TenantApi, Upstream};

/// `GET /v1/deliveries/{id}`.
#[tracing::instrument(
    name = "gateway.deliveries.get",
    skip_all,
    fields(tenant_id = %api.tenant, delivery_id = %id)
)]
pub async fn get(mut api: TenantApi, Path(id): Path<String>) -> Result<Json<Delivery>, HttpError> {
    let delivery = api
        .messaging
        .get_delivery(GetDeliveryRequest { id })
        .await
        .reply(Upstream::Messaging)?;
    Ok(Json(delivery.into()))
}
