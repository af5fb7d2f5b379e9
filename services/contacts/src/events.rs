//! What contacts announces on the bus, always through the outbox, and the
//! consent changes that produce most of it.

use muster_proto::events::v1::PersonChanged;
use muster_runtime::TenantId;
use muster_runtime::outbox::{Destination, Outgoing};
use prost::Message;
use uuid::Uuid;

/// People this import or call created.
pub const PERSON_CREATED: &str = "contacts.person.created";
/// People an import merged new values into.
pub const PERSON_UPDATED: &str = "contacts.person.updated";

/// A person event ([`PERSON_CREATED`] or [`PERSON_UPDATED`]).
pub fn person_changed(tenant_id: TenantId, routing_key: &'static str) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key,
        message_type: "muster.events.v1.PersonChanged",
    }
}

/// The body of one person event for `ids` (none when `ids` is empty): one
/// person in `person_id`, several (an import's batch) in `person_ids`, so that
/// a million-row file is not a million messages.
pub fn person_bodies(ids: &[Uuid]) -> Vec<Vec<u8>> {
    let body = match ids {
        [] => return Vec::new(),
        [id] => PersonChanged {
            person_id: id.to_string(),
            person_ids: Vec::new(),
        },
        _ => PersonChanged {
            person_id: String::new(),
            person_ids: ids.iter().map(Uuid::to_string).collect(),
        },
    };
    vec![body.encode_to_vec()]
}

/// A person erased here; every service erases its copy and confirms.
pub const PERSON_ERASED: &str = "contacts.person.erased";

/// A [`PERSON_ERASED`] event.
pub fn person_erased(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: PERSON_ERASED,
        message_type: "muster.events.v1.PersonErased",
    }
}

/// Two people found to be one; every service re-points the merged id's rows.
pub const PERSON_MERGED: &str = "contacts.person.merged";

/// A [`PERSON_MERGED`] event.
pub fn person_merged(tenant_id: TenantId) -> Outgoing<'static> {
    Outgoing {
        tenant_id,
        destination: Destination::Event,
        routing_key: PERSON_MERGED,
        message_type: "muster.events.v1.PersonMerged",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_people_is_announced_in_one_message_naming_them_all() {
        let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];

        let bodies = person_bodies(&ids);

        assert_eq!(bodies.len(), 1);
        let event = PersonChanged::decode(bodies[0].as_slice()).unwrap();
        let named: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        assert_eq!(event.person_ids, named);
        assert!(event.person_id.is_empty());
        assert!(person_bodies(&[]).is_empty());
    }

    #[test]
    fn one_person_is_named_in_person_id() {
        let id = Uuid::now_v7();
        let bodies = person_bodies(&[id]);
        assert_eq!(bodies.len(), 1);
        let event = PersonChanged::decode(bodies[0].as_slice()).unwrap();
        assert_eq!(event.person_id, id.to_string());
        assert!(event.person_ids.is_empty());
    }
}
