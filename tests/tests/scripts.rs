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

/// A developer's shortcuts (`LVS_SKIP_VM=1`, `LVS_VM_ONLY=…`) left in the environment never
/// shorten CI: `.ci/run` unsets them before anything runs (seen in the environment it
/// passes on, which `LVS_CI_SHOW_ENV=1` prints instead of running).
#[test]
fn ci_unsets_the_shortcuts_that_skip_vm_suites() {
    let o = Command::new("bash")
        .arg(root().join(".ci/run"))
        .env("LVS_SKIP_VM", "1")
        .env("LVS_VM_ONLY", "rotation")
        .env("LVS_CI_SHOW_ENV", "1")
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{env}{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        env.lines().any(|l| l.starts_with("LVS_PHASES=")),
        "not the environment .ci/run passes on: {env}"
    );
    for var in ["LVS_SKIP_VM", "LVS_VM_ONLY"] {
        assert!(!env.lines().any(|l| l.starts_with(&format!("{var}="))), "{var} reaches CI's suites: {env}");
    }
}

/// The per-phase table: nested phases are recorded with their depth, a failing phase keeps
/// its status and stops a `set -e` script, and the table is printed even then.
#[test]
fn the_phase_table_records_nested_and_failing_phases() {
    let script = format!(
        "set -euo pipefail; . {}/tests/phases.sh; LVS_PHASES=$(mktemp); export LVS_PHASES; \
         trap phase_table EXIT; \
         phase outer bash -c '. {0}/tests/phases.sh; phase inner true'; \
         f() {{ false; echo SHOULD-NOT-RUN; }}; phase failing f; echo NOT-REACHED",
        root().display()
    );
    // (Not the phases of the run this test is part of: under .ci/run both are set.)
    let o = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_remove("LVS_PHASE_DEPTH")
        .env_remove("LVS_PHASES")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(!out.contains("SHOULD-NOT-RUN") && !out.contains("NOT-REACHED"), "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("ci: ") && !l.contains("seconds")).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[0].starts_with("ci:   inner") && rows[0].ends_with(" 0"), "{out}");
    assert!(rows[1].starts_with("ci: outer") && rows[1].ends_with(" 0"), "{out}");
    assert!(rows[2].starts_with("ci: failing") && rows[2].ends_with(" 1"), "{out}");
}

/// The systemd guest runs each test by its exact name; a name that matches nothing runs 0
/// tests and exits 0, which must fail the suite (a renamed test would pass unseen).
#[test]
fn the_systemd_guest_fails_a_test_name_that_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stub = dir.path().join("systemd-tests");
    // A libtest binary whose filter matched nothing (or, with RUN_ONE=1, one test).
    std::fs::write(
        &stub,
        "#!/bin/sh\nif [ \"$RUN_ONE\" = 1 ]; then echo 'test result: ok. 1 passed; 0 failed'; \
         else echo 'test result: ok. 0 passed; 0 failed'; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = dir.path().join("out");
    let try_run = |one: &str| {
        let script =
            format!(". {}/tests/vm/systemd-guest.sh; run label 10 some_test; echo rc=$rc", root().display());
        let o = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("LVS_VM_FUNCTIONS_ONLY", "1")
            .env("LVS_VM_OUT", &out)
            .env("LVS_VM_STATE", dir.path())
            .env("LVS_VM_TEST_BIN", &stub)
            .env("RUN_ONE", one)
            .output()
            .unwrap();
        (String::from_utf8_lossy(&o.stdout).into_owned(), std::fs::read_to_string(&out).unwrap_or_default())
    };
    let (rc, said) = try_run("0");
    assert_eq!(rc.trim(), "rc=1", "{said}");
    assert!(said.contains("LVSVM-FAILED label: no test named some_test ran"), "{said}");
    let (rc, said) = try_run("1");
    assert_eq!(rc.trim(), "rc=0", "{said}");
}
