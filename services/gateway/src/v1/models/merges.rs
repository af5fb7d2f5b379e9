//! Merges and duplicates as the REST API shows them.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as proto;
use serde::{Deserialize, Serialize};

use super::{Person, instant};

/// `POST /v1/people/{id}/merge`: `other_id` is merged into the person of the path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub other_id: String,
    #[serde(default)]
    pub reason: String,
}

/// The audit of one merge, with the survivor as it is after it.
#[derive(Debug, Serialize)]
pub struct Merge {
    pub id: String,
    pub survivor_id: String,
    pub merged_id: String,
    pub reason: String,
    pub merged_by: String,
    pub merge_time: Option<DateTime<Utc>>,
    pub survivor: Option<Person>,
}

impl From<proto::Merge> for Merge {
    fn from(merge: proto::Merge) -> Self {
        Self {
            id: merge.id,
            survivor_id: merge.survivor_id,
            merged_id: merge.merged_id,
            reason: merge.reason,
            merged_by: merge.merged_by,
            merge_time: instant(merge.merge_time),
            survivor: merge.survivor.map(Person::from),
        }
    }
}

/// Why two people may be one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKind {
    Unspecified,
    Phone,
    ExternalId,
    NameAddress,
    NamePostalCode,
    NameBirthDate,
}

impl DuplicateKind {
    fn from_proto(value: i32) -> Self {
        match proto::DuplicateKind::try_from(value).unwrap_or_default() {
            proto::DuplicateKind::Unspecified => Self::Unspecified,
            proto::DuplicateKind::Phone => Self::Phone,
            proto::DuplicateKind::ExternalId => Self::ExternalId,
            proto::DuplicateKind::NameAddress => Self::NameAddress,
            proto::DuplicateKind::NamePostalCode => Self::NamePostalCode,
            proto::DuplicateKind::NameBirthDate => Self::NameBirthDate,
        }
    }

    /// The protobuf value.
    pub fn to_proto(self) -> i32 {
        (match self {
            Self::Unspecified => proto::DuplicateKind::Unspecified,
            Self::Phone => proto::DuplicateKind::Phone,
            Self::ExternalId => proto::DuplicateKind::ExternalId,
            Self::NameAddress => proto::DuplicateKind::NameAddress,
            Self::NamePostalCode => proto::DuplicateKind::NamePostalCode,
            Self::NameBirthDate => proto::DuplicateKind::NameBirthDate,
        }) as i32
    }
}

/// Where a pair stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateState {
    Unspecified,
    Open,
    Dismissed,
    Merged,
}

impl DuplicateState {
    fn from_proto(value: i32) -> Self {
        match proto::DuplicateState::try_from(value).unwrap_or_default() {
            proto::DuplicateState::Unspecified => Self::Unspecified,
            proto::DuplicateState::Open => Self::Open,
            proto::DuplicateState::Dismissed => Self::Dismissed,
            proto::DuplicateState::Merged => Self::Merged,
        }
    }

    /// The protobuf value.
    pub fn to_proto(self) -> i32 {
        (match self {
            Self::Unspecified => proto::DuplicateState::Unspecified,
            Self::Open => proto::DuplicateState::Open,
            Self::Dismissed => proto::DuplicateState::Dismissed,
            Self::Merged => proto::DuplicateState::Merged,
        }) as i32
    }
}

/// Two people that may be one.
#[derive(Debug, Serialize)]
pub struct Duplicate {
    pub id: String,
    pub first: Option<Person>,
    pub second: Option<Person>,
    pub reasons: Vec<DuplicateKind>,
    pub state: DuplicateState,
    pub find_time: Option<DateTime<Utc>>,
    /// The ids the pair was found with; `first` and `second` show the
    /// people as they are now (a merged one as its survivor).
    pub first_id: String,
    pub second_id: String,
}

impl From<proto::Duplicate> for Duplicate {
    fn from(pair: proto::Duplicate) -> Self {
        Self {
            id: pair.id,
            first: pair.first.map(Person::from),
            second: pair.second.map(Person::from),
            reasons: pair
                .reasons
                .into_iter()
                .map(DuplicateKind::from_proto)
                .collect(),
            state: DuplicateState::from_proto(pair.state),
            find_time: instant(pair.find_time),
            first_id: pair.first_id,
            second_id: pair.second_id,
        }
    }
}

/// The pairs of one page of a listing.
#[derive(Debug, Serialize)]
pub struct Duplicates {
    pub duplicates: Vec<Duplicate>,
}

/// `?page_size=&page_token=&state=` of `GET /v1/duplicates`; no state lists the open pairs.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuplicateParams {
    pub page_size: i32,
    pub page_token: String,
    pub state: Option<DuplicateState>,
}

/// The kinds of exact duplicates merged without review.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRules {
    pub automatic: Vec<DuplicateKind>,
}

impl From<proto::DuplicateRules> for DuplicateRules {
    fn from(rules: proto::DuplicateRules) -> Self {
        Self {
            automatic: rules
                .automatic
                .into_iter()
                .map(DuplicateKind::from_proto)
                .collect(),
        }
    }
}

/// What a run of detection did.
#[derive(Debug, Serialize)]
pub struct FoundDuplicates {
    pub listed: u64,
    pub merged: u64,
}
