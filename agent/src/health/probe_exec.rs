//! Exec probes: a script of the node's script directory, run as the script user in a process group of its own that is killed whole when the probe's deadline passes.
use super::probe_tls::ca_file;
use crate::health::scripts::Scripts;
use lvs_proto::spec::{ProbeKind, TlsProbe, TlsVerify};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

/// Run the script `command` names (no shell), as [`Scripts::command`] prepares it, with
/// `env` added; its exit status 0 is healthy. After `timeout` its whole process group is
/// killed: a hung check script and anything it started cannot pile up, one per interval.
pub async fn run(
    scripts: &Scripts,
    command: &[String],
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Result<(), String> {
    let program = command.first().map(String::as_str).unwrap_or("");
    let mut cmd = scripts.command(command, timeout)?;
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    // Killed with everything it started when the verdict is late or the probe is dropped
    // (its destination left the spec, the agent stops): never left running behind.
    let mut group = GroupKill(child.id());
    let stderr = child.stderr.take();
    let wait = async {
        let status = child.wait().await.map_err(|e| format!("{program}: {e}"))?;
        // It ended by itself; what it left in the background is its own business (and its
        // group id may be reused once those are gone).
        group.0 = None;
        let mut said = String::new();
        if let (false, Some(mut e)) = (status.success(), stderr) {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 512];
            // Only the start, and only briefly: a chatty script cannot make the agent
            // buffer its output, nor a child it left behind holding the pipe stall it.
            let n = tokio::time::timeout(Duration::from_millis(100), e.read(&mut buf)).await;
            let n = n.ok().and_then(Result::ok).unwrap_or(0);
            // The script's words reach events and the admin's terminal: one line, no
            // control characters (no escape sequences).
            said = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .to_string();
        }
        Ok::<_, String>((status, said))
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok((status, _))) if status.success() => Ok(()),
        Ok(Ok((status, said))) => {
            let how = match (status.code(), status.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                _ => "failed".into(),
            };
            Err(if said.is_empty() {
                format!("{program}: {how}")
            } else {
                format!("{program}: {how}: {said}")
            })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("{program}: no verdict within {} ms (killed)", timeout.as_millis())),
    }
}

/// Kills a process group when dropped, unless disarmed (`None`).
pub(crate) struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) on the process group this module created for its child; the
            // child is not reaped yet (it is disarmed once it is), so the id is still ours.
            unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
        }
    }
}

/// What the spec's checks and hooks need on this host and it lacks (a script missing from
/// the script directory, or one others could change, or no script user; an unreadable CA
/// file), in words: the agent refuses such a spec before changing anything, rather than
/// quarantining every real server for a typo.
pub fn missing_files(spec: &lvs_proto::NodeSpec, scripts: &Scripts) -> Vec<String> {
    let mut out = Vec::new();
    for v in &spec.virtual_services {
        let checks = v.health_check.iter().chain(v.destinations.iter().filter_map(|d| match &d.check {
            lvs_proto::spec::DestinationCheck::Own(h) => Some(&**h),
            _ => None,
        }));
        for h in checks {
            match &h.probe {
                ProbeKind::Exec { command } => out.extend(unusable(scripts, &command[0], &v.name, "check")),
                ProbeKind::Http { tls: Some(TlsProbe { verify: TlsVerify::CaFile(f), .. }), .. } => {
                    if let Err(e) = ca_file(f) {
                        out.push(format!("service {}: check: {e}", v.name));
                    }
                }
                _ => {}
            }
        }
        if let Some(n) = v.notify.first() {
            out.extend(unusable(scripts, n, &v.name, "notify hook"));
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(crate) fn unusable(scripts: &Scripts, name: &str, service: &str, what: &str) -> Option<String> {
    if let Err(e) = scripts.user() {
        return Some(format!("service {service}: {what} {name}: {e}"));
    }
    scripts.resolve(name).err().map(|e| format!("service {service}: {what} {name}: {e}"))
}
