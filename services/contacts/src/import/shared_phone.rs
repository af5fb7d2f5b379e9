//! Rows without an e-mail address are matched to a person by their phone
//! number. A number is often shared — a couple, a family, an office
//! switchboard — so among the people without e-mail on a row's number, the
//! row goes to the one its name and outside id agree with; a row that
//! contradicts each of them is a person of their own on the same number,
//! and a row that could be several of them (a last name alone, no name) is
//! set aside with a reason. A row with a new e-mail address joins the one
//! person without e-mail on its number who has its first and last name.
//! (A row without e-mail is not matched to people with one: the pair waits
//! in duplicate review.)

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use muster_runtime::TenantId;
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::{ImportRow, RowIssue};
use crate::domain::header_key;

/// Why a row is set aside: several of the people on its number could be
/// the row, and nothing on it tells which one.
fn ambiguous(fitting: usize) -> String {
    format!(
        "no e-mail address, and {fitting} people on this phone number could be this row: \
         nothing on it tells which one; add their first and last name (or their e-mail \
         address) and import the row again"
    )
}

/// A person on a number, as far as rows and records tell.
#[derive(Debug, Clone)]
struct Holder {
    /// Theirs when known; a new person's otherwise.
    id: Uuid,
    /// Whether a row of the batch has brought them an e-mail address (then
    /// a row with another one is not theirs).
    has_email: bool,
    /// Known before this import began. Rows with and without an address go
    /// to different writers, so whether a person one of them makes during
    /// the import is seen by the other depends on timing and on the writer
    /// a row is dealt to: across that line, rows are matched only to
    /// settled people, so that an import gives the same people however its
    /// writers run (duplicate detection lists the pairs it leaves).
    settled: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Outside ids by system ("nationbuilder" → "42").
    external_ids: HashMap<String, String>,
}

impl Holder {
    /// Whether `row` is someone else: a first or last name both give that
    /// differs (ignoring case, accents and punctuation), or another id in
    /// the same outside system.
    fn contradicted_by(&self, row: &ImportRow) -> bool {
        if names_differ(
            (self.first_name.as_deref(), self.last_name.as_deref()),
            (row.first_name.as_deref(), row.last_name.as_deref()),
        ) {
            return true;
        }
        let Some((system, id)) = &row.external_id else {
            return false;
        };
        self.external_ids
            .get(system)
            .is_some_and(|known| known != id)
    }

    /// Whether `row` gives this holder's first and last name.
    fn named_by(&self, row: &ImportRow) -> bool {
        let same = |known: &Option<String>, given: &Option<String>| match (known, given) {
            (Some(known), Some(given)) => name_key(known) == name_key(given),
            _ => false,
        };
        same(&self.first_name, &row.first_name) && same(&self.last_name, &row.last_name)
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

/// A name as compared here: folded like a header, letters and digits only,
/// as duplicate detection folds names (`Le-Bihan`, `Le Bihan`, `LEBIHAN`).
fn name_key(name: &str) -> String {
    header_key(name)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The person each row without e-mail is, by line: one without e-mail
/// already on its number in the organization or earlier in the
/// batch (a batch holds every row of a number: rows are dealt to writers by
/// it), or a new one. Rows that could be several of them move to
/// `rejected`. A row with a new e-mail address is the person without e-mail
/// known on its number before the import who has its first and last name,
/// when exactly one has: they gain the address instead of being written
/// twice.
pub(super) async fn assign_holders(
    tx: &mut PgConnection,
    tenant: TenantId,
    import: Uuid,
    known_without_email: bool,
    rows: &mut Vec<ImportRow>,
    rejected: &mut Vec<(u64, Vec<RowIssue>)>,
) -> anyhow::Result<HashMap<u64, Uuid>> {
    // A row with an address can only join someone without one known before
    // the import: when the organization had no such person, only the rows
    // without an address need the people on their numbers.
    let numbers: Vec<&str> = rows
        .iter()
        .filter(|row| row.email.is_none() || known_without_email)
        .filter_map(|row| row.phone.as_ref().map(|phone| phone.as_str()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if numbers.is_empty() {
        return Ok(HashMap::new());
    }
    type Known = (
        Uuid,
        String,
        bool,
        Option<String>,
        Option<String>,
        Json<HashMap<String, Value>>,
    );
    let known: Vec<Known> = sqlx::query_as(
        // People without e-mail only, through their narrow index: a number
        // that many people with e-mail share (a switchboard) is not read
        // person by person for each row on it.
        "SELECT id, phone, created_at < (SELECT created_at FROM imports WHERE id = $3),
                first_name, last_name, external_ids
             FROM people
             WHERE tenant_id = $1 AND email_key IS NULL AND phone = ANY($2)
             ORDER BY id",
    )
    .bind(tenant)
    .bind(&numbers)
    .bind(import)
    .fetch_all(&mut *tx)
    .await
    .context("reading the people on the rows' phone numbers")?;
    if known.is_empty() && rows.iter().all(|row| row.email.is_some()) {
        return Ok(HashMap::new());
    }
    let mut holders: HashMap<String, Vec<Holder>> = HashMap::new();
    for (id, phone, before, first_name, last_name, ids) in known {
        let external_ids = ids
            .0
            .into_iter()
            .filter_map(|(system, id)| Some((system, id.as_str()?.to_owned())))
            .collect();
        holders.entry(phone).or_default().push(Holder {
            id,
            has_email: false,
            settled: before,
            first_name,
            last_name,
            external_ids,
        });
    }
    let known_emails = known_addresses(tx, tenant, rows, &holders).await?;

    let mut assigned = HashMap::new();
    let mut gained: HashMap<String, Uuid> = HashMap::new();
    let all = std::mem::take(rows);
    for row in all {
        let Some(phone) = row.phone.as_ref().map(|phone| phone.as_str().to_owned()) else {
            rows.push(row);
            continue;
        };
        let on_number = holders.entry(phone).or_default();
        if let Some(email) = &row.email {
            let key = email.key();
            if let Some(holder) = gained.get(key) {
                assigned.insert(row.line, *holder);
            } else if !known_emails.contains(key) {
                let named: Vec<usize> = (0..on_number.len())
                    .filter(|&n| {
                        let holder = &on_number[n];
                        holder.settled
                            && !holder.has_email
                            && holder.named_by(&row)
                            && !holder.contradicted_by(&row)
                    })
                    .collect();
                if let [one] = named[..] {
                    let holder = &mut on_number[one];
                    holder.has_email = true;
                    gained.insert(key.to_owned(), holder.id);
                    assigned.insert(row.line, holder.id);
                }
            }
            rows.push(row);
            continue;
        }
        let fitting: Vec<usize> = (0..on_number.len())
            .filter(|&n| !on_number[n].contradicted_by(&row))
            .collect();
        let named: Vec<usize> = fitting
            .iter()
            .copied()
            .filter(|&n| on_number[n].named_by(&row))
            .collect();
        let chosen = match (fitting.as_slice(), named.as_slice()) {
            ([], _) => {
                on_number.push(Holder {
                    id: Uuid::now_v7(),
                    has_email: false,
                    settled: false,
                    first_name: None,
                    last_name: None,
                    external_ids: HashMap::new(),
                });
                on_number.len() - 1
            }
            ([one], _) | (_, [one]) => *one,
            _ => {
                let issue = RowIssue {
                    line: row.line,
                    field: "phone",
                    value: row
                        .phone
                        .as_ref()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: ambiguous(fitting.len()),
                };
                let mut issues = row.issues;
                issues.push(issue);
                rejected.push((row.line, issues));
                continue;
            }
        };
        let holder = &mut on_number[chosen];
        holder.learn(&row);
        assigned.insert(row.line, holder.id);
        rows.push(row);
    }
    Ok(assigned)
}

/// Which of the addresses of rows that could join a person without e-mail
/// known on their number someone already has: those rows stay theirs.
async fn known_addresses(
    tx: &mut PgConnection,
    tenant: TenantId,
    rows: &[ImportRow],
    holders: &HashMap<String, Vec<Holder>>,
) -> anyhow::Result<HashSet<String>> {
    let keys: Vec<&str> = rows
        .iter()
        .filter(|row| {
            let on_number = row.phone.as_ref().and_then(|p| holders.get(p.as_str()));
            on_number.is_some_and(|on| {
                on.iter()
                    .any(|h| h.settled && !h.has_email && h.named_by(row))
            })
        })
        .filter_map(|row| row.email.as_ref().map(|e| e.key()))
        .collect();
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT email_key FROM people WHERE tenant_id = $1 AND email_key = ANY($2)",
    )
    .bind(tenant)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await
    .context("reading which of the rows' addresses are known")?;
    Ok(known.into_iter().collect())
}
