//! The JSON shapes of the REST API and their conversions to and from the
//! services' protobuf messages. Enums are lowercase strings, instants RFC 3339,
//! and values a service leaves empty are `null`.

mod consent;
mod contacts;
mod merges;
mod messaging;
mod saved_segments;

pub use consent::*;
pub use contacts::*;
pub use merges::*;
pub use messaging::*;
pub use saved_segments::*;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A page of a listing; `next_page_token` is `null` on the last page.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    #[serde(flatten)]
    pub items: T,
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    /// Wraps `items` with the service's (possibly empty) next page token.
    pub fn new(items: T, next_page_token: String) -> Self {
        Self {
            items,
            next_page_token: non_empty(next_page_token),
        }
    }
}

/// `None` for the empty string a protobuf field holds when unset.
fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn instant(timestamp: Option<muster_proto::Timestamp>) -> Option<DateTime<Utc>> {
    timestamp
        .as_ref()
        .and_then(muster_runtime::time::from_proto)
}
