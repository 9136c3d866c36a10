//! The wire contract (`proto/proto/lvs/agent/v1/agent.proto`) as a user of another language
//! meets it: compiled unchanged by the reference protoc (Debian's protobuf-compiler, and its
//! gRPC Python plugin), linted and checked for wire compatibility by buf, and used by a
//! Python grpcio client against real agents over mutual TLS in the netns lab.
use std::path::{Path, PathBuf};
use std::process::Command;

use lvs_tests::{Lab, must_run_root_suites, ok, text};

const LAB: &str = include_str!("../../deploy/examples/lab.toml");
const CONTRACT: &str = "lvs/agent/v1/agent.proto";

/// The last commit whose contract deployed agents speak before the messages were renamed
/// for protoc: every later contract must stay wire-compatible with it.
const BASELINE_COMMIT: &str = "f0c1adf";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn proto_root() -> PathBuf {
    repo().join("proto/proto")
}

/// Whether `tool` is on this machine; when it is not, the test fails where tests must run
/// everything (`tests/run`, CI: tests/prereqs.sh installs it) and is skipped elsewhere.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(!must_run_root_suites(), "{tool} is missing: tests/prereqs.sh installs it");
        eprintln!("SKIPPED: {tool} is missing (tests/prereqs.sh installs it)");
    }
    found
}

/// protoc with the Python gRPC plugin, writing into `out`.
fn protoc(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new("protoc")
        .arg("-I")
        .arg(proto_root())
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .arg("--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin")
        .args(extra)
        .arg(CONTRACT)
        .output()
        .expect("run protoc")
}

#[test]
fn the_reference_protoc_compiles_the_contract_unchanged_for_python_cpp_and_java() {
    if !have("protoc") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let o = protoc(
        out.path(),
        &[&format!("--cpp_out={}", out.path().display()), &format!("--java_out={}", out.path().display())],
    );
    assert!(o.status.success(), "protoc refused the contract: {}", text(&o));
    for f in ["lvs/agent/v1/agent_pb2.py", "lvs/agent/v1/agent_pb2_grpc.py", "lvs/agent/v1/agent.pb.h"] {
        assert!(out.path().join(f).is_file(), "protoc wrote no {f}");
    }
    // The generated Python loads: its descriptor pool accepts the file as protoc built it.
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import sys; sys.path.insert(0, sys.argv[1]); from lvs.agent.v1 import agent_pb2_grpc as g, agent_pb2 as p; print(sorted(p.DESCRIPTOR.services_by_name['Agent'].methods_by_name))")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("'Facts'") && text(&o).contains("'HandOver'"), "{}", text(&o));
}

#[test]
fn buf_lint_passes_and_the_wire_is_compatible_with_the_deployed_contract() {
    if !have("buf") {
        return;
    }
    let o = Command::new("buf").arg("lint").current_dir(repo().join("proto")).output().unwrap();
    assert!(o.status.success(), "buf lint: {}", text(&o));

    // The deployed contract does not compile with protoc or buf (that was the bug), so its
    // descriptors come from protox, as the deployed binaries were built, as an image for buf.
    let old = Command::new("git")
        .args(["show", &format!("{BASELINE_COMMIT}:proto/proto/{CONTRACT}")])
        .current_dir(repo())
        .output()
        .expect("run git");
    assert!(
        old.status.success(),
        "the baseline contract (commit {BASELINE_COMMIT}) is not in this clone: {}",
        text(&old)
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("lvs/agent/v1")).unwrap();
    std::fs::write(src.join(CONTRACT), &old.stdout).unwrap();
    let image = dir.path().join("baseline.binpb");
    std::fs::write(&image, baseline_image(&src)).unwrap();
    // buf follows a message by its name, so across the renames it is told to leave the rpcs'
    // type names alone, and every rpc's old and new types are compared field by field below.
    let renames = r#"{"version":"v2","breaking":{"use":["WIRE"],"except":["RPC_SAME_REQUEST_TYPE","RPC_SAME_RESPONSE_TYPE"]}}"#;
    let o = Command::new("buf")
        .args(["breaking", "--config", renames, "--against"])
        .arg(&image)
        .current_dir(repo().join("proto"))
        .output()
        .unwrap();
    assert!(o.status.success(), "buf breaking (WIRE) against {BASELINE_COMMIT}: {}", text(&o));
    let old = decode(&baseline_image(&src));
    assert_eq!(wire_differences(&old, &decode(lvs_proto::DESCRIPTOR_SET)), Vec::<String>::new());

    // Both checks have teeth. buf sees a field renumbered in a message that kept its name;
    // the field-by-field comparison sees one in a renamed message.
    let mine = std::fs::read_to_string(proto_root().join(CONTRACT)).unwrap();
    let tree = dir.path().join("broken");
    std::fs::create_dir_all(tree.join("proto/lvs/agent/v1")).unwrap();
    let broken = mine.replacen("uint64 generation = 4;", "uint64 generation = 99;", 1);
    assert_ne!(broken, mine);
    std::fs::write(tree.join("proto").join(CONTRACT), broken).unwrap();
    let o = Command::new("buf")
        .args(["breaking", "--config", renames, "--against"])
        .arg(&image)
        .current_dir(tree.join("proto"))
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o).contains("NodeSpec"),
        "a renumbered field passed buf: {}",
        text(&o)
    );
    let broken = mine.replacen("uint64 uptime_s = 12;", "uint64 uptime_s = 13;", 1);
    std::fs::write(tree.join("proto").join(CONTRACT), broken).unwrap();
    let found = wire_differences(&old, &decode(&baseline_image(&tree.join("proto"))));
    assert!(found.iter().any(|d| d.contains("Agent.Facts response: field 12 (uptime_s)")), "{found:?}");
}

fn decode(bytes: &[u8]) -> prost_types::FileDescriptorSet {
    use prost::Message;
    prost_types::FileDescriptorSet::decode(bytes).unwrap()
}

/// (service, rpc, request type, response type) of every rpc, types fully qualified.
fn rpcs(fds: &prost_types::FileDescriptorSet) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for s in fds.file.iter().flat_map(|f| &f.service) {
        for m in &s.method {
            out.push((s.name().into(), m.name().into(), m.input_type().into(), m.output_type().into()));
        }
    }
    out
}

/// Where a client of `old` and a server of `new` (or the reverse) would read each other's
/// messages differently: every rpc's request and response compared field by field.
fn wire_differences(
    old: &prost_types::FileDescriptorSet,
    new: &prost_types::FileDescriptorSet,
) -> Vec<String> {
    let mut out = Vec::new();
    let now = rpcs(new);
    for (service, rpc, old_in, old_out) in rpcs(old) {
        let Some((_, _, new_in, new_out)) = now.iter().find(|(s, r, _, _)| *s == service && *r == rpc) else {
            out.push(format!("{service}.{rpc} left the contract"));
            continue;
        };
        same_wire(old, &old_in, new, new_in, &format!("{service}.{rpc} request"), &mut out);
        same_wire(old, &old_out, new, new_out, &format!("{service}.{rpc} response"), &mut out);
    }
    out
}

/// The message `name` (`.lvs.agent.v1.Facts`, nested ones included).
fn message<'a>(fds: &'a prost_types::FileDescriptorSet, name: &str) -> &'a prost_types::DescriptorProto {
    fn find<'a>(
        prefix: &str,
        ms: &'a [prost_types::DescriptorProto],
        name: &str,
    ) -> Option<&'a prost_types::DescriptorProto> {
        ms.iter().find_map(|m| {
            let full = format!("{prefix}.{}", m.name());
            if full == name { Some(m) } else { find(&full, &m.nested_type, name) }
        })
    }
    fds.file
        .iter()
        .find_map(|f| find(&format!(".{}", f.package()), &f.message_type, name))
        .unwrap_or_else(|| panic!("no message {name}"))
}

/// Every field of `old_name` in `old` reads the same on the wire as in `new_name` of `new`:
/// the same number with the same type and cardinality (message fields compared the same
/// way, whatever they are called now), or a number the new message reserves.
fn same_wire(
    old: &prost_types::FileDescriptorSet,
    old_name: &str,
    new: &prost_types::FileDescriptorSet,
    new_name: &str,
    at: &str,
    out: &mut Vec<String>,
) {
    let (o, n) = (message(old, old_name), message(new, new_name));
    for f in &o.field {
        let Some(g) = n.field.iter().find(|g| g.number() == f.number()) else {
            if !n.reserved_range.iter().any(|r| (r.start()..r.end()).contains(&f.number())) {
                out.push(format!(
                    "{at}: field {} ({}) is gone and its number not reserved",
                    f.number(),
                    f.name()
                ));
            }
            continue;
        };
        let here = format!("{at}.{}", f.name());
        if (f.r#type(), f.label()) != (g.r#type(), g.label()) {
            out.push(format!(
                "{here}: {:?} {:?} became {:?} {:?}",
                f.label(),
                f.r#type(),
                g.label(),
                g.r#type()
            ));
        } else if f.r#type() == prost_types::field_descriptor_proto::Type::Message {
            same_wire(old, f.type_name(), new, g.type_name(), &here, out);
        }
    }
}

/// `agent.proto` under `src` compiled by protox into a FileDescriptorSet (a buf image).
fn baseline_image(src: &Path) -> Vec<u8> {
    use prost::Message;
    let fds = protox::compile([CONTRACT], [src]).expect("protox compiles the baseline");
    fds.encode_to_vec()
}

/// A Python program (grpcio, stubs generated by protoc) reads real agents as a viewer over
/// mutual TLS and is refused on Apply; the agents change nothing.
#[test]
fn a_python_client_reads_the_agents_as_a_viewer_and_is_refused_apply() {
    let Some(lab) = Lab::up_as_root("nsk", LAB) else { return };
    assert!(have("protoc"), "protoc is missing");
    let stubs = lab.dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let o = protoc(&stubs, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let viewer = lab.dir.join("viewer");
    ok(&lab.lvsctl(&[
        "pki",
        "issue-admin",
        "grafana",
        "--role",
        "viewer",
        "--out",
        viewer.to_str().unwrap(),
    ]));
    let v = python_client(&lab, &stubs, &viewer, &["rs1=198.18.0.11:7443", "router=198.18.0.1:7443"]);
    println!("{v:#}");
    let nodes = v.as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{v:#}");
    for (n, want) in nodes.iter().zip(["rs1", "router"]) {
        assert_eq!(n["node"], want, "Facts answered by the node dialled: {v:#}");
        assert!(
            !n["kernel"].as_str().unwrap().is_empty() && !n["agent_version"].as_str().unwrap().is_empty()
        );
        assert_eq!(n["has_spec"], false, "Status answered: nothing applied yet: {v:#}");
        assert_eq!(n["apply"]["code"], "PERMISSION_DENIED", "{v:#}");
        assert!(
            n["apply"]["details"].as_str().unwrap().contains("viewer:grafana may not call Apply"),
            "{v:#}"
        );
    }
    // The refused Apply changed nothing: the agents still hold no spec.
    let (_, st) = lab.json(&["status", "--node", "rs1", "--node", "router"]);
    for n in st["nodes"].as_array().unwrap() {
        assert_eq!(n["has_spec"], false, "{st:#}");
    }
    // The admin's certificate, through the same client, may Apply (refused on its merits:
    // the empty spec is invalid), which shows the viewer's refusal was the role's.
    let v = python_client(&lab, &stubs, &lab.dir.join("pki"), &["rs1=198.18.0.11:7443"]);
    assert_eq!(v[0]["apply"]["code"], "INVALID_ARGUMENT", "{v:#}");
}

/// `examples/python/agent_client.py --try-apply NODES` from the admin box with the PKI
/// directory `pki`; its JSON report.
fn python_client(lab: &Lab, stubs: &Path, pki: &Path, nodes: &[&str]) -> serde_json::Value {
    let o = Command::new("ip")
        .args(["netns", "exec", &lab.ns("admin"), "/usr/bin/python3"])
        .arg(repo().join("examples/python/agent_client.py"))
        .arg("--stubs")
        .arg(stubs)
        .arg("--pki")
        .arg(pki)
        .arg("--try-apply")
        .args(nodes)
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}
