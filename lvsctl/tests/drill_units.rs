//! `deploy/systemd/lvs-drill@.{service,timer}` (in the lvsctl package) pass `systemd-analyze
//! verify` as an instance (with `ExecStart` pointed at the binary just built), and run the
//! drill command this lvsctl has.
use std::process::Command;

const SERVICE: &str = include_str!("../../deploy/systemd/lvs-drill@.service");
const TIMER: &str = include_str!("../../deploy/systemd/lvs-drill@.timer");

#[test]
fn the_drill_units_verify_and_run_a_command_lvsctl_has() {
    assert!(SERVICE.contains("ExecStart=/usr/bin/lvsctl -f /etc/lvsctl/%i.toml drill failover\n"));
    assert!(SERVICE.contains("Type=oneshot") && SERVICE.contains("CapabilityBoundingSet=\n"));
    assert!(TIMER.contains("OnCalendar=") && TIMER.contains("Persistent=yes"));
    let help =
        Command::new(env!("CARGO_BIN_EXE_lvsctl")).args(["drill", "failover", "--help"]).output().unwrap();
    assert!(help.status.success(), "{}", String::from_utf8_lossy(&help.stderr));
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("lvs-drill@lab.service");
    std::fs::write(&service, SERVICE.replace("/usr/bin/lvsctl", env!("CARGO_BIN_EXE_lvsctl"))).unwrap();
    let timer = dir.path().join("lvs-drill@lab.timer");
    std::fs::write(&timer, TIMER).unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&service)
        .arg(&timer)
        .output()
        .expect("systemd-analyze (Debian package systemd; tests/prereqs.sh installs it)");
    let err = String::from_utf8_lossy(&o.stderr);
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("lvs-drill")).collect();
    assert!(o.status.success() && ours.is_empty(), "systemd-analyze verify:\n{err}");
}
