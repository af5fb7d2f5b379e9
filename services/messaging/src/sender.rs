//! The e-mail sender: consumes send jobs, claims each delivery before
//! sending (so no one gets a campaign twice, whatever the redeliveries, the
//! pauses or the number of senders), re-checks suppression at send time,
//! renders, waits for its turn under the rate limits, sends over pooled SMTP
//! connections and records the answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use lettre::Message as Email;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::response::Response;
use muster_proto::events::v1::SendJob;
use muster_runtime::TenantId;
use muster_runtime::consumer::{HandleError, Handler, Incoming};
use muster_runtime::unsubscribe::UnsubscribeTokens;
use prost::Message;
use sqlx::PgPool;
use tokio::sync::{RwLock, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::contacted;
use crate::jobs;
use crate::ratelimit::Limiter;
use crate::render::{MergeFields, Rendered, Templates};
use crate::smtp::{Failure, Relay};
use crate::store;

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
    /// Refused for good (5xx), or not buildable: the delivery fails with
    /// the reason.
    Refused(String),
    /// Not handed over (4xx, or no connection): try again later.
    Retry(String),
    /// The message may have been received (the connection broke or timed out
    /// after it was handed over): never re-sent, reported as unknown.
    Unknown(String),
}

fn classify(result: Result<Response, Failure>) -> Outcome {
    match result {
        Ok(response) => Outcome::Sent(response.message().collect::<Vec<_>>().join(" ")),
        Err(Failure::Refused {
            permanent: true,
            reason,
        }) => Outcome::Refused(format!("refused by the SMTP server: {reason}")),
        Err(Failure::Refused {
            permanent: false,
            reason,
        }) => Outcome::Retry(format!("deferred by the SMTP server: {reason}")),
        Err(Failure::NotSent(reason)) => Outcome::Retry(reason),
        Err(Failure::Uncertain(reason)) => Outcome::Unknown(format!(
            "{reason} after the message was handed over; \
             the message may have been received and is not sent again"
        )),
    }
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
    /// Stops the waiting: deliveries not yet claimed go back to the queue.
    pub shutdown: CancellationToken,
}

/// How much one sender process hands to SMTP at once.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Messages in flight at once: one per pooled SMTP connection.
    pub connections: usize,
    /// Deliveries claimed together and then sent concurrently. A process
    /// that dies mid-group leaves at most this many reported unknown.
    pub group: usize,
}

/// How handling a group of deliveries ended.
enum Step {
    /// Sent, recorded, or nothing to do.
    Done,
    /// Nothing claimed; the group and the rest of its job go back to the
    /// queue (`None`: the process stops) or to this step of the retry ladder
    /// (the next turn is far away).
    GiveBack(Option<usize>),
}

/// Handles `messaging.email.send`.
///
/// A job's deliveries are sent in groups. For each group the sender first
/// waits for its turns under the rate limits and for free SMTP connections,
/// then claims the group in one durable statement (re-checking suppression
/// and the campaign's state), hands every claimed message to SMTP at once
/// and records the answers in one statement. Because nothing is claimed
/// before it can be sent, a claim with no answer recorded means the process
/// died while the message was with SMTP: it is reported unknown, never sent
/// again.
pub struct Sender {
    pub pool: PgPool,
    /// Results are written without waiting for the disk: a result lost in a
    /// database crash leaves the delivery claimed, reported unknown and never
    /// re-sent, while claims (which guard against sending twice) stay durable.
    pub results: PgPool,
    pub smtp: Relay,
    pub tokens: UnsubscribeTokens,
    /// Base of the public unsubscribe links, e.g. `https://act.example.org`.
    pub public_url: String,
    pacing: Pacing,
    connections: Arc<Semaphore>,
    group: usize,
    campaigns: RwLock<HashMap<Uuid, Arc<CampaignContext>>>,
}

/// A delivery claimed for sending.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    state: String,
    email: String,
    first_name: String,
    last_name: String,
    city: String,
    attempts: i32,
}

/// The answers of one group, as they are written.
#[derive(Default)]
struct Answers {
    /// Final states: id, state, error, the server's answer.
    ids: Vec<Uuid>,
    states: Vec<&'static str>,
    errors: Vec<Option<String>>,
    answers: Vec<Option<String>>,
    /// Deliveries to try again, with their step on the retry ladder.
    retries: Vec<(Uuid, usize, String)>,
}

impl Answers {
    fn push(
        &mut self,
        id: Uuid,
        state: &'static str,
        error: Option<String>,
        answer: Option<String>,
    ) {
        self.ids.push(id);
        self.states.push(state);
        self.errors.push(error);
        self.answers.push(answer);
    }
}

impl Sender {
    /// A sender over `pool` and `smtp`, paced by `pacing`.
    pub fn new(
        pool: PgPool,
        results: PgPool,
        smtp: Relay,
        tokens: UnsubscribeTokens,
        public_url: String,
        pacing: Pacing,
        capacity: Capacity,
    ) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let connections = capacity.connections.max(1);
        Self {
            pool,
            results,
            smtp,
            tokens,
            public_url,
            pacing,
            connections: Arc::new(Semaphore::new(connections)),
            group: capacity.group.clamp(1, connections),
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
            Err(muster_runtime::ApiError::NotFound(message)) => {
                return Err(HandleError::Permanent(anyhow::anyhow!("{message}")));
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

    /// The deliveries of `job` still waiting to be sent, in the job's order.
    async fn pending(&self, job: &[Uuid]) -> Result<Vec<Uuid>, HandleError> {
        let queued: HashSet<Uuid> =
            sqlx::query_scalar("SELECT id FROM deliveries WHERE id = ANY($1) AND state = 'queued'")
                .bind(job)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        Ok(job
            .iter()
            .copied()
            .filter(|id| queued.contains(id))
            .collect())
    }

    /// How many deliveries to claim and send together. One at a time under
    /// a rate limit: each message then leaves as soon as its turn comes, so
    /// that sends bunched in a group never crowd a window beyond the limit.
    async fn group_size(&self, tenant: TenantId, context: &CampaignContext) -> usize {
        let limiter = &self.pacing.limiter;
        if limiter
            .applies(tenant, &context.sender, limiter.provider())
            .await
        {
            1
        } else {
            self.group
        }
    }

    /// Takes turns and connections for `group`, claims it, sends what was
    /// claimed and records the answers.
    async fn send_group(
        &self,
        tenant: TenantId,
        campaign: Uuid,
        context: &CampaignContext,
        group: &[Uuid],
    ) -> Result<Step, HandleError> {
        for _ in group {
            if let Err(back) = self.wait_turn(tenant, context).await {
                return Ok(Step::GiveBack(back));
            }
        }
        let permits = self
            .connections
            .clone()
            .acquire_many_owned(group.len() as u32);
        let mut permits = tokio::select! {
            biased;
            permits = permits => permits.map_err(|_| {
                HandleError::Transient(anyhow::anyhow!("the sender is stopping"))
            })?,
            () = self.pacing.shutdown.cancelled() => {
                return Ok(Step::GiveBack(None));
            }
        };

        let claimed = self.claim(tenant, campaign, group).await?;
        let sends = claimed
            .iter()
            .filter(|claimed| claimed.state == "sending")
            .map(|claimed| {
                let permit = permits.split(1);
                async move {
                    let outcome = self.send(tenant, context, claimed).await;
                    drop(permit);
                    (claimed, outcome)
                }
            });
        let outcomes = futures::future::join_all(sends).await;
        drop(permits);

        let mut answers = Answers::default();
        for (claimed, outcome) in outcomes {
            match outcome {
                Outcome::Sent(answer) => {
                    let answer = format!("<{}@{}> {answer}", claimed.id, context.domain);
                    answers.push(claimed.id, "sent", None, Some(answer));
                }
                Outcome::Refused(reason) => answers.push(claimed.id, "failed", Some(reason), None),
                Outcome::Unknown(reason) => answers.push(claimed.id, "unknown", Some(reason), None),
                Outcome::Retry(reason) if claimed.attempts >= MAX_ATTEMPTS => {
                    let reason = format!("gave up after {MAX_ATTEMPTS} attempts: {reason}");
                    answers.push(claimed.id, "failed", Some(reason), None);
                }
                Outcome::Retry(reason) => {
                    let step = (claimed.attempts.max(1) - 1) as usize;
                    answers.retries.push((claimed.id, step, reason));
                }
            }
        }
        self.record(tenant, campaign, answers).await?;
        Ok(Step::Done)
    }

    /// Claims the still-queued deliveries of `group` while their campaign is
    /// sending; those whose address is suppressed by now are marked so
    /// instead. One durable statement: what it returns as `sending` is
    /// never sent by anyone else.
    async fn claim(
        &self,
        tenant: TenantId,
        campaign: Uuid,
        group: &[Uuid],
    ) -> Result<Vec<Claimed>, HandleError> {
        let claimed = sqlx::query_as(
            "UPDATE deliveries d SET
                state = CASE WHEN EXISTS (SELECT 1 FROM suppressions s
                                          WHERE s.tenant_id = d.tenant_id
                                            AND s.email_key IN (lower(d.email),
                                                                d.email_hash))
                        THEN 'suppressed' ELSE 'sending' END,
                error = CASE WHEN EXISTS (SELECT 1 FROM suppressions s
                                          WHERE s.tenant_id = d.tenant_id
                                            AND s.email_key IN (lower(d.email),
                                                                d.email_hash))
                        THEN 'suppressed at send time' ELSE d.error END,
                attempts = d.attempts + 1,
                claimed_at = now()
             FROM campaigns c
             WHERE d.id = ANY($1) AND d.tenant_id = $2 AND d.campaign_id = $3
               AND d.state = 'queued'
               AND c.id = d.campaign_id AND c.state = 'sending'
             RETURNING d.id, d.state, d.email, d.first_name, d.last_name, d.city, d.attempts",
        )
        .bind(group)
        .bind(tenant)
        .bind(campaign)
        .fetch_all(&self.pool)
        .await?;
        Ok(claimed)
    }

    /// Builds and sends one claimed message.
    async fn send(
        &self,
        tenant: TenantId,
        context: &CampaignContext,
        claimed: &Claimed,
    ) -> Outcome {
        // A message that cannot be built fails its delivery, never the
        // process: the mail library panics on some malformed headers.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.build(tenant, context, claimed)
        }))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the message could not be built")));
        match built {
            Ok(email) => {
                let message = email.formatted();
                classify(self.smtp.send(email.envelope(), &message).await)
            }
            Err(error) => Outcome::Refused(format!("{error:#}")),
        }
    }

    /// Writes the answers of one group: final states in one statement on
    /// the results pool, retries (back to `queued`, with their jobs on the
    /// retry queues) in one transaction.
    async fn record(
        &self,
        tenant: TenantId,
        campaign: Uuid,
        answers: Answers,
    ) -> Result<(), HandleError> {
        if !answers.ids.is_empty() {
            // The group's sends are announced in the same transaction, as
            // one event, so that contacts learns of each send exactly once.
            let mut tx = self.results.begin().await?;
            let sent: Vec<(Uuid, Uuid, DateTime<Utc>)> = sqlx::query_as(
                "WITH recorded AS (
                    UPDATE deliveries d SET
                        state = r.state,
                        error = coalesce(r.error, d.error),
                        provider_message_id = coalesce(r.answer, d.provider_message_id),
                        sent_at = CASE WHEN r.state = 'sent' THEN now() ELSE d.sent_at END
                     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                          AS r (id, state, error, answer)
                     WHERE d.id = r.id
                     RETURNING d.id, d.person_id, d.state, d.sent_at)
                 SELECT id, person_id, sent_at FROM recorded WHERE state = 'sent'",
            )
            .bind(&answers.ids)
            .bind(&answers.states)
            .bind(&answers.errors)
            .bind(&answers.answers)
            .fetch_all(&mut *tx)
            .await?;
            contacted::announce(&mut tx, tenant, campaign, &sent).await?;
            tx.commit().await?;
        }
        if answers.retries.is_empty() {
            return Ok(());
        }
        let last = muster_runtime::bus::EMAIL_SEND_RETRY_DELAYS.len() - 1;
        let mut ids = Vec::new();
        let mut reasons = Vec::new();
        let mut delays = Vec::new();
        let mut by_step: BTreeMap<usize, Vec<Uuid>> = BTreeMap::new();
        for (id, step, reason) in &answers.retries {
            let step = (*step).min(last);
            ids.push(*id);
            reasons.push(format!("will retry: {reason}"));
            delays.push(retry_delay(step).as_millis() as f64);
            by_step.entry(step).or_default().push(*id);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE deliveries d SET state = 'queued', error = r.error,
                    due_at = now() + r.delay * interval '1 millisecond'
             FROM unnest($1::uuid[], $2::text[], $3::float8[]) AS r (id, error, delay)
             WHERE d.id = r.id",
        )
        .bind(&ids)
        .bind(&reasons)
        .bind(&delays)
        .execute(&mut *tx)
        .await?;
        for (step, ids) in by_step {
            let queue = muster_runtime::bus::retry_queue(jobs::SEND_QUEUE, step);
            jobs::enqueue(&mut tx, tenant, campaign, &ids, &queue).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Waits for one message's turn under the rate limits; gives back where
    /// to return the job to (see [`Step::GiveBack`]) when the process stops
    /// or the turn is further than [`LONG_WAIT`]. Nothing is claimed while
    /// waiting.
    async fn wait_turn(
        &self,
        tenant: TenantId,
        context: &CampaignContext,
    ) -> Result<(), Option<usize>> {
        let limiter = &self.pacing.limiter;
        let acquire =
            limiter.acquire_within(tenant, &context.sender, limiter.provider(), LONG_WAIT);
        tokio::select! {
            biased;
            () = self.pacing.shutdown.cancelled() => Err(None),
            granted = acquire => granted.map_err(|wait| Some(retry_step_after(wait))),
        }
    }

    /// Enqueues the unclaimed `rest` of a job again: on the send queue, or
    /// on the retry queue of `step`, recording when it is due.
    async fn give_back(
        &self,
        tenant: TenantId,
        campaign: Uuid,
        rest: &[Uuid],
        step: Option<usize>,
    ) -> Result<(), HandleError> {
        let mut tx = self.pool.begin().await?;
        let queue = match step {
            None => jobs::SEND_QUEUE.to_owned(),
            Some(step) => {
                sqlx::query(
                    "UPDATE deliveries SET due_at = now() + $2 * interval '1 millisecond'
                     WHERE id = ANY($1) AND state = 'queued'",
                )
                .bind(rest)
                .bind(retry_delay(step).as_millis() as f64)
                .execute(&mut *tx)
                .await?;
                muster_runtime::bus::retry_queue(jobs::SEND_QUEUE, step)
            }
        };
        jobs::enqueue(&mut tx, tenant, campaign, rest, &queue).await?;
        tx.commit().await?;
        Ok(())
    }

    fn build(
        &self,
        tenant: TenantId,
        context: &CampaignContext,
        claimed: &Claimed,
    ) -> anyhow::Result<Email> {
        let delivery = claimed.id;
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
        let pending = self.pending(&deliveries).await?;
        let mut done = 0;
        while done < pending.len() {
            let size = self.group_size(message.tenant_id, &context).await;
            let group = &pending[done..pending.len().min(done + size)];
            let step = self
                .send_group(message.tenant_id, campaign, &context, group)
                .await?;
            done += group.len();
            if let Step::GiveBack(retry_step) = step {
                let rest = &pending[done - group.len()..];
                tracing::info!(campaign_id = %campaign, deliveries = rest.len(), ?retry_step,
                    "deliveries given back to the queue unsent");
                return self
                    .give_back(message.tenant_id, campaign, rest, retry_step)
                    .await;
            }
        }
        Ok(())
    }
}

/// The step of the retry ladder whose delay covers `wait`, or the last.
fn retry_step_after(wait: Duration) -> usize {
    let delays = muster_runtime::bus::EMAIL_SEND_RETRY_DELAYS;
    delays
        .iter()
        .position(|delay| *delay >= wait)
        .unwrap_or(delays.len() - 1)
}

/// The delay of `step` of the retry ladder (the last one beyond it).
fn retry_delay(step: usize) -> Duration {
    let delays = muster_runtime::bus::EMAIL_SEND_RETRY_DELAYS;
    delays[step.min(delays.len() - 1)]
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
