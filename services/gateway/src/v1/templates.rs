//! `/v1/templates`: message templates.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use muster_proto::messaging::v1::{CreateTemplateRequest, GetTemplateRequest};

use super::models::{NewTemplate, Template};
use crate::error::HttpError;
use crate::extract::JsonBody;
use crate::upstream::{Reply, TenantApi, Upstream};

/// `POST /v1/templates`.
#[tracing::instrument(
    name = "gateway.templates.create",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn create(
    mut api: TenantApi,
    JsonBody(template): JsonBody<NewTemplate>,
) -> Result<(StatusCode, Json<Template>), HttpError> {
    let request = CreateTemplateRequest {
        template: Some(template.into()),
    };
    let created = api
        .messaging
        .create_template(request)
        .await
        .reply(Upstream::Messaging)?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// `GET /v1/templates/{id}`.
#[tracing::instrument(
    name = "gateway.templates.get",
    skip_all,
    fields(tenant_id = %api.tenant, template_id = %id)
)]
pub async fn get(mut api: TenantApi, Path(id): Path<String>) -> Result<Json<Template>, HttpError> {
    let template = api
        .messaging
        .get_template(GetTemplateRequest { id })
        .await
        .reply(Upstream::Messaging)?;
    Ok(Json(template.into()))
}
