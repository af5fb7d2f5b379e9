//! The e-mail addresses and phone numbers a person has beyond the primary
//! ones (`people.email`, `people.phone`): shown on the person, and matched
//! by imports so that a file naming an older address updates its person.

use std::collections::HashMap;

use anyhow::Context;
use muster_proto::contacts::v1 as pb;
use muster_runtime::TenantId;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{EmailAddress, PhoneNumber};
use crate::import::ImportRow;

/// Fills `other_emails` and `other_phones` of `people`, oldest first.
pub async fn attach(
    pool: &PgPool,
    tenant: TenantId,
    people: &mut [pb::Person],
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = people
        .iter()
        .filter_map(|p| Uuid::parse_str(&p.id).ok())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Uuid, bool, String)> = sqlx::query_as(
        "SELECT person_id, true, email FROM person_emails
         WHERE tenant_id = $1 AND person_id = ANY($2)
         UNION ALL
         SELECT person_id, false, phone FROM person_phones
         WHERE tenant_id = $1 AND person_id = ANY($2)
         ORDER BY 1, 2",
    )
    .bind(tenant)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut found: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for (person, is_email, value) in rows {
        let entry = found.entry(person.to_string()).or_default();
        match is_email {
            true => entry.0.push(value),
            false => entry.1.push(value),
        }
    }
    for person in people {
        if let Some((emails, phones)) = found.remove(&person.id) {
            person.other_emails = emails;
            person.other_phones = phones;
        }
    }
    Ok(())
}

/// Rewrites the rows of an import batch that name a person by a secondary
/// address (or, for a row without an address, by a secondary number of a
/// person without one) to that person's primary address or number, so that
/// the batch's upsert updates the person instead of creating another.
pub async fn match_secondaries(
    tx: &mut PgConnection,
    tenant: TenantId,
    rows: &mut [ImportRow],
) -> anyhow::Result<()> {
    let keys: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.email.as_ref().map(EmailAddress::key))
        .collect();
    let emails: HashMap<String, String> = sqlx::query_as(
        "SELECT e.email_key, p.email FROM person_emails e JOIN people p ON p.id = e.person_id
         WHERE e.tenant_id = $1 AND e.email_key = ANY($2) AND p.email IS NOT NULL",
    )
    .bind(tenant)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await
    .context("matching secondary addresses")?
    .into_iter()
    .collect();

    let numbers: Vec<&str> = rows
        .iter()
        .filter(|r| r.email.is_none())
        .filter_map(|r| r.phone.as_ref().map(PhoneNumber::as_str))
        .collect();
    let phones: HashMap<String, String> = match numbers.is_empty() {
        true => HashMap::new(),
        false => sqlx::query_as(
            "SELECT DISTINCT ON (n.phone) n.phone, p.phone
             FROM person_phones n JOIN people p ON p.id = n.person_id
             WHERE n.tenant_id = $1 AND n.phone = ANY($2)
               AND p.email_key IS NULL AND p.phone IS NOT NULL
             ORDER BY n.phone, p.id",
        )
        .bind(tenant)
        .bind(&numbers)
        .fetch_all(&mut *tx)
        .await
        .context("matching secondary phone numbers")?
        .into_iter()
        .collect(),
    };
    if emails.is_empty() && phones.is_empty() {
        return Ok(());
    }

    for row in rows.iter_mut() {
        if let Some(primary) = row.email.as_ref().and_then(|e| emails.get(e.key())) {
            // Stored addresses were parsed on their way in.
            row.email = EmailAddress::parse(primary).ok().or(row.email.take());
        } else if row.email.is_none()
            && let Some(primary) = row.phone.as_ref().and_then(|p| phones.get(p.as_str()))
        {
            let parsed = PhoneNumber::parse(primary, phonenumber::country::Id::FR, None).ok();
            row.phone = parsed.or(row.phone.take());
        }
    }
    Ok(())
}
