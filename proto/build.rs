//! Compile the .proto files with protox (pure Rust): no system protoc needed. The compiled
//! descriptor set is kept too ([`lvs_proto::DESCRIPTOR_SET`]): tests enumerate the
//! contract's rpcs from it instead of from a list of their own.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/lvs/agent/v1/agent.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("lvs_agent_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
