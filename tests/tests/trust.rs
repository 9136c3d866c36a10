//! Enrolment, roles, revocation and rotation, end to end on loopback: the agent daemon's
//! own steps ([`lvs_agent::run::serve`]: enrol while it has no certificate, then mutual
//! TLS) over a fake kernel, and the controller's own code (`lvsctl node enroll`'s
//! [`lvs_controller::enrol::enroll`], the [`Fleet`] every command uses, `pki rotate`'s
//! [`lvs_controller::ops::trust`]). Every refusal is asserted by its reason.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lvs_agent::kernel::FakeSystem;
use lvs_controller::enrol::{EnrolError, enroll};
use lvs_controller::fleet::{Fleet, NodeError};
use lvs_controller::pki::Pki;
use lvs_proto::agent_config::{Config, TlsPaths};
use lvs_proto::identity::{Caller, Role};
use lvs_proto::pairing::PairingCode;

const LAB: &str = include_str!("../../deploy/examples/lab.toml");

/// One node `rs1` whose agent runs the daemon's steps on loopback, not enrolled yet.
struct Node {
    addr: SocketAddr,
    config: Config,
    dir: tempfile::TempDir,
    pki: Pki,
    /// The node's fake kernel: its `calls` log shows every change any rpc made.
    sys: Arc<FakeSystem>,
    /// The running agent.
    agent: Running,
}

/// An agent daemon running in this process, and how to stop it as SIGTERM does.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn config(dir: &Path, addr: SocketAddr) -> Config {
    Config {
        node: "rs1".into(),
        listen: addr,
        state_dir: dir.join("state"),
        heal_interval: Duration::ZERO,
        tls: TlsPaths {
            ca: dir.join("etc/ca.pem"),
            cert: dir.join("etc/agent.pem"),
            key: dir.join("etc/agent.key"),
        },
        scripts: Default::default(),
        metrics: None,
    }
}

/// A [`Running`] for nothing (the slot of an agent being restarted).
fn start_placeholder() -> Running {
    let (stop, _) = tokio::sync::oneshot::channel();
    Running { stop, task: tokio::spawn(async {}) }
}

/// The daemon's steps ([`lvs_agent::run::serve`]) on `config`, over a fresh fake kernel.
async fn start_agent(config: Config) -> (Arc<FakeSystem>, Running) {
    let fake = Arc::new(FakeSystem::new(&["eth0"], false));
    (fake.clone(), start_agent_on(config, fake).await)
}

async fn start_agent_on(config: Config, fake: Arc<FakeSystem>) -> Running {
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let sys = move || Ok(fake.clone());
        // Only an explicit stop ends it; a dropped handle (a test that never restarts) does not.
        let shutdown = async move {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        lvs_agent::run::serve(&config, listener, sys, shutdown).await.unwrap();
    });
    Running { stop, task }
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("test", false).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = config(dir.path(), addr);
    let (sys, agent) = start_agent(config.clone()).await;
    Node { addr, config, dir, pki, sys, agent }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Node {
    /// What `lvs-agent pairing-code` prints on the node (once the agent has made it).
    async fn code(&self) -> String {
        for _ in 0..100 {
            if self.config.state_dir.join("pairing.json").exists() {
                let c = &self.config;
                return lvs_agent::server::enrol::code_for(
                    &c.tls.key,
                    &c.state_dir,
                    false,
                    Duration::from_secs(60),
                )
                .unwrap()
                .code;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the unenrolled agent made no pairing code");
    }

    async fn enroll(&self, code: &str) -> Result<lvs_controller::pki::Issued, EnrolError> {
        enroll(&self.pki, "rs1", &self.addr.to_string(), code, Duration::from_secs(5)).await
    }

    /// The controller's fleet, as the caller whose PKI directory is `pki`.
    fn fleet(&self, pki: &Pki) -> Fleet {
        let def = LAB.replace("agent = \"198.18.0.11:7443\"", &format!("agent = \"{}\"", self.addr));
        let cluster = lvs_controller::load::load_str("lab.toml", &def).unwrap().cluster;
        Fleet::new(&cluster, pki, Duration::from_secs(5)).unwrap()
    }

    async fn enrolled(&self) -> Fleet {
        let code = self.code().await;
        self.enroll(&code).await.unwrap();
        let f = self.fleet(&self.pki);
        for _ in 0..100 {
            if f.facts("rs1").await.is_ok() {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the enrolled agent does not answer over mutual TLS");
    }

    fn caller(&self, name: &str, role: Role) -> Pki {
        let out = self.dir.path().join(format!("caller-{name}"));
        self.pki.issue_caller(&Caller { name: name.into(), role }, &out, false).unwrap();
        Pki::new(out)
    }
}

/// Every file under `dir` that holds a private key.
fn private_keys(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(private_keys(&p));
        } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains("PRIVATE KEY")) {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn enrolment_certifies_the_key_made_on_the_node_which_never_leaves_it() {
    let n = node().await;
    let code = n.code().await;
    let key_before = std::fs::read(&n.config.tls.key).unwrap();
    let issued = n.enroll(&code).await.expect("enrolled");
    assert_eq!(issued.subject, "agent:rs1");
    // The node's key is the one it made; the admin's PKI holds no key of rs1.
    assert_eq!(std::fs::read(&n.config.tls.key).unwrap(), key_before);
    let keys = private_keys(n.pki.dir());
    assert!(keys.iter().all(|k| !k.to_string_lossy().contains("rs1")), "{keys:?}");
    assert_eq!(keys.len(), 2, "the CA's and the controller's only: {keys:?}");
    // The agent switched to mutual TLS with that certificate, and the code is spent.
    let f = n.fleet(&n.pki);
    let mut status = Err(NodeError::Failed("not asked".into()));
    for _ in 0..100 {
        status = f.status("rs1", None).await;
        if status.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cert = status.unwrap().certificate.expect("the agent reports its certificate");
    assert_eq!(cert.serial, issued.serial);
    let days =
        cert.days_left(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    assert!((88..=90).contains(&days), "90-day leaves: {days}");
    assert!(!n.config.state_dir.join("pairing.json").exists(), "the code is consumed");
}

#[tokio::test]
async fn a_used_code_is_refused() {
    let n = node().await;
    let code = n.code().await;
    n.enrolled_with(&code).await;
    let e = n.enroll(&code).await.unwrap_err();
    assert!(matches!(&e, EnrolError::Connect { reason, .. } if reason.contains("enrolled already")), "{e}");
}

impl Node {
    async fn enrolled_with(&self, code: &str) {
        self.enroll(code).await.unwrap();
    }
}

/// Wrong codes slow their source address down (after 3, 1 s doubling to 60 s) and never
/// burn the code: nobody on the network can block enrolment by guessing.
#[tokio::test]
async fn wrong_codes_slow_their_source_down_and_never_burn_the_code() {
    let n = node().await;
    let right = PairingCode::parse(&n.code().await).unwrap();
    let mut wrong = right.clone();
    wrong.secret[0] ^= 1;
    for i in 1..=3 {
        let e = n.enroll(&wrong.text()).await.unwrap_err();
        assert!(
            matches!(&e, EnrolError::Refused { reason, .. } if reason.contains(&format!("wrong pairing code ({i} wrong"))),
            "{e}"
        );
    }
    // The fourth try from this address comes too soon: refused before the secret is read,
    // the right code too, until the wait is over.
    let e = n.enroll(&right.text()).await.unwrap_err();
    assert!(
        matches!(&e, EnrolError::Refused { reason, .. } if reason.contains("too many wrong pairing codes from 127.0.0.1")),
        "{e}"
    );
    for _ in 0..10 {
        let e = n.enroll(&wrong.text()).await.unwrap_err();
        assert!(matches!(&e, EnrolError::Refused { reason, .. } if reason.contains("try again in")), "{e}");
    }
    assert!(!n.config.tls.cert.exists(), "nothing was installed");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Not burned: after the wait the right code enrols.
    n.enroll(&right.text()).await.expect("the code survives wrong guesses");
    assert!(n.config.tls.cert.exists());
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let n = node().await;
    n.code().await;
    let c = &n.config;
    let expired = lvs_agent::server::enrol::code_for(&c.tls.key, &c.state_dir, true, Duration::ZERO).unwrap();
    let e = n.enroll(&expired.code).await.unwrap_err();
    assert!(matches!(&e, EnrolError::Refused { reason, .. } if reason.contains("expired")), "{e}");
    assert!(!n.config.tls.cert.exists(), "nothing was installed");
}

#[tokio::test]
async fn a_man_in_the_middle_without_the_nodes_key_is_refused_before_the_secret_is_sent() {
    let n = node().await;
    let code = n.code().await;
    // The impostor answers where the controller dials rs1; it is an unenrolled agent of
    // its own (its own key), so it would gladly take a CA and a secret.
    let mitm_dir = tempfile::tempdir().unwrap();
    let mitm = config(mitm_dir.path(), format!("127.0.0.1:{}", free_port()).parse().unwrap());
    start_agent(mitm.clone()).await;
    while !mitm.state_dir.join("pairing.json").exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = enroll(&n.pki, "rs1", &mitm.listen.to_string(), &code, Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(&e, EnrolError::Connect { reason, .. } if reason.contains("not the one the pairing code names")),
        "{e}"
    );
    let pairing: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mitm.state_dir.join("pairing.json")).unwrap()).unwrap();
    assert_eq!(pairing["failures"], 0, "no secret ever reached the impostor");
    assert!(!mitm.tls.cert.exists() && !n.config.tls.cert.exists());
    // The real node still enrols with its code.
    n.enroll(&code).await.expect("the real node enrols");
}

/// The rpcs of `lvs.agent.v1.Agent` a viewer may call, written here from the threat model
/// (docs/architecture.md, "Threats"): reads that neither change the node nor make it send
/// anything. Deliberately not the agent's own `authz::READ_ONLY`, so that a method added to
/// that list by mistake fails this test.
const VIEWER_MAY_CALL: &[&str] = &["Facts", "Status", "IpvsTable", "LiveConnections", "Events"];

/// Every rpc of `service` in the compiled contract, with whether it streams its answer.
fn contract_rpcs(service: &str) -> Vec<(String, bool)> {
    use prost::Message;
    let fds = prost_types::FileDescriptorSet::decode(lvs_proto::DESCRIPTOR_SET).unwrap();
    let rpcs: Vec<(String, bool)> = fds
        .file
        .iter()
        .filter(|f| f.package() == "lvs.agent.v1")
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == service)
        .flat_map(|s| &s.method)
        .map(|m| (m.name().to_string(), m.server_streaming()))
        .collect();
    assert!(!rpcs.is_empty(), "no service {service} in the contract");
    rpcs
}

/// A mutual-TLS channel to the node as the caller whose PKI directory is `pki`, built here
/// rather than by the controller's `Fleet`, so the rpcs are reached by name alone.
async fn raw_channel(n: &Node, pki: &Path) -> tonic::transport::Channel {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let read = |f: &str| std::fs::read(pki.join(f)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(read("controller.pem"), read("controller.key")))
        .domain_name("rs1");
    Endpoint::from_shared(format!("https://{}", n.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Call `/lvs.agent.v1.Agent/{rpc}` with an empty message (a valid encoding of every request
/// type: all fields at their defaults) and read past the answer's headers.
async fn call_by_name(
    ch: &tonic::transport::Channel,
    rpc: &str,
    streaming: bool,
) -> Result<(), tonic::Status> {
    use tonic::codegen::http::uri::PathAndQuery;
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::try_from(format!("/lvs.agent.v1.Agent/{rpc}")).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    if streaming {
        grpc.server_streaming(tonic::Request::new(()), path, codec).await.map(|_| ())
    } else {
        grpc.unary(tonic::Request::new(()), path, codec).await.map(|_| ())
    }
}

/// Every rpc of the contract that is not a read is refused to a viewer with
/// PERMISSION_DENIED, before the request is even decoded, and changes nothing on the node.
#[tokio::test]
async fn a_viewer_is_refused_every_rpc_that_is_not_a_read_and_changes_nothing() {
    let n = node().await;
    let admin = n.enrolled().await;
    // Something for a decommission, a clear or a weight to undo.
    let spec =
        lvs_controller::planner::plan(&n.fleet_cluster()).into_iter().find(|s| s.node == "rs1").unwrap();
    assert!(admin.apply("rs1", &spec, "", false).await.unwrap().converged);
    let calls_before = n.sys.calls.lock().unwrap().clone();
    assert!(!calls_before.is_empty(), "the admin's apply changed the node");

    let viewer = n.caller("grafana", Role::Viewer);
    let ch = raw_channel(&n, viewer.dir()).await;
    let rpcs = contract_rpcs("Agent");
    let names: Vec<&str> = rpcs.iter().map(|(m, _)| m.as_str()).collect();
    for read in VIEWER_MAY_CALL {
        assert!(names.contains(read), "{read} is no longer in the contract: {names:?}");
    }
    let mut refused = Vec::new();
    for (rpc, streaming) in &rpcs {
        let r = call_by_name(&ch, rpc, *streaming).await;
        if VIEWER_MAY_CALL.contains(&rpc.as_str()) {
            // A read may fail on its merits (a real server has no IPVS table), never by role.
            if let Err(e) = &r {
                assert_ne!(e.code(), tonic::Code::PermissionDenied, "{rpc}: {e:?}");
            }
            continue;
        }
        let e = r.expect_err(rpc);
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{rpc}: {e:?}");
        assert!(
            e.message().contains(&format!("viewer:grafana may not call {rpc}")),
            "{rpc}: {}",
            e.message()
        );
        refused.push(rpc.clone());
    }
    println!("refused to a viewer: {refused:?}");
    assert_eq!(refused.len(), rpcs.len() - VIEWER_MAY_CALL.len());
    assert_eq!(*n.sys.calls.lock().unwrap(), calls_before, "a viewer's calls changed the node");
    let st = admin.status("rs1", None).await.unwrap();
    assert_eq!(st.generation, spec.generation, "the spec is still the admin's");

    // The controller's own client says the same, by reason.
    let fleet = n.fleet(&viewer);
    let e = fleet.apply("rs1", &spec, "", false).await.unwrap_err();
    assert!(matches!(&e, NodeError::Denied(m) if m.contains("viewer:grafana may not call Apply")), "{e}");
    // A viewer cannot make the node send SNTP to an address of its choosing.
    let e = fleet.status("rs1", Some("198.18.0.1".parse().unwrap())).await.unwrap_err();
    assert!(matches!(&e, NodeError::Denied(m) if m.contains("only an admin")), "{e}");
}

#[tokio::test]
async fn a_revoked_admin_is_refused_and_stays_refused_after_a_restart() {
    let mut n = node().await;
    let ctl = n.enrolled().await;
    let alice = n.fleet(&n.caller("alice", Role::Admin));
    alice.facts("rs1").await.expect("alice is an admin");
    let revoked = n.pki.revoke("alice").unwrap();
    assert_eq!(revoked.len(), 1);
    let spec =
        lvs_controller::planner::plan(&n.fleet_cluster()).into_iter().find(|s| s.node == "rs1").unwrap();
    let ours = lvs_controller::pki::crl_number(&n.pki.revocation_list().unwrap()).unwrap();
    let plan = ctl.plan("rs1", &spec, "", Duration::ZERO, false).await.unwrap();
    assert!(
        plan.revocation_number < ours,
        "the node holds the list of its enrolment: apply sends the new one"
    );
    let pushed = lvs_controller::ops::trust::push_revoked(&ctl, &n.pki, &["rs1".into()]).await.unwrap();
    assert_eq!(pushed[0].1.as_ref().unwrap(), &1);
    // Every plan says which list the node holds: the next apply sends it only a newer one.
    let plan = ctl.plan("rs1", &spec, "", Duration::ZERO, false).await.unwrap();
    assert_eq!(
        Some(plan.revocation_number),
        lvs_controller::pki::crl_number(&n.pki.revocation_list().unwrap())
    );
    // alice's open connection was cut when the list changed; a new one is told why.
    alice.facts("rs1").await.expect_err("the open connection is cut");
    let refused = |e: &NodeError| matches!(e, NodeError::Denied(m) if m.contains("admin:alice") && m.contains("is revoked"));
    let e = n.fleet(&Pki::new(n.dir.path().join("caller-alice"))).facts("rs1").await.unwrap_err();
    assert!(refused(&e), "{e}");
    ctl.facts("rs1").await.expect("the other admin still gets in");
    // The agent stopped and started again on its state directory refuses alice still.
    drop(ctl);
    n.restart().await;
    let e = n.fleet(&Pki::new(n.dir.path().join("caller-alice"))).facts("rs1").await.unwrap_err();
    assert!(refused(&e), "after a restart: {e}");
    n.fleet(&n.pki).facts("rs1").await.expect("the restarted agent serves the other admin");
}

impl Node {
    /// Stop the agent as SIGTERM does, wait for it to end, and start it again on the same
    /// configuration and state directory (a new daemon: nothing is carried over in memory).
    async fn restart(&mut self) {
        let sys = self.sys.clone();
        let old = std::mem::replace(&mut self.agent, start_placeholder());
        let _ = old.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), old.task).await.expect("the agent stops").unwrap();
        self.agent = start_agent_on(self.config.clone(), sys).await;
    }

    fn fleet_cluster(&self) -> lvs_controller::model::Cluster {
        let def = LAB.replace("agent = \"198.18.0.11:7443\"", &format!("agent = \"{}\"", self.addr));
        lvs_controller::load::load_str("lab.toml", &def).unwrap().cluster
    }
}

#[tokio::test]
async fn events_say_which_admin_asked() {
    let n = node().await;
    let ctl = n.enrolled().await;
    let alice = n.fleet(&n.caller("alice", Role::Admin));
    let spec =
        lvs_controller::planner::plan(&n.fleet_cluster()).into_iter().find(|s| s.node == "rs1").unwrap();
    let mut events = Box::pin(ctl.events("rs1").await.unwrap());
    alice.apply("rs1", &spec, "", false).await.unwrap();
    use futures::StreamExt;
    let e = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = events.next().await.unwrap().unwrap();
            if e.kind == lvs_proto::reply::EventKind::Apply {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(e.by, "admin:alice", "{e:?}");
}

#[tokio::test]
async fn rotation_swaps_the_certificate_without_a_restart_or_a_dropped_connection() {
    let n = node().await;
    let open = n.enrolled().await;
    let before = open.status("rs1", None).await.unwrap().certificate.unwrap();
    let key_before = std::fs::read(&n.config.tls.key).unwrap();
    let after = lvs_controller::ops::trust::rotate(&open, &n.pki, "rs1").await.expect("rotated");
    assert_ne!(after.serial, before.serial);
    assert_ne!(std::fs::read(&n.config.tls.key).unwrap(), key_before, "a fresh key, made on the node");
    // The connection opened before still works; a new one sees the new certificate.
    open.facts("rs1").await.expect("the open connection survives");
    let fresh = n.fleet(&n.pki).status("rs1", None).await.unwrap().certificate.unwrap();
    assert_eq!(fresh.serial, after.serial);
    let ledger: Vec<String> =
        n.pki.issued().unwrap().into_iter().filter(|i| i.subject == "agent:rs1").map(|i| i.serial).collect();
    assert_eq!(ledger, [before.serial, after.serial]);
    // An install without a renewal first is refused.
    let e = open.install_certificate("rs1", "garbage").await.unwrap_err();
    assert!(matches!(&e, NodeError::Refused(m) if m.contains("no renewal in progress")), "{e}");
}

#[test]
fn the_agent_installs_only_a_certificate_for_its_key_its_name_and_its_ca() {
    use lvs_agent::server::{CredentialError, check_signed, csr_pem};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("test", false).unwrap();
    let ca = std::fs::read(pki.ca().cert).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mine = pki.sign_agent_csr("rs1", &csr_pem("rs1", &key).unwrap()).unwrap();
    let (_, info) = check_signed("rs1", &ca, mine.pem.as_bytes(), &key).expect("its own certificate");
    assert_eq!(info.serial, mine.issued.serial);
    let refused = |r: Result<_, CredentialError>| match r {
        Err(CredentialError::Refused(m)) => m,
        other => panic!("not refused: {other:?}"),
    };
    let m = refused(check_signed("rs1", &ca, mine.pem.as_bytes(), &other_key));
    assert!(m.contains("another key"), "{m}");
    // A CSR asking for rs1, signed for the name the definition gives (rs2): not rs1's.
    let theirs = pki.sign_agent_csr("rs2", &csr_pem("rs1", &key).unwrap()).unwrap();
    let m = refused(check_signed("rs1", &ca, theirs.pem.as_bytes(), &key));
    assert!(m.contains("urn:lvs-dr:agent:rs1"), "{m}");
    let rogue = Pki::new(dir.path().join("rogue"));
    rogue.init("rogue", false).unwrap();
    let m = refused(check_signed("rs1", &std::fs::read(rogue.ca().cert).unwrap(), mine.pem.as_bytes(), &key));
    assert!(m.contains("UnknownIssuer"), "{m}");
    let m = refused(check_signed("rs1", &ca, b"not a certificate", &key));
    assert!(m.contains("no certificate"), "{m}");
}

#[tokio::test]
async fn an_agent_that_is_another_node_is_not_signed_for() {
    let n = node().await;
    let code = n.code().await;
    // The definition's rs2 points at this agent, which is configured as rs1.
    let e = enroll(&n.pki, "rs2", &n.addr.to_string(), &code, Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(&e, EnrolError::Mismatch { reason, .. } if reason.contains("configured as `rs1`, not `rs2`")),
        "{e}"
    );
    assert!(!n.config.tls.cert.exists(), "nothing was installed");
    assert!(n.pki.issued().unwrap().iter().all(|i| i.subject != "agent:rs2"), "nothing was signed");
}

/// The agent service, a child process, killed when dropped.
struct Child(std::process::Child);

/// Whether process `pid` is stopped (state `T` in /proc/PID/stat).
fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
}

/// How many processes are blocked waiting for a lock on the file with this inode
/// (`->` lines of /proc/locks).
fn waiting_on(inode: u64) -> usize {
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    let suffix = format!(":{inode}");
    locks
        .lines()
        .filter(|l| l.contains("->"))
        .filter(|l| l.split_whitespace().any(|f| f.ends_with(&suffix)))
        .count()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("never: {what}");
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// On a real host the service starts (packages start it) while the admin runs
/// `lvs-agent pairing-code` at once: both make the node's key and a code if there is none.
/// They are two processes, so the race is real; they must agree on one key and one code,
/// and that code must enrol the service. (The lab once lost this race: one process renamed
/// away the other's half-written file.) Several rounds, each on a fresh node.
#[test]
fn the_service_and_pairing_code_started_together_agree_on_one_key_and_one_code() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        pki.init("race", false).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let c = config(dir.path(), addr);
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            format!(
                "node = \"rs1\"\nlisten = \"{addr}\"\nstate_dir = \"{}\"\nheal_interval = \"0s\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                c.state_dir.display(),
                c.tls.ca.display(),
                c.tls.cert.display(),
                c.tls.key.display()
            ),
        )
        .unwrap();
        // Barrier 2, at the pairing state: the test holds the lock the processes take to read
        // and write it, so all of them arrive there before any goes on.
        std::fs::create_dir_all(&c.state_dir).unwrap();
        let lock_path = c.state_dir.join("pairing.lock");
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).unwrap();
        lock.lock().unwrap();
        let bin = lvs_tests::bin("lvs-agent");
        let run = |pairing: bool| {
            // Barrier 1, at exec: each child is a shell that stops itself, then becomes the
            // agent; all are continued together, so every one looks for the key at the same
            // moment. (A pre_exec stop would hang spawn(), which waits for the exec.)
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", "kill -STOP $$; exec \"$0\" \"$@\""]).arg(&bin);
            cmd.arg("--config").arg(&file).env("LVS_LOG", "error").stdin(std::process::Stdio::null());
            if pairing {
                cmd.arg("pairing-code")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
            } else {
                cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            }
            cmd.spawn().unwrap()
        };
        let shown: Vec<_> = (0..3).map(|_| run(true)).collect();
        let service = Child(run(false));
        let pids: Vec<u32> = shown.iter().map(|p| p.id()).chain([service.0.id()]).collect();
        wait_for(&format!("round {round}: every process stopped at exec"), || {
            pids.iter().all(|p| stopped(*p))
        });
        for p in &pids {
            // SAFETY: SIGCONT to our own stopped children.
            unsafe { libc::kill(*p as i32, libc::SIGCONT) };
        }
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&lock_path).unwrap());
        wait_for(&format!("round {round}: all four wait for the pairing lock"), || {
            waiting_on(inode) == pids.len()
        });
        lock.unlock().unwrap();
        drop(lock);
        let codes: Vec<String> = shown
            .into_iter()
            .map(|p| {
                let o = p.wait_with_output().unwrap();
                assert!(
                    o.status.success(),
                    "round {round}: pairing-code failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                String::from_utf8(o.stdout).unwrap().trim().to_string()
            })
            .collect();
        assert!(codes.iter().all(|x| x == &codes[0]), "round {round}: one code for all: {codes:?}");
        // The service may still be making its own attempt at the key (a temporary beside
        // it, removed when it finds the key there): once it listens, it has settled on one.
        for _ in 0..250 {
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let keys = private_keys(dir.path().join("etc").as_path());
        assert_eq!(keys, vec![c.tls.key.clone()], "round {round}: one key file");
        let leftovers: Vec<_> = std::fs::read_dir(&c.state_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: temporaries left: {leftovers:?}");
        let enrolled = rt.block_on(enroll(&pki, "rs1", &addr.to_string(), &codes[0], Duration::from_secs(5)));
        assert!(enrolled.is_ok(), "round {round}: the shown code enrols the service: {enrolled:?}");
        drop(service);
    }
}

/// An unenrolled agent's log says a code is waiting and names its key's pin, never the
/// secret: a journal reader cannot enrol the node before the admin.
#[test]
fn the_log_of_an_unenrolled_agent_holds_the_pin_and_never_the_secret() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let c = config(dir.path(), addr);
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, toml::to_string(&c).unwrap()).unwrap();
    let bin = lvs_tests::bin("lvs-agent");
    let mut agent = std::process::Command::new(bin)
        .arg("--config")
        .arg(&file)
        .env("LVS_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = agent.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut log = String::new();
    let t0 = std::time::Instant::now();
    while !log.contains("not enrolled") && t0.elapsed() < Duration::from_secs(20) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push_str(&l);
            log.push('\n');
        }
    }
    let _guard = Child(agent);
    assert!(log.contains("not enrolled"), "{log}");
    let code = lvs_agent::server::enrol::code_for(&c.tls.key, &c.state_dir, false, Duration::from_secs(60))
        .unwrap()
        .code;
    let pin = lvs_agent::server::enrol::pin_text(&code);
    assert!(code.starts_with(&pin) && pin.len() == 19, "{code} {pin}");
    assert!(log.contains(&pin), "the pin is logged: {log}");
    // Neither the secret half (any of its groups) nor the code, whatever its spelling.
    let flat = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_uppercase();
    let secret = &flat(&code)[16..];
    assert!(!flat(&log).contains(secret), "the secret reached the log: {log}");
    for group in code.split('-').skip(4) {
        assert!(!log.contains(group), "a group of the secret ({group}) reached the log: {log}");
    }
}

/// An enrolled node whose CA or certificate file went missing refuses to start and says
/// why; it neither makes a new pairing code (anyone's CA could then be installed) nor
/// serves, and it keeps its key and state.
#[tokio::test]
async fn an_enrolled_node_missing_a_credential_file_refuses_to_start_and_never_enrols_again() {
    let n = node().await;
    let _fleet = n.enrolled().await;
    let c = n.config.clone();
    let key = std::fs::read(&c.tls.key).unwrap();
    for gone in [&c.tls.ca, &c.tls.cert] {
        let kept = std::fs::read(gone).unwrap();
        std::fs::remove_file(gone).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sys = || Ok(Arc::new(FakeSystem::new(&["eth0"], false)));
        let started = tokio::time::timeout(
            Duration::from_secs(5),
            lvs_agent::run::serve(&c, listener, sys, std::future::pending()),
        )
        .await
        .expect("it stops at once, it does not wait for a pairing code");
        let e = started.expect_err("refused").to_string();
        assert!(e.contains("this node was enrolled") && e.contains(&gone.display().to_string()), "{e}");
        assert!(e.contains("is missing: restore"), "{e}");
        assert!(!c.state_dir.join("pairing.json").exists(), "a new pairing code was made");
        // `lvs-agent pairing-code` refuses as well.
        let e = lvs_agent::run::pairing_code(&c, false, Duration::from_secs(60)).unwrap_err().to_string();
        assert!(e.contains("this node was enrolled"), "{e}");
        assert_eq!(std::fs::read(&c.tls.key).unwrap(), key, "the key is kept");
        std::fs::write(gone, kept).unwrap();
    }
    // A node enrolled before the mark existed: its accepted spec is the evidence.
    let dir = tempfile::tempdir().unwrap();
    let paths =
        TlsPaths { ca: dir.path().join("ca.pem"), cert: dir.path().join("a.pem"), key: dir.path().join("k") };
    assert_eq!(
        lvs_agent::server::enrol::standing(&paths, dir.path()),
        lvs_agent::server::enrol::Standing::New
    );
    std::fs::write(dir.path().join("state.json"), "{}").unwrap();
    assert!(matches!(
        lvs_agent::server::enrol::standing(&paths, dir.path()),
        lvs_agent::server::enrol::Standing::Broken(_)
    ));
}

/// Revocation cannot be rolled back by an admin: an empty or older list, another CA's, a
/// stale copy of the PKI directory, or bare serials are all refused, and the revoked
/// caller stays out.
#[tokio::test]
async fn an_admins_older_or_empty_list_cannot_un_revoke() {
    let n = node().await;
    let ctl = n.enrolled().await;
    let _alice = n.caller("alice", Role::Admin);
    // The PKI directory as it was before the revocation (a stale copy on another box).
    let stale = n.dir.path().join("pki-stale");
    std::fs::create_dir_all(&stale).unwrap();
    for e in std::fs::read_dir(n.pki.dir()).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), stale.join(e.file_name())).unwrap();
        }
    }
    let stale = Pki::new(stale);
    let old_list = stale.revocation_list().unwrap();
    n.pki.revoke("admin:alice").unwrap();
    let spec =
        lvs_controller::planner::plan(&n.fleet_cluster()).into_iter().find(|s| s.node == "rs1").unwrap();
    let ours = lvs_controller::pki::crl_number(&n.pki.revocation_list().unwrap()).unwrap();
    let plan = ctl.plan("rs1", &spec, "", Duration::ZERO, false).await.unwrap();
    assert!(
        plan.revocation_number < ours,
        "the node holds the list of its enrolment: apply sends the new one"
    );
    let pushed = lvs_controller::ops::trust::push_revoked(&ctl, &n.pki, &["rs1".into()]).await.unwrap();
    assert_eq!(pushed[0].1.as_ref().unwrap(), &1);
    // Every plan says which list the node holds: the next apply sends it only a newer one.
    let plan = ctl.plan("rs1", &spec, "", Duration::ZERO, false).await.unwrap();
    assert_eq!(
        Some(plan.revocation_number),
        lvs_controller::pki::crl_number(&n.pki.revocation_list().unwrap())
    );
    // The stale directory's list (number 1, nothing revoked): refused as older.
    let e = ctl.set_revoked("rs1", &old_list).await.unwrap_err();
    assert!(e.to_string().contains("older than the one this node holds"), "{e}");
    // Another CA's empty list with a higher number: refused as unsigned.
    let other = Pki::new(n.dir.path().join("other"));
    other.init("other", false).unwrap();
    other.revoke("admin:controller").unwrap();
    let forged = other.revocation_list().unwrap();
    let e = ctl.set_revoked("rs1", &forged).await.unwrap_err();
    assert!(e.to_string().contains("not signed by this node's cluster CA"), "{e}");
    // Bare serials (an empty list the old way): refused.
    let mut c = ctl.client("rs1").unwrap();
    let e = c.set_revoked(lvs_proto::pb::SetRevokedRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // alice is still out, and the list is kept for a restart.
    let e = n.fleet(&Pki::new(n.dir.path().join("caller-alice"))).facts("rs1").await.unwrap_err();
    assert!(
        matches!(&e, NodeError::Denied(m) if m.contains("admin:alice") && m.contains("is revoked")),
        "{e}"
    );
    let kept = lvs_agent::server::Revoked::open(&n.config.state_dir).unwrap();
    assert_eq!(kept.len(), 1);
}

#[tokio::test]
async fn a_pairing_code_lives_at_most_seven_days() {
    let n = node().await;
    n.code().await;
    let e = lvs_agent::run::pairing_code(&n.config, true, Duration::from_secs(u64::MAX)).unwrap_err();
    assert!(e.to_string().contains("between 1 s and 7 days"), "{e}");
    lvs_agent::run::pairing_code(&n.config, true, Duration::from_secs(3600)).expect("an hour is fine");
}

/// A rotation cut short by a crash never leaves a new key beside the old certificate:
/// before the key's rename the old pair loads, after it the new certificate is moved in.
#[test]
fn a_crash_in_the_middle_of_a_rotation_leaves_a_pair_that_loads() {
    use lvs_agent::server::{Credentials, csr_pem};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("test", false).unwrap();
    let old = pki.issue_agent("rs1", false).unwrap();
    let paths = TlsPaths { ca: pki.ca().cert, cert: old.cert.clone(), key: old.key.clone() };
    let next = |p: &Path| PathBuf::from(format!("{}.next", p.display()));
    let key = rcgen::KeyPair::generate().unwrap();
    let signed = pki.sign_agent_csr("rs1", &csr_pem("rs1", &key).unwrap()).unwrap();
    let old_cert = std::fs::read(&paths.cert).unwrap();
    // Cut before the commit: both new files beside the old pair.
    std::fs::write(next(&paths.key), key.serialize_pem()).unwrap();
    std::fs::write(next(&paths.cert), &signed.pem).unwrap();
    let c = Credentials::load("rs1", &paths).expect("the old pair loads");
    assert_ne!(c.info().serial, signed.issued.serial);
    assert_eq!(std::fs::read(&paths.cert).unwrap(), old_cert);
    assert!(!next(&paths.key).exists() && !next(&paths.cert).exists());
    // Cut after the commit: the new key in place, its certificate still beside.
    std::fs::write(&paths.key, key.serialize_pem()).unwrap();
    std::fs::write(next(&paths.cert), &signed.pem).unwrap();
    let c = Credentials::load("rs1", &paths).expect("the new pair loads");
    assert_eq!(c.info().serial, signed.issued.serial);
}

/// A damaged revocation list refuses start: it must not read as "nothing revoked".
#[tokio::test]
async fn a_damaged_revocation_list_refuses_start() {
    let n = node().await;
    let _fleet = n.enrolled().await;
    let c = n.config.clone();
    std::fs::write(c.state_dir.join(lvs_agent::server::REVOKED_FILE), b"damaged").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sys = || Ok(Arc::new(FakeSystem::new(&["eth0"], false)));
    let e = tokio::time::timeout(
        Duration::from_secs(5),
        lvs_agent::run::serve(&c, listener, sys, std::future::pending()),
    )
    .await
    .expect("it stops at once")
    .expect_err("refused");
    assert!(e.to_string().contains("refusing to start") && e.to_string().contains("revoked.crl"), "{e}");
}
