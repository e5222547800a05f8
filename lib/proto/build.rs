//! Compiles the vendored schemas under `proto/` with `protox` (no system `protoc`), generates
//! prost messages plus tonic clients and servers, and writes the encoded descriptor set that
//! `src/lib.rs` embeds for run-time reflection.

use std::{env, error::Error, fs, path::PathBuf};

const PROTO_DIR: &str = "proto";
const PROTOS: [&str; 2] = ["csi.proto", "pluginregistration/v1/api.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    // Code generation wants the comments (they become rustdoc).
    let with_docs = compiler(true)?;

    // The embedded set is for reflection only: leave the comments out to keep binaries small. It
    // must be the encoded form straight from protox: `prost_types` would drop custom options such
    // as `csi_secret`, which `sanitize` reads.
    let runtime = compiler(false)?;
    fs::write(
        out_dir.join("file_descriptor_set.bin"),
        runtime.encode_file_descriptor_set(),
    )?;

    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_fds_with_config(with_docs.file_descriptor_set(), config)?;
    Ok(())
}

fn compiler(include_source_info: bool) -> Result<protox::Compiler, protox::Error> {
    let mut compiler = protox::Compiler::new([PROTO_DIR])?;
    compiler
        .include_imports(true)
        .include_source_info(include_source_info)
        .open_files(PROTOS)?;
    Ok(compiler)
}
