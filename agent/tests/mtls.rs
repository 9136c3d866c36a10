//! The agent's door: real certificates from `lvsctl pki`, a real tonic/rustls server on
//! loopback. Only the controller's certificate gets in; plaintext, an unknown CA, an
//! expired certificate and another agent's certificate are refused, and the controller
//! refuses an agent whose certificate names another node. (The kernel side is a fake here:
//! these tests are about who may talk, not what is changed.)
use std::net::SocketAddr;
use std::sync::Arc;

use lvs_agent::config::TlsPaths;
use lvs_agent::fake::FakeSystem;
use lvs_agent::grpc::{Service, controller_only};
use lvs_agent::node::Agent;
use lvs_agent::state::Store;
use lvs_controller::pki::{Pair, Pki};
use lvs_proto::pb::{self, agent_client::AgentClient, agent_server::AgentServer};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server};

struct Bed {
    addr: SocketAddr,
    pki: Pki,
    _dir: tempfile::TempDir,
}

async fn bed() -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("test", false).unwrap();
    let me = pki.issue_agent("rs1", false).unwrap();
    let tls =
        lvs_agent::tls::server_config(&TlsPaths { ca: pki.ca().cert, cert: me.cert, key: me.key }).unwrap();
    let agent =
        Agent::new("rs1", Arc::new(FakeSystem::new(&["eth0"], false)), Store::new(&dir.path().join("state")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(AgentServer::with_interceptor(Service(agent), controller_only))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Bed { addr, pki, _dir: dir }
}

fn pem(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

async fn client(
    addr: SocketAddr,
    ca: &[u8],
    me: Option<&Pair>,
    name: &str,
) -> Result<AgentClient<Channel>, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name(name);
    if let Some(p) = me {
        tls = tls.identity(Identity::from_pem(pem(&p.cert), pem(&p.key)));
    }
    let ch = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(AgentClient::new(ch))
}

async fn facts(c: Result<AgentClient<Channel>, String>) -> Result<pb::Facts, String> {
    let mut c = c?;
    c.facts(pb::FactsRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test]
async fn the_controller_gets_in() {
    let b = bed().await;
    let f =
        facts(client(b.addr, &pem(&b.pki.ca().cert), Some(&b.pki.controller()), "rs1").await).await.unwrap();
    assert_eq!(f.node, "rs1");
}

#[tokio::test]
async fn another_agents_certificate_is_refused() {
    let b = bed().await;
    let other = b.pki.issue_agent("rs2", false).unwrap();
    let e = facts(client(b.addr, &pem(&b.pki.ca().cert), Some(&other), "rs1").await).await.unwrap_err();
    assert!(e.contains("PermissionDenied") && e.contains("not the controller"), "{e}");
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let b = bed().await;
    let e = facts(client(b.addr, &pem(&b.pki.ca().cert), None, "rs1").await).await.unwrap_err();
    assert!(!e.is_empty());
}

#[tokio::test]
async fn plaintext_is_refused() {
    let b = bed().await;
    let r = async {
        let ch = Endpoint::from_shared(format!("http://{}", b.addr))
            .unwrap()
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        AgentClient::new(ch).facts(pb::FactsRequest {}).await.map_err(|s| s.to_string())
    }
    .await;
    assert!(r.is_err(), "a plaintext call must fail");
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused() {
    let b = bed().await;
    let dir = tempfile::tempdir().unwrap();
    let rogue = Pki::new(dir.path());
    rogue.init("rogue", false).unwrap();
    // The rogue controller trusts our CA (to get past its own check) but presents its own cert.
    let e = facts(client(b.addr, &pem(&b.pki.ca().cert), Some(&rogue.controller()), "rs1").await)
        .await
        .unwrap_err();
    assert!(!e.contains("node: \"rs1\""), "{e}");
}

#[tokio::test]
async fn an_expired_controller_certificate_is_refused() {
    let b = bed().await;
    let dir = tempfile::tempdir().unwrap();
    let old = Pair { cert: dir.path().join("old.pem"), key: dir.path().join("old.key") };
    b.pki.issue_controller_at(old.clone(), -1).unwrap();
    let e = facts(client(b.addr, &pem(&b.pki.ca().cert), Some(&old), "rs1").await).await;
    assert!(e.is_err(), "expired certificate accepted: {e:?}");
}

#[tokio::test]
async fn the_controller_refuses_an_agent_that_is_not_the_node_it_dialled() {
    let b = bed().await;
    // The agent listening is rs1; dialling it as rs2 must fail the server-name check.
    let e = facts(client(b.addr, &pem(&b.pki.ca().cert), Some(&b.pki.controller()), "rs2").await)
        .await
        .unwrap_err();
    assert!(!e.is_empty());
}

#[tokio::test]
async fn a_malformed_spec_gets_invalid_argument_and_changes_nothing() {
    let b = bed().await;
    let mut c = client(b.addr, &pem(&b.pki.ca().cert), Some(&b.pki.controller()), "rs1").await.unwrap();
    let spec = pb::NodeSpec {
        node: "rs1".into(),
        role: pb::Role::RealServer as i32,
        generation: 1,
        addresses: vec![pb::AddressSpec {
            interface: "lo".into(),
            address: "198.18.0.300/32".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let s = c.apply(pb::SpecRequest { spec: Some(spec), ..Default::default() }).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(s.message().contains("spec.addresses[0].address"), "{}", s.message());
    let st = c.status(pb::StatusRequest::default()).await.unwrap().into_inner();
    assert!(!st.has_spec && st.generation == 0, "nothing accepted: {st:?}");
}
