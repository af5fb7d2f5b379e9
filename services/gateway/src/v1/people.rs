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
    email: Option<String>,
    /// The people with this number (theirs or merged into them).
    phone: Option<String>,
}

/// A lookup value given, refused when blank: `?email=` from a script whose
/// variable was empty must not list everyone in place of one person.
fn looked_up(name: &str, value: Option<String>) -> Result<String, HttpError> {
    match value {
        Some(value) if value.trim().is_empty() => Err(HttpError::invalid(
            name,
            "empty: give the value to look up, or leave the parameter out to list everyone",
        )),
        value => Ok(value.unwrap_or_default()),
    }
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
        email: looked_up("email", params.email)?,
        phone: looked_up("phone", params.phone)?,
        default_country: api.default_country.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_lookup_is_refused_rather_than_listing_everyone() {
        for blank in ["", " ", "\t"] {
            let error = looked_up("email", Some(blank.into())).unwrap_err();
            assert!(error.to_string().starts_with("email: empty"), "{error}");
        }
        assert_eq!(looked_up("email", None).unwrap(), "");
        assert_eq!(looked_up("phone", Some("0612".into())).unwrap(), "0612");
    }
}
