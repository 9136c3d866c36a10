//! A connection flood against the real `lvs-agent` binary (issue 10, item 7): thousands of
//! idle TCP connections that never start TLS must neither grow the agent's memory nor
//! keep the controller out. Loopback only; the agent runs in this test's network
//! namespace with no spec, so it reads the kernel and changes nothing.
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lvs_controller::fleet::Fleet;
use lvs_controller::pki::Pki;

const LAB: &str = include_str!("../../deploy/examples/lab.toml");
const IDLE: usize = 5_000;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn five_thousand_idle_connections_keep_rss_small_and_status_fast() {
    // 5,000 sockets here: raise this process's soft descriptor limit to its hard limit
    // (a fresh machine may start at 1,024).
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid pointers to an rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    assert!(lim.rlim_cur as usize > IDLE + 100, "descriptor limit {} too low for the test", lim.rlim_cur);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    pki.init("flood", false).unwrap();
    let me = pki.issue_agent("rs1", false).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"rs1\"\nlisten = \"{addr}\"\nstate_dir = \"{}\"\nheal_interval = \"0s\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.path().join("state").display(),
            pki.ca().cert.display(),
            me.cert.display(),
            me.key.display()
        ),
    )
    .unwrap();
    // LVS_AGENT_BIN: measure another build (e.g. an older one) with the same test.
    let bin = std::env::var_os("LVS_AGENT_BIN").unwrap_or_else(|| lvs_tests::bin("lvs-agent").into());
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .env("LVS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr = child.stderr.take().unwrap();
    let agent = Agent(child);
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        TcpStream::connect(addr).is_ok()
    });
    if !up {
        drop(agent);
        let mut e = String::new();
        let _ = stderr.read_to_string(&mut e);
        panic!("agent did not start: {e}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let def = LAB.replace("agent = \"198.18.0.11:7443\"", &format!("agent = \"{addr}\""));
    let cluster = lvs_controller::load::load_str("lab.toml", &def).unwrap().cluster;
    let status = |fleet: &Fleet| {
        let t = Instant::now();
        let r = rt.block_on(fleet.status("rs1", None));
        (r, t.elapsed())
    };
    let (r, _) = status(&Fleet::new(&cluster, &pki, Duration::from_secs(5)).unwrap());
    r.expect("status before the flood");
    let before = rss_kib(pid);

    let t0 = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        match TcpStream::connect(addr) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    eprintln!("{IDLE} connections opened in {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_secs(1)); // let the agent accept them all
    // A fresh controller (new channel, new handshake) while they are all still open.
    let (r, took) = status(&Fleet::new(&cluster, &pki, Duration::from_secs(5)).unwrap());
    let after = rss_kib(pid);
    eprintln!(
        "agent RSS {before} KiB before, {after} KiB with {IDLE} idle connections; status took {took:?}"
    );
    r.expect("status during the flood");
    assert!(took < Duration::from_secs(1), "status took {took:?} with {IDLE} idle connections");
    assert!(after < 50 * 1024, "agent RSS {after} KiB with {IDLE} idle connections (limit 50 MiB)");
    // Per connection, an agent that holds every idle socket grows by ~6 KiB (29 MiB here):
    // the door keeps only its pending handshakes, so the growth stays a few MiB.
    assert!(after.saturating_sub(before) < 10 * 1024, "RSS grew {} KiB", after - before);
    drop(idle);
    drop(agent);
}
