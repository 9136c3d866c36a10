//! `lvsctl lab up --agents systemd`: the agents as real services of the installed package's
//! `lvs-agent@.service`, one instance per node, the way an installer would set them up: its
//! config and certificates in `/etc/lvs-agent/NODE/`, a drop-in that joins the node's network
//! namespace, and a `<prefix>-net.service` that rebuilds the lab's network at boot (what a
//! real host's network configuration does before its agent starts). The shipped unit's
//! hardening is used unchanged. Everything written is recorded in the lab's `units` file, so
//! `lab down` removes exactly that.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use lvs_controller::pki::Pair;

use crate::error::{LabError, Result, file};
use crate::netns::ns;
use crate::programs;

/// Where the units and drop-ins go (`/etc/systemd/system`; a test may point elsewhere).
fn unit_dir() -> PathBuf {
    std::env::var_os("LVS_LAB_UNIT_DIR").map_or_else(|| PathBuf::from("/etc/systemd/system"), PathBuf::from)
}

/// Where each instance's config lives (`/etc/lvs-agent`).
fn config_root() -> PathBuf {
    std::env::var_os("LVS_LAB_CONFIG_ROOT").map_or_else(|| PathBuf::from("/etc/lvs-agent"), PathBuf::from)
}

/// The unit of `node`'s agent.
pub fn agent_unit(node: &str) -> String {
    format!("lvs-agent@{node}.service")
}

/// The unit that rebuilds the lab's network at boot.
pub fn net_unit(prefix: &str) -> String {
    format!("{prefix}-net.service")
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(file(d))?;
    }
    std::fs::write(path, text).map_err(file(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(file(path))
}

fn record(dir: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let path = dir.join("units");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(file(&path))?;
    writeln!(f, "{line}").map_err(file(&path))
}

/// `systemctl ARGS`, failing with its stderr.
pub fn systemctl(args: &[&str]) -> Result<()> {
    let failed =
        |reason: String| LabError::Command { command: format!("systemctl {}", args.join(" ")), reason };
    let o = Command::new("systemctl").args(args).output().map_err(|e| failed(e.to_string()))?;
    if !o.status.success() {
        return Err(failed(String::from_utf8_lossy(&o.stderr).trim().to_string()));
    }
    Ok(())
}

/// The agent the packages install (else the one beside this binary).
pub fn agent_bin() -> PathBuf {
    let packaged = PathBuf::from("/usr/sbin/lvs-agent");
    if packaged.is_file() { packaged } else { programs::agent_bin() }
}

/// Where `node`'s instance reads its configuration.
pub fn agent_config_path(node: &str) -> PathBuf {
    config_root().join(node).join("agent.toml")
}

/// Install `node`'s agent instance: config (state in `/var/lib/lvs-agent/NODE`, as the
/// unit's `StateDirectory=lvs-agent/%i` makes it) and the namespace drop-in. No
/// certificates: the instance enrols ([`crate::enrol_all`]).
pub fn install_agent(dir: &Path, prefix: &str, node: &str, listen: SocketAddr) -> Result<()> {
    let conf_dir = config_root().join(node);
    let mut config = programs::agent_config(
        node,
        listen,
        &conf_dir.join("ca.pem"),
        &Pair { cert: conf_dir.join("agent.pem"), key: conf_dir.join("agent.key") },
    );
    config.state_dir = PathBuf::from("/var/lib/lvs-agent").join(node);
    std::fs::create_dir_all(&conf_dir).map_err(file(&conf_dir))?;
    programs::write_agent_config(&conf_dir, &config)?;
    // A config of an earlier lab: its certificates would skip enrolment. And its state:
    // an agent whose state says it was enrolled refuses to start without its certificates
    // (it never enrols again by itself); this lab makes a new node.
    for f in ["ca.pem", "agent.pem", "agent.key"] {
        let _ = std::fs::remove_file(conf_dir.join(f));
    }
    let _ = std::fs::remove_dir_all(&config.state_dir);
    record(dir, &format!("config {}", conf_dir.display()))?;
    let dropin = unit_dir().join(format!("{}.d", agent_unit(node))).join("lab.conf");
    write(
        &dropin,
        &format!(
            "# Written by `lvsctl lab up --agents systemd`: this instance runs in the lab's\n\
             # namespace of {node}, after the lab's network is up.\n\
             [Unit]\nAfter={net}\nRequires={net}\n\n[Service]\nNetworkNamespacePath=/run/netns/{ns}\n",
            net = net_unit(prefix),
            ns = ns(prefix, node)
        ),
        0o644,
    )?;
    record(dir, &format!("dropin {}", dropin.display()))?;
    record(dir, &format!("unit {}", agent_unit(node)))
}

/// The boot-time network unit: `lvsctl lab net` with this lab's definition, prefix and dir.
pub fn install_net_unit(dir: &Path, prefix: &str, definition: &Path) -> Result<()> {
    let me = std::env::current_exe()?;
    let unit = unit_dir().join(net_unit(prefix));
    write(
        &unit,
        &format!(
            "# Written by `lvsctl lab up --agents systemd`: the lab's network, as a host's own\n\
             # network configuration would bring it up at boot, before the agents.\n\
             [Unit]\nDescription=lvs-dr lab network ({prefix})\nBefore=lvs-agent@.service\n\n\
             [Service]\nType=oneshot\nRemainAfterExit=yes\n\
             ExecStart={me} -f {def} lab --prefix {prefix} --dir {dir} net\n\n\
             [Install]\nWantedBy=multi-user.target\n",
            me = me.display(),
            def = definition.display(),
            dir = dir.display()
        ),
        0o644,
    )?;
    record(dir, &format!("file {}", unit.display()))?;
    record(dir, &format!("unit {}", net_unit(prefix)))
}

/// Stop, disable and remove what [`install_agent`] and [`install_net_unit`] recorded
/// (agents first, then the network unit). Returns how many units were stopped.
pub fn uninstall(dir: &Path) -> usize {
    let units = std::fs::read_to_string(dir.join("units")).unwrap_or_default();
    let mut stopped = 0;
    // Recorded in install order (agents, then the net unit last): stop in that order too,
    // so the agents go before the network they run in.
    for u in units.lines().filter_map(|l| l.strip_prefix("unit ")) {
        stopped += usize::from(systemctl(&["disable", "--now", u]).is_ok());
    }
    for l in units.lines() {
        match l.split_once(' ') {
            Some(("config", p)) => drop(std::fs::remove_dir_all(p)),
            Some(("dropin", p)) => {
                let p = Path::new(p);
                let _ = std::fs::remove_file(p);
                let _ = p.parent().map(std::fs::remove_dir);
            }
            Some(("file", p)) => drop(std::fs::remove_file(p)),
            _ => {}
        }
    }
    let _ = systemctl(&["daemon-reload"]);
    let _ = std::fs::remove_file(dir.join("units"));
    stopped
}
