//! Compiles the `.proto` files with protox (no system `protoc`) and keeps the
//! encoded descriptor set for gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/multiscanner/v1/tasks.proto",
    "proto/multiscanner/v1/worker_hub.proto",
    "proto/multiscanner/v1/analysis_module.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("multiscanner_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // No generated `connect` constructor: it would clash with the
    // `WorkerHub.Connect` method. Clients are built from a `Channel`.
    tonic_prost_build::configure()
        .build_transport(false)
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
