//! Conversions between chrono instants and protobuf timestamps.

use chrono::{DateTime, Utc};

/// A protobuf timestamp for `instant`.
pub fn to_proto(instant: DateTime<Utc>) -> muster_proto::Timestamp {
    muster_proto::Timestamp {
        seconds: instant.timestamp(),
        nanos: instant.timestamp_subsec_nanos() as i32,
    }
}

/// The instant of a protobuf timestamp, `None` when out of range.
pub fn from_proto(ts: &muster_proto::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
}

/// An optional protobuf timestamp.
pub fn opt_to_proto(instant: Option<DateTime<Utc>>) -> Option<muster_proto::Timestamp> {
    instant.map(to_proto)
}
