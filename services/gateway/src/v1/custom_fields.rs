//! `/v1/custom-fields`: the organization's custom fields, and
//! `/v1/people/{id}/custom-fields`: the values one person holds.

use std::collections::HashMap;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as proto;
use muster_runtime::ApiError;
use serde::{Deserialize, Serialize};

use super::models::Person;
use crate::error::HttpError;
use crate::extract::JsonBody;
use crate::upstream::{Reply, TenantApi, Upstream};

/// What a custom field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Date,
    Boolean,
    Choice,
}

/// A custom field as defined, and as shown.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    /// Lower-case slug (`membership_year`), written in segment queries.
    pub key: String,
    pub label: String,
    pub r#type: FieldType,
    /// The allowed values of a choice field.
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default, skip_deserializing)]
    pub create_time: Option<DateTime<Utc>>,
}

impl From<proto::CustomField> for CustomField {
    fn from(field: proto::CustomField) -> Self {
        let kind = match proto::CustomFieldType::try_from(field.r#type) {
            Ok(proto::CustomFieldType::Number) => FieldType::Number,
            Ok(proto::CustomFieldType::Date) => FieldType::Date,
            Ok(proto::CustomFieldType::Boolean) => FieldType::Boolean,
            Ok(proto::CustomFieldType::Choice) => FieldType::Choice,
            _ => FieldType::Text,
        };
        Self {
            key: field.key,
            label: field.label,
            r#type: kind,
            choices: field.choices,
            create_time: field
                .create_time
                .as_ref()
                .and_then(muster_runtime::time::from_proto),
        }
    }
}

fn proto_type(kind: FieldType) -> proto::CustomFieldType {
    match kind {
        FieldType::Text => proto::CustomFieldType::Text,
        FieldType::Number => proto::CustomFieldType::Number,
        FieldType::Date => proto::CustomFieldType::Date,
        FieldType::Boolean => proto::CustomFieldType::Boolean,
        FieldType::Choice => proto::CustomFieldType::Choice,
    }
}

impl From<CustomField> for proto::CustomField {
    fn from(field: CustomField) -> Self {
        Self {
            r#type: proto_type(field.r#type) as i32,
            key: field.key,
            label: field.label,
            choices: field.choices,
            create_time: None,
        }
    }
}

/// The custom fields of the organization.
#[derive(Debug, Serialize)]
pub struct CustomFields {
    pub fields: Vec<CustomField>,
}

/// `POST /v1/custom-fields`.
#[tracing::instrument(
    name = "gateway.custom_fields.define",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn define(
    mut api: TenantApi,
    JsonBody(field): JsonBody<CustomField>,
) -> Result<(StatusCode, Json<CustomField>), HttpError> {
    let request = proto::DefineCustomFieldRequest {
        field: Some(field.into()),
    };
    let defined = api
        .contacts
        .define_custom_field(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok((StatusCode::CREATED, Json(defined.into())))
}

/// What `PATCH /v1/custom-fields/{key}` changes; what it leaves out stays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    #[serde(default)]
    pub label: Option<String>,
    /// The whole new list of a choice field's choices.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
    /// Accepted only as the field's own type: a type never changes.
    #[serde(default)]
    pub r#type: Option<FieldType>,
    /// Accepted only as the field's own key (a body copied from a GET):
    /// segments and imports name the field by it.
    #[serde(default)]
    pub key: Option<String>,
}

/// `PATCH /v1/custom-fields/{key}`: a new label, or choices added or removed.
#[tracing::instrument(
    name = "gateway.custom_fields.update",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn update(
    mut api: TenantApi,
    Path(key): Path<String>,
    JsonBody(change): JsonBody<FieldChange>,
) -> Result<Json<CustomField>, HttpError> {
    if let Some(other) = change
        .key
        .as_deref()
        .filter(|k| !k.trim().eq_ignore_ascii_case(&key))
    {
        return Err(HttpError::invalid(
            "key",
            format!(
                "a field's key never changes ({key:?}, not {other:?}): segments and imports \
                 name the field by it; define a new field to use another key"
            ),
        ));
    }
    if change.choices.as_ref().is_some_and(Vec::is_empty) {
        return Err(HttpError::invalid(
            "choices",
            "an empty list: a choice field keeps at least one choice; leave choices out to \
             keep them",
        ));
    }
    let kind = change
        .r#type
        .map_or(proto::CustomFieldType::Unspecified, proto_type);
    let request = proto::UpdateCustomFieldRequest {
        field: Some(proto::CustomField {
            key,
            label: change.label.unwrap_or_default(),
            choices: change.choices.unwrap_or_default(),
            r#type: kind as i32,
            ..Default::default()
        }),
    };
    let updated = api
        .contacts
        .update_custom_field(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(updated.into()))
}

/// `GET /v1/custom-fields`.
#[tracing::instrument(
    name = "gateway.custom_fields.list",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn list(mut api: TenantApi) -> Result<Json<CustomFields>, HttpError> {
    let reply = api
        .contacts
        .list_custom_fields(proto::ListCustomFieldsRequest {})
        .await
        .reply(Upstream::Contacts)?;
    let fields = reply.fields.into_iter().map(CustomField::from).collect();
    Ok(Json(CustomFields { fields }))
}

/// `GET /v1/custom-fields/{key}`: one definition, its key compared as
/// contacts compares keys (in any case).
#[tracing::instrument(
    name = "gateway.custom_fields.get",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn get(
    mut api: TenantApi,
    Path(key): Path<String>,
) -> Result<Json<CustomField>, HttpError> {
    let reply = api
        .contacts
        .list_custom_fields(proto::ListCustomFieldsRequest {})
        .await
        .reply(Upstream::Contacts)?;
    reply
        .fields
        .into_iter()
        .find(|field| field.key.eq_ignore_ascii_case(key.trim()))
        .map(|field| Json(field.into()))
        .ok_or_else(|| ApiError::not_found(format!("custom field {key:?}")).into())
}

/// `DELETE /v1/custom-fields/{key}`: the definition and every value held for it.
#[tracing::instrument(
    name = "gateway.custom_fields.delete",
    skip_all,
    fields(tenant_id = %api.tenant)
)]
pub async fn delete(mut api: TenantApi, Path(key): Path<String>) -> Result<StatusCode, HttpError> {
    api.contacts
        .delete_custom_field(proto::DeleteCustomFieldRequest { key })
        .await
        .reply(Upstream::Contacts)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/people/{id}/custom-fields` with `{"KEY": VALUE, ...}`: a value
/// is written as text, as a file's cell is (`"2024"`), or as JSON gives it
/// (`2024`, `true`); `null` or `""` removes the field from the person.
#[tracing::instrument(
    name = "gateway.custom_fields.set",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn set_values(
    mut api: TenantApi,
    Path(id): Path<String>,
    JsonBody(values): JsonBody<HashMap<String, serde_json::Value>>,
) -> Result<Json<Person>, HttpError> {
    let request = proto::SetCustomFieldsRequest {
        person_id: id,
        values: values
            .into_iter()
            .map(|(key, value)| {
                let text = value_text(&key, value)?;
                Ok((key, text))
            })
            .collect::<Result<_, HttpError>>()?,
    };
    let person = api
        .contacts
        .set_custom_fields(request)
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(person.into()))
}

/// A custom field's value in a request body, as the text contacts reads.
fn value_text(key: &str, value: serde_json::Value) -> Result<String, HttpError> {
    use serde_json::Value;
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(yes) => Ok(yes.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(_) | Value::Object(_) => Err(HttpError::invalid(
            format!("values[{key}]"),
            "a list or an object: give one value, as text, a number, true or false, or null \
             to remove it",
        )),
    }
}
