//! `cargo bench -p lvs-tests --bench fleet` (root): `lvsctl apply` and `lvsctl status`
//! against 1, 4 (the lab's shape), 50 and 500 agents on this machine.
//!
//! Everything runs in a private network namespace entered at start: 198.18.0.0/16 is
//! made local on its `lo`, every agent is a real `lvs.agent.v1` gRPC server with real
//! mutual TLS (certificates from the project's PKI) on its own node address, and a real
//! SNTP responder answers the time gate. The controller side is the `lvsctl` code itself
//! (`commands::apply::apply`, `commands::status::status`). The agents' kernel is the
//! recording fake: this measures the fleet path (fan-out, TLS, planning, diffing); the
//! kernel path is measured by the VM suite on real IPVS.
use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_agent::kernel::FakeSystem;
use lvs_agent::node::Agent;
use lvs_agent::reconcile::Store;
use lvs_controller::commands::{Ctx, apply, status};
use lvs_controller::fleet::Fleet;
use lvs_controller::pki::Pki;
use lvs_proto::agent_config::TlsPaths;

/// Address of node `i` (0: router, 1: director, 2..: real servers).
fn addr(i: usize) -> String {
    format!("198.18.{}.{}", i / 250, i % 250 + 1)
}

/// A definition with `n` nodes: a lone director for 1; else a router, a director and
/// `n - 2` real servers behind one service.
fn definition(n: usize, generation: u64) -> String {
    let mut s = format!(
        "[cluster]\nname = \"bench\"\ngeneration = {generation}\n[time]\nntp_server = \"{}\"\n\
         [[lans]]\nname = \"cluster\"\ncidr = \"198.18.0.0/16\"\n[[lans]]\nname = \"client\"\ncidr = \"198.19.0.0/24\"\n",
        addr(0)
    );
    if n > 1 {
        s += &format!(
            "[[nodes]]\nname = \"router\"\nrole = \"router\"\nagent = \"{a}:7443\"\ninterfaces = [{{ name = \"eth1\", lan = \"cluster\", address = \"{a}/16\" }}, {{ name = \"eth0\", lan = \"client\", address = \"198.19.0.1/24\" }}]\n",
            a = addr(0)
        );
    }
    s += &format!(
        "[[nodes]]\nname = \"director\"\nrole = \"director\"\nagent = \"{a}:7443\"\ninterfaces = [{{ name = \"eth1\", lan = \"cluster\", address = \"{a}/16\" }}]\nvips = [{{ address = \"198.18.255.100/32\", interface = \"eth1\", label = \"eth1:0\" }}]\n",
        a = addr(1)
    );
    for i in 2..n {
        s += &format!(
            "[[nodes]]\nname = \"rs{i}\"\nrole = \"real_server\"\nagent = \"{a}:7443\"\ninterfaces = [{{ name = \"eth0\", lan = \"cluster\", address = \"{a}/16\" }}]\ngateway = \"{r}\"\n",
            a = addr(i),
            r = addr(0)
        );
    }
    if n > 2 {
        s += "[[services]]\nname = \"web\"\nprotocol = \"tcp\"\nvip = \"198.18.255.100\"\nport = 80\nscheduler = \"rr\"\nreal_servers = [\n";
        for i in 2..n {
            s += &format!("  {{ node = \"rs{i}\", weight = 1 }},\n");
        }
        s += "]\n";
    }
    s
}

fn enter_private_netns() {
    // SAFETY: called first thing in main, before any thread exists.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        panic!("unshare(CLONE_NEWNET): {} (the benchmark needs root)", std::io::Error::last_os_error());
    }
    for args in [&["link", "set", "lo", "up"][..], &["addr", "add", "198.18.0.0/16", "dev", "lo"]] {
        assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    }
    let lim = libc::rlimit { rlim_cur: 65536, rlim_max: 65536 };
    // SAFETY: plain syscall with a valid pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

struct Fleetbed {
    cluster: lvs_controller::model::Cluster,
    pki: Pki,
    _dir: tempfile::TempDir,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fleetbed {
    fn drop(&mut self) {
        for s in &self.servers {
            s.abort();
        }
    }
}

async fn fleetbed(n: usize) -> Fleetbed {
    let dir = tempfile::tempdir().unwrap();
    let text = definition(n, 1);
    let cluster =
        lvs_controller::load::load_str("bench.toml", &text).unwrap_or_else(|e| panic!("{e}")).cluster;
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("bench", false).unwrap();
    let mut servers = Vec::new();
    for node in &cluster.nodes {
        let pair = pki.issue_agent(&node.name, false).unwrap();
        let tls = lvs_agent::server::server_config(
            &node.name,
            &TlsPaths { ca: pki.ca().cert, cert: pair.cert, key: pair.key },
        )
        .unwrap();
        let sys = Arc::new(FakeSystem::new(&["eth0", "eth1"], true));
        let agent = Agent::new(&node.name, sys, Store::new(&dir.path().join(&node.name)));
        let listen: SocketAddr = node.agent.parse().unwrap();
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        servers.push(tokio::spawn(async move {
            let limits = lvs_agent::server::Limits::default();
            let _ = lvs_agent::server::serve(agent, listener, tls, limits, std::future::pending()).await;
        }));
    }
    Fleetbed { cluster, pki, _dir: dir, servers }
}

impl Fleetbed {
    /// What one `lvsctl` invocation starts with: no channel open yet.
    fn ctx(&self) -> Ctx {
        let specs = lvs_controller::planner::plan(&self.cluster);
        let fleet = Fleet::new(&self.cluster, &self.pki, Duration::from_secs(30)).unwrap();
        Ctx { file: "bench.toml".into(), cluster: self.cluster.clone(), specs, fleet, json: false }
    }
}

/// Time one command; `ok` are the exit codes that count as every agent answering.
async fn timed(what: &str, ok: &[ExitCode], f: impl AsyncFn(&mut Vec<u8>) -> ExitCode) -> Duration {
    let mut out = Vec::new();
    let t = Instant::now();
    let code = f(&mut out).await;
    let took = t.elapsed();
    assert!(ok.contains(&code), "{what} failed:\n{}", String::from_utf8_lossy(&out));
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    enter_private_netns();
    std::thread::spawn(|| lvs_tests::ntp::serve(format!("{}:123", addr(0)).parse().unwrap(), 0));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!(
        "fleet benchmark: agents in-process (real gRPC + mTLS, fake kernel), 2 worker threads, this machine;"
    );
    println!("each command starts cold, like a new lvsctl process (median of 3 after the first apply)");
    println!("{:>6} {:>14} {:>14} {:>14}", "agents", "apply (first)", "apply (again)", "status");
    let mut rows = Vec::new();
    for n in [1usize, 4, 50, 500] {
        let row = rt.block_on(async {
            let bed = fleetbed(n).await;
            let opts = apply::ApplyOptions { yes: true, ignore_clock: false, adopt: false, revoked: None };
            let done = [ExitCode::SUCCESS];
            // The fake nodes have no httpd and the host no IPVS modules: status reports them
            // unhealthy (4), which still means every agent answered.
            let answered = [ExitCode::SUCCESS, ExitCode::from(status_unhealthy())];
            let first = timed("apply", &done, async |o| {
                apply::apply(&bed.ctx(), opts.clone(), o, &mut std::io::sink()).await.unwrap()
            })
            .await;
            let mut again = Vec::new();
            let mut stat = Vec::new();
            for _ in 0..3 {
                again.push(
                    timed("apply", &done, async |o| {
                        apply::apply(&bed.ctx(), opts.clone(), o, &mut std::io::sink()).await.unwrap()
                    })
                    .await,
                );
                stat.push(
                    timed("status", &answered, async |o| status::status(&bed.ctx(), &[], o).await.unwrap())
                        .await,
                );
            }
            (n, first, median(again), median(stat))
        });
        println!("{:>6} {:>12.0}ms {:>12.0}ms {:>12.0}ms", row.0, ms(row.1), ms(row.2), ms(row.3));
        rows.push(row);
    }
    let (one, big) = (rows[0], rows[3]);
    println!(
        "ratios 500 vs 1 agent: apply {:.1}x, status {:.1}x (per agent at 500: apply {:.2} ms, status {:.2} ms)",
        ms(big.2) / ms(one.2),
        ms(big.3) / ms(one.3),
        ms(big.2) / 500.0,
        ms(big.3) / 500.0
    );
}

fn status_unhealthy() -> u8 {
    lvs_controller::commands::Exit::Unhealthy.code()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
