//! Rows without an e-mail address are matched to a person by their phone
//! number alone. A number is often shared — a couple, a family, an office
//! switchboard — so a row whose name or outside id says it is someone else
//! than the person already on that number is set aside with a reason,
//! rather than silently merged into them.

use std::collections::HashMap;

use anyhow::Context;
use muster_runtime::TenantId;
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;

use super::{ImportRow, RowIssue};
use crate::domain::header_key;

/// Why a row is set aside: it names another person than the number's.
fn other_person(what: &str) -> String {
    format!(
        "no e-mail address, and this phone number is already the one of another person \
         without e-mail ({what}); a row without e-mail is matched by its number, so it would \
         have been merged into them: add this person's e-mail address and import the row again"
    )
}

/// Who holds a phone number, as far as rows and records tell.
#[derive(Debug, Default, Clone)]
struct Holder {
    first_name: Option<String>,
    last_name: Option<String>,
    /// Outside ids by system ("nationbuilder" → "42").
    external_ids: HashMap<String, String>,
}

impl Holder {
    /// What of `row` contradicts this holder, if anything: a first or last
    /// name both give that differs (ignoring case, accents and punctuation),
    /// or another id in the same outside system.
    fn contradicted_by(&self, row: &ImportRow) -> Option<&'static str> {
        if names_differ(
            (self.first_name.as_deref(), self.last_name.as_deref()),
            (row.first_name.as_deref(), row.last_name.as_deref()),
        ) {
            return Some("another name");
        }
        let (system, id) = row.external_id.as_ref()?;
        let known = self.external_ids.get(system)?;
        (known != id).then_some("another outside id")
    }

    /// Fills what this holder lacked from `row`, as the import will.
    fn learn(&mut self, row: &ImportRow) {
        if self.first_name.is_none() {
            self.first_name.clone_from(&row.first_name);
        }
        if self.last_name.is_none() {
            self.last_name.clone_from(&row.last_name);
        }
        if let Some((system, id)) = &row.external_id {
            self.external_ids
                .entry(system.clone())
                .or_insert_with(|| id.clone());
        }
    }
}

/// Whether two (first, last) names are of different people: a first or
/// last name both give that differs, ignoring case, accents and punctuation.
pub(super) fn names_differ(
    known: (Option<&str>, Option<&str>),
    given: (Option<&str>, Option<&str>),
) -> bool {
    let differs = |known: Option<&str>, given: Option<&str>| match (known, given) {
        (Some(known), Some(given)) => name_key(known) != name_key(given),
        _ => false,
    };
    differs(known.0, given.0) || differs(known.1, given.1)
}

/// A name as compared here: folded like a header, punctuation as spaces.
fn name_key(name: &str) -> String {
    let folded: String = header_key(name)
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Moves to `rejected` the rows without e-mail whose name or outside id
/// contradicts the person already on their number, in the organization or
/// earlier in the batch (a batch holds every row of a number: rows are dealt
/// to writers by it).
pub(super) async fn set_aside_other_people(
    tx: &mut PgConnection,
    tenant: TenantId,
    rows: &mut Vec<ImportRow>,
    rejected: &mut Vec<(u64, Vec<RowIssue>)>,
) -> anyhow::Result<()> {
    let numbers: Vec<&str> = rows
        .iter()
        .filter(|row| row.email.is_none())
        .filter_map(|row| row.phone.as_ref().map(|phone| phone.as_str()))
        .collect();
    if numbers.is_empty() {
        return Ok(());
    }
    type Known = (
        String,
        Option<String>,
        Option<String>,
        Json<HashMap<String, Value>>,
    );
    let known: Vec<Known> = sqlx::query_as(
        "SELECT phone, first_name, last_name, external_ids FROM people
             WHERE tenant_id = $1 AND email_key IS NULL AND phone = ANY($2)",
    )
    .bind(tenant)
    .bind(&numbers)
    .fetch_all(&mut *tx)
    .await
    .context("reading the people on the rows' phone numbers")?;
    let mut holders: HashMap<String, Holder> = known
        .into_iter()
        .map(|(phone, first_name, last_name, ids)| {
            let external_ids = ids
                .0
                .into_iter()
                .filter_map(|(system, id)| Some((system, id.as_str()?.to_owned())))
                .collect();
            let holder = Holder {
                first_name,
                last_name,
                external_ids,
            };
            (phone, holder)
        })
        .collect();

    let all = std::mem::take(rows);
    for row in all {
        let phone = match (&row.email, &row.phone) {
            (None, Some(phone)) => phone.as_str().to_owned(),
            _ => {
                rows.push(row);
                continue;
            }
        };
        let holder = holders.entry(phone).or_default();
        match holder.contradicted_by(&row) {
            Some(what) => {
                let issue = RowIssue {
                    line: row.line,
                    field: "phone",
                    value: row
                        .phone
                        .as_ref()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: other_person(what),
                };
                rejected.push((row.line, vec![issue]));
            }
            None => {
                holder.learn(&row);
                rows.push(row);
            }
        }
    }
    Ok(())
}
