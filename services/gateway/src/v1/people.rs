//! `/v1/people`: the organization's people.

use axum::Json;
use axum::extract::Path;
use muster_proto::contacts::v1::{GetPersonRequest, ListPeopleRequest};
use serde::Deserialize;

use super::models::{Page, People, Person};
use crate::error::HttpError;
use crate::extract::QueryParams;
use crate::upstream::{Reply, TenantApi, Upstream};

/// `?page_size=&page_token=&email=&phone=` of the people listing.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeopleParams {
    page_size: i32,
    page_token: String,
    /// The person with this address (theirs or merged into them).
    email: String,
    /// The people with this number (theirs or merged into them).
    phone: String,
}

/// `GET /v1/people`: one page of people, or the person of an address or
/// number (`?email=`, `?phone=`), as an access or erasure request names them.
#[tracing::instrument(name = "gateway.people.list", skip_all, fields(tenant_id = %api.tenant))]
pub async fn list(
    mut api: TenantApi,
    QueryParams(params): QueryParams<PeopleParams>,
) -> Result<Json<Page<People>>, HttpError> {
    let request = ListPeopleRequest {
        page_size: params.page_size,
        page_token: params.page_token,
        filter: None,
        email: params.email,
        phone: params.phone,
    };
    let reply = api
        .contacts
        .list_people(request)
        .await
        .reply(Upstream::Contacts)?;

    let people = reply.people.into_iter().map(Person::from).collect();
    Ok(Json(Page::new(People { people }, reply.next_page_token)))
}

/// `GET /v1/people/{id}`.
#[tracing::instrument(
    name = "gateway.people.get",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn get(mut api: TenantApi, Path(id): Path<String>) -> Result<Json<Person>, HttpError> {
    let person = api
        .contacts
        .get_person(GetPersonRequest { id })
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(person.into()))
}
