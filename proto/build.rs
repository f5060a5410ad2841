//! Compiles `proto/strata/v1/*.proto` with protox (a protobuf compiler in Rust), so
//! building Strata needs cargo alone: no system `protoc`. The compiled descriptors are
//! also written, encoded, to `$OUT_DIR/strata_descriptor.bin`: the broker's gRPC server
//! reflection serves them (`FILE_DESCRIPTOR_SET` in `lib.rs`).

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/strata/v1/client_api.proto",
        "proto/strata/v1/controller.proto",
        "proto/strata/v1/group_api.proto",
        "proto/strata/v1/replication.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("strata_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .bytes(".strata.v1")
        .compile_fds(descriptors)?;
    Ok(())
}
