//! The REST/JSON API, version 1. Every route needs an API key.

mod bounces;
mod campaigns;
mod consents;
mod custom_fields;
mod deliveries;
mod duplicates;
mod imports;
mod models;
mod people;
mod privacy;
mod segments;
mod templates;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use serde::Deserialize;

use crate::startup::AppState;

/// The largest file an import accepts.
const MAX_UPLOAD_BYTES: usize = 1 << 30;

/// The `/v1` routes; the caller adds the API-key layer.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/imports",
            post(imports::upload)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
                .get(imports::list),
        )
        .route("/v1/imports/{id}", get(imports::get))
        .route("/v1/imports/{id}/issues", get(imports::issues))
        .route("/v1/people", get(people::list))
        .route("/v1/people/{id}", get(people::get))
        .route("/v1/people/{id}/bounces", get(bounces::of_person))
        .route(
            "/v1/people/{id}/custom-fields",
            patch(custom_fields::set_values),
        )
        .route(
            "/v1/custom-fields",
            post(custom_fields::define).get(custom_fields::list),
        )
        .route(
            "/v1/custom-fields/{key}",
            get(custom_fields::get)
                .delete(custom_fields::delete)
                .patch(custom_fields::update),
        )
        .route("/v1/people/{id}/export", get(privacy::export))
        .route("/v1/people/{id}/export.csv", get(privacy::export_csv))
        .route("/v1/people/{id}/erase", post(privacy::erase))
        .route("/v1/erasures/{id}", get(privacy::get_erasure))
        .route("/v1/deliveries/{id}", get(deliveries::get))
        .route("/v1/segments", get(segments::list).post(segments::create))
        .route("/v1/segments/count", post(segments::count))
        .route(
            "/v1/segments/{id}",
            get(segments::get).delete(segments::delete),
        )
        .route("/v1/templates", post(templates::create))
        .route("/v1/templates/{id}", get(templates::get))
        .route(
            "/v1/campaigns",
            post(campaigns::create).get(campaigns::list),
        )
        .route("/v1/campaigns/{id}", get(campaigns::get))
        .route("/v1/campaigns/{id}/bounces", get(bounces::of_campaign))
        .route("/v1/campaigns/{id}/launch", post(campaigns::launch))
        .route("/v1/campaigns/{id}/pause", post(campaigns::pause))
        .route("/v1/campaigns/{id}/resume", post(campaigns::resume))
        .route("/v1/campaigns/{id}/cancel", post(campaigns::cancel))
        .merge(merge_routes())
        .merge(consent_routes())
}

/// One record per person: duplicates to review, their rules, merges.
fn merge_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/duplicates", get(duplicates::list))
        .route("/v1/duplicates/find", post(duplicates::find))
        .route("/v1/duplicates/{id}/dismiss", post(duplicates::dismiss))
        .route(
            "/v1/duplicate-rules",
            get(duplicates::rules).put(duplicates::set_rules),
        )
        .route("/v1/people/{id}/merge", post(duplicates::merge))
}

/// The routes of the consent ledger and the organization's consent policy.
fn consent_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/people/{id}/consents",
            get(consents::list).post(consents::record),
        )
        .route("/v1/people/{id}/consents/history", get(consents::history))
        .route(
            "/v1/consent-policy",
            get(consents::get_policy).put(consents::set_policy),
        )
}

/// `?page_size=&page_token=` of a listing; another parameter (`?limit=`)
/// is refused rather than ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PageParams {
    page_size: i32,
    page_token: String,
}
