//! `/v1/people/{id}/export`, `/v1/people/{id}/erase` and `/v1/erasures/{id}`:
//! a person's rights of access and erasure across every service.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use muster_proto::Timestamp;
use muster_proto::contacts::v1 as contacts;
use muster_proto::messaging::v1 as messaging;
use muster_runtime::ApiError;
use muster_runtime::spreadsheet::neutralize;
use serde::{Deserialize, Serialize};

use super::models::{LegalBasis, Person};
use crate::error::HttpError;
use crate::upstream::{Reply, TenantApi, Upstream};

/// What contacts and messaging hold about one person.
struct Gathered {
    generated_at: DateTime<Utc>,
    contacts: contacts::ContactsExport,
    messaging: messaging::MessagingExport,
}

async fn gather(api: &mut TenantApi, person_id: String) -> Result<Gathered, HttpError> {
    let contacts = api
        .contacts_people
        .export_person(contacts::ExportPersonRequest {
            person_id: person_id.clone(),
        })
        .await
        .reply(Upstream::Contacts)?;
    let messaging = api
        .messaging_people
        .export_person(messaging::ExportPersonRequest { person_id })
        .await
        .reply(Upstream::Messaging)?;
    Ok(Gathered {
        generated_at: Utc::now(),
        contacts,
        messaging,
    })
}

/// `GET /v1/people/{id}/export`: one JSON document, a section per service.
#[tracing::instrument(
    name = "gateway.people.export",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn export(mut api: TenantApi, Path(id): Path<String>) -> Result<Response, HttpError> {
    let gathered = gather(&mut api, id.clone()).await?;
    let document = serde_json::json!({
        "person_id": id,
        "generated_at": gathered.generated_at,
        "services": {
            "contacts": ContactsSection::from(gathered.contacts),
            "messaging": MessagingSection::from(gathered.messaging),
        },
    });
    Ok(Json(document).into_response())
}

/// `GET /v1/people/{id}/export.csv`: the same, one row per item with its
/// section; every cell neutralised against formula injection.
#[tracing::instrument(
    name = "gateway.people.export_csv",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn export_csv(mut api: TenantApi, Path(id): Path<String>) -> Result<Response, HttpError> {
    let gathered = gather(&mut api, id.clone()).await?;
    let body = csv_document(&gathered).map_err(ApiError::Internal)?;
    let disposition = format!("attachment; filename=\"person-{}.csv\"", file_safe(&id));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

fn file_safe(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// `POST /v1/people/{id}/erase` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EraseRequest {
    /// Who asked; "api-key" when not given.
    requested_by: String,
    reason: String,
}

/// `POST /v1/people/{id}/erase`: erases the person; 202 with the erasure,
/// which the other services confirm shortly after.
#[tracing::instrument(
    name = "gateway.people.erase",
    skip_all,
    fields(tenant_id = %api.tenant, person_id = %id)
)]
pub async fn erase(
    mut api: TenantApi,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Erasure>), HttpError> {
    // The body is optional: an empty one asks with the defaults.
    let body: EraseRequest = match body.is_empty() {
        true => EraseRequest::default(),
        false => serde_json::from_slice(&body)
            .map_err(|error| HttpError::invalid("body", error.to_string()))?,
    };
    let requested_by = match body.requested_by.trim() {
        "" => "api-key".to_owned(),
        by => by.to_owned(),
    };
    let erasure = api
        .contacts_people
        .erase_person(contacts::ErasePersonRequest {
            person_id: id,
            requested_by,
            reason: body.reason,
        })
        .await
        .reply(Upstream::Contacts)?;
    Ok((StatusCode::ACCEPTED, Json(erasure.into())))
}

/// `GET /v1/erasures/{id}`: the request and the services that confirmed it.
#[tracing::instrument(
    name = "gateway.erasures.get",
    skip_all,
    fields(tenant_id = %api.tenant, erasure_id = %id)
)]
pub async fn get_erasure(
    mut api: TenantApi,
    Path(id): Path<String>,
) -> Result<Json<Erasure>, HttpError> {
    let erasure = api
        .contacts_people
        .get_erasure(contacts::GetErasureRequest { id })
        .await
        .reply(Upstream::Contacts)?;
    Ok(Json(erasure.into()))
}

fn instant(timestamp: Option<Timestamp>) -> Option<DateTime<Utc>> {
    timestamp
        .as_ref()
        .and_then(muster_runtime::time::from_proto)
}

fn consent_state(value: i32) -> &'static str {
    match contacts::ConsentState::try_from(value) {
        Ok(contacts::ConsentState::Granted) => "granted",
        Ok(contacts::ConsentState::Withdrawn) => "withdrawn",
        Ok(contacts::ConsentState::Pending) => "pending",
        _ => "none",
    }
}

fn legal_basis_name(value: i32) -> &'static str {
    LegalBasis::from_proto(value)
        .map(LegalBasis::as_str)
        .unwrap_or("")
}

/// An erasure request and its confirmations.
#[derive(Debug, Serialize)]
pub struct Erasure {
    id: String,
    person_id: String,
    requested_by: String,
    reason: String,
    request_time: Option<DateTime<Utc>>,
    confirmations: Vec<Confirmation>,
    expected_services: Vec<String>,
    complete: bool,
}

#[derive(Debug, Serialize)]
struct Confirmation {
    service: String,
    confirm_time: Option<DateTime<Utc>>,
}

impl From<contacts::Erasure> for Erasure {
    fn from(erasure: contacts::Erasure) -> Self {
        Self {
            id: erasure.id,
            person_id: erasure.person_id,
            requested_by: erasure.requested_by,
            reason: erasure.reason,
            request_time: instant(erasure.request_time),
            confirmations: erasure
                .confirmations
                .into_iter()
                .map(|c| Confirmation {
                    service: c.service,
                    confirm_time: instant(c.confirm_time),
                })
                .collect(),
            expected_services: erasure.expected_services,
            complete: erasure.complete,
        }
    }
}

#[derive(Debug, Serialize)]
struct ContactsSection {
    person: Option<Person>,
    consent_events: Vec<ConsentEvent>,
    donations: Vec<Donation>,
    attendance: Vec<Attendance>,
    last_contacted_time: Option<DateTime<Utc>>,
    merges: Vec<MergeRecord>,
}

/// A record merged into the person, with what it held then.
#[derive(Debug, Serialize)]
struct MergeRecord {
    merge_id: String,
    merged_id: String,
    /// The record it was merged into: the person, or one merged into them later.
    into_id: String,
    reason: String,
    merged_by: String,
    time: Option<DateTime<Utc>>,
    snapshot: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Donation {
    donation_id: String,
    amount_cents: i64,
    currency: String,
    time: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct Attendance {
    event_id: String,
    state: String,
    time: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct ConsentEvent {
    channel: String,
    /// Empty: the channel's general consent.
    purpose: String,
    state: &'static str,
    legal_basis: &'static str,
    notice: String,
    time: Option<DateTime<Utc>>,
    source: String,
    evidence: BTreeMap<String, String>,
    record_time: Option<DateTime<Utc>>,
}

impl From<contacts::ContactsExport> for ContactsSection {
    fn from(export: contacts::ContactsExport) -> Self {
        Self {
            person: export.person.map(Person::from),
            consent_events: export
                .consent_events
                .into_iter()
                .map(|e| ConsentEvent {
                    channel: e.channel,
                    purpose: e.purpose,
                    state: consent_state(e.state),
                    legal_basis: legal_basis_name(e.legal_basis),
                    notice: e.notice,
                    time: instant(e.time),
                    source: e.source,
                    evidence: e.evidence.into_iter().collect(),
                    record_time: instant(e.record_time),
                })
                .collect(),
            donations: export
                .donations
                .into_iter()
                .map(|d| Donation {
                    donation_id: d.donation_id,
                    amount_cents: d.amount_cents,
                    currency: d.currency,
                    time: instant(d.time),
                })
                .collect(),
            attendance: export
                .attendance
                .into_iter()
                .map(|a| Attendance {
                    event_id: a.event_id,
                    state: a.state,
                    time: instant(a.time),
                })
                .collect(),
            last_contacted_time: instant(export.last_contacted_time),
            merges: export
                .merges
                .into_iter()
                .map(|m| MergeRecord {
                    snapshot: serde_json::from_str(&m.snapshot_json)
                        .unwrap_or(serde_json::Value::String(m.snapshot_json)),
                    merge_id: m.merge_id,
                    merged_id: m.merged_id,
                    into_id: m.survivor_id,
                    reason: m.reason,
                    merged_by: m.merged_by,
                    time: instant(m.time),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct MessagingSection {
    deliveries: Vec<Delivery>,
    bounces: Vec<Bounce>,
    suppressions: Vec<Suppression>,
}

#[derive(Debug, Serialize)]
struct Delivery {
    id: String,
    campaign_id: String,
    campaign_name: String,
    state: String,
    email: String,
    first_name: String,
    last_name: String,
    city: String,
    attempts: u32,
    claim_time: Option<DateTime<Utc>>,
    send_time: Option<DateTime<Utc>>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Bounce {
    id: String,
    campaign_id: String,
    delivery_id: String,
    email_key: String,
    kind: String,
    status: String,
    reason: String,
    provider: String,
    receive_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct Suppression {
    email_key: String,
    reason: String,
    create_time: Option<DateTime<Utc>>,
}

impl From<messaging::MessagingExport> for MessagingSection {
    fn from(export: messaging::MessagingExport) -> Self {
        Self {
            deliveries: export
                .deliveries
                .into_iter()
                .map(|d| Delivery {
                    id: d.id,
                    campaign_id: d.campaign_id,
                    campaign_name: d.campaign_name,
                    state: d.state,
                    email: d.email,
                    first_name: d.first_name,
                    last_name: d.last_name,
                    city: d.city,
                    attempts: d.attempts,
                    claim_time: instant(d.claim_time),
                    send_time: instant(d.send_time),
                    error: (!d.error.is_empty()).then_some(d.error),
                })
                .collect(),
            bounces: export
                .bounces
                .into_iter()
                .map(|b| Bounce {
                    id: b.id,
                    campaign_id: b.campaign_id,
                    delivery_id: b.delivery_id,
                    email_key: b.email_key,
                    kind: b.kind,
                    status: b.status,
                    reason: b.reason,
                    provider: b.provider,
                    receive_time: instant(b.receive_time),
                })
                .collect(),
            suppressions: export
                .suppressions
                .into_iter()
                .map(|s| Suppression {
                    email_key: s.email_key,
                    reason: s.reason,
                    create_time: instant(s.create_time),
                })
                .collect(),
        }
    }
}

/// The columns of the CSV export; `details` holds the item's other fields
/// as `name=value` pairs separated by `; `.
const CSV_COLUMNS: [&str; 9] = [
    "section",
    "id",
    "time",
    "state",
    "email",
    "first_name",
    "last_name",
    "details",
    "generated_at",
];

/// One item of the export as a CSV row.
#[derive(Default)]
struct Row {
    section: &'static str,
    id: String,
    time: Option<DateTime<Utc>>,
    state: String,
    email: String,
    first_name: String,
    last_name: String,
    details: Vec<(&'static str, String)>,
}

fn csv_document(gathered: &Gathered) -> anyhow::Result<Vec<u8>> {
    let generated_at = rfc3339(Some(gathered.generated_at));
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS)?;
    for row in rows(gathered) {
        let details = row
            .details
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let cells = [
            row.section,
            &row.id,
            &rfc3339(row.time),
            &row.state,
            &row.email,
            &row.first_name,
            &row.last_name,
            &details,
            &generated_at,
        ];
        writer.write_record(cells.iter().map(|cell| neutralize(cell).into_owned()))?;
    }
    Ok(writer.into_inner()?)
}

fn rfc3339(time: Option<DateTime<Utc>>) -> String {
    time.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn rows(gathered: &Gathered) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(person) = &gathered.contacts.person {
        let address = person.address.clone().unwrap_or_default();
        let consent = person.email_consent.clone().unwrap_or_default();
        let external_ids: BTreeMap<_, _> = person.external_ids.iter().collect();
        let custom_fields: BTreeMap<_, _> = person.custom_fields.iter().collect();
        rows.push(Row {
            section: "person",
            id: person.id.clone(),
            time: instant(person.create_time),
            state: consent_state(consent.state).into(),
            email: person.email.clone(),
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            details: vec![
                ("phone", person.phone.clone()),
                ("address", address.line1),
                ("postal_code", address.postal_code),
                ("city", address.city),
                ("country", address.country),
                ("departement", address.departement),
                ("commune_insee", address.commune_insee),
                ("region", address.region),
                ("time_zone", person.time_zone.clone()),
                ("birth_date", person.birth_date.clone()),
                ("tags", person.tags.join(", ")),
                (
                    "external_ids",
                    format!("{external_ids:?}").replace("{}", ""),
                ),
                ("consent_source", consent.source),
                ("other_emails", person.other_emails.join(", ")),
                ("other_phones", person.other_phones.join(", ")),
                (
                    "custom_fields",
                    format!("{custom_fields:?}").replace("{}", ""),
                ),
                (
                    "last_contacted",
                    rfc3339(instant(gathered.contacts.last_contacted_time)),
                ),
            ],
        });
    }
    for donation in &gathered.contacts.donations {
        rows.push(Row {
            section: "donation",
            id: donation.donation_id.clone(),
            time: instant(donation.time),
            details: vec![
                ("amount_cents", donation.amount_cents.to_string()),
                ("currency", donation.currency.clone()),
            ],
            ..Row::default()
        });
    }
    for attendance in &gathered.contacts.attendance {
        rows.push(Row {
            section: "attendance",
            id: attendance.event_id.clone(),
            time: instant(attendance.time),
            state: attendance.state.clone(),
            ..Row::default()
        });
    }
    for merge in &gathered.contacts.merges {
        rows.push(Row {
            section: "merge",
            id: merge.merged_id.clone(),
            time: instant(merge.time),
            details: vec![
                ("merge_id", merge.merge_id.clone()),
                ("into_id", merge.survivor_id.clone()),
                ("reason", merge.reason.clone()),
                ("merged_by", merge.merged_by.clone()),
                ("snapshot", merge.snapshot_json.clone()),
            ],
            ..Row::default()
        });
    }
    for event in &gathered.contacts.consent_events {
        let evidence: BTreeMap<_, _> = event.evidence.iter().collect();
        rows.push(Row {
            section: "consent_event",
            time: instant(event.time),
            state: consent_state(event.state).into(),
            details: vec![
                ("channel", event.channel.clone()),
                ("purpose", event.purpose.clone()),
                ("legal_basis", legal_basis_name(event.legal_basis).into()),
                ("notice", event.notice.clone()),
                ("source", event.source.clone()),
                ("evidence", format!("{evidence:?}").replace("{}", "")),
            ],
            ..Row::default()
        });
    }
    for delivery in &gathered.messaging.deliveries {
        rows.push(Row {
            section: "delivery",
            id: delivery.id.clone(),
            time: instant(delivery.send_time.or(delivery.claim_time)),
            state: delivery.state.clone(),
            email: delivery.email.clone(),
            first_name: delivery.first_name.clone(),
            last_name: delivery.last_name.clone(),
            details: vec![
                ("campaign_id", delivery.campaign_id.clone()),
                ("campaign", delivery.campaign_name.clone()),
                ("city", delivery.city.clone()),
                ("attempts", delivery.attempts.to_string()),
                ("error", delivery.error.clone()),
            ],
        });
    }
    for bounce in &gathered.messaging.bounces {
        rows.push(Row {
            section: "bounce",
            id: bounce.id.clone(),
            time: instant(bounce.receive_time),
            state: bounce.kind.clone(),
            email: bounce.email_key.clone(),
            details: vec![
                ("campaign_id", bounce.campaign_id.clone()),
                ("delivery_id", bounce.delivery_id.clone()),
                ("status", bounce.status.clone()),
                ("reason", bounce.reason.clone()),
                ("provider", bounce.provider.clone()),
            ],
            ..Row::default()
        });
    }
    for suppression in &gathered.messaging.suppressions {
        rows.push(Row {
            section: "suppression",
            time: instant(suppression.create_time),
            state: suppression.reason.clone(),
            email: suppression.email_key.clone(),
            ..Row::default()
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gathered(first_name: &str, evidence: &str) -> Gathered {
        Gathered {
            generated_at: Utc::now(),
            contacts: contacts::ContactsExport {
                person: Some(contacts::Person {
                    id: "p1".into(),
                    first_name: first_name.into(),
                    email: "jean@example.org".into(),
                    ..Default::default()
                }),
                consent_events: vec![contacts::ConsentEvent {
                    channel: "email".into(),
                    state: contacts::ConsentState::Granted as i32,
                    source: "import:1".into(),
                    evidence: [("origin".to_owned(), evidence.to_owned())].into(),
                    ..Default::default()
                }],
                merges: vec![contacts::MergeRecord {
                    merged_id: "p0".into(),
                    merged_by: "api".into(),
                    snapshot_json: format!(r#"{{"first_name": "{first_name}"}}"#),
                    ..Default::default()
                }],
                ..Default::default()
            },
            messaging: messaging::MessagingExport {
                deliveries: vec![messaging::ExportedDelivery {
                    id: "d1".into(),
                    campaign_name: "+33 appel".into(),
                    state: "sent".into(),
                    email: "jean@example.org".into(),
                    first_name: first_name.into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        }
    }

    fn read(bytes: Vec<u8>) -> Vec<csv::StringRecord> {
        csv::Reader::from_reader(bytes.as_slice())
            .records()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_csv_has_one_row_per_item_with_its_section() {
        let records = read(csv_document(&gathered("Jean", "site")).unwrap());
        let sections: Vec<&str> = records.iter().map(|r| &r[0]).collect();
        assert_eq!(sections, ["person", "merge", "consent_event", "delivery"]);
        assert_eq!(&records[0][4], "jean@example.org");
        assert_eq!(&records[2][3], "granted");
    }

    #[test]
    fn a_formula_in_any_cell_is_neutralised() {
        let formula = "=HYPERLINK(\"http://evil.example\",\"x\")";
        let records = read(csv_document(&gathered(formula, "@SUM(1)")).unwrap());
        assert_eq!(&records[0][5], format!("'{formula}"));
        assert_eq!(&records[3][5], format!("'{formula}"));
        for record in &records {
            for cell in record {
                assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?}");
            }
        }
    }
}
