//! Templates, campaigns, deliveries and their bounces.

use chrono::{DateTime, Utc};
use muster_proto::messaging::v1 as proto;
use serde::{Deserialize, Serialize};

use super::{SegmentFilter, instant, non_empty};

/// A template to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    pub name: String,
    pub subject: String,
    pub text_body: String,
    #[serde(default)]
    pub html_body: String,
}

impl From<NewTemplate> for proto::Template {
    fn from(template: NewTemplate) -> Self {
        Self {
            name: template.name,
            subject: template.subject,
            text_body: template.text_body,
            html_body: template.html_body,
            ..Default::default()
        }
    }
}

/// A message template with merge fields (`{{ first_name }}`).
#[derive(Debug, Serialize)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    pub create_time: Option<DateTime<Utc>>,
}

impl From<proto::Template> for Template {
    fn from(template: proto::Template) -> Self {
        Self {
            id: template.id,
            name: template.name,
            subject: template.subject,
            text_body: template.text_body,
            html_body: non_empty(template.html_body),
            create_time: instant(template.create_time),
        }
    }
}

/// A campaign to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    pub template_id: String,
    #[serde(default)]
    pub segment: SegmentFilter,
    #[serde(default)]
    pub from_name: String,
    pub from_email: String,
    #[serde(default)]
    pub reply_to: String,
}

impl From<NewCampaign> for proto::Campaign {
    fn from(campaign: NewCampaign) -> Self {
        Self {
            name: campaign.name,
            template_id: campaign.template_id,
            segment: Some(campaign.segment.into()),
            from_name: campaign.from_name,
            from_email: campaign.from_email,
            reply_to: campaign.reply_to,
            ..Default::default()
        }
    }
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Unspecified,
    Draft,
    /// The audience is being materialised.
    Launching,
    Sending,
    Paused,
    Cancelled,
    /// Nothing left queued or in flight.
    Completed,
}

impl CampaignState {
    fn from_proto(value: i32) -> Self {
        use proto::CampaignState as S;
        match S::try_from(value).unwrap_or_default() {
            S::Unspecified => Self::Unspecified,
            S::Draft => Self::Draft,
            S::Launching => Self::Launching,
            S::Sending => Self::Sending,
            S::Paused => Self::Paused,
            S::Cancelled => Self::Cancelled,
            S::Completed => Self::Completed,
        }
    }
}

/// A campaign's deliveries by state.
#[derive(Debug, Default, Serialize)]
pub struct DeliveryCounts {
    pub total: u64,
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    /// Skipped at send time: consent withdrawn after launch.
    pub suppressed: u64,
    pub cancelled: u64,
    /// Maybe received; never re-sent.
    pub unknown: u64,
    /// Sent, then reported bounced; also counted as sent.
    pub bounced: u64,
    /// Sent, then reported as spam; also counted as sent.
    pub complained: u64,
}

impl From<proto::DeliveryCounts> for DeliveryCounts {
    fn from(counts: proto::DeliveryCounts) -> Self {
        Self {
            total: counts.total,
            queued: counts.queued,
            sending: counts.sending,
            sent: counts.sent,
            failed: counts.failed,
            suppressed: counts.suppressed,
            cancelled: counts.cancelled,
            unknown: counts.unknown,
            bounced: counts.bounced,
            complained: counts.complained,
        }
    }
}

/// A message sent to a segment, and its deliveries.
#[derive(Debug, Serialize)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub template_id: String,
    pub segment: SegmentFilter,
    pub from_name: Option<String>,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub state: CampaignState,
    pub counts: DeliveryCounts,
    pub create_time: Option<DateTime<Utc>>,
    pub launch_time: Option<DateTime<Utc>>,
}

impl From<proto::Campaign> for Campaign {
    fn from(campaign: proto::Campaign) -> Self {
        Self {
            id: campaign.id,
            name: campaign.name,
            template_id: campaign.template_id,
            segment: campaign
                .segment
                .map(SegmentFilter::from)
                .unwrap_or_default(),
            from_name: non_empty(campaign.from_name),
            from_email: campaign.from_email,
            reply_to: non_empty(campaign.reply_to),
            state: CampaignState::from_proto(campaign.state),
            counts: campaign
                .counts
                .map(DeliveryCounts::from)
                .unwrap_or_default(),
            create_time: instant(campaign.create_time),
            launch_time: instant(campaign.launch_time),
        }
    }
}

/// The campaigns of one page of a listing.
#[derive(Debug, Serialize)]
pub struct Campaigns {
    pub campaigns: Vec<Campaign>,
}

/// What a bounce report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceKind {
    Unspecified,
    /// Will not succeed later: the address is suppressed at once.
    Permanent,
    /// May succeed later: suppressed after repeated transient bounces.
    Transient,
    /// The recipient reported the message as spam.
    Complaint,
}

impl BounceKind {
    fn from_proto(value: i32) -> Self {
        use proto::BounceKind as K;
        match K::try_from(value).unwrap_or_default() {
            K::Unspecified => Self::Unspecified,
            K::Permanent => Self::Permanent,
            K::Transient => Self::Transient,
            K::Complaint => Self::Complaint,
        }
    }
}

/// A bounce or complaint reported after a message was accepted.
#[derive(Debug, Serialize)]
pub struct Bounce {
    pub id: String,
    pub kind: BounceKind,
    /// The address as stored: lower-cased, or its keyed hash once erased.
    pub email: String,
    /// The enhanced status code (`5.1.1`) or SMTP reply code (`550`).
    pub status: Option<String>,
    pub reason: Option<String>,
    /// The report's format: `dsn`, `arf`, `text`, `ses` or `mailgun`.
    pub source: String,
    pub receive_time: Option<DateTime<Utc>>,
    pub delivery_id: Option<String>,
    pub campaign_id: Option<String>,
    pub person_id: Option<String>,
}

impl From<proto::Bounce> for Bounce {
    fn from(bounce: proto::Bounce) -> Self {
        Self {
            id: bounce.id,
            kind: BounceKind::from_proto(bounce.kind),
            email: bounce.email,
            status: non_empty(bounce.status),
            reason: non_empty(bounce.reason),
            source: bounce.source,
            receive_time: instant(bounce.receive_time),
            delivery_id: non_empty(bounce.delivery_id),
            campaign_id: non_empty(bounce.campaign_id),
            person_id: non_empty(bounce.person_id),
        }
    }
}

/// The bounces of one page of a listing, newest first.
#[derive(Debug, Serialize)]
pub struct Bounces {
    pub bounces: Vec<Bounce>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Unspecified,
    Queued,
    /// Claimed by a sender; never sent again.
    Sending,
    Sent,
    Failed,
    /// Skipped at send time: the address is suppressed.
    Suppressed,
    Cancelled,
    /// Maybe received; never re-sent.
    Unknown,
}

impl DeliveryState {
    fn from_proto(value: i32) -> Self {
        use proto::DeliveryState as S;
        match S::try_from(value).unwrap_or_default() {
            S::Unspecified => Self::Unspecified,
            S::Queued => Self::Queued,
            S::Sending => Self::Sending,
            S::Sent => Self::Sent,
            S::Failed => Self::Failed,
            S::Suppressed => Self::Suppressed,
            S::Cancelled => Self::Cancelled,
            S::Unknown => Self::Unknown,
        }
    }
}

/// One recipient of one campaign, with the bounces reported about it.
#[derive(Debug, Serialize)]
pub struct Delivery {
    pub id: String,
    pub campaign_id: String,
    pub person_id: String,
    /// `null` once the person was erased.
    pub email: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub error: Option<String>,
    pub send_time: Option<DateTime<Utc>>,
    /// What the server answered when it accepted the message.
    pub provider_answer: Option<String>,
    /// Newest first.
    pub bounces: Vec<Bounce>,
}

impl From<proto::Delivery> for Delivery {
    fn from(delivery: proto::Delivery) -> Self {
        Self {
            id: delivery.id,
            campaign_id: delivery.campaign_id,
            person_id: delivery.person_id,
            email: non_empty(delivery.email),
            state: DeliveryState::from_proto(delivery.state),
            attempts: delivery.attempts,
            error: non_empty(delivery.error),
            send_time: instant(delivery.send_time),
            provider_answer: non_empty(delivery.provider_answer),
            bounces: delivery.bounces.into_iter().map(Bounce::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_shows_its_state_and_counts() {
        let campaign = proto::Campaign {
            id: "c".into(),
            state: proto::CampaignState::Sending as i32,
            counts: Some(proto::DeliveryCounts {
                total: 3,
                sent: 2,
                bounced: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = serde_json::to_value(Campaign::from(campaign)).unwrap();
        assert_eq!(json["state"], "sending");
        assert_eq!(json["counts"]["total"], 3);
        assert_eq!(json["counts"]["sent"], 2);
        assert_eq!(json["counts"]["bounced"], 1);
        assert_eq!(json["launch_time"], serde_json::Value::Null);
    }

    #[test]
    fn a_delivery_shows_its_bounces_with_lowercase_kinds() {
        let delivery = proto::Delivery {
            id: "d".into(),
            state: proto::DeliveryState::Sent as i32,
            bounces: vec![proto::Bounce {
                kind: proto::BounceKind::Complaint as i32,
                source: "arf".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = serde_json::to_value(Delivery::from(delivery)).unwrap();
        assert_eq!(json["state"], "sent");
        assert_eq!(json["email"], serde_json::Value::Null);
        assert_eq!(json["bounces"][0]["kind"], "complaint");
        assert_eq!(json["bounces"][0]["source"], "arf");
        assert_eq!(json["bounces"][0]["status"], serde_json::Value::Null);
    }

    #[test]
    fn a_new_campaign_needs_a_sender_address() {
        let json = serde_json::json!({ "name": "Rentrée", "template_id": "t" });
        let error = serde_json::from_value::<NewCampaign>(json).unwrap_err();
        assert!(error.to_string().contains("from_email"), "{error}");
    }
}
