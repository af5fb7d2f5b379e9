//! What other services announce about people, projected here for segments:
//! when messaging last sent them something, their donations (total and last
//! date per currency) and their attendance per event. Each consumer applies
//! a message once (inbox) and in one transaction. An event about a person
//! not (or no longer) here is acknowledged and ignored: an erased person is
//! not brought back by a late donation.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as pb;
use muster_proto::events::v1::{
    AttendanceChanged, AttendanceState, DeliveriesSent, DonationSucceeded,
};
use muster_runtime::TenantId;
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use muster_runtime::time::to_proto;
use prost::Message;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The queue, and the inbox name, of `messaging.delivery.sent`.
pub const CONTACTED_QUEUE: &str = "contacts.contacted";
/// The queue, and the inbox name, of `donations.donation.succeeded`.
pub const DONATIONS_QUEUE: &str = "contacts.donations";
/// The queue, and the inbox name, of `events.attendance.changed`.
pub const ATTENDANCE_QUEUE: &str = "contacts.attendance";

/// `messaging.delivery.sent`: moves `last_contacts.contacted_at` forward for
/// every person of the group (never back: groups may arrive out of order).
pub struct Contacted {
    pub pool: PgPool,
}

impl Handler for Contacted {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = DeliveriesSent::decode(message.body.as_slice()).map_err(undecodable)?;
        let mut people = Vec::with_capacity(event.deliveries.len());
        let mut times = Vec::with_capacity(event.deliveries.len());
        for delivery in &event.deliveries {
            people.push(person(&delivery.person_id)?);
            times.push(time(delivery.time.as_ref())?);
        }

        let Some(mut tx) =
            consumer::begin_once(&self.pool, CONTACTED_QUEUE, message.message_id).await?
        else {
            return Ok(());
        };
        current_ids(&mut tx, message.tenant_id, &mut people).await?;
        let updated = sqlx::query(
            "INSERT INTO last_contacts AS c (tenant_id, person_id, contacted_at)
             SELECT $1, s.id, s.at
             FROM (SELECT id, max(at) AS at FROM unnest($2::uuid[], $3::timestamptz[])
                   AS u(id, at) GROUP BY id) s
             WHERE EXISTS (SELECT 1 FROM people p WHERE p.tenant_id = $1 AND p.id = s.id)
             ON CONFLICT (tenant_id, person_id) DO UPDATE SET contacted_at = EXCLUDED.contacted_at
             WHERE c.contacted_at < EXCLUDED.contacted_at",
        )
        .bind(message.tenant_id)
        .bind(&people)
        .bind(&times)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        tracing::debug!(
            tenant_id = %message.tenant_id,
            deliveries = people.len(),
            updated,
            "last contacted projected"
        );
        Ok(())
    }
}

/// `donations.donation.succeeded`: records the donation once (by its id,
/// whatever the message carrying it) and adds it to the person's total.
pub struct Donations {
    pub pool: PgPool,
}

impl Handler for Donations {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = DonationSucceeded::decode(message.body.as_slice()).map_err(undecodable)?;
        let person = person(&event.person_id)?;
        let at = time(event.time.as_ref())?;
        let currency = event.currency.trim().to_ascii_uppercase();
        if event.donation_id.trim().is_empty() {
            return Err(permanent("the donation has no donation_id"));
        }
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(permanent("currency is not an ISO 4217 code"));
        }
        if event.amount_cents <= 0 {
            return Err(permanent("amount_cents is not positive"));
        }

        let Some(mut tx) =
            consumer::begin_once(&self.pool, DONATIONS_QUEUE, message.message_id).await?
        else {
            return Ok(());
        };
        let person = current_id(&mut tx, message.tenant_id, person).await?;
        let new = sqlx::query(
            "INSERT INTO donations
                (tenant_id, donation_id, person_id, amount_cents, currency, donated_at)
             SELECT $1, $2, $3, $4, $5, $6
             WHERE EXISTS (SELECT 1 FROM people WHERE tenant_id = $1 AND id = $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(message.tenant_id)
        .bind(event.donation_id.trim())
        .bind(person)
        .bind(event.amount_cents)
        .bind(&currency)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if new == 1 {
            sqlx::query(
                "INSERT INTO person_donations AS d
                    (tenant_id, person_id, currency, total_cents, last_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant_id, person_id, currency) DO UPDATE SET
                    total_cents = d.total_cents + EXCLUDED.total_cents,
                    last_at = greatest(d.last_at, EXCLUDED.last_at)",
            )
            .bind(message.tenant_id)
            .bind(person)
            .bind(&currency)
            .bind(event.amount_cents)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::debug!(tenant_id = %message.tenant_id, new, "donation projected");
        Ok(())
    }
}

/// `events.attendance.changed`: keeps each person's latest state per event.
pub struct Attendance {
    pub pool: PgPool,
}

impl Handler for Attendance {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = AttendanceChanged::decode(message.body.as_slice()).map_err(undecodable)?;
        let person = person(&event.person_id)?;
        let at = time(event.time.as_ref())?;
        let state = match AttendanceState::try_from(event.state) {
            Ok(AttendanceState::Registered) => "registered",
            Ok(AttendanceState::Attended) => "attended",
            Ok(AttendanceState::NoShow) => "no_show",
            Ok(AttendanceState::Cancelled) => "cancelled",
            Ok(AttendanceState::Unspecified) | Err(_) => {
                return Err(permanent("the attendance has no known state"));
            }
        };
        if event.event_id.trim().is_empty() {
            return Err(permanent("the attendance has no event_id"));
        }

        let Some(mut tx) =
            consumer::begin_once(&self.pool, ATTENDANCE_QUEUE, message.message_id).await?
        else {
            return Ok(());
        };
        let person = current_id(&mut tx, message.tenant_id, person).await?;
        sqlx::query(
            "INSERT INTO attendance AS a (tenant_id, event_id, person_id, state, changed_at)
             SELECT $1, $2, $3, $4, $5
             WHERE EXISTS (SELECT 1 FROM people WHERE tenant_id = $1 AND id = $3)
             ON CONFLICT (tenant_id, event_id, person_id) DO UPDATE SET
                state = EXCLUDED.state, changed_at = EXCLUDED.changed_at
             WHERE a.changed_at <= EXCLUDED.changed_at",
        )
        .bind(message.tenant_id)
        .bind(event.event_id.trim())
        .bind(person)
        .bind(state)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::debug!(tenant_id = %message.tenant_id, state, "attendance projected");
        Ok(())
    }
}

/// The person `id` is now: itself, or the survivor of the merges it went
/// through, so that what another service announces about a merged id (sent
/// before it learnt of the merge) still counts.
async fn current_id(tx: &mut PgConnection, tenant: TenantId, id: Uuid) -> sqlx::Result<Uuid> {
    let mut ids = [id];
    current_ids(tx, tenant, &mut ids).await?;
    Ok(ids[0])
}

/// [`current_id`] for each of `ids`, in place.
async fn current_ids(
    tx: &mut PgConnection,
    tenant: TenantId,
    ids: &mut [Uuid],
) -> sqlx::Result<()> {
    let known: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM people WHERE tenant_id = $1 AND id = ANY($2)")
            .bind(tenant)
            .bind(&*ids)
            .fetch_all(&mut *tx)
            .await?;
    for id in ids.iter_mut().filter(|id| !known.contains(id)) {
        if let Some(survivor) = crate::merge::survivor_of(tx, tenant, *id).await? {
            *id = survivor;
        }
    }
    Ok(())
}

/// Gives what the projections hold about `merged` to `survivor`, within a
/// merge: donations and their totals add up, the later attendance state of
/// an event both were announced for is kept, and so is the later contact.
pub async fn merge(
    tx: &mut PgConnection,
    tenant: TenantId,
    survivor: Uuid,
    merged: Uuid,
) -> sqlx::Result<()> {
    for sql in [
        "UPDATE donations SET person_id = $2 WHERE tenant_id = $1 AND person_id = $3",
        "INSERT INTO person_donations AS d (tenant_id, person_id, currency, total_cents, last_at)
         SELECT tenant_id, $2, currency, total_cents, last_at FROM person_donations
         WHERE tenant_id = $1 AND person_id = $3
         ON CONFLICT (tenant_id, person_id, currency) DO UPDATE SET
            total_cents = d.total_cents + EXCLUDED.total_cents,
            last_at = greatest(d.last_at, EXCLUDED.last_at)",
        "DELETE FROM person_donations WHERE tenant_id = $1 AND person_id = $3",
        "INSERT INTO attendance AS a (tenant_id, event_id, person_id, state, changed_at)
         SELECT tenant_id, event_id, $2, state, changed_at FROM attendance
         WHERE tenant_id = $1 AND person_id = $3
         ON CONFLICT (tenant_id, event_id, person_id) DO UPDATE SET
            state = EXCLUDED.state, changed_at = EXCLUDED.changed_at
         WHERE a.changed_at < EXCLUDED.changed_at",
        "DELETE FROM attendance WHERE tenant_id = $1 AND person_id = $3",
        "INSERT INTO last_contacts AS c (tenant_id, person_id, contacted_at)
         SELECT tenant_id, $2, contacted_at FROM last_contacts
         WHERE tenant_id = $1 AND person_id = $3
         ON CONFLICT (tenant_id, person_id) DO UPDATE SET
            contacted_at = greatest(c.contacted_at, EXCLUDED.contacted_at)",
        "DELETE FROM last_contacts WHERE tenant_id = $1 AND person_id = $3",
    ] {
        sqlx::query(sql)
            .bind(tenant)
            .bind(survivor)
            .bind(merged)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// What the projections hold about one person, for the access export.
pub struct Activity {
    pub donations: Vec<pb::DonationRecord>,
    pub attendance: Vec<pb::AttendanceRecord>,
    pub last_contacted: Option<DateTime<Utc>>,
}

/// What the projections hold about `person`.
pub async fn export(pool: &PgPool, tenant: TenantId, person: Uuid) -> sqlx::Result<Activity> {
    let donations: Vec<(String, i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT donation_id, amount_cents, currency, donated_at FROM donations
         WHERE tenant_id = $1 AND person_id = $2 ORDER BY donated_at, donation_id",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(pool)
    .await?;
    let attendance: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT event_id, state, changed_at FROM attendance
         WHERE tenant_id = $1 AND person_id = $2 ORDER BY event_id",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(pool)
    .await?;
    let last_contacted: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT contacted_at FROM last_contacts WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(pool)
    .await?;
    Ok(Activity {
        donations: donations
            .into_iter()
            .map(
                |(donation_id, amount_cents, currency, at)| pb::DonationRecord {
                    donation_id,
                    amount_cents,
                    currency,
                    time: Some(to_proto(at)),
                },
            )
            .collect(),
        attendance: attendance
            .into_iter()
            .map(|(event_id, state, at)| pb::AttendanceRecord {
                event_id,
                state,
                time: Some(to_proto(at)),
            })
            .collect(),
        last_contacted,
    })
}

/// Deletes what the projections hold about `person`, within an erasure.
pub async fn forget(tx: &mut PgConnection, tenant: TenantId, person: Uuid) -> sqlx::Result<()> {
    for sql in [
        "DELETE FROM donations WHERE tenant_id = $1 AND person_id = $2",
        "DELETE FROM person_donations WHERE tenant_id = $1 AND person_id = $2",
        "DELETE FROM attendance WHERE tenant_id = $1 AND person_id = $2",
        "DELETE FROM last_contacts WHERE tenant_id = $1 AND person_id = $2",
    ] {
        sqlx::query(sql)
            .bind(tenant)
            .bind(person)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

fn permanent(message: &'static str) -> HandleError {
    HandleError::Permanent(anyhow::anyhow!(message))
}

fn undecodable(error: prost::DecodeError) -> HandleError {
    HandleError::Permanent(anyhow::anyhow!("undecodable body: {error}"))
}

fn person(id: &str) -> Result<Uuid, HandleError> {
    Uuid::parse_str(id).map_err(|_| permanent("person_id is not an id"))
}

/// The event's time: required, since a projection ordered by time cannot
/// guess one.
fn time(time: Option<&muster_proto::Timestamp>) -> Result<DateTime<Utc>, HandleError> {
    time.and_then(muster_runtime::time::from_proto)
        .ok_or_else(|| permanent("the event has no valid time"))
}
