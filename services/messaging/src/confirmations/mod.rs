//! Double opt-in e-mails: when contacts records a pending e-mail consent,
//! one message with a signed, expiring link to the gateway's confirmation
//! page goes to the address through the SMTP relay, in the language the
//! request carries and naming the organization ([`letter`]).

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use lettre::Message as Email;
use lettre::message::{Mailbox, SinglePart};
use muster_proto::events::v1::ConsentConfirmationRequested;
use muster_runtime::confirmation::{Confirmation, ConfirmationTokens};
use muster_runtime::consumer::{self, HandleError, Handler, Incoming};
use muster_runtime::privacy::AddressHasher;
use prost::Message;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::smtp::{Failure, Relay};

mod letter;

/// The queue, and the inbox name, of confirmation requests.
pub const QUEUE: &str = "messaging.consent-confirmations";

/// Who confirmation e-mails come from and how long their links work.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfirmationSettings {
    /// `Name <address>` of the sender.
    pub from: String,
    pub link_ttl_hours: u64,
}

/// `contacts.consent.confirmation_requested`: sends the confirmation e-mail.
pub struct Confirmations {
    pub pool: PgPool,
    pub smtp: Relay,
    pub tokens: ConfirmationTokens,
    /// Base of the gateway's public pages, without a trailing slash.
    pub public_url: String,
    pub from: Mailbox,
    pub link_ttl: Duration,
    /// Finds the suppressions of erased addresses, kept as keyed hashes.
    pub hasher: AddressHasher,
}

/// The confirmation e-mail from `from` to the person of `event`.
fn email(
    from: &Mailbox,
    event: &ConsentConfirmationRequested,
    link: &str,
    link_hours: u64,
) -> anyhow::Result<Email> {
    let to: Mailbox = event.email.parse().context("the address of the request")?;
    let letter = letter::compose(event, link, link_hours);
    Email::builder()
        .from(from.clone())
        .to(to)
        .subject(letter.subject)
        .singlepart(SinglePart::plain(letter.text))
        .context("building the confirmation e-mail")
}

impl Handler for Confirmations {
    async fn handle(&self, message: Incoming) -> Result<(), HandleError> {
        let event = ConsentConfirmationRequested::decode(message.body.as_slice())
            .map_err(|e| HandleError::Permanent(anyhow::anyhow!("undecodable body: {e}")))?;
        let person = Uuid::parse_str(&event.person_id)
            .map_err(|_| HandleError::Permanent(anyhow::anyhow!("person_id is not an id")))?;

        let Some(tx) = consumer::begin_once(&self.pool, QUEUE, message.message_id).await? else {
            return Ok(());
        };
        // A bounce or an erasure keeps the address closed; a withdrawal does
        // not, since the person is asking to be written to again.
        // An erased address is kept as its keyed hash only.
        let key = event.email.trim().to_lowercase();
        let blocked: Option<String> = sqlx::query_scalar(
            "SELECT reason FROM suppressions WHERE tenant_id = $1 AND email_key = ANY($2)
               AND reason NOT IN ('consent-withdrawn', 'unsubscribed') LIMIT 1",
        )
        .bind(message.tenant_id)
        .bind([self.hasher.hash(&key), key])
        .fetch_optional(&self.pool)
        .await?;
        if let Some(reason) = blocked {
            tracing::info!(tenant_id = %message.tenant_id, person_id = %person, reason,
                "confirmation e-mail not sent: the address is suppressed");
            tx.commit().await?;
            return Ok(());
        }

        let expires_at = Utc::now() + self.link_ttl;
        let token = self.tokens.issue(&Confirmation {
            tenant: message.tenant_id,
            person,
            channel: "email".into(),
            purpose: event.purpose.clone(),
            expires_at,
        });
        let link = format!("{}/confirm/{token}", self.public_url);
        let hours = self.link_ttl.as_secs() / 3_600;
        let email = email(&self.from, &event, &link, hours).map_err(HandleError::Permanent)?;
        match self.smtp.send(email.envelope(), &email.formatted()).await {
            Ok(_) => {}
            Err(Failure::Refused {
                permanent: true,
                reason,
            }) => {
                tracing::warn!(tenant_id = %message.tenant_id, person_id = %person, reason,
                    "confirmation e-mail refused by the SMTP server");
            }
            Err(Failure::Uncertain(reason)) => {
                // Sending again could deliver it twice; the person can ask again.
                tracing::warn!(tenant_id = %message.tenant_id, person_id = %person, reason,
                    "confirmation e-mail may not have been received");
            }
            Err(Failure::Refused { reason, .. } | Failure::NotSent(reason)) => {
                return Err(HandleError::Transient(anyhow::anyhow!(
                    "confirmation e-mail not sent: {reason}"
                )));
            }
        }
        tx.commit().await?;
        tracing::info!(tenant_id = %message.tenant_id, person_id = %person,
            "confirmation e-mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_name_cannot_add_a_header() {
        let from: Mailbox = "Muster <no-reply@example.org>".parse().unwrap();
        let event = ConsentConfirmationRequested {
            email: "zoe@example.org".into(),
            organization_name: "Verts\r\nBcc: all@example.org\nX-Evil: 1".into(),
            language: "en".into(),
            ..Default::default()
        };
        let email = email(&from, &event, "https://x/confirm/t", 72).unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        let (headers, _) = raw.split_once("\r\n\r\n").unwrap();
        let names: Vec<&str> = headers
            .split("\r\n")
            .filter(|line| !line.starts_with([' ', '\t']))
            .filter_map(|line| line.split_once(':').map(|(name, _)| name))
            .collect();
        assert!(
            !names.contains(&"Bcc") && !names.contains(&"X-Evil"),
            "{headers}"
        );
        assert_eq!(email.envelope().to().len(), 1);
        assert!(
            headers.contains("Subject: Verts Bcc: all@example.org X-Evil: 1: please confirm"),
            "{headers}"
        );
    }
}
