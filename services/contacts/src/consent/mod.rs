//! The consent ledger per channel and purpose: the statements people make
//! (granted, withdrawn, pending a double opt-in) with their legal basis,
//! source, notice and evidence, the current state derived from them by
//! [`next`], and the organization's policy on legal bases.

pub mod api;
pub mod opt_in;
pub mod store;

#[cfg(test)]
mod tests;

use std::fmt;

use muster_proto::contacts::v1 as pb;

/// A way of reaching a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Sms,
    Phone,
    Post,
}

impl Channel {
    /// Every channel, in the order the API lists them.
    pub const ALL: [Channel; 4] = [Self::Email, Self::Sms, Self::Phone, Self::Post];

    /// The channel named `name` ("email", "sms", "phone", "post").
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Its name in the database, the API and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Phone => "phone",
            Self::Post => "post",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The purposes a consent may be limited to; "" is the channel's general consent.
pub const PURPOSES: &[&str] = &["", "newsletter", "campaign", "fundraising", "events"];

/// `raw` as a known purpose.
pub fn purpose(raw: &str) -> Option<&'static str> {
    PURPOSES.iter().copied().find(|p| *p == raw.trim())
}

/// A legal basis of GDPR article 6(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    const ALL: [LegalBasis; 6] = [
        Self::Consent,
        Self::Contract,
        Self::LegalObligation,
        Self::VitalInterests,
        Self::PublicTask,
        Self::LegitimateInterests,
    ];

    /// Its name in the database ("legitimate_interests").
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

    /// The basis stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == name)
    }

    /// The basis of a proto value; UNSPECIFIED and unknown values are none.
    pub fn from_proto(value: i32) -> Option<Self> {
        use pb::LegalBasis as L;
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

    /// The proto value.
    pub fn to_proto(self) -> pb::LegalBasis {
        use pb::LegalBasis as L;
        match self {
            Self::Consent => L::Consent,
            Self::Contract => L::Contract,
            Self::LegalObligation => L::LegalObligation,
            Self::VitalInterests => L::VitalInterests,
            Self::PublicTask => L::PublicTask,
            Self::LegitimateInterests => L::LegitimateInterests,
        }
    }
}

impl fmt::Display for LegalBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a person's consent on a channel and purpose that has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Granted,
    Withdrawn,
    /// Asked for, waiting for the person's confirmation: not a grant.
    Pending,
}

impl State {
    /// Its name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Withdrawn => "withdrawn",
            Self::Pending => "pending",
        }
    }

    /// The state stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Granted, Self::Withdrawn, Self::Pending]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// The proto value.
    pub fn to_proto(self) -> pb::ConsentState {
        match self {
            Self::Granted => pb::ConsentState::Granted,
            Self::Withdrawn => pb::ConsentState::Withdrawn,
            Self::Pending => pb::ConsentState::Pending,
        }
    }
}

/// What a statement asks for; [`next`] decides what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A grant stated by an API client.
    Grant,
    /// A grant read from an import file: it never re-grants nor asks anyone
    /// who withdrew to confirm.
    ImportGrant,
    /// A withdrawal, from any source.
    Withdraw,
    /// A subscription waiting for confirmation (a public form).
    Request,
    /// The person confirmed a pending request.
    Confirm,
}

/// The ledger's rules: the state after a statement of `kind` over
/// `current` (None: no state yet), or None when the statement changes
/// nothing and is not recorded. A withdrawal always applies; a grant over a
/// withdrawal never applies directly but becomes pending until confirmed.
pub fn next(current: Option<State>, kind: Kind) -> Option<State> {
    use State::*;
    match (kind, current) {
        (Kind::Withdraw, Some(Withdrawn)) => None,
        (Kind::Withdraw, _) => Some(Withdrawn),
        (Kind::Grant | Kind::ImportGrant, None) => Some(Granted),
        (Kind::Grant | Kind::Request, Some(Withdrawn)) => Some(Pending),
        (Kind::Request, None) => Some(Pending),
        (Kind::Confirm, Some(Pending)) => Some(Granted),
        _ => None,
    }
}
