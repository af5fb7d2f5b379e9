//! Segments kept under a name.

use chrono::{DateTime, Utc};
use muster_proto::contacts::v1 as proto;
use serde::{Deserialize, Serialize};

use super::{SegmentFilter, instant};

/// A segment kept under a name, for reuse in counts and campaigns.
#[derive(Debug, Serialize)]
pub struct SavedSegment {
    pub id: String,
    pub name: String,
    pub filter: SegmentFilter,
    pub create_time: Option<DateTime<Utc>>,
    /// People matching now; only when one segment is read.
    pub count: Option<u64>,
}

impl From<proto::SavedSegment> for SavedSegment {
    fn from(segment: proto::SavedSegment) -> Self {
        Self {
            id: segment.id,
            name: segment.name,
            filter: segment.filter.map(Into::into).unwrap_or_default(),
            create_time: instant(segment.create_time),
            count: segment.count,
        }
    }
}

/// The body of `POST /v1/segments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSavedSegment {
    /// Unique within the organization.
    pub name: String,
    pub filter: SegmentFilter,
}

/// One page of saved segments.
#[derive(Debug, Serialize)]
pub struct SavedSegments {
    pub segments: Vec<SavedSegment>,
}
