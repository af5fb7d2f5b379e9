//! `/v1/people`: the organization's people.

use axum::Json;
use axum::extract::Path;
use muster_proto::contacts::v1::{GetPersonRequest, ListPeopleRequest};

use super::PageParams;
use super::models::{Page, People, Person};
use crate::error::HttpError;
use crate::extract::QueryParams;
use crate::upstream::{Reply, TenantApi, Upstream};

/// `GET /v1/people`: one page of people.
#[tracing::instrument(name = "gateway.people.list", skip_all, fields(tenant_id = %api.tenant))]
pub async fn list(
    mut api: TenantApi,
    QueryParams(page): QueryParams<PageParams>,
) -> Result<Json<Page<People>>, HttpError> {
    let request = ListPeopleRequest {
        page_size: page.page_size,
        page_token: page.page_token,
        filter: None,
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
