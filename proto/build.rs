//! Compiles the `.proto` files with protox (no system protoc) and writes the
//! descriptor set that gRPC reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "muster/contacts/v1/contacts.proto",
    "muster/messaging/v1/messaging.proto",
    "muster/events/v1/events.proto",
    "muster/contacts/v1/privacy.proto",
    "muster/contacts/v1/consent.proto",
    "muster/messaging/v1/privacy.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=muster");

    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("muster_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // An upload's first message is its header, every other one a chunk:
        // the size difference between the two is the protocol's.
        .enum_attribute(
            "muster.contacts.v1.UploadImportRequest.part",
            "#[allow(clippy::large_enum_variant)]",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
