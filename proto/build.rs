//! Compiles `proto/strata/v1/*.proto` with protox (a protobuf compiler in Rust), so
//! building Strata needs cargo alone: no system `protoc`.

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
    tonic_prost_build::configure()
        .bytes(".strata.v1")
        .compile_fds(descriptors)?;
    Ok(())
}
