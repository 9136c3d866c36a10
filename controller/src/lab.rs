//! `lvsctl lab`: the seed article's cluster, for real, in network namespaces.
//!
//! The topology comes from the definition: one namespace per node, one bridge per LAN
//! (inside a namespace of its own, so the host's root namespace is never touched), a
//! `client` on the router's client-side LAN and an `admin` box on the cluster LAN where
//! `lvsctl` runs. The lab plays the installer: it gives each node the one address its
//! agent listens on, starts chrony on the router, a real httpd with a distinct page on
//! each real server and an agent per node with certificates from the project's PKI.
//! Everything else — gateways, ARP sysctls, hidden VIPs, the VIP alias, IPVS — is the
//! agents' work after `lvsctl apply`. Every process and namespace it creates is recorded
//! in the lab directory; `lab down` ends exactly those.
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use lvs_proto::spec::Role;

use crate::model::Cluster;
use crate::pki::Pki;

/// `lvsctl lab` arguments.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// What to do (default: run — up, apply, status, verify, down).
    #[command(subcommand)]
    pub action: Option<LabAction>,
    /// Prefix of the namespaces.
    #[arg(long, default_value = "lvslab", global = true)]
    pub prefix: String,
    /// Working directory (certificates, configs, logs, pids).
    #[arg(long, default_value = "/tmp/lvslab", global = true)]
    pub dir: PathBuf,
}

/// Lab actions.
#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Build the topology and start httpd, chrony and the agents (no apply).
    Up,
    /// Stop what the lab started and delete its namespaces.
    Down,
    /// Up, then apply, status and verify as an admin would; down at the end unless --keep.
    Run {
        /// Leave the lab running.
        #[arg(long)]
        keep: bool,
    },
    /// Run a command inside one of the lab's namespaces (e.g. `lab exec admin -- lvsctl status`).
    Exec {
        /// Namespace short name: a node, `client` or `admin`.
        ns: String,
        /// The command.
        #[arg(trailing_var_arg = true, required = true)]
        cmd: Vec<String>,
    },
}

/// The namespace of `short` in a lab with `prefix`.
pub fn ns(prefix: &str, short: &str) -> String {
    format!("{prefix}-{short}")
}

fn sh(args: &[&str]) -> Result<()> {
    let o = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !o.status.success() {
        bail!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let mut v = vec!["ip"];
    v.extend_from_slice(args);
    sh(&v)
}

/// Host `n` of a LAN (`.10`, `.250`).
fn host(cidr: &IpNet, n: u32) -> Option<IpNet> {
    match cidr {
        IpNet::V4(c) => {
            let a = u32::from(c.network()) + n;
            IpNet::new(IpAddr::V4(a.into()), c.prefix_len()).ok()
        }
        IpNet::V6(_) => None,
    }
}

/// The client's LAN: one the router is on that no director or real server shares.
fn client_lan(c: &Cluster) -> Option<(&crate::model::Lan, IpAddr)> {
    let router = c.nodes.iter().find(|n| n.role == Role::Router)?;
    router.interfaces.iter().find_map(|i| {
        let shared = c.nodes.iter().any(|n| n.role != Role::Router && n.on_lan(&i.lan).is_some());
        if shared { None } else { c.lans.iter().find(|l| l.name == i.lan).map(|l| (l, i.address.addr())) }
    })
}

/// The LAN of the agents (the directors' first LAN) and the admin box's address on it.
fn admin_lan(c: &Cluster) -> Option<(&crate::model::Lan, IpNet)> {
    let d = c.nodes.iter().find(|n| n.role == Role::Director)?;
    let first = &d.interfaces.first()?.lan;
    let lan = c.lans.iter().find(|l| &l.name == first)?;
    Some((lan, host(&lan.cidr, 250)?))
}

struct Lab<'a> {
    prefix: &'a str,
    dir: &'a Path,
}

impl Lab<'_> {
    fn record(&self, file: &str, line: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(file))?;
        writeln!(f, "{line}")?;
        Ok(())
    }

    fn add_ns(&self, short: &str) -> Result<String> {
        let name = ns(self.prefix, short);
        ip(&["netns", "add", &name])?;
        self.record("netns", &name)?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A veth from `node_ns` (named `ifname`) to the bridge of `lan` in the LAN namespace.
    fn plug(&self, node_ns: &str, ifname: &str, lan: &str, tag: &str) -> Result<()> {
        let lan_ns = ns(self.prefix, "lan");
        let peer = format!("{tag}-{lan}");
        let peer = &peer[..peer.len().min(15)];
        ip(&["-n", &lan_ns, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", node_ns])?;
        ip(&["-n", &lan_ns, "link", "set", peer, "master", &format!("br-{lan}"), "up"])?;
        ip(&["-n", node_ns, "link", "set", ifname, "up"])
    }

    fn spawn(&self, name: &str, ns: &str, args: &[&str]) -> Result<u32> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        self.record("pids", &format!("{} {name}", child.id()))?;
        Ok(child.id())
    }
}

fn agent_bin() -> PathBuf {
    std::env::var_os("LVS_AGENT_BIN").map(PathBuf::from).unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|p| p.join("lvs-agent")))
            .unwrap_or_else(|| "lvs-agent".into())
    })
}

fn find_exe(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Whether this kernel can run IPVS (loaded, built in, or loadable).
pub fn kernel_has_ipvs() -> bool {
    Path::new("/proc/net/ip_vs").exists()
        || Command::new("modprobe").arg("ip_vs").stderr(Stdio::null()).status().is_ok_and(|s| s.success())
            && Path::new("/proc/net/ip_vs").exists()
}

/// Bring the lab up.
pub fn up(file: &Path, c: &Cluster, prefix: &str, dir: &Path, out: &mut dyn Write) -> Result<()> {
    if dir.join("netns").exists() {
        bail!("{} holds a lab already; run `lvsctl lab down --dir {}` first", dir.display(), dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let lab = Lab { prefix, dir };
    let lan_ns = lab.add_ns("lan")?;
    for l in &c.lans {
        let br = format!("br-{}", l.name);
        ip(&["-n", &lan_ns, "link", "add", &br, "type", "bridge"])?;
        ip(&["-n", &lan_ns, "link", "set", &br, "up"])?;
    }
    // PKI for the lab's own cluster.
    let pki = Pki::new(dir.join("pki"));
    pki.init(&c.name, true)?;
    let agent = agent_bin();
    for (i, n) in c.nodes.iter().enumerate() {
        let node_ns = lab.add_ns(&n.name)?;
        for iface in &n.interfaces {
            lab.plug(&node_ns, &iface.name, &iface.lan, &format!("n{i}{}", iface.name))?;
        }
        // The installer's part: the address the agent is reached on.
        let listen: std::net::SocketAddr =
            n.agent.parse().with_context(|| format!("{}: agent `{}` is not ip:port", n.name, n.agent))?;
        let mgmt =
            n.interfaces.iter().find(|x| x.address.addr() == listen.ip()).with_context(|| {
                format!("{}: no interface holds the agent address {}", n.name, listen.ip())
            })?;
        ip(&["-n", &node_ns, "addr", "add", &mgmt.address.to_string(), "dev", &mgmt.name])?;
        let pair = pki.issue_agent(&n.name, true)?;
        let nd = dir.join(&n.name);
        std::fs::create_dir_all(&nd)?;
        std::fs::write(
            nd.join("agent.toml"),
            format!(
                "node = \"{}\"\nlisten = \"{}\"\nstate_dir = \"state\"\nheal_interval = \"5s\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                n.name,
                listen,
                pki.ca().cert.display(),
                pair.cert.display(),
                pair.key.display()
            ),
        )?;
        match n.role {
            Role::Router => {
                let chronyd = find_exe(&["/usr/sbin/chronyd", "/sbin/chronyd"])
                    .context("chronyd not found (apt-get install chrony)")?;
                let conf = nd.join("chrony.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "# The router serves time from its own clock, as in the article.\nlocal stratum 8\nallow all\ncmdport 0\npidfile {}\ndriftfile {}\n",
                        nd.join("chronyd.pid").display(),
                        nd.join("chrony.drift").display()
                    ),
                )?;
                // -x: never touch the system clock (the namespaces share the host's).
                lab.spawn(
                    "chronyd",
                    &node_ns,
                    &[
                        chronyd.to_str().unwrap_or("chronyd"),
                        "-x",
                        "-d",
                        "-u",
                        "root",
                        "-f",
                        conf.to_str().unwrap_or(""),
                    ],
                )?;
            }
            Role::RealServer => {
                let www = nd.join("www");
                std::fs::create_dir_all(&www)?;
                std::fs::write(
                    www.join("index.html"),
                    format!("{}\n<p>served by {} (direct routing)</p>\n", n.name, n.name),
                )?;
                let port = c.services.iter().find_map(|s| s.port()).unwrap_or(80).to_string();
                let busybox = find_exe(&["/bin/busybox", "/usr/bin/busybox"])
                    .context("busybox not found (apt-get install busybox-static)")?;
                lab.spawn(
                    &format!("httpd-{}", n.name),
                    &node_ns,
                    &[
                        busybox.to_str().unwrap_or("busybox"),
                        "httpd",
                        "-f",
                        "-p",
                        &port,
                        "-h",
                        www.to_str().unwrap_or(""),
                    ],
                )?;
            }
            Role::Director => {}
        }
        lab.spawn(
            &format!("agent-{}", n.name),
            &node_ns,
            &[
                agent.to_str().unwrap_or("lvs-agent"),
                "--config",
                nd.join("agent.toml").to_str().unwrap_or(""),
            ],
        )?;
    }
    if let Some((lan, router_addr)) = client_lan(c) {
        let cns = lab.add_ns("client")?;
        lab.plug(&cns, "eth0", &lan.name, "cl")?;
        let a = host(&lan.cidr, 10).context("client address")?;
        ip(&["-n", &cns, "addr", "add", &a.to_string(), "dev", "eth0"])?;
        ip(&["-n", &cns, "route", "add", "default", "via", &router_addr.to_string()])?;
        writeln!(out, "lab: client {} (namespace {cns})", a.addr())?;
    }
    if let Some((lan, a)) = admin_lan(c) {
        let ans = lab.add_ns("admin")?;
        lab.plug(&ans, "eth0", &lan.name, "adm")?;
        ip(&["-n", &ans, "addr", "add", &a.to_string(), "dev", "eth0"])?;
        writeln!(
            out,
            "lab: admin box {} (namespace {ans}), lvsctl -f {} --pki {}",
            a.addr(),
            file.display(),
            pki.dir().display()
        )?;
    }
    wait_listening(prefix, c, Duration::from_secs(15))?;
    writeln!(out, "lab: {} node(s) up in namespaces {prefix}-*; agents listening", c.nodes.len())?;
    Ok(())
}

/// Wait until every agent listens (read from the node namespace's /proc/net/tcp).
fn wait_listening(prefix: &str, c: &Cluster, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    for n in &c.nodes {
        let port = n.agent.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
        let needle = format!(":{port:04X} 00000000:0000 0A");
        loop {
            let o = Command::new("ip")
                .args(["netns", "exec", &ns(prefix, &n.name), "cat", "/proc/net/tcp"])
                .output()?;
            if String::from_utf8_lossy(&o.stdout).contains(&needle) {
                break;
            }
            if start.elapsed() > timeout {
                bail!(
                    "agent of {} is not listening on port {port} after {} s (see its log)",
                    n.name,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Stop what the lab in `dir` started and delete its namespaces.
pub fn down(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
    let mut stopped = 0;
    for line in pids.lines() {
        let Some(pid) = line.split_whitespace().next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        // SAFETY: kill(2) on a PID we started and recorded.
        if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
            stopped += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    for line in pids.lines() {
        let Some(pid) = line.split_whitespace().next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            reap(pid);
            std::thread::sleep(Duration::from_millis(20));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid);
        }
    }
    let netns = std::fs::read_to_string(dir.join("netns")).unwrap_or_default();
    for n in netns.lines().rev() {
        let _ = ip(&["netns", "del", n]);
    }
    let _ = std::fs::remove_file(dir.join("pids"));
    let _ = std::fs::remove_file(dir.join("netns"));
    writeln!(
        out,
        "lab: down ({stopped} process(es) stopped, {} namespace(s) deleted)",
        netns.lines().count()
    )?;
    Ok(())
}

fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: non-blocking wait for our own child; harmless if it is not ours.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// Run `lvsctl ARGS` in the admin namespace, echoing the command and its output.
fn admin(prefix: &str, file: &Path, pki: &Path, args: &[&str], out: &mut dyn Write) -> Result<i32> {
    let me = std::env::current_exe()?;
    writeln!(out, "\n$ lvsctl {}", args.join(" "))?;
    let o = Command::new("ip")
        .args(["netns", "exec", &ns(prefix, "admin")])
        .arg(&me)
        .arg("-f")
        .arg(file)
        .arg("--pki")
        .arg(pki)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    out.write_all(&o.stdout)?;
    out.write_all(&o.stderr)?;
    Ok(o.status.code().unwrap_or(-1))
}

/// `lvsctl lab ...` on the definition `definition` (the CLI's `-f`). Takes what it needs,
/// not the CLI: the lab must not depend on the command line it is called from.
pub fn run(definition: &Path, args: &LabArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let dir = &args.dir;
    let action = args.action.as_ref().unwrap_or(&LabAction::Run { keep: false });
    if let LabAction::Down = action {
        down(dir, out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let LabAction::Exec { ns: short, cmd } = action {
        let st = Command::new("ip").args(["netns", "exec", &ns(&args.prefix, short)]).args(cmd).status()?;
        return Ok(ExitCode::from(st.code().unwrap_or(1) as u8));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the lab creates network namespaces: run it as root");
    }
    if matches!(action, LabAction::Run { .. }) && !kernel_has_ipvs() {
        bail!(
            "this kernel has no IPVS (CONFIG_IP_VS): run the lab inside the project's VM test bed instead: \
             `tests/vm/run lab` from the source tree (boots a stock Debian kernel under qemu)"
        );
    }
    let file =
        std::fs::canonicalize(definition).with_context(|| format!("definition {}", definition.display()))?;
    let loaded = crate::load::load_file(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = loaded.cluster;
    let t0 = Instant::now();
    if let Err(e) = up(&file, &c, &args.prefix, dir, out) {
        let _ = down(dir, out);
        return Err(e.context("lab up failed; everything it had started was removed"));
    }
    let LabAction::Run { keep } = action else { return Ok(ExitCode::SUCCESS) };
    let pki = dir.join("pki");
    let mut ok = true;
    for step in [
        &["plan"][..],
        &["apply", "--yes"],
        &["status"],
        &["verify", "-n", "12"],
        &["ipvs", "list", "--stats"],
    ] {
        let code = admin(&args.prefix, &file, &pki, step, out)?;
        ok &= code == 0;
        if code != 0 && step[0] == "apply" {
            break;
        }
    }
    writeln!(out, "\nlab: {} in {:.1} s", if ok { "PASS" } else { "FAIL" }, t0.elapsed().as_secs_f64())?;
    if *keep {
        writeln!(
            out,
            "lab: left running; `lvsctl lab exec admin -- lvsctl -f {} --pki {} status`, then `lvsctl lab down`",
            file.display(),
            pki.display()
        )?;
    } else {
        down(dir, out)?;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
