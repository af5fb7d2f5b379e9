//! The e-mail sender: consumes send jobs, claims each delivery before
//! sending (so no one gets a campaign twice, whatever the redeliveries, the
//! pauses or the number of senders), re-checks suppression at send time,
//! renders, waits for its turn under the rate limits, sends over pooled SMTP
//! connections and records the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::{Error as SmtpError, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use muster_proto::events::v1::SendJob;
use muster_runtime::TenantId;
use muster_runtime::consumer::{HandleError, Handler, Incoming};
use prost::Message;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::jobs;
use crate::ratelimit::Limiter;
use crate::render::{MergeFields, Rendered, Templates};
use crate::store;
use crate::unsubscribe::Tokens;

/// Attempts of one delivery before it is failed.
const MAX_ATTEMPTS: i32 = 5;

/// A delivery whose next turn under the rate limits is further away than
/// this is given back to a retry queue rather than held.
const LONG_WAIT: Duration = Duration::from_secs(60);

/// What the SMTP server's answer means for a delivery.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Accepted (the server's answer).
    Sent(String),
    /// Refused for good (5xx): the delivery fails with the reason.
    Refused(String),
    /// Not handed over (4xx, or no connection): try again later.
    Retry(String),
    /// The message may have been received (the connection broke or timed out
    /// after it was handed over): never re-sent, reported as unknown.
    Unknown(String),
}

fn classify(result: Result<Response, SmtpError>) -> Outcome {
    let error = match result {
        Ok(response) => return Outcome::Sent(response.message().collect::<Vec<_>>().join(" ")),
        Err(error) => error,
    };
    if error.is_permanent() {
        Outcome::Refused(format!("refused by the SMTP server: {error}"))
    } else if error.is_transient() {
        Outcome::Retry(format!("deferred by the SMTP server: {error}"))
    } else if never_connected(&error) {
        Outcome::Retry(format!("could not reach the SMTP server: {error}"))
    } else {
        Outcome::Unknown(format!(
            "the SMTP session broke before the server answered ({error}); \
             the message may have been received and is not sent again"
        ))
    }
}

/// Whether the error happened while opening the connection, before any
/// message was handed over. lettre exposes this kind only through its text.
fn never_connected(error: &SmtpError) -> bool {
    error.to_string().starts_with("Connection error")
}

/// The SMTP relay deliveries go to.
#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// Connections kept open to the relay.
    pub pool_size: u32,
    pub timeout_secs: u64,
}

/// A pooled SMTP transport for `settings`.
pub fn transport(settings: &SmtpSettings) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .timeout(Some(Duration::from_secs(settings.timeout_secs)))
        .pool_config(PoolConfig::new().max_size(settings.pool_size))
        .build()
}

/// What every message of one campaign shares.
struct CampaignContext {
    templates: Templates,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    domain: String,
    /// The sender identity rate limits count under (the from address).
    sender: String,
}

/// How a sender waits for its turn under the rate limits.
pub struct Pacing {
    pub limiter: Limiter,
    /// How often a delivery's claim is renewed while it waits, so that it
    /// is not taken for the claim of a dead process.
    pub keep_claim_every: Duration,
    /// Stops the waiting: waiting deliveries go back to the queue.
    pub shutdown: CancellationToken,
}

/// How handling one delivery ended.
enum Step {
    /// Sent, recorded, or nothing to do.
    Done,
    /// Not sent, and to be enqueued again on this queue with the rest of
    /// its job: the process stops, or its turn is far away.
    GiveBack(String),
}

/// What waiting for the rate limiter ended with.
enum Turn {
    Go,
    GiveBack(String),
    /// The claim was taken away meanwhile (reported unknown): never send.
    ClaimLost,
}

/// Handles `messaging.email.send`.
pub struct Sender {
    pub pool: PgPool,
    /// Results are written without waiting for the disk: a result lost in a
    /// database crash leaves the delivery claimed, reported unknown and never
    /// re-sent, while claims (which guard against sending twice) stay durable.
    pub results: PgPool,
    pub smtp: AsyncSmtpTransport<Tokio1Executor>,
    pub tokens: Tokens,
    /// Base of the public unsubscribe links, e.g. `https://act.example.org`.
    pub public_url: String,
    pacing: Pacing,
    campaigns: RwLock<HashMap<Uuid, Arc<CampaignContext>>>,
}

/// A delivery claimed for sending.
#[derive(sqlx::FromRow)]
struct Claimed {
    state: String,
    email: String,
    first_name: String,
    last_name: String,
    city: String,
    attempts: i32,
}

impl Sender {
    /// A sender over `pool` and `smtp`, paced by `pacing`.
    pub fn new(
        pool: PgPool,
        results: PgPool,
        smtp: AsyncSmtpTransport<Tokio1Executor>,
        tokens: Tokens,
        public_url: String,
        pacing: Pacing,
    ) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self {
            pool,
            results,
            smtp,
            tokens,
            public_url,
            pacing,
            campaigns: RwLock::default(),
        }
    }

    async fn context(
        &self,
        tenant: TenantId,
        campaign: Uuid,
    ) -> Result<Arc<CampaignContext>, HandleError> {
        if let Some(context) = self.campaigns.read().await.get(&campaign) {
            return Ok(context.clone());
        }
        let row = match store::campaign(&self.pool, tenant, campaign).await {
            Ok(row) => row,
            Err(muster_runtime::ApiError::NotFound(what)) => {
                return Err(HandleError::Permanent(anyhow::anyhow!(
                    "{what} does not exist"
                )));
            }
            Err(error) => return Err(HandleError::Transient(anyhow::anyhow!("{error}"))),
        };
        let template = store::template(&self.pool, tenant, row.template_id)
            .await
            .map_err(|e| HandleError::Transient(anyhow::anyhow!("{e}")))?;
        let templates =
            Templates::compile(&template.subject, &template.text_body, &template.html_body)
                .map_err(|e| HandleError::Permanent(anyhow::anyhow!("{e}")))?;
        let from = mailbox(&row.from_name, &row.from_email)
            .map_err(|e| HandleError::Permanent(e.context("campaign sender address")))?;
        let reply_to = match row.reply_to.trim() {
            "" => None,
            reply_to => Some(mailbox("", reply_to).map_err(HandleError::Permanent)?),
        };
        let domain = row
            .from_email
            .rsplit('@')
            .next()
            .unwrap_or("muster.invalid")
            .to_owned();
        let context = Arc::new(CampaignContext {
            templates,
            from,
            reply_to,
            domain,
            sender: row.from_email.trim().to_lowercase(),
        });
        self.campaigns
            .write()
            .await
            .insert(campaign, context.clone());
        Ok(context)
    }

    /// Claims, sends and records one delivery.
    async fn deliver(
        &self,
        tenant: TenantId,
        campaign: Uuid,
        context: &CampaignContext,
        delivery: Uuid,
    ) -> Result<Step, HandleError> {
        let claimed: Option<Claimed> = sqlx::query_as(
            "UPDATE deliveries d SET
                state = CASE WHEN EXISTS (SELECT 1 FROM suppressions s
                                          WHERE s.tenant_id = d.tenant_id
                                            AND s.email_key = lower(d.email))
                        THEN 'suppressed' ELSE 'sending' END,
                error = CASE WHEN EXISTS (SELECT 1 FROM suppressions s
                                          WHERE s.tenant_id = d.tenant_id
                                            AND s.email_key = lower(d.email))
                        THEN 'suppressed at send time' ELSE d.error END,
                attempts = d.attempts + 1,
                claimed_at = now()
             FROM campaigns c
             WHERE d.id = $1 AND d.tenant_id = $2 AND d.campaign_id = $3 AND d.state = 'queued'
               AND c.id = d.campaign_id AND c.state = 'sending'
             RETURNING d.state, d.email, d.first_name, d.last_name, d.city, d.attempts",
        )
        .bind(delivery)
        .bind(tenant)
        .bind(campaign)
        .fetch_optional(&self.pool)
        .await?;
        let Some(claimed) = claimed else {
            return Ok(Step::Done);
        };
        if claimed.state == "suppressed" {
            return Ok(Step::Done);
        }

        // A message that cannot be built fails its delivery, never the
        // process: the mail library panics on some malformed headers.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.build(tenant, context, delivery, &claimed)
        }))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the message could not be built")));
        let email = match built {
            Ok(email) => email,
            Err(error) => {
                self.finish(delivery, "failed", &format!("{error:#}"))
                    .await?;
                return Ok(Step::Done);
            }
        };
        match self.wait_turn(tenant, context, delivery).await? {
            Turn::Go => {}
            Turn::ClaimLost => return Ok(Step::Done),
            Turn::GiveBack(queue) => return Ok(Step::GiveBack(queue)),
        }
        let recorded = match classify(self.smtp.send(email).await) {
            Outcome::Sent(answer) => {
                sqlx::query(
                    "UPDATE deliveries SET state = 'sent', sent_at = now(), provider_message_id = $2
                     WHERE id = $1",
                )
                .bind(delivery)
                .bind(format!("<{delivery}@{}> {answer}", context.domain))
                .execute(&self.results)
                .await?;
                Ok(())
            }
            Outcome::Refused(reason) => self.finish(delivery, "failed", &reason).await,
            Outcome::Unknown(reason) => self.finish(delivery, "unknown", &reason).await,
            Outcome::Retry(reason) if claimed.attempts >= MAX_ATTEMPTS => {
                let reason = format!("gave up after {MAX_ATTEMPTS} attempts: {reason}");
                self.finish(delivery, "failed", &reason).await
            }
            Outcome::Retry(reason) => {
                let step = (claimed.attempts.max(1) - 1) as usize;
                self.retry(tenant, campaign, delivery, step, &reason).await
            }
        };
        recorded.map(|()| Step::Done)
    }

    /// Waits for the delivery's turn under the rate limits, renewing its
    /// claim meanwhile; gives it back when the process stops or the turn is
    /// further than [`LONG_WAIT`].
    ///
    /// TODO(#3): a sender killed while it waits leaves its claims to be
    /// reported unknown although nothing was sent; taking the turn before
    /// the claim would avoid that at the cost of turns spent on nothing.
    async fn wait_turn(
        &self,
        tenant: TenantId,
        context: &CampaignContext,
        delivery: Uuid,
    ) -> Result<Turn, HandleError> {
        let limiter = &self.pacing.limiter;
        let acquire =
            limiter.acquire_within(tenant, &context.sender, limiter.provider(), LONG_WAIT);
        tokio::pin!(acquire);
        let every = self.pacing.keep_claim_every;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                biased;
                granted = &mut acquire => {
                    return Ok(match granted {
                        Ok(()) => Turn::Go,
                        Err(wait) => Turn::GiveBack(queue_after(wait)),
                    });
                }
                () = self.pacing.shutdown.cancelled() => {
                    return Ok(Turn::GiveBack(jobs::SEND_QUEUE.to_owned()));
                }
                _ = renew.tick() => {
                    if !self.keep_claim(delivery).await? {
                        return Ok(Turn::ClaimLost);
                    }
                }
            }
        }
    }

    /// Renews a claim; false when it is no longer held.
    async fn keep_claim(&self, delivery: Uuid) -> Result<bool, HandleError> {
        let kept = sqlx::query(
            "UPDATE deliveries SET claimed_at = now() WHERE id = $1 AND state = 'sending'",
        )
        .bind(delivery)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(kept == 1)
    }

    /// Returns the unsent `claimed` delivery to the queue and enqueues the
    /// job's `rest` (which includes it) again on `queue`.
    async fn give_back(
        &self,
        tenant: TenantId,
        campaign: Uuid,
        claimed: Uuid,
        rest: &[Uuid],
        queue: &str,
    ) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE deliveries SET state = 'queued', attempts = attempts - 1
             WHERE id = $1 AND state = 'sending'",
        )
        .bind(claimed)
        .execute(&mut *tx)
        .await?;
        jobs::enqueue(&mut tx, tenant, campaign, rest, queue).await?;
        tx.commit().await?;
        Ok(())
    }

    fn build(
        &self,
        tenant: TenantId,
        context: &CampaignContext,
        delivery: Uuid,
        claimed: &Claimed,
    ) -> anyhow::Result<Email> {
        let to = mailbox(
            &format!("{} {}", claimed.first_name, claimed.last_name),
            &claimed.email,
        )?;
        let token = self.tokens.issue(tenant, delivery);
        let url = format!("{}/u/{token}", self.public_url);
        let fields = MergeFields {
            first_name: &claimed.first_name,
            last_name: &claimed.last_name,
            email: &claimed.email,
            city: &claimed.city,
            unsubscribe_url: &url,
        };
        let Rendered {
            subject,
            text,
            html,
        } = context
            .templates
            .render(&fields)
            .context("rendering the template")?;
        let text = with_unsubscribe_footer(text, &token, &url);
        let html = html.map(|html| with_unsubscribe_link(html, &token, &url));

        let mut builder = Email::builder()
            .from(context.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{delivery}@{}>", context.domain)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
        if let Some(reply_to) = &context.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let email = match html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
            None => builder.singlepart(SinglePart::plain(text)),
        };
        email.context("building the message")
    }

    /// Records a final state other than sent, with its reason.
    async fn finish(&self, delivery: Uuid, state: &str, reason: &str) -> Result<(), HandleError> {
        sqlx::query("UPDATE deliveries SET state = $2, error = $3 WHERE id = $1")
            .bind(delivery)
            .bind(state)
            .bind(reason)
            .execute(&self.results)
            .await?;
        Ok(())
    }

    /// Returns the delivery to the queue and schedules it on the retry queue.
    async fn retry(
        &self,
        tenant: TenantId,
        campaign: Uuid,
        delivery: Uuid,
        step: usize,
        reason: &str,
    ) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE deliveries SET state = 'queued', error = $2 WHERE id = $1")
            .bind(delivery)
            .bind(format!("will retry: {reason}"))
            .execute(&mut *tx)
            .await?;
        let last = muster_runtime::bus::EMAIL_SEND_RETRY_DELAYS.len() - 1;
        let retry_queue = muster_runtime::bus::retry_queue(jobs::SEND_QUEUE, step.min(last));
        jobs::enqueue(&mut tx, tenant, campaign, &[delivery], &retry_queue).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Handler for Sender {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let job = SendJob::decode(message.body.as_slice())
            .map_err(|e| HandleError::Permanent(anyhow::anyhow!("undecodable send job: {e}")))?;
        let campaign = Uuid::parse_str(&job.campaign_id)
            .map_err(|_| HandleError::Permanent(anyhow::anyhow!("campaign_id is not an id")))?;
        let context = self.context(message.tenant_id, campaign).await?;
        let deliveries: Vec<Uuid> = job
            .delivery_ids
            .iter()
            .filter_map(|id| {
                let parsed = Uuid::parse_str(id).ok();
                if parsed.is_none() {
                    tracing::warn!(
                        campaign_id = %campaign,
                        "send job names a malformed delivery id"
                    );
                }
                parsed
            })
            .collect();
        for (done, &delivery) in deliveries.iter().enumerate() {
            let step = self
                .deliver(message.tenant_id, campaign, &context, delivery)
                .await?;
            if let Step::GiveBack(queue) = step {
                let rest = &deliveries[done..];
                tracing::info!(campaign_id = %campaign, deliveries = rest.len(), queue,
                    "deliveries given back to the queue unsent");
                return self
                    .give_back(message.tenant_id, campaign, delivery, rest, &queue)
                    .await;
            }
        }
        Ok(())
    }
}

/// The retry queue whose delay covers `wait`, or the longest.
fn queue_after(wait: Duration) -> String {
    let delays = muster_runtime::bus::EMAIL_SEND_RETRY_DELAYS;
    let step = delays
        .iter()
        .position(|delay| *delay >= wait)
        .unwrap_or(delays.len() - 1);
    muster_runtime::bus::retry_queue(jobs::SEND_QUEUE, step)
}

fn mailbox(name: &str, address: &str) -> anyhow::Result<Mailbox> {
    let address = address
        .trim()
        .parse()
        .with_context(|| "not a deliverable e-mail address")?;
    // A display name is one line of text: contact data with line breaks or
    // other control characters must not reach (and break) the headers.
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = name.trim();
    Ok(Mailbox::new(
        (!name.is_empty()).then(|| name.to_owned()),
        address,
    ))
}

/// Adds the unsubscribe link to a text body whose template left it out.
fn with_unsubscribe_footer(text: String, token: &str, url: &str) -> String {
    if text.contains(token) {
        return text;
    }
    format!("{text}\n\n--\nSe désinscrire / Unsubscribe: {url}\n")
}

/// Adds the unsubscribe link to an HTML body whose template left it out.
fn with_unsubscribe_link(html: String, token: &str, url: &str) -> String {
    if html.contains(token) {
        return html;
    }
    format!("{html}\n<p><a href=\"{url}\">Se désinscrire / Unsubscribe</a></p>\n")
}
