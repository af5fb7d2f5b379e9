//! The audience of a campaign as asked of contacts.

use muster_proto::contacts::v1::{ConsentState, SegmentFilter};

/// `filter`, narrowed to people who consented to e-mail and have an address.
pub fn reachable_by_email(mut filter: SegmentFilter) -> SegmentFilter {
    filter.email_consent = ConsentState::Granted as i32;
    filter.require_email = true;
    filter
}
