//! Namespaces, veths and processes: everything the lab creates is recorded in its
//! directory (`netns`, `pids`), so `down` ends exactly that and nothing else.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result, file};

/// The namespace of `short` in a lab with `prefix`.
pub fn ns(prefix: &str, short: &str) -> String {
    format!("{prefix}-{short}")
}

fn sh(args: &[&str]) -> Result<()> {
    let failed = |reason: String| LabError::Command { command: args.join(" "), reason };
    let o = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !o.status.success() {
        return Err(failed(String::from_utf8_lossy(&o.stderr).trim().to_string()));
    }
    Ok(())
}

/// `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let mut v = vec!["ip"];
    v.extend_from_slice(args);
    sh(&v)
}

/// A lab being built: its namespace prefix and directory.
pub struct Lab<'a> {
    /// Namespace prefix.
    pub prefix: &'a str,
    /// Lab directory.
    pub dir: &'a Path,
}

impl Lab<'_> {
    fn record(&self, name: &str, line: &str) -> Result<()> {
        let path = self.dir.join(name);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(file(&path))?;
        writeln!(f, "{line}").map_err(file(&path))
    }

    /// A new namespace `<prefix>-<short>` with `lo` up, recorded.
    pub fn add_ns(&self, short: &str) -> Result<String> {
        let name = ns(self.prefix, short);
        ip(&["netns", "add", &name])?;
        self.record("netns", &name)?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A veth from `node_ns` (named `ifname`) to the bridge of `lan` in the LAN namespace.
    pub fn plug(&self, node_ns: &str, ifname: &str, lan: &str, tag: &str) -> Result<()> {
        let lan_ns = ns(self.prefix, "lan");
        let peer = format!("{tag}-{lan}");
        let peer = &peer[..peer.len().min(15)];
        ip(&["-n", &lan_ns, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", node_ns])?;
        ip(&["-n", &lan_ns, "link", "set", peer, "master", &format!("br-{lan}"), "up"])?;
        ip(&["-n", node_ns, "link", "set", ifname, "up"])
    }

    /// Start `args` in namespace `ns`, its output in `<name>.log`, recorded by PID.
    pub fn spawn(&self, name: &str, ns: &str, args: &[&str]) -> Result<u32> {
        let path = self.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&path).map_err(file(&path))?;
        let log2 = log.try_clone().map_err(file(&path))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args).stdin(Stdio::null()).stdout(log2).stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|e| LabError::Command {
            command: format!("{name}: {}", args.join(" ")),
            reason: e.to_string(),
        })?;
        self.record("pids", &format!("{} {name}", child.id()))?;
        Ok(child.id())
    }
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
        while running(pid) && Instant::now() < deadline {
            reap(pid);
            std::thread::sleep(Duration::from_millis(20));
        }
        if running(pid) {
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

/// Whether `pid` still runs. A zombie has ended: once `lab up` has exited, the lab's
/// processes are no longer our children, and their zombies wait for whoever adopted them
/// (PID 1, which in the VM guest reaps nothing while its suite runs), so waiting for
/// `/proc/PID` to go would take the whole grace period on every `lab down`.
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which may itself hold ") ".
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: non-blocking wait for our own child; harmless if it is not ours.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

#[cfg(test)]
mod tests {
    use super::running;

    #[test]
    fn a_zombie_has_stopped_running_and_a_sleeper_has_not() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(running(pid), "a sleeping child runs");
        child.kill().unwrap();
        // Killed and not yet waited for: a zombie, its /proc entry still there.
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            !running(pid)
        });
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "still a zombie, not reaped");
        assert!(gone, "a zombie does not run");
        child.wait().unwrap();
        assert!(!running(pid), "a reaped process does not run");
    }
}
