//! Launching a campaign: the audience, streamed from contacts with consent
//! checked there, becomes one delivery per recipient and the send jobs —
//! all in one transaction, so a crash mid-launch leaves nothing half done.

use std::time::Duration;

use anyhow::Context;
use muster_proto::contacts::v1::StreamSegmentRequest;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use muster_runtime::privacy::AddressHasher;
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::jobs;
use crate::segment::reachable_by_email;
use crate::store;

/// Launches campaigns in the background.
#[derive(Clone)]
pub struct Launcher {
    pub pool: PgPool,
    pub contacts: Channel,
    pub signer: Signer,
    /// Hashes each recipient's address, for suppressions of erased people.
    pub hasher: AddressHasher,
}

impl Launcher {
    /// Launches `campaign` (state `launching`); logs failures and leaves the
    /// campaign `launching` so that the next start retries it.
    pub fn spawn(&self, tenant: TenantId, campaign: Uuid) {
        let launcher = self.clone();
        tokio::spawn(async move {
            if let Err(error) = launcher.launch(tenant, campaign).await {
                tracing::error!(
                    campaign_id = %campaign,
                    error = format!("{error:#}"),
                    "launch failed; it is retried when messaging restarts"
                );
            }
        });
    }

    /// Re-launches every campaign a stopped process left `launching`.
    pub async fn resume_interrupted(&self) -> anyhow::Result<()> {
        let pending: Vec<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, id FROM campaigns WHERE state = 'launching'")
                .fetch_all(&self.pool)
                .await?;
        for (tenant, campaign) in pending {
            self.spawn(TenantId::from_uuid(tenant), campaign);
        }
        Ok(())
    }

    #[tracing::instrument(
        name = "messaging.campaign.launch",
        skip_all,
        fields(tenant_id = %tenant, campaign_id = %campaign)
    )]
    async fn launch(&self, tenant: TenantId, campaign: Uuid) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let row = store::campaign(&mut *tx, tenant, campaign).await?;
        let locked: Option<String> = sqlx::query_scalar(
            "SELECT state FROM campaigns WHERE id = $1 AND state = 'launching' FOR UPDATE",
        )
        .bind(campaign)
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Ok(());
        }

        let token = self
            .signer
            .mint("messaging", Some(tenant), Duration::from_secs(3600));
        let mut contacts =
            ContactsServiceClient::with_interceptor(self.contacts.clone(), Bearer::new(&token));
        let filter = reachable_by_email(row.segment());
        let mut stream = contacts
            .stream_segment(StreamSegmentRequest {
                filter: Some(filter),
            })
            .await
            .context("asking contacts for the audience")?
            .into_inner();

        let mut recipients = 0usize;
        while let Some(batch) = stream.message().await.context("reading the audience")? {
            recipients += batch.members.len();
            insert_deliveries(&mut tx, &self.hasher, tenant, campaign, batch.members).await?;
        }

        let suppressed = sqlx::query(
            "UPDATE deliveries d SET state = 'suppressed', error = 'address suppressed'
             FROM suppressions s
             WHERE d.campaign_id = $1 AND d.state = 'queued'
               AND s.tenant_id = d.tenant_id AND s.email_key IN (lower(d.email), d.email_hash)",
        )
        .bind(campaign)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let queued = jobs::enqueue_queued(&mut tx, tenant, campaign).await?;
        sqlx::query("UPDATE campaigns SET state = 'sending' WHERE id = $1")
            .bind(campaign)
            .execute(&mut *tx)
            .await?;
        // Senders find deliveries by id, a few at a time. Without statistics
        // on the rows just added, PostgreSQL plans those lookups as scans of
        // the whole campaign (its id and the organization's match them all):
        // a 100,000-recipient campaign sent four times slower.
        sqlx::query("ANALYZE deliveries").execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!(recipients, queued, suppressed, "campaign launched");
        Ok(())
    }
}

async fn insert_deliveries(
    tx: &mut sqlx::PgConnection,
    hasher: &AddressHasher,
    tenant: TenantId,
    campaign: Uuid,
    members: Vec<muster_proto::contacts::v1::SegmentMember>,
) -> anyhow::Result<()> {
    let mut ids = Vec::with_capacity(members.len());
    let mut people = Vec::with_capacity(members.len());
    let (mut emails, mut first, mut last, mut cities) = (vec![], vec![], vec![], vec![]);
    let mut hashes = Vec::with_capacity(members.len());
    for member in members {
        let person = Uuid::parse_str(&member.person_id).context("contacts sent a bad person id")?;
        ids.push(Uuid::now_v7());
        people.push(person);
        hashes.push(hasher.hash(&member.email));
        emails.push(member.email);
        first.push(member.first_name);
        last.push(member.last_name);
        cities.push(member.city);
    }
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, campaign_id, person_id, email, first_name,
                                 last_name, city, email_hash)
         SELECT u.id, $1, $2, u.person_id, u.email, u.first_name, u.last_name, u.city,
                u.email_hash
         FROM UNNEST($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[])
              AS u(id, person_id, email, first_name, last_name, city, email_hash)
         ON CONFLICT (campaign_id, person_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(&ids)
    .bind(&people)
    .bind(&emails)
    .bind(&first)
    .bind(&last)
    .bind(&cities)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
