//! The gRPC API of messaging (`muster.messaging.v1.MessagingService`).

use muster_proto::events::v1::DeliveryUnsubscribed;
use muster_proto::messaging::v1 as pb;
use muster_proto::messaging::v1::ingest_bounce_request::Source;
use muster_proto::messaging::v1::messaging_service_server::MessagingService;
use muster_runtime::outbox::{Destination, Outgoing};
use muster_runtime::unsubscribe::UnsubscribeTokens;
use muster_runtime::{ApiError, TenantId, auth};
use prost::Message;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::BounceSettings;
use crate::bounces::listing::{self, Cursor, Filter};
use crate::bounces::{self, record};
use crate::deliveries;
use crate::jobs;
use crate::launch::Launcher;
use crate::ratelimit;
use crate::render::Templates;
use crate::store::{self, CAMPAIGN_COLUMNS, CampaignRow};

/// The service's handlers.
#[derive(Clone)]
pub struct Api {
    pub pool: PgPool,
    pub launcher: Launcher,
    pub tokens: UnsubscribeTokens,
    /// A claim older than this belongs to a sender that died mid-send.
    pub stale_claim: std::time::Duration,
    /// When transient bounces suppress an address.
    pub bounces: BounceSettings,
}

fn parse_id(raw: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a valid id")))
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, ApiError> {
    match value.trim() {
        "" => Err(ApiError::invalid(field, "is required")),
        value => Ok(value),
    }
}

impl Api {
    async fn view(&self, row: CampaignRow) -> Result<Response<pb::Campaign>, Status> {
        Ok(Response::new(
            store::campaign_view(&self.pool, row, self.stale_claim).await?,
        ))
    }

    /// Moves a campaign from one of `from` to `to`; returns the row after.
    async fn transition(
        &self,
        tenant: TenantId,
        id: Uuid,
        from: &[&str],
        to: &str,
    ) -> Result<CampaignRow, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row = store::campaign(&mut *tx, tenant, id).await?;
        if !from.contains(&row.state.as_str()) {
            return Err(ApiError::precondition(format!(
                "campaign {id} is {}; this needs it {}",
                row.state,
                from.join(" or ")
            )));
        }
        sqlx::query("UPDATE campaigns SET state = $2 WHERE id = $1")
            .bind(id)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        match to {
            "sending" => {
                jobs::enqueue_queued(&mut tx, tenant, id).await?;
            }
            "cancelled" => {
                sqlx::query(
                    "UPDATE deliveries SET state = 'cancelled'
                     WHERE campaign_id = $1 AND state = 'queued'",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        store::campaign(&self.pool, tenant, id).await
    }

    /// The delivery a token names, with its campaign and suppression state.
    async fn token_target(&self, token: &str) -> Result<(TenantId, Target), ApiError> {
        let (tenant, delivery) = self.tokens.read(token).ok_or_else(|| {
            ApiError::invalid("token", "this unsubscribe link is not valid or was altered")
        })?;
        let target: Option<Target> = sqlx::query_as(
            "SELECT d.id, d.campaign_id, d.person_id, d.email,
                    EXISTS (SELECT 1 FROM suppressions s
                            WHERE s.tenant_id = d.tenant_id AND s.email_key = lower(d.email))
                        AS suppressed
             FROM deliveries d WHERE d.tenant_id = $1 AND d.id = $2",
        )
        .bind(tenant)
        .bind(delivery)
        .fetch_optional(&self.pool)
        .await?;
        let target = target.ok_or_else(|| ApiError::not_found("the message of this link"))?;
        Ok((tenant, target))
    }
}

#[derive(sqlx::FromRow)]
struct Target {
    id: Uuid,
    campaign_id: Uuid,
    person_id: Uuid,
    email: String,
    suppressed: bool,
}

/// `jean@example.org` → `j***@example.org`.
fn mask(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[tonic::async_trait]
impl MessagingService for Api {
    async fn create_template(
        &self,
        request: Request<pb::CreateTemplateRequest>,
    ) -> Result<Response<pb::Template>, Status> {
        let tenant = auth::tenant(&request)?;
        let template = request.into_inner().template.unwrap_or_default();
        let name = required(&template.name, "template.name")?;
        required(&template.subject, "template.subject")?;
        required(&template.text_body, "template.text_body")?;
        Templates::check(&template.subject, &template.text_body, &template.html_body)?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO templates (id, tenant_id, name, subject, text_body, html_body)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant)
        .bind(name)
        .bind(&template.subject)
        .bind(&template.text_body)
        .bind(&template.html_body)
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?;
        Ok(Response::new(
            store::template(&self.pool, tenant, id).await?.into(),
        ))
    }

    async fn get_template(
        &self,
        request: Request<pb::GetTemplateRequest>,
    ) -> Result<Response<pb::Template>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        Ok(Response::new(
            store::template(&self.pool, tenant, id).await?.into(),
        ))
    }

    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let tenant = auth::tenant(&request)?;
        let campaign = request.into_inner().campaign.unwrap_or_default();
        let name = required(&campaign.name, "campaign.name")?;
        let template = parse_id(&campaign.template_id, "campaign.template_id")?;
        store::template(&self.pool, tenant, template).await?;
        let from_email = required(&campaign.from_email, "campaign.from_email")?;
        for (field, value) in [
            ("campaign.from_name", &campaign.from_name),
            ("campaign.from_email", &campaign.from_email),
            ("campaign.reply_to", &campaign.reply_to),
        ] {
            if value.chars().any(char::is_control) {
                return Err(ApiError::invalid(
                    field,
                    "must be one line without control characters",
                )
                .into());
            }
        }
        if from_email.parse::<lettre::Address>().is_err() {
            return Err(ApiError::invalid("campaign.from_email", "not an e-mail address").into());
        }
        let reply_to = campaign.reply_to.trim();
        if !reply_to.is_empty() && reply_to.parse::<lettre::Address>().is_err() {
            return Err(ApiError::invalid("campaign.reply_to", "not an e-mail address").into());
        }
        let segment = campaign.segment.unwrap_or_default().encode_to_vec();
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO campaigns (id, tenant_id, name, template_id, segment, from_name,
                                    from_email, reply_to, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft')",
        )
        .bind(id)
        .bind(tenant)
        .bind(name)
        .bind(template)
        .bind(segment)
        .bind(campaign.from_name.trim())
        .bind(from_email)
        .bind(reply_to)
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?;
        self.view(store::campaign(&self.pool, tenant, id).await?)
            .await
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        self.view(store::campaign(&self.pool, tenant, id).await?)
            .await
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let limit = match request.page_size {
            n if n <= 0 => 50,
            n => n.min(500) as i64,
        };
        let after = match request.page_token.as_str() {
            "" => Uuid::max(),
            token => parse_id(token, "page_token")?,
        };
        let sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 AND id < $2
             ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<CampaignRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = match rows.last() {
            Some(last) if rows.len() as i64 == limit => last.id.to_string(),
            _ => String::new(),
        };
        let mut campaigns = Vec::with_capacity(rows.len());
        for row in rows {
            campaigns.push(store::campaign_view(&self.pool, row, self.stale_claim).await?);
        }
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns,
            next_page_token,
        }))
    }

    async fn launch_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        let launched = sqlx::query(
            "UPDATE campaigns SET state = 'launching', launched_at = now()
             WHERE tenant_id = $1 AND id = $2 AND state = 'draft'",
        )
        .bind(tenant)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?
        .rows_affected();
        let row = store::campaign(&self.pool, tenant, id).await?;
        if launched == 1 {
            tracing::info!(tenant_id = %tenant, campaign_id = %id, "campaign launch requested");
            self.launcher.spawn(tenant, id);
        } else if row.state == "cancelled" {
            return Err(ApiError::precondition(format!("campaign {id} was cancelled")).into());
        }
        // A second launch of a launched campaign changes nothing.
        self.view(row).await
    }

    async fn pause_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        self.view(
            self.transition(tenant, id, &["sending", "launching"], "paused")
                .await?,
        )
        .await
    }

    async fn resume_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        self.view(self.transition(tenant, id, &["paused"], "sending").await?)
            .await
    }

    async fn cancel_campaign(
        &self,
        request: Request<pb::CampaignActionRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        let from = ["draft", "sending", "paused"];
        self.view(self.transition(tenant, id, &from, "cancelled").await?)
            .await
    }

    async fn inspect_unsubscribe(
        &self,
        request: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        auth::caller(&request)?;
        let (_, target) = self.token_target(&request.get_ref().token).await?;
        Ok(Response::new(pb::UnsubscribeResponse {
            masked_email: mask(&target.email),
            already_unsubscribed: target.suppressed,
        }))
    }

    async fn unsubscribe(
        &self,
        request: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        auth::caller(&request)?;
        let request = request.into_inner();
        let (tenant, target) = self.token_target(&request.token).await?;
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        let inserted = sqlx::query(
            "INSERT INTO suppressions (tenant_id, email_key, person_id, reason)
             VALUES ($1, lower($2), $3, 'unsubscribed')
             ON CONFLICT (tenant_id, email_key) DO NOTHING",
        )
        .bind(tenant)
        .bind(&target.email)
        .bind(target.person_id)
        .execute(&mut *tx)
        .await
        .map_err(ApiError::from)?
        .rows_affected();
        if inserted == 1 {
            let event = DeliveryUnsubscribed {
                person_id: target.person_id.to_string(),
                email: target.email.clone(),
                campaign_id: target.campaign_id.to_string(),
                delivery_id: target.id.to_string(),
                time: Some(muster_runtime::time::to_proto(chrono::Utc::now())),
                method: match request.method.as_str() {
                    "one-click" => "one-click".into(),
                    _ => "link".into(),
                },
            };
            let outgoing = Outgoing {
                tenant_id: tenant,
                destination: Destination::Event,
                routing_key: "messaging.delivery.unsubscribed",
                message_type: "muster.events.v1.DeliveryUnsubscribed",
            };
            outgoing
                .enqueue_one(&mut tx, event.encode_to_vec())
                .await
                .map_err(ApiError::from)?;
        }
        tx.commit().await.map_err(ApiError::from)?;
        tracing::info!(tenant_id = %tenant, delivery_id = %target.id, "unsubscribed");
        Ok(Response::new(pb::UnsubscribeResponse {
            masked_email: mask(&target.email),
            already_unsubscribed: inserted == 0,
        }))
    }

    async fn ingest_bounce(
        &self,
        request: Request<pb::IngestBounceRequest>,
    ) -> Result<Response<pb::IngestBounceResponse>, Status> {
        let caller = auth::caller(&request)?.tenant;
        let source = request.into_inner().source;
        let (report, raw) = match &source {
            Some(Source::RawMessage(raw)) => (
                bounces::parse_message(raw)
                    .map_err(|e| ApiError::invalid("raw_message", e.to_string()))?,
                raw.as_slice(),
            ),
            Some(Source::Provider(notification)) => (
                bounces::parse_webhook(&notification.provider, &notification.body)
                    .map_err(|e| ApiError::invalid("provider", e.to_string()))?,
                notification.body.as_slice(),
            ),
            None => return Err(ApiError::invalid("source", "is required").into()),
        };
        let received = record::Received {
            report: &report,
            raw,
        };
        let response = record::ingest(&self.pool, &self.bounces, caller, received).await?;
        Ok(Response::new(response))
    }

    async fn list_bounces(
        &self,
        request: Request<pb::ListBouncesRequest>,
    ) -> Result<Response<pb::ListBouncesResponse>, Status> {
        let tenant = auth::tenant(&request)?;
        let request = request.into_inner();
        let filter = Filter::from_request(&request)?;
        let after = Cursor::parse(&request.page_token)?;
        let limit = listing::page_size(request.page_size);
        let page = listing::list(&self.pool, tenant, filter, after, limit).await?;
        Ok(Response::new(page))
    }

    async fn get_delivery(
        &self,
        request: Request<pb::GetDeliveryRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let tenant = auth::tenant(&request)?;
        let id = parse_id(&request.get_ref().id, "id")?;
        let delivery = deliveries::get(&self.pool, tenant, id, self.stale_claim).await?;
        Ok(Response::new(delivery))
    }

    async fn set_rate_limit(
        &self,
        request: Request<pb::SetRateLimitRequest>,
    ) -> Result<Response<pb::RateLimit>, Status> {
        let caller = auth::caller(&request)?.tenant;
        let limit = request.into_inner().rate_limit.unwrap_or_default();
        let saved = ratelimit::set(&self.pool, caller, limit).await?;
        tracing::info!(tenant_id = ?caller, scope = saved.scope, "rate limit set");
        Ok(Response::new(saved))
    }

    async fn list_rate_limits(
        &self,
        request: Request<pb::ListRateLimitsRequest>,
    ) -> Result<Response<pb::ListRateLimitsResponse>, Status> {
        let caller = auth::caller(&request)?.tenant;
        let rate_limits = ratelimit::list(&self.pool, caller).await?;
        Ok(Response::new(pb::ListRateLimitsResponse { rate_limits }))
    }
}
