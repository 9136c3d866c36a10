//! `lvsctl lab`: the seed article's cluster, for real, in network namespaces.
//!
//! The topology comes from the definition: one namespace per node, one bridge per LAN
//! (inside a namespace of its own, so the host's root namespace is never touched), a
//! `client` on the router's client-side LAN and an `admin` box on the cluster LAN where
//! `lvsctl` runs. The lab plays the installer: it gives each node the addresses of the
//! interface its agent listens on (both families on a dual-stack LAN), starts chrony on the router, a real httpd with a distinct page on
//! each real server and an agent per node with certificates from the project's PKI.
//! Everything else — gateways, ARP sysctls, hidden VIPs, the VIP alias, IPVS — is the
//! agents' work after `lvsctl apply`. Every process and namespace it creates is recorded
//! in the lab directory; `lab down` ends exactly those.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use lvs_controller::model::{Cluster, Node};
use lvs_controller::pki::{Pair, Pki};
use lvs_proto::spec::Role;

pub mod error;
pub mod netns;
pub mod programs;
pub mod systemd;
pub mod topology;
pub mod workdir;

pub use error::LabError;
use error::Result;
use netns::{Lab, ip};
pub use netns::{down, ns};

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
    /// Made 0700 if missing; refused if it is a symlink, not root's or open to others.
    #[arg(long, default_value = "/run/lvslab", global = true)]
    pub dir: PathBuf,
    /// How the agents run: as processes the lab starts, or as instances of the installed
    /// package's `lvs-agent@.service` (one per node, in its namespace).
    #[arg(long, value_enum, default_value_t = Agents::Spawn, global = true)]
    pub agents: Agents,
}

/// How the lab runs the agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Agents {
    /// Processes started by the lab, logs in its directory.
    Spawn,
    /// Real services: `lvs-agent@NODE.service` from the installed package.
    Systemd,
}

/// Lab actions.
#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Build the topology and start httpd, chrony and the agents (no apply).
    Up,
    /// Stop what the lab started and delete its namespaces.
    Down,
    /// Build the lab's network only (namespaces, bridges, the agents' addresses, chrony and
    /// httpd); nothing when it is up. Run at boot by the unit `--agents systemd` installs.
    #[command(hide = true)]
    Net,
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

/// Whether this kernel can run IPVS (loaded, built in, or loadable).
pub fn kernel_has_ipvs() -> bool {
    Path::new("/proc/net/ip_vs").exists()
        || Command::new("modprobe").arg("ip_vs").stderr(Stdio::null()).status().is_ok_and(|s| s.success())
            && Path::new("/proc/net/ip_vs").exists()
}

/// Bring the lab up: its network ([`net`]), its PKI, and an agent per node (started by
/// the lab, or installed and started as a systemd service), each enrolled as an admin
/// enrols a real host ([`enrol_all`]): no node's key is made outside its node.
pub fn up(
    file: &Path,
    c: &Cluster,
    prefix: &str,
    dir: &Path,
    agents: Agents,
    out: &mut dyn Write,
) -> Result<()> {
    if dir.join("netns").exists() || dir.join("units").exists() {
        return Err(LabError::Setup(format!(
            "{} holds a lab already; run `lvsctl lab down --dir {}` first",
            dir.display(),
            dir.display()
        )));
    }
    workdir::private_dir(dir)?;
    Pki::new(dir.join("pki")).init(&c.name, true)?;
    match agents {
        Agents::Spawn => {
            net(file, c, prefix, dir, out)?;
            let lab = Lab { prefix, dir };
            for n in &c.nodes {
                let nd = dir.join(&n.name);
                std::fs::create_dir_all(&nd).map_err(error::file(&nd))?;
                let pair = Pair { cert: nd.join("agent.pem"), key: nd.join("agent.key") };
                let config = programs::agent_config(&n.name, listen_of(n)?, &nd.join("ca.pem"), &pair);
                let path = programs::write_agent_config(&nd, &config)?;
                programs::agent(&lab, &ns(prefix, &n.name), &n.name, &path)?;
            }
        }
        Agents::Systemd => {
            for n in &c.nodes {
                systemd::install_agent(dir, prefix, &n.name, listen_of(n)?)?;
            }
            systemd::install_net_unit(dir, prefix, file)?;
            systemd::systemctl(&["daemon-reload"])?;
            systemd::systemctl(&["enable", "--now", &systemd::net_unit(prefix)])?;
            let units: Vec<String> = c.nodes.iter().map(|n| systemd::agent_unit(&n.name)).collect();
            let mut args = vec!["enable", "--now"];
            args.extend(units.iter().map(String::as_str));
            systemd::systemctl(&args)?;
            writeln!(out, "lab: agents are services {}", units.join(" "))?;
        }
    }
    wait_listening(prefix, c, Duration::from_secs(30))?;
    enrol_all(file, c, prefix, dir, agents, out)?;
    writeln!(out, "lab: {} node(s) up in namespaces {prefix}-*; agents enrolled", c.nodes.len())?;
    Ok(())
}

/// Enrol every node's agent as on real hosts: the node's own `lvs-agent pairing-code`
/// reads the code of the key it made, and `lvsctl node enroll` on the admin box signs it.
fn enrol_all(
    file: &Path,
    c: &Cluster,
    prefix: &str,
    dir: &Path,
    agents: Agents,
    out: &mut dyn Write,
) -> Result<()> {
    let pki = dir.join("pki");
    for n in &c.nodes {
        let t0 = Instant::now();
        let (bin, config) = match agents {
            Agents::Spawn => (programs::agent_bin(), dir.join(&n.name).join("agent.toml")),
            Agents::Systemd => (systemd::agent_bin(), systemd::agent_config_path(&n.name)),
        };
        let o = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .arg("pairing-code")
            .stdin(Stdio::null())
            .output()?;
        let code = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !o.status.success() || code.is_empty() {
            return Err(LabError::Setup(format!(
                "{}: `lvs-agent pairing-code` failed: {}",
                n.name,
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        let mut log = Vec::new();
        let st = admin(prefix, file, &pki, &["node", "enroll", &n.name, "--code", &code], &mut log)?;
        if st != 0 {
            return Err(LabError::Setup(format!(
                "{}: enrolment failed: {}",
                n.name,
                String::from_utf8_lossy(&log).trim()
            )));
        }
        writeln!(
            out,
            "lab: {} enrolled in {} ms (its key stayed on the node)",
            n.name,
            t0.elapsed().as_millis()
        )?;
    }
    Ok(())
}

/// The address `n`'s agent listens on.
fn listen_of(n: &Node) -> Result<std::net::SocketAddr> {
    n.agent
        .parse()
        .map_err(|e| LabError::Setup(format!("{}: agent `{}` is not ip:port: {e}", n.name, n.agent)))
}

/// The lab's network: bridges, one namespace per node with its interfaces and the address
/// its agent listens on (the installer's part), chrony on the router, httpd on the real
/// servers, then the client and the admin box. Nothing when it is up already; records left
/// by a boot that is over (namespaces live in /run) are dropped and the network rebuilt.
pub fn net(file: &Path, c: &Cluster, prefix: &str, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let recorded = std::fs::read_to_string(dir.join("netns")).unwrap_or_default();
    if let Some(first) = recorded.lines().next() {
        if Path::new("/run/netns").join(first).exists() {
            writeln!(out, "lab: network {prefix}-* is up")?;
            return Ok(());
        }
        let _ = std::fs::remove_file(dir.join("netns"));
        let _ = std::fs::remove_file(dir.join("pids"));
    }
    workdir::private_dir(dir)?;
    let lab = Lab { prefix, dir };
    let lan_ns = lab.add_ns("lan")?;
    for l in &c.lans {
        let br = format!("br-{}", l.name);
        ip(&["-n", &lan_ns, "link", "add", &br, "type", "bridge"])?;
        ip(&["-n", &lan_ns, "link", "set", &br, "up"])?;
    }
    for (i, n) in c.nodes.iter().enumerate() {
        node_net(&lab, c, i, n)?;
    }
    if let Some((lan, gateways)) = topology::client_lan(c) {
        let cns = lab.add_ns("client")?;
        lab.plug(&cns, "eth0", &lan.name, "cl")?;
        // One address per family of the LAN, each with its default route via the router.
        let mut shown = Vec::new();
        for cidr in &lan.cidrs {
            let a = topology::host(cidr, 10)
                .ok_or_else(|| LabError::Setup(format!("no client address in {cidr}")))?;
            let family = if a.addr().is_ipv6() { "-6" } else { "-4" };
            // The client is the lab's, not a node: its address is usable at once (no DAD).
            add_address(&cns, &a, "eth0")?;
            if let Some(gw) = gateways.iter().find(|g| g.is_ipv6() == a.addr().is_ipv6()) {
                ip(&["-n", &cns, family, "route", "add", "default", "via", &gw.to_string()])?;
            }
            shown.push(a.addr().to_string());
        }
        writeln!(out, "lab: client {} (namespace {cns})", shown.join(", "))?;
    }
    if let Some((lan, a)) = topology::admin_lan(c) {
        let ans = lab.add_ns("admin")?;
        lab.plug(&ans, "eth0", &lan.name, "adm")?;
        ip(&["-n", &ans, "addr", "add", &a.to_string(), "dev", "eth0"])?;
        writeln!(
            out,
            "lab: admin box {} (namespace {ans}), lvsctl -f {} --pki {}",
            a.addr(),
            file.display(),
            dir.join("pki").display()
        )?;
    }
    Ok(())
}

/// One node's namespace and interfaces, the address its agent listens on (the installer's
/// part), and its programs.
fn node_net(lab: &Lab, c: &Cluster, i: usize, n: &Node) -> Result<()> {
    let node_ns = lab.add_ns(&n.name)?;
    // A dual-stack interface is one entry per address in the model: one link each.
    let mut plugged: Vec<&str> = Vec::new();
    for iface in &n.interfaces {
        if !plugged.contains(&iface.name.as_str()) {
            lab.plug(&node_ns, &iface.name, &iface.lan, &format!("n{i}{}", iface.name))?;
            plugged.push(&iface.name);
        }
    }
    let listen = listen_of(n)?;
    let mgmt = n.interfaces.iter().find(|x| x.address.addr() == listen.ip()).ok_or_else(|| {
        LabError::Setup(format!("{}: no interface holds the agent address {}", n.name, listen.ip()))
    })?;
    // The installer configures the management interface whole: on a dual-stack LAN its
    // other family too, which the time gate needs before the first apply when the NTP
    // server is reached over IPv6 (a host's DAD is long over by then: nodad).
    for a in n.interfaces.iter().filter(|x| x.name == mgmt.name) {
        add_address(&node_ns, &a.address, &a.name)?;
    }
    let nd = lab.dir.join(&n.name);
    std::fs::create_dir_all(&nd).map_err(error::file(&nd))?;
    match n.role {
        Role::Router => programs::chrony(lab, &node_ns, &nd),
        Role::RealServer => {
            let port = c.services.iter().find_map(|s| s.port()).unwrap_or(80);
            programs::httpd(lab, &node_ns, &nd, &n.name, port)
        }
        Role::Director => Ok(()),
    }
}

/// The installer's `ip addr add` in namespace `ns`; an IPv6 address usable at once (the
/// lab's hosts have no duplicates to detect: `nodad`).
fn add_address(ns: &str, a: &ipnet::IpNet, dev: &str) -> Result<()> {
    let text = a.to_string();
    let mut args = vec!["-n", ns, "addr", "add", &text, "dev", dev];
    if a.addr().is_ipv6() {
        args.push("nodad");
    }
    ip(&args)
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
                return Err(LabError::Setup(format!(
                    "agent of {} is not listening on port {port} after {} s (see its log)",
                    n.name,
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
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
/// not the CLI: the lab does not depend on the command line it is called from.
pub fn run(definition: &Path, args: &LabArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let dir = &args.dir;
    let action = args.action.as_ref().unwrap_or(&LabAction::Run { keep: false });
    if let LabAction::Down = action {
        let units = systemd::uninstall(dir);
        if units > 0 {
            writeln!(out, "lab: {units} unit(s) stopped and disabled")?;
        }
        down(dir, out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let LabAction::Exec { ns: short, cmd } = action {
        let st = Command::new("ip").args(["netns", "exec", &ns(&args.prefix, short)]).args(cmd).status()?;
        return Ok(ExitCode::from(st.code().unwrap_or(1) as u8));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::Setup("the lab creates network namespaces: run it as root".into()));
    }
    if matches!(action, LabAction::Run { .. }) && !kernel_has_ipvs() {
        return Err(LabError::Setup(
            "this kernel has no IPVS (CONFIG_IP_VS): run the lab inside the project's VM test bed instead: \
             `tests/vm/run lab` from the source tree (boots a stock Debian kernel under qemu)"
                .into(),
        ));
    }
    let file = std::fs::canonicalize(definition).map_err(error::file(definition))?;
    let c = lvs_controller::load::load_file(&file)?.cluster;
    if let LabAction::Net = action {
        net(&file, &c, &args.prefix, dir, out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let t0 = Instant::now();
    if let Err(e) = up(&file, &c, &args.prefix, dir, args.agents, out) {
        systemd::uninstall(dir);
        let _ = down(dir, out);
        return Err(LabError::Setup(format!("lab up failed; everything it had started was removed: {e}")));
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
