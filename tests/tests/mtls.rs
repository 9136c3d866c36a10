//! The agent's door: real certificates from `lvsctl pki`, the agent's own server
//! ([`lvs_agent::server::serve`], as the daemon runs it) on loopback, and the controller's
//! own client ([`lvs_controller::fleet::Fleet`], as `lvsctl` dials). Only the controller's
//! certificate gets in; each impostor is refused for its own reason, asserted by name:
//! plaintext, no certificate, an unknown CA, an expired certificate, another agent's
//! certificate, and (controller side) an agent whose certificate names another node.
//! (The kernel side is a fake: these tests are about who may talk, not what is changed.)
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::Agent;
use lvs_agent::reconcile::Store;
use lvs_controller::fleet::{Fleet, NodeError};
use lvs_controller::pki::{Pair, Pki};
use lvs_proto::agent_config::TlsPaths;
use lvs_proto::pb::{self, agent_client::AgentClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

const LAB: &str = include_str!("../../deploy/examples/lab.toml");

struct Bed {
    addr: SocketAddr,
    pki: Pki,
    dir: tempfile::TempDir,
}

async fn bed() -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("test", false).unwrap();
    let me = pki.issue_agent("rs1", false).unwrap();
    let tls =
        lvs_agent::server::server_config("rs1", &TlsPaths { ca: pki.ca().cert, cert: me.cert, key: me.key })
            .unwrap();
    let agent =
        Agent::new("rs1", Arc::new(FakeSystem::new(&["eth0"], false)), Store::new(&dir.path().join("state")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = lvs_agent::server::Limits::default();
    tokio::spawn(lvs_agent::server::serve(agent, listener, tls, limits, std::future::pending()));
    Bed { addr, pki, dir }
}

fn pem(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// The controller's fleet over `pki`, with both rs1 and rs2 pointing at the bed's agent
/// (which is rs1): dialling `rs2` is the "wrong node answered" case.
fn fleet(b: &Bed, pki: &Pki) -> Fleet {
    let def = LAB.replace("agent = \"198.18.0.11:7443\"", &format!("agent = \"{}\"", b.addr)).replace(
        "agent = \"198.18.0.12:7443\"",
        &format!("agent = \"[::ffff:127.0.0.1]:{}\"", b.addr.port()),
    );
    let cluster = lvs_controller::load::load_str("lab.toml", &def).unwrap().cluster;
    Fleet::new(&cluster, pki, Duration::from_secs(5)).unwrap()
}

async fn facts(f: &Fleet, node: &str) -> Result<lvs_proto::reply::Facts, NodeError> {
    f.facts(node).await
}

/// A PKI directory holding our CA certificate (so the client trusts the agent) but the
/// controller certificate and key of `from`.
fn impostor_pki(b: &Bed, from: &Pair) -> Pki {
    let d = b.dir.path().join(format!("impostor-{}", rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(b.pki.ca().cert, d.join("ca.pem")).unwrap();
    std::fs::copy(&from.cert, d.join("controller.pem")).unwrap();
    std::fs::copy(&from.key, d.join("controller.key")).unwrap();
    Pki::new(d)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn the_controller_gets_in() {
    let b = bed().await;
    let f = facts(&fleet(&b, &b.pki), "rs1").await.unwrap();
    assert_eq!(f.node, "rs1");
}

#[tokio::test]
async fn another_agents_certificate_is_refused() {
    let b = bed().await;
    let other = b.pki.issue_agent("rs2", false).unwrap();
    let e = facts(&fleet(&b, &impostor_pki(&b, &other)), "rs1").await.unwrap_err();
    // Agent certificates are for servers only (no clientAuth usage): the handshake itself
    // refuses one presented as a client, before any call.
    assert!(matches!(&e, NodeError::Unreachable(m) if m.contains("UnsupportedCertificate")), "{e:?}");
}

#[tokio::test]
async fn no_client_certificate_is_refused_in_the_handshake() {
    let b = bed().await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem(&b.pki.ca().cert)))
        .domain_name("rs1");
    let ch: Channel =
        Endpoint::from_shared(format!("https://{}", b.addr)).unwrap().tls_config(tls).unwrap().connect_lazy();
    let s = AgentClient::new(ch).facts(pb::FactsRequest {}).await.unwrap_err();
    let e = lvs_controller::fleet::describe(&s);
    assert!(e.contains("CertificateRequired"), "{e}");
}

#[tokio::test]
async fn plaintext_is_refused() {
    let b = bed().await;
    let ch = Endpoint::from_shared(format!("http://{}", b.addr)).unwrap().connect_lazy();
    let s = AgentClient::new(ch).facts(pb::FactsRequest {}).await.unwrap_err();
    // The door closes a connection that does not speak TLS: no gRPC answer at all.
    assert!(matches!(s.code(), tonic::Code::Unknown | tonic::Code::Unavailable), "{s:?}");
    assert!(s.message().contains("transport error") || s.message().contains("connect"), "{s:?}");
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_in_the_handshake() {
    let b = bed().await;
    let rogue = Pki::new(b.dir.path().join("rogue"));
    rogue.init("rogue", false).unwrap();
    let e = facts(&fleet(&b, &impostor_pki(&b, &rogue.controller())), "rs1").await.unwrap_err();
    assert!(matches!(&e, NodeError::Unreachable(m) if m.contains("UnknownCA")), "{e:?}");
}

#[tokio::test]
async fn an_expired_controller_certificate_is_refused_in_the_handshake() {
    let b = bed().await;
    let old = Pair { cert: b.dir.path().join("old.pem"), key: b.dir.path().join("old.key") };
    b.pki.issue_controller_at(old.clone(), -1).unwrap();
    let e = facts(&fleet(&b, &impostor_pki(&b, &old)), "rs1").await.unwrap_err();
    assert!(matches!(&e, NodeError::Unreachable(m) if m.contains("CertificateExpired")), "{e:?}");
}

#[tokio::test]
async fn the_controller_refuses_an_agent_that_is_not_the_node_it_dialled() {
    let b = bed().await;
    // The agent listening is rs1; dialling it as rs2 must fail the server-name check.
    let e = facts(&fleet(&b, &b.pki), "rs2").await.unwrap_err();
    assert!(
        matches!(&e, NodeError::Unreachable(m) if m.contains("not valid for name") && m.contains("rs2")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_malformed_spec_gets_invalid_argument_and_changes_nothing() {
    let b = bed().await;
    let mut c = fleet(&b, &b.pki).client("rs1").unwrap();
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

#[tokio::test]
async fn a_node_that_accepts_and_never_answers_times_out_instead_of_hanging() {
    // A stopped agent (SIGSTOP) or a black-holed host: TCP accepts, nothing more. Every
    // controller call, `verify`'s long probe included, has a deadline.
    let b = bed().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let def = LAB.replace("agent = \"198.18.0.11:7443\"", &format!("agent = \"127.0.0.1:{port}\""));
    let cluster = lvs_controller::load::load_str("lab.toml", &def).unwrap().cluster;
    let f = Fleet::new(&cluster, &b.pki, Duration::from_secs(30)).unwrap();
    let t0 = std::time::Instant::now();
    let e =
        f.call_within("rs1", Duration::from_millis(800), |mut c| async move {
            c.facts(pb::FactsRequest {}).await
        })
        .await
        .unwrap_err();
    assert!(matches!(&e, NodeError::TimedOut(m) if m == "no answer within 800 ms"), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

/// A TLS client with `pair`'s certificate, trusting the bed's CA.
fn client_tls(b: &Bed, pair: &Pair) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(b.pki.ca().cert).unwrap()).unwrap();
    let certs: Vec<_> = CertificateDer::pem_file_iter(&pair.cert).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(&pair.key).unwrap();
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Open `n` connections as `pair` that finish their handshake and then sit idle; those
/// the door kept (still open after a moment).
async fn idle_connections(
    b: &Bed,
    pair: &Pair,
    n: usize,
    settle: Duration,
) -> Vec<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use tokio::io::AsyncReadExt;
    let tls = client_tls(b, pair);
    let mut open = Vec::new();
    for _ in 0..n {
        let tcp = tokio::net::TcpStream::connect(b.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("rs1").unwrap();
        if let Ok(s) = tls.connect(name, tcp).await {
            open.push(s);
        }
    }
    tokio::time::sleep(settle).await;
    let mut kept = Vec::new();
    for mut s in open {
        // A closed one reads its end (or an error) at once; a kept one has only the
        // server's HTTP/2 settings to give, then nothing.
        let mut buf = [0u8; 4096];
        let mut alive = true;
        loop {
            match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    alive = false;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
        if alive {
            kept.push(s);
        }
    }
    kept
}

fn serial_of(pair: &Pair) -> String {
    use x509_parser::prelude::FromDer;
    let pem = std::fs::read(&pair.cert).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let (_, c) = x509_parser::prelude::X509Certificate::from_der(&p.contents).unwrap();
    lvs_proto::identity::serial_hex(c.raw_serial())
}

/// 64 idle connections of a revoked certificate, or of viewers, cannot keep an admin out:
/// a revoked serial is refused right after its handshake (it never takes a slot), one
/// caller holds at most 16 connections and viewers share all but 16, kept for admins; a
/// certificate revoked while connected is cut off, its event stream with it.
#[tokio::test]
async fn revoked_or_viewer_connections_never_lock_an_admin_out() {
    use lvs_proto::identity::{Caller, Role};
    use tokio_stream::StreamExt;
    let b = bed().await;
    let admin = fleet(&b, &b.pki);
    let issue = |name: &str, role: Role| {
        let out = b.dir.path().join(format!("caller-{name}"));
        let pair = b.pki.issue_caller(&Caller { name: name.into(), role }, &out, false).unwrap();
        (pair, Pki::new(out))
    };
    let (mallory, _) = issue("mallory", Role::Admin);
    let (eve, _) = issue("eve", Role::Viewer);
    let (vic, vic_pki) = issue("vic", Role::Viewer);
    b.pki.revoke("admin:mallory").unwrap();
    admin.set_revoked("rs1", &b.pki.revocation_list().unwrap()).await.unwrap();

    // Let in only to be told why: at most 8 at once, closed within 2 s, no caller's slot.
    let revoked = idle_connections(&b, &mallory, 64, Duration::from_millis(2500)).await;
    assert_eq!(revoked.len(), 0, "a revoked certificate kept a connection");
    let viewers = idle_connections(&b, &eve, 64, Duration::from_millis(300)).await;
    assert_eq!(viewers.len(), 16, "one caller holds at most 16");
    let mut more = Vec::new();
    for name in ["v1", "v2", "v3"] {
        let (p, _) = issue(name, Role::Viewer);
        more.extend(idle_connections(&b, &p, 16, Duration::from_millis(300)).await);
    }
    assert_eq!(viewers.len() + more.len(), 48, "viewers share 48 of the 64 slots");
    // The admin still gets in, and so does SetRevoked.
    facts(&admin, "rs1").await.expect("an admin is never locked out");

    // vic follows the events; once revoked, the stream ends and new calls are refused.
    let vic_fleet = fleet(&b, &vic_pki);
    drop((viewers, revoked, more));
    let mut stream = vic_fleet.events("rs1").await.expect("a viewer may follow events");
    b.pki.revoke(&serial_of(&vic)).unwrap();
    admin.set_revoked("rs1", &b.pki.revocation_list().unwrap()).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a revoked viewer's event stream kept flowing");
    assert!(facts(&vic_fleet, "rs1").await.is_err());
}

/// A request over the agent's message cap is refused before it is decoded (the length
/// prefix is checked, nothing of that size is kept), and the connection serves on.
#[tokio::test]
async fn a_request_over_the_message_cap_is_refused_and_changes_nothing() {
    let b = bed().await;
    let mut c = fleet(&b, &b.pki).client("rs1").unwrap();
    let spec = pb::NodeSpec {
        node: "rs1".into(),
        role: pb::Role::RealServer as i32,
        generation: 1,
        cluster: "x".repeat(lvs_agent::server::MAX_MESSAGE + 1),
        ..Default::default()
    };
    let s = c.apply(pb::SpecRequest { spec: Some(spec), ..Default::default() }).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::OutOfRange, "{s:?}");
    let st = c.status(pb::StatusRequest::default()).await.unwrap().into_inner();
    assert!(!st.has_spec, "nothing accepted");
}
