//! Protobuf messages and gRPC stubs of every Muster service and of the bus
//! events, generated from `proto/muster` at build time.

/// Encoded `FileDescriptorSet` of every Muster proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/muster_descriptor.bin"));

pub mod contacts {
    pub mod v1 {
        tonic::include_proto!("muster.contacts.v1");
    }
}

pub mod messaging {
    pub mod v1 {
        tonic::include_proto!("muster.messaging.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("muster.events.v1");
    }
}

pub use prost_types::Timestamp;
