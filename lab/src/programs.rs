//! The programs the lab starts in a node's namespace, as an installer would set them up:
//! the agent with its configuration file, chrony on the router, an httpd on each real
//! server.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lvs_controller::pki::Pair;
use lvs_proto::METRICS_PORT;
use lvs_proto::agent_config::{Config, MetricsAuth, MetricsConfig, TlsPaths};

use crate::error::{LabError, Result, file};
use crate::netns::Lab;

/// The lab heals drift every 5 s (the default 30 s would make drift tests slow to watch).
const LAB_HEAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The agent binary: `$LVS_AGENT_BIN`, else beside the running `lvsctl`.
/// The agent binary beside this one (or `LVS_AGENT_BIN`).
pub fn agent_bin() -> PathBuf {
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

/// The agent configuration of `node`: the agent's own type, so what the lab writes is what
/// the agent reads (`state_dir` relative to where it runs).
pub fn agent_config(node: &str, listen: SocketAddr, ca: &Path, pair: &Pair) -> Config {
    Config {
        node: node.to_string(),
        listen,
        state_dir: PathBuf::from("state"),
        heal_interval: LAB_HEAL_INTERVAL,
        tls: TlsPaths { ca: ca.to_path_buf(), cert: pair.cert.clone(), key: pair.key.clone() },
        // Metrics on the management address, behind the cluster's mutual TLS
        // (`lvsctl metrics NODE` scrapes them as the admin).
        metrics: Some(MetricsConfig {
            listen: SocketAddr::new(listen.ip(), METRICS_PORT),
            auth: MetricsAuth::MutualTls,
        }),
        // Scripts from the host's own directory (/etc/lvs-agent/scripts): the lab's nodes
        // share the host's file system, and the lab's directory is root's alone.
        scripts: Default::default(),
    }
}

/// Write `config` as `agent.toml` in `dir` (serialised by serde, as the agent parses it).
pub fn write_agent_config(dir: &Path, config: &Config) -> Result<PathBuf> {
    let text = toml::to_string(config).map_err(|e| LabError::Setup(format!("agent config: {e}")))?;
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).map_err(file(&path))?;
    Ok(path)
}

/// Start the agent of `node` in `ns`.
pub fn agent(lab: &Lab, ns: &str, node: &str, config: &Path) -> Result<()> {
    let bin = agent_bin();
    let args = [bin.to_str().unwrap_or("lvs-agent"), "--config", config.to_str().unwrap_or("")];
    lab.spawn(&format!("agent-{node}"), ns, &args).map(drop)
}

/// chronyd on the router, serving time from its own clock as in the article.
pub fn chrony(lab: &Lab, ns: &str, dir: &Path) -> Result<()> {
    let chronyd = find_exe(&["/usr/sbin/chronyd", "/sbin/chronyd"])
        .ok_or_else(|| LabError::Setup("chronyd not found (apt-get install chrony)".into()))?;
    let conf = dir.join("chrony.conf");
    let text = format!(
        "# The router serves time from its own clock, as in the article.\nlocal stratum 8\nallow all\ncmdport 0\npidfile {}\ndriftfile {}\n",
        dir.join("chronyd.pid").display(),
        dir.join("chrony.drift").display()
    );
    std::fs::write(&conf, text).map_err(file(&conf))?;
    // -x: never touch the system clock (the namespaces share the host's).
    let args =
        [chronyd.to_str().unwrap_or("chronyd"), "-x", "-d", "-u", "root", "-f", conf.to_str().unwrap_or("")];
    lab.spawn("chronyd", ns, &args).map(drop)
}

/// busybox httpd on a real server, with a page that names it.
pub fn httpd(lab: &Lab, ns: &str, dir: &Path, node: &str, port: u16) -> Result<()> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).map_err(file(&www))?;
    let index = www.join("index.html");
    std::fs::write(&index, format!("{node}\n<p>served by {node} (direct routing)</p>\n"))
        .map_err(file(&index))?;
    let busybox = find_exe(&["/bin/busybox", "/usr/bin/busybox"])
        .ok_or_else(|| LabError::Setup("busybox not found (apt-get install busybox-static)".into()))?;
    let port = port.to_string();
    let args =
        [busybox.to_str().unwrap_or("busybox"), "httpd", "-f", "-p", &port, "-h", www.to_str().unwrap_or("")];
    lab.spawn(&format!("httpd-{node}"), ns, &args).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_reads_the_config_the_lab_writes() {
        let dir = tempfile::tempdir().unwrap();
        let pair = Pair { cert: "/pki/rs1.pem".into(), key: "/pki/rs1.key".into() };
        let want = agent_config("rs1", "198.18.0.11:7443".parse().unwrap(), Path::new("/pki/ca.pem"), &pair);
        let path = write_agent_config(dir.path(), &want).unwrap();
        let got = Config::load(&path).unwrap();
        // The agent reads a relative state directory beside its config file.
        assert_eq!(got, Config { state_dir: dir.path().join("state"), ..want });
        assert_eq!(got.heal_interval, LAB_HEAL_INTERVAL);
    }
}
