//! The consent ledger: statements, current states and the policy on legal bases.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as proto;
use muster_runtime::language::Language;
use serde::{Deserialize, Serialize};

use super::{ConsentState, instant, non_empty};

/// A legal basis of GDPR article 6(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    /// The basis of a proto value; unspecified is none.
    pub fn from_proto(value: i32) -> Option<Self> {
        use proto::LegalBasis as L;
        Some(match L::try_from(value).ok()? {
            L::Unspecified => return None,
            L::Consent => Self::Consent,
            L::Contract => Self::Contract,
            L::LegalObligation => Self::LegalObligation,
            L::VitalInterests => Self::VitalInterests,
            L::PublicTask => Self::PublicTask,
            L::LegitimateInterests => Self::LegitimateInterests,
        })
    }

    pub fn to_proto(self) -> proto::LegalBasis {
        use proto::LegalBasis as L;
        match self {
            Self::Consent => L::Consent,
            Self::Contract => L::Contract,
            Self::LegalObligation => L::LegalObligation,
            Self::VitalInterests => L::VitalInterests,
            Self::PublicTask => L::PublicTask,
            Self::LegitimateInterests => L::LegitimateInterests,
        }
    }

    /// Its name in the API ("legitimate_interests").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::VitalInterests => "vital_interests",
            Self::PublicTask => "public_task",
            Self::LegitimateInterests => "legitimate_interests",
        }
    }
}

/// A consent statement of the ledger, or the current state it left.
#[derive(Debug, Serialize)]
pub struct ConsentRecord {
    pub channel: String,
    /// `null`: the channel's general consent.
    pub purpose: Option<String>,
    pub state: ConsentState,
    pub legal_basis: Option<LegalBasis>,
    pub source: Option<String>,
    pub notice: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub evidence: HashMap<String, String>,
    /// When contacts recorded the statement; `null` in a current state.
    pub record_time: Option<DateTime<Utc>>,
}

impl From<proto::ConsentRecord> for ConsentRecord {
    fn from(record: proto::ConsentRecord) -> Self {
        Self {
            channel: record.channel,
            purpose: non_empty(record.purpose),
            state: ConsentState::from_proto(record.state),
            legal_basis: LegalBasis::from_proto(record.legal_basis),
            source: non_empty(record.source),
            notice: non_empty(record.notice),
            time: instant(record.time),
            evidence: record.evidence,
            record_time: instant(record.record_time),
        }
    }
}

/// The current state of each channel and purpose a person has one for.
#[derive(Debug, Serialize)]
pub struct Consents {
    pub consents: Vec<ConsentRecord>,
}

/// One page of a person's ledger, oldest first.
#[derive(Debug, Serialize)]
pub struct ConsentHistory {
    pub records: Vec<ConsentRecord>,
}

/// `POST /v1/people/{id}/consents`: a statement the caller collected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    pub channel: String,
    #[serde(default)]
    pub purpose: String,
    /// `granted` or `withdrawn`.
    pub state: ConsentState,
    /// Required for a grant.
    pub legal_basis: Option<LegalBasis>,
    /// Names the calling system, recorded as `api:<client>`; default `rest`.
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub notice: String,
    /// When the person made the statement; default now.
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub evidence: HashMap<String, String>,
}

impl NewConsent {
    /// The request for `person`, whose confirmation e-mail, if the statement
    /// asks for one, names `organization` and is written in `language`.
    pub fn into_proto(
        self,
        person: String,
        organization: &str,
        language: Language,
    ) -> proto::RecordConsentRequest {
        proto::RecordConsentRequest {
            person_id: person,
            channel: self.channel,
            purpose: self.purpose,
            state: self.state.to_proto() as i32,
            legal_basis: self
                .legal_basis
                .map(|b| b.to_proto() as i32)
                .unwrap_or_default(),
            client: match self.client.trim() {
                "" => "rest".to_owned(),
                client => client.to_owned(),
            },
            notice: self.notice,
            time: self.time.map(muster_runtime::time::to_proto),
            evidence: self.evidence,
            organization_name: organization.to_owned(),
            language: language.tag().to_owned(),
        }
    }
}

/// The state after a statement; `applied` is false when it changed nothing.
#[derive(Debug, Serialize)]
pub struct RecordedConsent {
    pub current: Option<ConsentRecord>,
    pub applied: bool,
}

/// The organization's consent policy: legal bases it does not accept on a channel.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentPolicy {
    pub forbidden: Vec<ForbiddenBasis>,
}

/// A legal basis forbidden on a channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForbiddenBasis {
    pub channel: String,
    pub legal_basis: LegalBasis,
}

impl From<proto::ConsentPolicy> for ConsentPolicy {
    fn from(policy: proto::ConsentPolicy) -> Self {
        Self {
            forbidden: policy
                .forbidden
                .into_iter()
                .filter_map(|f| {
                    Some(ForbiddenBasis {
                        channel: f.channel,
                        legal_basis: LegalBasis::from_proto(f.legal_basis)?,
                    })
                })
                .collect(),
        }
    }
}

impl From<ConsentPolicy> for proto::ConsentPolicy {
    fn from(policy: ConsentPolicy) -> Self {
        Self {
            forbidden: policy
                .forbidden
                .into_iter()
                .map(|f| proto::ForbiddenBasis {
                    channel: f.channel,
                    legal_basis: f.legal_basis.to_proto() as i32,
                })
                .collect(),
        }
    }
}
