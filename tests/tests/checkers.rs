//! Every health-check kind against real servers: an HTTPS server with a certificate from a
//! test CA, busybox httpd, lighttpd (which keeps connections alive), servers that close a
//! kept connection under the prober, scripts whose exit status flips, a notify hook that
//! writes what it was told. Each test runs in a network namespace of its own (root; skipped elsewhere
//! unless CI requires it) where 198.18.0.0/16 is local on `lo`, so every real server is a
//! real socket on a test address. The director's IPVS is the recording fake (this host's
//! kernel has none); the VM suite proves the same weights on a real IPVS table.
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lvs_agent::health::Scripts;
use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::Agent;
use lvs_agent::reconcile::Store;
use lvs_proto::NodeSpec;
use lvs_proto::reply::{EventKind, NodeStatus};

fn root() -> bool {
    lvs_tests::root_suite_can_run(None)
}

/// Run `f` on a thread of its own inside a fresh network namespace with the test range
/// local; processes it starts (httpd, scripts) inherit the namespace.
fn in_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread, which owns nothing else yet.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
        for args in [&["link", "set", "lo", "up"][..], &["addr", "add", "198.18.0.0/16", "dev", "lo"]] {
            assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(f());
    })
    .join()
    .unwrap();
}

/// The definition's director spec for `service` (a `[[services]]` table using rs1..rs3
/// and the sorry node), planned by the controller.
fn director_spec(service: &str) -> NodeSpec {
    let text = format!(
        r#"
[cluster]
name = "checks"
generation = 1
[time]
ntp_server = "198.18.0.1"
[[lans]]
name = "lan"
cidr = "198.18.0.0/16"
[[nodes]]
name = "router"
role = "router"
agent = "198.18.0.1:7443"
interfaces = [{{ name = "eth0", lan = "lan", address = "198.18.0.1/16" }}]
[[nodes]]
name = "director"
role = "director"
agent = "198.18.0.2:7443"
interfaces = [{{ name = "eth1", lan = "lan", address = "198.18.0.2/16" }}]
vips = [{{ address = "198.18.0.100/32", interface = "eth1" }}]
{nodes}
[[services]]
name = "web"
vip = "198.18.0.100"
port = 80
{service}
"#,
        nodes = ["rs1", "rs2", "rs3", "sorry"]
            .iter()
            .enumerate()
            .map(|(i, n)| format!(
                "[[nodes]]\nname = \"{n}\"\nrole = \"real_server\"\nagent = \"198.18.1.{a}:7443\"\ngateway = \"198.18.0.1\"\ninterfaces = [{{ name = \"eth0\", lan = \"lan\", address = \"198.18.1.{a}/16\" }}]\n",
                a = 11 + i
            ))
            .collect::<String>()
    );
    let loaded =
        lvs_controller::load::load_str("checks.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let plan = lvs_controller::planner::plan(&loaded.cluster);
    plan.into_iter().find(|s| s.node == "director").expect("a director spec")
}

struct Director {
    agent: Arc<Agent<FakeSystem>>,
    sys: Arc<FakeSystem>,
    _state: tempfile::TempDir,
}

impl Director {
    async fn up(spec: &NodeSpec) -> Director {
        Director::with_scripts(spec, Scripts::default()).await
    }

    /// [`Director::up`] whose checks and hooks come from `scripts`.
    async fn with_scripts(spec: &NodeSpec, scripts: Scripts) -> Director {
        let state = tempfile::tempdir().unwrap();
        let sys = Arc::new(FakeSystem::new(&["eth1"], true));
        let agent = Agent::with_scripts("director", sys.clone(), Store::new(state.path()), scripts);
        let r = agent.apply(spec, "", false).await.expect("applied");
        assert!(r.converged, "{r:?}");
        Director { agent, sys, _state: state }
    }

    /// Weights in the (fake) kernel table by real-server address.
    fn weights(&self) -> Vec<(SocketAddr, u32)> {
        let t = self.sys.ipvs.lock().unwrap();
        let mut w: Vec<(SocketAddr, u32)> = t
            .iter()
            .flatten()
            .flat_map(|s| s.destinations.iter().map(|d| (d.dest.addr, d.dest.weight)))
            .collect();
        w.sort();
        w
    }

    fn weight(&self, rs: &str) -> Option<u32> {
        let a: SocketAddr = rs.parse().unwrap();
        self.weights().into_iter().find(|(d, _)| *d == a).map(|(_, w)| w)
    }

    async fn status(&self) -> NodeStatus {
        self.agent.status(None).await.unwrap()
    }

    /// Wait (up to `limit`) until `cond` holds on the director; how long it took.
    async fn until(&self, limit: Duration, what: &str, cond: impl Fn(&Director) -> bool) -> Duration {
        let t0 = Instant::now();
        while !cond(self) {
            assert!(t0.elapsed() < limit, "not within {limit:?}: {what}; weights {:?}", self.weights());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        t0.elapsed()
    }
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// A node's script directory as its owner would make it (root's, writable by root alone),
/// and a directory the scripts, which run as an unprivileged user, can write to.
struct ScriptDir {
    _dir: tempfile::TempDir,
    scripts: PathBuf,
    /// World-writable: flags the test sets and what the scripts record.
    out: PathBuf,
}

impl ScriptDir {
    fn new() -> ScriptDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode =
            |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        mode(dir.path(), 0o755);
        let scripts = dir.path().join("scripts");
        let out = dir.path().join("out");
        std::fs::create_dir(&scripts).unwrap();
        std::fs::create_dir(&out).unwrap();
        mode(&scripts, 0o755);
        mode(&out, 0o777);
        ScriptDir { _dir: dir, scripts, out }
    }

    /// A shell script `name` in the directory (the agent runs it without a shell of its
    /// own, by its `#!` line); its name, as a spec names it.
    fn script(&self, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.scripts.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        name.to_string()
    }

    /// The node's policy: this directory, the default user.
    fn policy(&self) -> Scripts {
        Scripts::new(&self.scripts, None)
    }
}

mod tls_server {
    //! A real HTTPS server: TLS from rustls with a certificate of a test CA, answering every
    //! request with `ok`, and remembering the SNI each client sent.
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct TestCa {
        pub pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl TestCa {
        pub fn new(name: &str) -> TestCa {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            let cert = p.self_signed(&key).unwrap();
            TestCa { pem: cert.pem(), issuer: Issuer::new(p, key) }
        }

        /// The lab's real-server CA, its certificate written to `dir/rs-ca.pem` (the
        /// check's `ca_file`).
        pub fn in_file(dir: &Path) -> (TestCa, PathBuf) {
            let ca = TestCa::new("lab real-server CA");
            let file = dir.join("rs-ca.pem");
            std::fs::write(&file, &ca.pem).unwrap();
            (ca, file)
        }

        /// A server certificate for `dns` and `ip`, with its key (DER).
        pub fn leaf(
            &self,
            dns: &str,
            ip: std::net::IpAddr,
        ) -> (rustls::pki_types::CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>) {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec![dns.to_string()]).unwrap();
            p.subject_alt_names.push(SanType::IpAddress(ip));
            let cert = p.signed_by(&key, &self.issuer).unwrap();
            (cert.der().clone(), rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        }
    }

    /// Serve HTTPS on `addr` with the certificate `ca` issues for `dns`; the SNIs seen (one
    /// per handshake). With `keep`, a connection serves request after request (HTTP/1.1
    /// keep-alive); without, it closes after one answer.
    pub async fn serve(
        addr: SocketAddr,
        ca: &TestCa,
        dns: &str,
        keep: bool,
    ) -> Arc<Mutex<Vec<Option<String>>>> {
        let (cert, key) = ca.leaf(dns, addr.ip());
        let cfg =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    s.lock().unwrap().push(tls.get_ref().1.server_name().map(str::to_string));
                    let mut buf = [0u8; 1024];
                    loop {
                        let mut req = Vec::new();
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        let answer: &[u8] = if keep {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                        };
                        let _ = tls.write_all(answer).await;
                        if !keep {
                            let _ = tls.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        seen
    }
}

#[test]
fn https_checks_verify_the_certificate_against_the_named_ca_and_sni() {
    if !root() {
        return;
    }
    in_netns(|| async {
        use lvs_proto::spec::{DestinationCheck, ProbeKind, TlsVerify};
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_file) = tls_server::TestCa::in_file(dir.path());
        let rs1: SocketAddr = "198.18.1.11:443".parse().unwrap();
        let seen = tls_server::serve(rs1, &ca, "www.lab.test", false).await;
        let spec = director_spec(&format!(
            "real_servers = [{{ node = \"rs1\" }}]\n\
             check = {{ kind = \"https\", port = 443, host = \"www.lab.test\", ca_file = \"{}\", \
             expect_body = \"ok\", expect_digest = \"{}\", interval = \"200ms\", timeout = \"150ms\", fall = 2 }}",
            ca_file.display(),
            md5_hex(b"ok\n")
        ));
        let v = &spec.virtual_services[0];
        let hc = v.health_check.clone().unwrap();
        let probe = |hc: lvs_proto::spec::HealthCheckSpec| async move {
            lvs_agent::health::probe("web", &v.key, "198.18.1.11:80".parse().unwrap(), &hc, &Arc::default())
                .await
        };
        // The CA file, the SNI the definition names, the body and its MD5: healthy.
        probe(hc.clone()).await.expect("verified against the test CA");
        assert_eq!(
            seen.lock().unwrap().last().cloned().flatten().as_deref(),
            Some("www.lab.test"),
            "SNI sent"
        );
        let with_tls = |sni: Option<&str>, verify: TlsVerify| {
            let mut h = hc.clone();
            let ProbeKind::Http { tls: Some(t), .. } = &mut h.probe else { unreachable!() };
            t.sni = sni.map(str::to_string);
            t.verify = verify;
            h
        };
        // A name the certificate does not hold: refused.
        let e = probe(with_tls(Some("other.lab.test"), TlsVerify::CaFile(ca_file.display().to_string())))
            .await
            .unwrap_err();
        assert!(
            e.contains("TLS handshake") && e.contains("certificate not valid for name \"other.lab.test\""),
            "{e}"
        );
        // No SNI: the certificate must name the address, which it does.
        probe(with_tls(None, TlsVerify::CaFile(ca_file.display().to_string()))).await.expect("IP SAN");
        assert_eq!(seen.lock().unwrap().last().cloned().flatten(), None, "no SNI for an address");
        // The system's trust store does not know the test CA.
        let e = probe(with_tls(Some("www.lab.test"), TlsVerify::System)).await.unwrap_err();
        assert!(e.contains("UnknownIssuer") || e.contains("trust store holds no CA"), "{e}");
        // Skipped only because the check says so: then anything answering TLS passes.
        probe(with_tls(Some("other.lab.test"), TlsVerify::Skip)).await.expect("unverified");
        // Another CA's certificate on the same address: refused.
        let rogue = tls_server::TestCa::new("rogue");
        let rs2: SocketAddr = "198.18.1.12:443".parse().unwrap();
        tls_server::serve(rs2, &rogue, "www.lab.test", false).await;
        let e =
            lvs_agent::health::probe("web", &v.key, "198.18.1.12:80".parse().unwrap(), &hc, &Arc::default())
                .await
                .unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{e}");
        // A wrong digest.
        let mut h = hc.clone();
        if let ProbeKind::Http { expect_digest, .. } = &mut h.probe {
            *expect_digest = Some("0".repeat(32));
        }
        let e = probe(h).await.unwrap_err();
        assert!(e.contains(&format!("body md5 {}", md5_hex(b"ok\n"))), "{e}");

        // Through the agent: rs2 (the rogue certificate) is quarantined, rs1 stays.
        let spec = director_spec(&format!(
            "real_servers = [{{ node = \"rs1\" }}, {{ node = \"rs2\" }}]\n\
             check = {{ kind = \"https\", port = 443, sni = \"www.lab.test\", ca_file = \"{}\", interval = \"200ms\", timeout = \"150ms\", fall = 2 }}",
            ca_file.display()
        ));
        assert!(spec.virtual_services[0].destinations.iter().all(|d| d.check == DestinationCheck::Service));
        let d = Director::up(&spec).await;
        d.until(Duration::from_secs(5), "rs2 quarantined", |d| d.weight("198.18.1.12:80") == Some(0)).await;
        let st = d.status().await;
        let h2 = st
            .health
            .iter()
            .find(|h| h.destination.port() == 80 && h.destination.ip().to_string() == "198.18.1.12")
            .unwrap();
        assert!(h2.quarantined && h2.last_error.contains("UnknownIssuer"), "{h2:?}");
        assert_eq!(d.weight("198.18.1.11:80"), Some(1), "rs1 verified and in service");
    });
}

#[test]
fn an_exec_check_decides_by_exit_status_sees_its_destination_and_is_killed_when_it_hangs() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let sd = ScriptDir::new();
        let d = sd.out.display().to_string();
        // Fails while `down-<address>` exists; records what it was told and who it is; hangs
        // on `hang`.
        let check = sd.script(
            "check",
            &format!(
                "echo \"$LVS_SERVICE $LVS_VIRTUAL $LVS_RS_ADDRESS $LVS_RS_PORT $1 $HOME\" > {d}/seen-$LVS_RS_ADDRESS\n\
                 echo \"$(id -u) $(id -G) $(grep -E '^(CapEff|CapPrm|CapAmb|NoNewPrivs)' /proc/self/status | tr -s '\\t\\n' '  ')\" > {d}/who\n\
                 [ -e {d}/hang ] && sleep 37\n\
                 [ -e {d}/down-$LVS_RS_ADDRESS ] && {{ printf 'flag\\033[2J set\\n' >&2; exit 3; }}\nexit 0"
            ),
        );
        let spec = director_spec(&format!(
            "real_servers = [{{ node = \"rs1\" }}, {{ node = \"rs2\", check = {{ port = 8080 }} }}]\n\
             check = {{ kind = \"exec\", command = [\"{check}\", \"$HOME; rm -rf /\"], interval = \"200ms\", timeout = \"150ms\", rise = 2, fall = 2 }}",
        ));
        let dir_ = Director::with_scripts(&spec, sd.policy()).await;
        let flag = |ip: &str| sd.out.join(format!("down-{ip}"));
        // Both destinations probed at least once (a loaded host starts the first probes late).
        let t0 = Instant::now();
        while !["seen-198.18.1.11", "seen-198.18.1.12", "who"].iter().all(|f| sd.out.join(f).exists()) {
            assert!(t0.elapsed() < Duration::from_secs(5), "the check never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Its argument arrives as written (no shell expanded it), its environment is clean
        // but for the destination; rs2's override probes port 8080.
        let seen = std::fs::read_to_string(sd.out.join("seen-198.18.1.11")).unwrap();
        assert_eq!(seen.trim(), "web TCP 198.18.0.100:80 198.18.1.11 80 $HOME; rm -rf / /", "{seen}");
        let seen = std::fs::read_to_string(sd.out.join("seen-198.18.1.12")).unwrap();
        assert!(seen.contains(" 198.18.1.12 8080 "), "{seen}");
        // It ran as the script user, not root, with no group of root's, no capability (the
        // agent's test process has them all) and no way to gain any.
        let who = std::fs::read_to_string(sd.out.join("who")).unwrap();
        let user = sd.policy().user().unwrap().clone();
        let want = format!(
            "{} {} CapPrm: 0000000000000000 CapEff: 0000000000000000 CapAmb: 0000000000000000 NoNewPrivs: 1",
            user.uid, user.gid
        );
        assert_eq!(who.split_whitespace().collect::<Vec<_>>().join(" "), want, "{who}");
        // Its exit status flips: quarantined after fall, restored after rise.
        std::fs::write(flag("198.18.1.12"), "").unwrap();
        dir_.until(Duration::from_secs(3), "rs2 quarantined", |d| d.weight("198.18.1.12:80") == Some(0))
            .await;
        let st = dir_.status().await;
        let h = st.health.iter().find(|h| h.quarantined).unwrap();
        // Its first line, without the escape that would clear the admin's screen.
        assert!(h.last_error.ends_with("exit status 3: flag[2J set"), "{h:?}");
        assert_eq!(dir_.weight("198.18.1.11:80"), Some(1));
        std::fs::remove_file(flag("198.18.1.12")).unwrap();
        dir_.until(Duration::from_secs(3), "rs2 restored", |d| d.weight("198.18.1.12:80") == Some(1)).await;
        // A hanging script is killed at its timeout, with what it started: no pile-up.
        std::fs::write(sd.out.join("hang"), "").unwrap();
        dir_.until(Duration::from_secs(3), "both quarantined", |d| d.weights().iter().all(|(_, w)| *w == 0))
            .await;
        let st = dir_.status().await;
        assert!(
            st.health.iter().all(|h| h.last_error.contains("no verdict within 150 ms (killed)")),
            "{:?}",
            st.health
        );
        let hung = || {
            let o = Command::new("pgrep").args(["-f", "^sleep 37$"]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).lines().count()
        };
        // Two destinations, a probe each every 200 ms killed at 150 ms: at most two alive.
        let alive = hung();
        assert!(alive <= 2, "{alive} hung scripts' children alive: they pile up");
        // The director goes (its probes are dropped mid-run): nothing it started survives.
        drop(dir_);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(hung(), 0, "a dropped probe leaves its script's children behind");
        std::fs::remove_file(sd.out.join("hang")).unwrap();
    });
}

#[test]
fn below_quorum_the_sorry_server_joins_the_hook_runs_and_hysteresis_holds_it() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let sd = ScriptDir::new();
        let d = sd.out.display().to_string();
        let check = sd.script("check", &format!("[ -e {d}/down-$LVS_RS_ADDRESS ] && exit 1; exit 0"));
        // The hook appends one line per run: what happened and to whom.
        let hook = sd.script(
            "hook",
            &format!(
                "echo \"$1 $LVS_EVENT $LVS_SERVICE ${{LVS_RS_NODE:--}} ${{LVS_IN_SERVICE:--}}\" >> {d}/hooks"
            ),
        );
        let spec = director_spec(&format!(
            "real_servers = [{{ node = \"rs1\" }}, {{ node = \"rs2\" }}, {{ node = \"rs3\" }}]\n\
             sorry_server = {{ node = \"sorry\" }}\nquorum = 2\nhysteresis = 1\nnotify = [\"{hook}\", \"page\"]\n\
             check = {{ kind = \"exec\", command = [\"{check}\"], interval = \"200ms\", timeout = \"150ms\", rise = 1, fall = 1 }}",
        ));
        let dir_ = Director::with_scripts(&spec, sd.policy()).await;
        let mut events = dir_.agent.events().subscribe();
        let down = |rs: &str, on: bool| {
            let f = sd.out.join(format!("down-198.18.1.{}", 10 + rs[2..].parse::<u32>().unwrap()));
            if on { std::fs::write(f, "").unwrap() } else { std::fs::remove_file(f).unwrap() }
        };
        let sorry = |d: &Director| d.weight("198.18.1.14:80");
        // Healthy: 3 of 3, the sorry server is not in the table.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(sorry(&dir_), None);
        // Quorum 2, hysteresis 1: lost below 1 in service; two down keep it (1 in service).
        down("rs1", true);
        down("rs2", true);
        dir_.until(Duration::from_secs(3), "rs1, rs2 out", |d| {
            d.weight("198.18.1.11:80") == Some(0) && d.weight("198.18.1.12:80") == Some(0)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(sorry(&dir_), None, "1 in service is inside the band: not degraded yet");
        // The third goes: quorum lost, the sorry server joins with weight 1.
        down("rs3", true);
        dir_.until(Duration::from_secs(3), "sorry server in", |d| sorry(d) == Some(1)).await;
        let st = dir_.status().await;
        let q = &st.services[0];
        assert!(q.degraded && (q.in_service, q.total, q.quorum) == (0, 3, 2), "{q:?}");
        // Two come back: 2 in service is inside the band again: still degraded.
        down("rs1", false);
        down("rs2", false);
        dir_.until(Duration::from_secs(3), "rs1, rs2 back", |d| {
            d.weight("198.18.1.11:80") == Some(1) && d.weight("198.18.1.12:80") == Some(1)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(sorry(&dir_), Some(1), "2 in service < quorum + hysteresis: the sorry server stays");
        // All three: regained, the sorry server leaves.
        down("rs3", false);
        dir_.until(Duration::from_secs(3), "sorry server out", |d| sorry(d).is_none()).await;
        assert!(!dir_.status().await.services[0].degraded);
        // Events and hook runs, in order.
        let mut said = Vec::new();
        while let Ok(e) = events.try_recv() {
            if e.kind == EventKind::Health {
                said.push(e.message);
            }
        }
        assert!(said.iter().any(|m| m.contains("quorum lost: 0 of 3 real server(s) in service, quorum 2; sorry server 198.18.1.14:80 takes traffic")), "{said:#?}");
        assert!(said.iter().any(|m| m.contains("quorum regained: 3 of 3")), "{said:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hooks = std::fs::read_to_string(sd.out.join("hooks")).unwrap();
        let lines: Vec<&str> = hooks.lines().collect();
        let want = [
            "page down web rs1 -",
            "page down web rs2 -",
            "page down web rs3 -",
            "page quorum-lost web - 0",
            "page up web rs1 -",
            "page up web rs2 -",
            "page up web rs3 -",
            "page quorum-regained web - 3",
        ];
        let mut sorted = lines.clone();
        // Transitions of one flush run in key order; compare as sets of the same size.
        sorted.sort();
        let mut w = want.to_vec();
        w.sort();
        assert_eq!(sorted, w, "{hooks}");
        let lost = lines.iter().position(|l| l.contains("quorum-lost")).unwrap();
        let third_down = lines.iter().position(|l| *l == "page down web rs3 -").unwrap();
        assert!(third_down < lost, "the quorum is lost after the server that took it: {hooks}");

        // A new spec can cross the quorum by itself: rs2 down (2 of 3 in service, inside
        // the band), then quorum 3 without hysteresis. The change is published like a
        // probe's, and remembered.
        down("rs2", true);
        dir_.until(Duration::from_secs(3), "rs2 out", |d| d.weight("198.18.1.12:80") == Some(0)).await;
        assert_eq!(sorry(&dir_), None);
        let mut stricter = spec.clone();
        stricter.generation = 2;
        stricter.virtual_services[0].quorum = 3;
        stricter.virtual_services[0].hysteresis = 0;
        assert!(dir_.agent.apply(&stricter, "", false).await.unwrap().converged);
        assert_eq!(sorry(&dir_), Some(1), "the apply itself brings the sorry server in");
        let hooks = dir_
            .until(Duration::from_secs(3), "the hook ran for the new quorum", |_| {
                std::fs::read_to_string(sd.out.join("hooks"))
                    .unwrap_or_default()
                    .contains("quorum-lost web - 2")
            })
            .await;
        println!("quorum lost by a spec change: hook after {hooks:?}");
        assert!(dir_.status().await.services[0].degraded);
        let mut said = Vec::new();
        while let Ok(e) = events.try_recv() {
            said.push(e.message);
        }
        assert!(
            said.iter().any(|m| m.contains("quorum lost: 2 of 3 real server(s) in service, quorum 3")),
            "{said:#?}"
        );
    });
}

#[test]
fn a_real_server_probed_on_another_address_and_port_with_a_retry_interval() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), "ok\n").unwrap();
        std::fs::write(www.path().join("alive"), "yes\n").unwrap();
        // rs2's health endpoint: another address (its management address) and port.
        let mut httpd = Command::new("busybox")
            .args(["httpd", "-f", "-p", "198.18.2.12:8080", "-h"])
            .arg(www.path())
            .spawn()
            .expect("busybox httpd");
        let mut main = Command::new("busybox")
            .args(["httpd", "-f", "-p", "198.18.1.11:80", "-h"])
            .arg(www.path())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Interval 2 s, fall 3: without a retry interval a failure takes 4-6 s to act on.
        let spec = director_spec(
            "real_servers = [{ node = \"rs1\" }, { node = \"rs2\", check = { connect_ip = \"198.18.2.12\", port = 8080, path = \"/alive\", expect_body = \"yes\" } }]\n\
             check = { kind = \"http\", path = \"/\", interval = \"2s\", timeout = \"150ms\", retry_interval = \"200ms\", rise = 1, fall = 3 }",
        );
        let d = Director::up(&spec).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let st = d.status().await;
        assert!(st.health.iter().all(|h| h.probes >= 1 && h.up), "{:?}", st.health);
        assert_eq!(d.weights().iter().map(|(_, w)| *w).collect::<Vec<_>>(), [1, 1]);
        // rs2's own endpoint goes away (its service port, unused here, is not probed).
        httpd.kill().unwrap();
        httpd.wait().unwrap();
        let took = d
            .until(Duration::from_secs(5), "rs2 quarantined", |d| d.weight("198.18.1.12:80") == Some(0))
            .await;
        // First failure within one interval, then two retries 200 ms apart.
        assert!(took < Duration::from_millis(2000 + 2 * 200 + 800), "took {took:?}");
        let st = d.status().await;
        let h = st.health.iter().find(|h| h.quarantined).unwrap();
        assert!(h.last_error.contains("198.18.2.12:8080"), "the override's target: {h:?}");
        assert_eq!(d.weight("198.18.1.11:80"), Some(1));
        main.kill().unwrap();
        main.wait().unwrap();
    });
}

#[test]
fn a_spec_whose_script_is_missing_or_unsafe_on_the_director_is_refused_whole() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let spec = director_spec(
            "real_servers = [{ node = \"rs1\" }]\nnotify = [\"hook\"]\n\
             check = { kind = \"exec\", command = [\"check\"], interval = \"1s\" }",
        );
        let sd = ScriptDir::new();
        let state = tempfile::tempdir().unwrap();
        let sys = Arc::new(FakeSystem::new(&["eth1"], true));
        let agent = Agent::with_scripts("director", sys.clone(), Store::new(state.path()), sd.policy());
        let e = agent.apply(&spec, "", false).await.unwrap_err().to_string();
        assert!(e.contains("preflight failed, nothing was changed"), "{e}");
        assert!(e.contains("check check: ") && e.contains("scripts/check: No such file"), "{e}");
        assert!(e.contains("notify hook hook: ") && e.contains("scripts/hook: No such file"), "{e}");
        // Present, but others could change it: refused as well (keepalived's script security).
        use std::os::unix::fs::PermissionsExt;
        sd.script("check", "exit 0");
        sd.script("hook", "exit 0");
        std::fs::set_permissions(sd.scripts.join("check"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = agent.apply(&spec, "", false).await.unwrap_err().to_string();
        assert!(e.contains("scripts/check is writable by others"), "{e}");
        assert!(!e.contains("notify hook"), "{e}");
        // A script user that is root is never used.
        let as_root = Agent::with_scripts(
            "director",
            sys.clone(),
            Store::new(state.path()),
            Scripts::new(&sd.scripts, Some("root")),
        );
        let e = as_root.apply(&spec, "", false).await.unwrap_err().to_string();
        assert!(e.contains("script user `root` is root"), "{e}");
        assert!(sys.ipvs.lock().unwrap().iter().flatten().next().is_none(), "no IPVS service was made");
    });
}

/// A child process killed (and reaped) when dropped, a failed assertion included.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// lighttpd serving `ok` on port 80 of every address of the namespace, closing a kept-alive
/// connection after `max_requests` answers.
fn lighttpd(www: &Path, max_requests: u32) -> Reap {
    std::fs::write(www.join("index.html"), "ok\n").unwrap();
    let conf = www.join("lighttpd.conf");
    std::fs::write(
        &conf,
        format!(
            "server.document-root = \"{}\"\nserver.port = 80\nindex-file.names = (\"index.html\")\n\
             server.max-keep-alive-requests = {max_requests}\n",
            www.display()
        ),
    )
    .unwrap();
    let c = Command::new("lighttpd").arg("-D").arg("-f").arg(&conf).spawn().expect("lighttpd");
    std::thread::sleep(Duration::from_millis(300));
    Reap(c)
}

/// TCP connections this thread's network namespace has accepted (PassiveOpens; the
/// thread's own view: /proc/net is the process's, whose namespace is not this thread's).
fn accepted() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names.split_whitespace().position(|n| n == "PassiveOpens").unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// What the director's `lvs_health_probe_connections_total` says, over its services.
async fn probe_connections_metric(d: &Director) -> u64 {
    let snap = d.agent.metrics_snapshot(None).await;
    let text = lvs_agent::telemetry::render(
        d.agent.events().metrics(),
        &snap,
        lvs_agent::telemetry::Format::Classic,
    );
    text.lines()
        .filter(|l| l.starts_with("lvs_health_probe_connections_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Probes and transitions of every destination so far, summed.
async fn probes_and_transitions(d: &Director) -> (u64, u64) {
    let st = d.status().await;
    (st.health.iter().map(|h| h.probes).sum(), st.health.iter().map(|h| h.transitions).sum())
}

/// A server on `addr` that answers one request per connection (keep-alive by the headers)
/// and then closes it: at once after the answer (`at_next` false: the FIN is there before
/// the next probe), or only when the next request comes, unread (`at_next`: the prober
/// writes into a dead connection, the race of an idle timeout). How many connections it
/// closed while a request was waiting.
async fn one_answer_per_connection(
    addr: &str,
    at_next: bool,
) -> (tokio::task::JoinHandle<()>, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let unanswered = Arc::new(AtomicU64::new(0));
    let count = unanswered.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                for answer in [true, false] {
                    let mut req = Vec::new();
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    if !answer {
                        count.fetch_add(1, Ordering::Relaxed);
                        return; // dropped with the request unread: a reset
                    }
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n").await;
                    if !at_next {
                        return;
                    }
                }
            });
        }
    });
    (task, unanswered)
}

#[test]
fn kept_alive_connections_carry_the_probes_and_one_the_server_closed_is_never_a_failure() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let www = tempfile::tempdir().unwrap();
        let check = "check = { kind = \"http\", interval = \"100ms\", timeout = \"80ms\", rise = 1, fall = 1";
        let spec = director_spec(&format!("real_servers = [{{ node = \"rs1\" }}]\n{check} }}"));

        // 1. lighttpd keeps the connection for 1,000 answers: one connection, many probes.
        let server = lighttpd(www.path(), 1000);
        let (a0, d) = (accepted(), Director::up(&spec).await);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let (probes, transitions) = probes_and_transitions(&d).await;
        let conns = accepted() - a0;
        assert!(probes >= 15, "{probes} probes in 2 s");
        assert_eq!(
            (conns, transitions),
            (1, 0),
            "{probes} probes on one kept connection, healthy throughout"
        );
        assert_eq!(probe_connections_metric(&d).await, 1, "the metric counts the one connection");
        drop(d);

        // 2. The server closes every connection after one answer (its FIN is in before
        //    the next probe), then 3. only when the next request comes (the prober writes
        //    into a connection already dead): a new connection each time, and no failure.
        drop(server);
        for at_next in [false, true] {
            let (task, unanswered) = one_answer_per_connection("198.18.1.11:80", at_next).await;
            let (a0, d) = (accepted(), Director::up(&spec).await);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let st = d.status().await;
            drop(d);
            let h = &st.health[0];
            let (conns, unanswered) =
                (accepted() - a0, unanswered.load(std::sync::atomic::Ordering::Relaxed));
            assert_eq!(
                (h.transitions, h.failures, h.last_error.as_str()),
                (0, 0, ""),
                "at_next {at_next}: never failed: {h:?}"
            );
            assert!(h.probes >= 10, "{h:?}");
            // A connection per probe; at_next: every one but the last was written into dead.
            assert!(conns.abs_diff(h.probes) <= 1, "{conns} connections for {} probes", h.probes);
            assert!(
                if at_next { unanswered + 2 >= h.probes } else { unanswered == 0 },
                "{unanswered} unanswered"
            );
            task.abort();
            let _ = task.await;
        }

        // 4. `reuse_connection = false`, and a server that closes after every 3rd answer
        //    (`Connection: close` on it): a connection per probe, and one per three.
        let _server = lighttpd(www.path(), 3);
        for (reuse, per) in [("false", 1u64), ("true", 3)] {
            let spec = director_spec(&format!(
                "real_servers = [{{ node = \"rs1\" }}]\n{check}, reuse_connection = {reuse} }}"
            ));
            let (a0, d) = (accepted(), Director::up(&spec).await);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let (probes, transitions) = probes_and_transitions(&d).await;
            let metric = probe_connections_metric(&d).await;
            drop(d);
            let conns = accepted() - a0;
            assert_eq!(transitions, 0);
            // Read a moment apart while probes go on (the count rises as a connect begins).
            assert!(metric.abs_diff(conns) <= 1, "reuse {reuse}: metric {metric}, server accepted {conns}");
            assert!(
                conns.abs_diff(probes.div_ceil(per)) <= 1,
                "reuse {reuse}: {conns} connections for {probes} probes"
            );
        }
    });
}

#[test]
fn an_https_check_keeps_its_tls_session_one_handshake_for_many_probes() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_file) = tls_server::TestCa::in_file(dir.path());
        let seen = tls_server::serve("198.18.1.11:443".parse().unwrap(), &ca, "www.lab.test", true).await;
        let spec = |reuse: bool| {
            director_spec(&format!(
                "real_servers = [{{ node = \"rs1\" }}]\n\
                 check = {{ kind = \"https\", port = 443, host = \"www.lab.test\", ca_file = \"{}\", \
                 expect_body = \"ok\", interval = \"100ms\", timeout = \"80ms\", rise = 1, fall = 1, \
                 reuse_connection = {reuse} }}",
                ca_file.display()
            ))
        };
        for (reuse, per_probe) in [(true, false), (false, true)] {
            seen.lock().unwrap().clear();
            let d = Director::up(&spec(reuse)).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let st = d.status().await;
            drop(d);
            let h = &st.health[0];
            let handshakes = seen.lock().unwrap().len() as u64;
            assert!(h.up && h.transitions == 0 && h.probes >= 10, "reuse {reuse}: {h:?}");
            if per_probe {
                assert!(
                    handshakes.abs_diff(h.probes) <= 1,
                    "{handshakes} handshakes for {} probes",
                    h.probes
                );
            } else {
                assert_eq!(handshakes, 1, "one TLS session for {} probes", h.probes);
            }
        }
    });
}

#[test]
fn an_http_check_accepts_the_codes_and_ranges_it_names() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let www = tempfile::tempdir().unwrap();
        let _server = lighttpd(www.path(), 1000);
        let spec = |status: &str| {
            director_spec(&format!(
                "real_servers = [{{ node = \"rs1\" }}]\n\
                 check = {{ kind = \"http\", path = \"/missing\", expect_status = \"{status}\", \
                 interval = \"100ms\", timeout = \"80ms\", rise = 1, fall = 1 }}"
            ))
        };
        // lighttpd answers 404 for a page it does not have.
        let d = Director::up(&spec("200-299, 404")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let st = d.status().await;
        assert!(st.health[0].up && st.health[0].probes >= 3, "{:?}", st.health[0]);
        drop(d);
        let d = Director::up(&spec("200-299")).await;
        d.until(Duration::from_secs(3), "rs1 out on its 404", |d| d.weight("198.18.1.11:80") == Some(0))
            .await;
        let st = d.status().await;
        assert_eq!(st.health[0].last_error, "status 404 (expected 200-299)");
    });
}

#[test]
fn every_page_of_a_check_must_pass_and_they_share_the_kept_connection() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let www = tempfile::tempdir().unwrap();
        let _server = lighttpd(www.path(), 1000);
        let spec = |more: &str| {
            director_spec(&format!(
                "real_servers = [{{ node = \"rs1\" }}]\n\
                 check = {{ kind = \"http\", path = \"/\", urls = [{more}], \
                 interval = \"100ms\", timeout = \"80ms\", rise = 1, fall = 1 }}"
            ))
        };
        let (a0, d) =
            (accepted(), Director::up(&spec("{ path = \"/index.html\", expect_body = \"ok\" }")).await);
        tokio::time::sleep(Duration::from_millis(800)).await;
        let st = d.status().await;
        let conns = accepted() - a0;
        assert!(st.health[0].up && st.health[0].probes >= 5, "{:?}", st.health[0]);
        assert_eq!(conns, 1, "both pages of {} probes on one kept connection", st.health[0].probes);
        drop(d);
        let d = Director::up(&spec("{ path = \"/index.html\" }, { path = \"/missing\" }")).await;
        d.until(Duration::from_secs(3), "rs1 out on its second page", |d| {
            d.weight("198.18.1.11:80") == Some(0)
        })
        .await;
        let st = d.status().await;
        assert_eq!(st.health[0].last_error, "/missing: status 404 (expected 200)");
    });
}

#[test]
fn a_server_that_hangs_on_its_kept_connection_is_taken_out_and_back_when_it_wakes() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let www = tempfile::tempdir().unwrap();
        let server = lighttpd(www.path(), 1000);
        let spec = director_spec(
            "real_servers = [{ node = \"rs1\" }]\n\
             check = { kind = \"http\", interval = \"100ms\", timeout = \"80ms\", rise = 1, fall = 2 }",
        );
        let (a0, d) = (accepted(), Director::up(&spec).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            (accepted() - a0, d.weight("198.18.1.11:80")),
            (1, Some(1)),
            "in service on one connection"
        );
        // The server hangs (stopped, not dead): its kernel keeps the connection open and
        // even accepts new ones, but nothing answers.
        let pid = server.0.id() as i32;
        // SAFETY: kill(2) on the child this test started, still unreaped (Reap owns it).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        let took = d
            .until(Duration::from_secs(3), "rs1 out while its server hangs", |d| {
                d.weight("198.18.1.11:80") == Some(0)
            })
            .await;
        assert!(took < Duration::from_millis(1000), "fall 2 at 100 ms took {took:?}");
        let st = d.status().await;
        assert_eq!(st.health[0].last_error, "no answer within 80 ms");
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        d.until(Duration::from_secs(3), "rs1 back once its server answers", |d| {
            d.weight("198.18.1.11:80") == Some(1)
        })
        .await;
    });
}

/// Issue 30, item 4: three services in front of the same three real servers, each checking
/// port 80 the same way (the TCP service on 80, another on 8080 pointed at port 80, a
/// fwmark service), cost one probe per server per interval, counted where it lands (the
/// namespace's accepted connections), not three. The shared result still decides each
/// service's destination: a dead server is taken out of all three.
#[test]
fn services_in_front_of_the_same_servers_share_one_probe_per_server() {
    if !root() {
        return;
    }
    in_netns(|| async {
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), "ok\n").unwrap();
        // rs1 and rs2 answer; rs3 (198.18.1.13) refuses.
        let mut httpds: Vec<Reap> = ["198.18.1.11:80", "198.18.1.12:80"]
            .iter()
            .map(|a| {
                Reap(
                    Command::new("busybox")
                        .args(["httpd", "-f", "-p", a, "-h"])
                        .arg(www.path())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let check = "{ kind = \"http\", path = \"/\", port = 80, interval = \"100ms\", timeout = \"50ms\", rise = 1, fall = 2 }";
        let rss = "[{ node = \"rs1\" }, { node = \"rs2\" }, { node = \"rs3\" }]";
        let spec = director_spec(&format!(
            "check = {check}\nreal_servers = {rss}\n\n\
             [[services]]\nname = \"alt\"\nvip = \"198.18.0.100\"\nport = 8080\ncheck = {check}\nreal_servers = {rss}\n\n\
             [[services]]\nname = \"marked\"\nprotocol = \"fwmark\"\nfwmark = 7\nvip = \"198.18.0.100\"\ncheck = {check}\nreal_servers = {rss}\n"
        ));
        assert_eq!(spec.virtual_services.len(), 3);
        let d = Director::up(&spec).await;
        // rs3 is out of every service, from its one probe.
        d.until(Duration::from_secs(5), "rs3 out of all three services", |d| {
            d.weights().iter().filter(|(a, w)| a.ip().to_string() == "198.18.1.13" && *w == 0).count() == 3
        })
        .await;
        let live: Vec<u32> = d
            .weights()
            .iter()
            .filter(|(a, _)| a.ip().to_string() != "198.18.1.13")
            .map(|(_, w)| *w)
            .collect();
        assert_eq!(live, [1; 6], "{:?}", d.weights());
        // Connections accepted over 3 s: 2 live servers x 30 intervals (busybox httpd closes
        // each connection: one connection per probe). Unshared it would be 3 times that.
        let (a0, p0) = (accepted(), probes_and_transitions(&d).await.0);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (a1, p1) = (accepted(), probes_and_transitions(&d).await.0);
        let conns = a1 - a0;
        let recorded = p1 - p0;
        println!(
            "3 s, 3 services x 3 servers, interval 100 ms: {conns} connections to the 2 live servers, {recorded} results recorded over the 9 destinations"
        );
        assert!((40..=80).contains(&conns), "{conns} connections: one probe per server per interval is 60");
        // Each probe is recorded for each of the three services' destinations.
        assert!(recorded >= 3 * (conns + 20), "{recorded} recorded for {conns} connections");
        let st = d.status().await;
        assert!(
            st.health
                .iter()
                .filter(|h| h.destination.ip().to_string() == "198.18.1.13")
                .all(|h| h.quarantined),
            "{:?}",
            st.health
        );
        httpds.clear();
    });
}
