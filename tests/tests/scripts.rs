//! The test command's own set-up (issue 17): `tests/run` installs every prerequisite before
//! its first test, `.ci/run` goes through the same script, and the list can be checked.
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn lines(rel: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    // Comments do not run: only commands count.
    text.lines().map(str::trim).filter(|l| !l.starts_with('#')).map(String::from).collect()
}

fn first(lines: &[String], what: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(what))
}

#[test]
fn tests_run_installs_prerequisites_before_the_first_cargo_command() {
    let l = lines("tests/run");
    let prereqs = first(&l, "tests/prereqs.sh").expect("tests/run never calls tests/prereqs.sh");
    let cargo = first(&l, "cargo ").expect("tests/run runs no cargo command");
    assert!(prereqs < cargo, "tests/run calls tests/prereqs.sh (line {prereqs}) after cargo (line {cargo})");
    // Not inside the VM branch: it runs whether or not LVS_SKIP_VM is set.
    let skip = first(&l, "LVS_SKIP_VM").unwrap_or(usize::MAX);
    assert!(prereqs < skip, "tests/prereqs.sh must not depend on LVS_SKIP_VM");
    let strict = first(&l, "LVS_REQUIRE_ROOT_SUITES=1").expect("tests/run lets root suites skip silently");
    assert!(strict < cargo, "LVS_REQUIRE_ROOT_SUITES is set after cargo runs");
}

#[test]
fn ci_and_the_vm_bed_use_the_same_prerequisites() {
    let ci = lines(".ci/run");
    assert!(first(&ci, "tests/run").is_some(), ".ci/run does not call the README's test command");
    let prepare = lines("tests/vm/prepare.sh");
    assert!(first(&prepare, "prereqs.sh").is_some(), "tests/vm/prepare.sh has its own package list");
    assert!(
        first(&prepare, "apt-get install").is_none(),
        "tests/vm/prepare.sh installs packages itself instead of through tests/prereqs.sh"
    );
}

#[test]
fn the_check_mode_names_what_is_missing_and_installs_nothing() {
    // With no PATH every `command -v` probe fails: the check must say so and exit 1
    // (and, being a check, never reach apt-get, which it could not find anyway).
    let o = Command::new("/bin/bash")
        .arg(root().join("tests/prereqs.sh"))
        .arg("--check")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("missing: qemu-system-x86 ("), "{out}");
    assert!(out.contains("missing: cpio ("), "{out}");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("installing"));
}

#[test]
fn every_prerequisite_is_installed_under_the_test_command() {
    let o = Command::new(root().join("tests/prereqs.sh")).arg("--check").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    if lvs_tests::must_run_root_suites() {
        assert!(o.status.success(), "tests/run ran tests/prereqs.sh, yet:\n{out}");
    } else if !o.status.success() {
        eprintln!("SKIPPED (not under tests/run or CI): {out}");
    }
}
