//! Custom field definitions and the values people hold for them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as pb;
use muster_runtime::time::to_proto;
use muster_runtime::{ApiError, TenantId};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::custom_field::{Definition, Definitions, FieldType};
use crate::domain::header_key;
use crate::events;

#[derive(sqlx::FromRow)]
struct FieldRow {
    key: String,
    label: String,
    r#type: String,
    choices: Vec<String>,
    created_at: DateTime<Utc>,
}

impl FieldRow {
    fn definition(&self) -> Result<Definition, ApiError> {
        let kind = FieldType::parse(&self.r#type).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "custom field {} has the unknown type {:?}",
                self.key,
                self.r#type
            ))
        })?;
        Definition::new(&self.key, &self.label, kind, &self.choices).map_err(|(field, error)| {
            ApiError::Internal(anyhow::anyhow!(
                "custom field {} is stored with an invalid {field}: {error}",
                self.key
            ))
        })
    }

    fn proto_type(&self) -> pb::CustomFieldType {
        match FieldType::parse(&self.r#type) {
            Some(FieldType::Text) => pb::CustomFieldType::Text,
            Some(FieldType::Number) => pb::CustomFieldType::Number,
            Some(FieldType::Date) => pb::CustomFieldType::Date,
            Some(FieldType::Boolean) => pb::CustomFieldType::Boolean,
            Some(FieldType::Choice) => pb::CustomFieldType::Choice,
            None => pb::CustomFieldType::Unspecified,
        }
    }

    fn into_proto(self) -> pb::CustomField {
        pb::CustomField {
            r#type: self.proto_type() as i32,
            key: self.key,
            label: self.label,
            choices: self.choices,
            create_time: Some(to_proto(self.created_at)),
        }
    }
}

const COLUMNS: &str = "key, label, type, choices, created_at";

/// Checks a definition from the API; errors name `field.<part>`.
pub fn check(field: &pb::CustomField) -> Result<Definition, ApiError> {
    let kind = match pb::CustomFieldType::try_from(field.r#type) {
        Ok(pb::CustomFieldType::Text) => FieldType::Text,
        Ok(pb::CustomFieldType::Number) => FieldType::Number,
        Ok(pb::CustomFieldType::Date) => FieldType::Date,
        Ok(pb::CustomFieldType::Boolean) => FieldType::Boolean,
        Ok(pb::CustomFieldType::Choice) => FieldType::Choice,
        Ok(pb::CustomFieldType::Unspecified) | Err(_) => {
            return Err(ApiError::invalid(
                "field.type",
                "choose a type: text, number, date, boolean or choice",
            ));
        }
    };
    Definition::new(&field.key, &field.label, kind, &field.choices)
        .map_err(|(part, error)| ApiError::invalid(format!("field.{part}"), error.reason))
}

/// Records a new definition; a key or a label already used is refused.
pub async fn define(
    pool: &PgPool,
    tenant: TenantId,
    field: &Definition,
) -> Result<pb::CustomField, ApiError> {
    refuse_shared_header(pool, tenant, field).await?;
    let row: Option<FieldRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO custom_fields (tenant_id, key, label, type, choices)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(field.key())
    .bind(field.label())
    .bind(field.kind().as_str())
    .bind(field.choices())
    .fetch_optional(pool)
    .await?;
    row.map(FieldRow::into_proto).ok_or_else(|| {
        ApiError::AlreadyExists(format!(
            "a custom field already has the key {:?} or the label {:?}; choose others or \
             delete that field first",
            field.key(),
            field.label()
        ))
    })
}

/// Changes the label or the choices of the field of `change`'s key (an empty
/// label, no type or no choices keep the current ones); its key and type
/// stay. Refused, saying what to do first, when a choice to remove is held by
/// people or tested by a saved segment. A choice given again in another case
/// is respelled, in the values people hold too.
pub async fn update(
    pool: &PgPool,
    tenant: TenantId,
    change: &pb::CustomField,
) -> Result<pb::CustomField, ApiError> {
    let key = change.key.trim().to_lowercase();
    let unspecified = pb::CustomFieldType::Unspecified as i32;
    if change.label.trim().is_empty() && change.choices.is_empty() && change.r#type == unspecified {
        return Err(ApiError::invalid(
            "field",
            "nothing to change: give a new label, or the whole new list of choices",
        ));
    }
    let mut tx = pool.begin().await?;
    let current: Option<FieldRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM custom_fields WHERE tenant_id = $1 AND key = $2 FOR UPDATE"
    )))
    .bind(tenant)
    .bind(&key)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Err(ApiError::not_found(format!("custom field {key:?}")));
    };
    if change.r#type != unspecified && change.r#type != current.proto_type() as i32 {
        return Err(ApiError::invalid(
            "field.type",
            format!(
                "a field's type cannot change (this one is a {} field); define a new field \
                 for the new type",
                current.r#type
            ),
        ));
    }
    let field = check(&pb::CustomField {
        key: key.clone(),
        label: if change.label.trim().is_empty() {
            current.label.clone()
        } else {
            change.label.clone()
        },
        r#type: current.proto_type() as i32,
        choices: if change.choices.is_empty() {
            current.choices.clone()
        } else {
            change.choices.clone()
        },
        create_time: None,
    })?;
    // A choice left out but given again in another case ("rouge" for
    // "Rouge") is respelled, with the values people hold; any other is removed.
    let mut respelled = Vec::new();
    let mut removed = Vec::new();
    for choice in current
        .choices
        .iter()
        .filter(|c| !field.choices().contains(c))
    {
        let wanted = choice.to_lowercase();
        match field.choices().iter().find(|c| c.to_lowercase() == wanted) {
            Some(spelling) => respelled.push((choice.clone(), spelling.clone())),
            None => removed.push(choice.clone()),
        }
    }
    if !removed.is_empty() {
        let held: Vec<(String, i64)> = sqlx::query_as(
            "SELECT custom_fields ->> $2, count(*) FROM people
             WHERE tenant_id = $1 AND custom_fields ->> $2 = ANY($3)
             GROUP BY 1 ORDER BY 1",
        )
        .bind(tenant)
        .bind(field.key())
        .bind(&removed)
        .fetch_all(&mut *tx)
        .await?;
        if let Some((first, _)) = held.first() {
            let first = first.clone();
            let held: Vec<String> = held
                .iter()
                .map(|(choice, people)| match people {
                    1 => format!("{choice:?} (1 person)"),
                    n => format!("{choice:?} ({n} people)"),
                })
                .collect();
            let key = field.key();
            return Err(ApiError::FailedPrecondition(format!(
                "people hold the choices {} of {key:?}; find them with the segment \
                 field:{key}={first:?}, set each a value the field keeps (a person's custom \
                 fields; an import does not replace a value already held), then remove the \
                 choice",
                held.join(", "),
            )));
        }
    }
    refuse_shared_header(&mut *tx, tenant, &field).await?;
    let fields = load(&mut *tx, tenant).await?;
    let changed = fields.with(field.clone());
    let broken = super::segments::broken_by(&mut *tx, tenant, &fields, &changed).await?;
    if !broken.is_empty() {
        return Err(ApiError::FailedPrecondition(format!(
            "the saved segments {} would no longer work ({}); delete them or save them again \
             first",
            segment_names(&broken),
            broken[0].1
        )));
    }
    let updated: Result<FieldRow, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE custom_fields SET label = $3, choices = $4 WHERE tenant_id = $1 AND key = $2
         RETURNING {COLUMNS}"
    )))
    .bind(tenant)
    .bind(field.key())
    .bind(field.label())
    .bind(field.choices())
    .fetch_one(&mut *tx)
    .await;
    let updated = match updated {
        Ok(row) => row,
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(ApiError::AlreadyExists(format!(
                "another custom field has the label {:?}; choose another",
                field.label()
            )));
        }
        Err(error) => return Err(error.into()),
    };
    for (old, new) in &respelled {
        sqlx::query(
            "UPDATE people
             SET custom_fields = jsonb_set(custom_fields, ARRAY[$2], to_jsonb($4::text)),
                 updated_at = now()
             WHERE tenant_id = $1 AND custom_fields ->> $2 = $3",
        )
        .bind(tenant)
        .bind(field.key())
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(updated.into_proto())
}

/// Refuses a key or label that another field answers to as its key or label,
/// as an import compares headers ([`header_key`]: ignoring case, accents,
/// apostrophes and spacing): an import could not tell the two fields apart.
async fn refuse_shared_header<'e>(
    executor: impl PgExecutor<'e>,
    tenant: TenantId,
    field: &Definition,
) -> Result<(), ApiError> {
    let others: Vec<(String, String)> =
        sqlx::query_as("SELECT key, label FROM custom_fields WHERE tenant_id = $1 AND key <> $2")
            .bind(tenant)
            .bind(field.key())
            .fetch_all(executor)
            .await?;
    let names = [header_key(field.key()), header_key(field.label())];
    let shared = others.iter().find(|(key, label)| {
        names.contains(&header_key(key)) || names.contains(&header_key(label))
    });
    match shared {
        None => Ok(()),
        Some((other, label)) => Err(ApiError::AlreadyExists(format!(
            "the custom field {other:?} (label {label:?}) already answers to {:?} or {:?} as \
             its key or label; an import could not tell the two apart: choose another key or \
             label",
            field.key(),
            field.label()
        ))),
    }
}

/// Saved segment names for a message: `"A", "B"`.
fn segment_names(segments: &[(String, String)]) -> String {
    segments
        .iter()
        .map(|(name, _)| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The definitions of `tenant`, by key.
pub async fn list(pool: &PgPool, tenant: TenantId) -> Result<Vec<pb::CustomField>, ApiError> {
    Ok(rows(pool, tenant)
        .await?
        .into_iter()
        .map(FieldRow::into_proto)
        .collect())
}

/// The checked definitions of `tenant`, to type values and segment conditions.
pub async fn load<'e>(
    executor: impl PgExecutor<'e>,
    tenant: TenantId,
) -> Result<Definitions, ApiError> {
    let definitions = rows(executor, tenant)
        .await?
        .iter()
        .map(FieldRow::definition)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Definitions::new(definitions))
}

async fn rows<'e>(
    executor: impl PgExecutor<'e>,
    tenant: TenantId,
) -> Result<Vec<FieldRow>, ApiError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM custom_fields WHERE tenant_id = $1 ORDER BY key"
    )))
    .bind(tenant)
    .fetch_all(executor)
    .await?)
}

/// Deletes a definition and every value held for it, in one transaction;
/// refused while a saved segment tests the field (it would fail when next
/// used, a campaign's launch among them).
pub async fn delete(pool: &PgPool, tenant: TenantId, key: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await?;
    let fields = load(&mut *tx, tenant).await?;
    let broken =
        super::segments::broken_by(&mut *tx, tenant, &fields, &fields.without(key)).await?;
    if !broken.is_empty() {
        return Err(ApiError::FailedPrecondition(format!(
            "the saved segments {} test the custom field {key:?}; delete them (or save them \
             again without that condition) before deleting the field",
            segment_names(&broken)
        )));
    }
    let deleted = sqlx::query("DELETE FROM custom_fields WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found(format!("custom field {key:?}")));
    }
    let cleared = sqlx::query(
        "UPDATE people SET custom_fields = custom_fields - $2, updated_at = now()
         WHERE tenant_id = $1 AND custom_fields ? $2",
    )
    .bind(tenant)
    .bind(key)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant, key, people = cleared, "custom field deleted");
    Ok(())
}

/// Sets the values given for `person` (an empty value removes the key),
/// each checked against its definition; errors name `values[KEY]`.
pub async fn set(
    pool: &PgPool,
    tenant: TenantId,
    person: Uuid,
    values: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let definitions = load(pool, tenant).await?;
    let mut patch = serde_json::Map::new();
    let mut removed = Vec::new();
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort();
    for key in keys {
        let path = format!("values[{key}]");
        let Some(definition) = definitions.get(key) else {
            return Err(ApiError::invalid(
                path,
                format!(
                    "no custom field has this key; known keys: {}",
                    definitions.keys()
                ),
            ));
        };
        match values[key].trim() {
            "" => removed.push(definition.key().to_owned()),
            raw => {
                let value = definition.parse_value(raw).map_err(|error| {
                    let kind = definition.kind().as_str();
                    ApiError::invalid(&path, format!("a {kind} field: {}", error.reason))
                })?;
                patch.insert(definition.key().to_owned(), value);
            }
        }
    }

    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE people SET custom_fields = (custom_fields - $3::text[]) || $4, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(person)
    .bind(&removed)
    .bind(serde_json::Value::Object(patch))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(super::people::missing(&mut tx, tenant, person).await);
    }
    events::person_changed(tenant, events::PERSON_UPDATED)
        .enqueue(&mut tx, events::person_bodies(&[person]))
        .await?;
    tx.commit().await?;
    Ok(())
}
