//! The packages an admin installs (issue 12): `packaging/build.sh` builds the .deb and .rpm
//! of lvs-agent and lvsctl; this reads them back with dpkg-deb, rpm and lintian and checks
//! what is in them. (That the installed package runs as a real service is the systemd VM
//! floor's job: `tests/vm/run systemd`.)
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (tests/prereqs.sh installs it)"));
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Build the packages once; their paths (agent deb, lvsctl deb, agent rpm, lvsctl rpm).
fn packages() -> &'static [String; 4] {
    static BUILT: OnceLock<[String; 4]> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bins = ["target/release/lvs-agent", "target/release/lvsctl"].map(|b| root().join(b));
        let modified = || bins.each_ref().map(|b| std::fs::metadata(b).and_then(|m| m.modified()).ok());
        let before = modified();
        let out = run("packaging/build.sh", &[]);
        // tests/run built them just before: the script, run from a test, must find nothing
        // to do. (Cargo inheriting the test's CARGO_MANIFEST_DIR, which ring's build script
        // watches, once rebuilt the whole release here and again in the VM step.)
        if std::env::var_os("LVS_RELEASE_BUILT").is_some() {
            assert_eq!(before, modified(), "packaging/build.sh built the release binaries again");
        }
        // One path per line: match on the file name, the directory is the script's.
        let find = |prefix: &str, suffix: &str| {
            out.lines()
                .find(|l| l.rsplit('/').next().is_some_and(|f| f.starts_with(prefix) && f.ends_with(suffix)))
                .unwrap_or_else(|| panic!("{prefix}*{suffix} not built:\n{out}"))
                .to_string()
        };
        [
            find("lvs-agent_", ".deb"),
            find("lvsctl_", ".deb"),
            find("lvs-agent-", ".rpm"),
            find("lvsctl-", ".rpm"),
        ]
    })
}

fn deb_files(deb: &str) -> Vec<String> {
    run("dpkg-deb", &["-c", deb])
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(|p| p.trim_start_matches('.').to_string()))
        .collect()
}

fn the_agent_deb_carries_binary_units_config_and_man_page() {
    let [deb, ..] = packages();
    let files = deb_files(deb);
    for f in [
        "/usr/sbin/lvs-agent",
        "/usr/share/doc/lvs-agent/agent.example.toml",
        "/usr/lib/systemd/system/lvs-agent.service",
        "/usr/lib/systemd/system/lvs-agent@.service",
        "/usr/share/man/man8/lvs-agent.8.gz",
        "/usr/share/doc/lvs-agent/copyright",
        "/usr/lib/sysusers.d/lvs-agent.conf",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} not in {deb}: {files:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    run("dpkg-deb", &["-e", deb, dir.path().to_str().unwrap()]);
    // No config in /etc: an example config there would start the enabled unit with the
    // example's node and address at the next boot. The admin writes it (never replaced).
    assert!(!files.iter().any(|f| f.starts_with("/etc/")), "{files:?}");
    let control = std::fs::read_to_string(dir.path().join("control")).unwrap();
    let recommends = control.lines().find(|l| l.starts_with("Recommends:")).unwrap_or_default();
    assert!(
        recommends.contains("keepalived") && recommends.contains("chrony") && recommends.contains("bird2"),
        "{control}"
    );
    let postinst = std::fs::read_to_string(dir.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("deb-systemd-helper") && postinst.contains("enable"),
        "enabled on install:\n{postinst}"
    );
    assert!(postinst.contains("try-restart"), "an upgrade restarts a running agent:\n{postinst}");
    assert!(!postinst.contains("deb-systemd-invoke start"), "a first install starts nothing:\n{postinst}");
    // The script user and the script directory (the systemd floor proves they work).
    assert!(
        postinst.contains("systemd-sysusers lvs-agent.conf") && postinst.contains("/etc/lvs-agent/scripts"),
        "{postinst}"
    );
    // The unit shipped is the unit in the tree; it waits for the config only (without
    // certificates the agent enrols).
    let x = tempfile::tempdir().unwrap();
    run("dpkg-deb", &["-x", deb, x.path().to_str().unwrap()]);
    let unit = std::fs::read_to_string(x.path().join("usr/lib/systemd/system/lvs-agent.service")).unwrap();
    assert_eq!(unit, std::fs::read_to_string(root().join("deploy/systemd/lvs-agent.service")).unwrap());
    assert!(unit.contains("ConditionPathExists=/etc/lvs-agent/agent.toml\n"));
    assert!(!unit.contains("ConditionPathExists=/etc/lvs-agent/agent.pem"));
    assert!(unit.contains("ExecStart=/usr/sbin/lvs-agent "));
    // The man page is roff, generated from the binary's own options.
    let man =
        run("sh", &["-c", &format!("gzip -dc {}/usr/share/man/man8/lvs-agent.8.gz", x.path().display())]);
    assert!(man.starts_with(".ie") || man.starts_with(".TH"), "{man}");
    assert!(man.contains("lvs\\-agent") && man.contains("\\-\\-config"), "{man}");
}

fn the_lvsctl_deb_carries_binary_completions_and_man_page() {
    let [_, deb, ..] = packages();
    let files = deb_files(deb);
    for f in [
        "/usr/bin/lvsctl",
        "/usr/share/man/man1/lvsctl.1.gz",
        "/usr/share/man/man1/lvsctl-plan.1.gz",
        "/usr/share/man/man1/lvsctl-rs-drain.1.gz",
        "/usr/share/bash-completion/completions/lvsctl",
        "/usr/share/zsh/vendor-completions/_lvsctl",
        "/usr/share/fish/vendor_completions.d/lvsctl.fish",
        "/usr/share/doc/lvsctl/examples/seed.toml",
        "/usr/share/doc/lvsctl/examples/lab-ha.toml",
        "/usr/share/doc/lvsctl/examples/ecmp.toml",
        "/usr/share/doc/lvsctl/examples/ecmp-tor.toml",
        "/usr/share/man/man1/lvsctl-drill-failover.1.gz",
        "/usr/lib/systemd/system/lvs-drill@.service",
        "/usr/lib/systemd/system/lvs-drill@.timer",
        "/usr/share/doc/lvsctl/prometheus/lvs-dr.rules.yml",
        "/usr/share/doc/lvsctl/grafana/lvs-dr.json",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} not in {deb}: {files:?}");
    }
}

fn lintian_finds_no_error_in_either_deb() {
    let [agent, lvsctl, ..] = packages();
    let o = Command::new("lintian").args([agent, lvsctl]).current_dir(root()).output().expect("lintian");
    let text = String::from_utf8_lossy(&o.stdout);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{text}");
}

fn the_rpms_carry_the_same_files_and_no_config_in_etc() {
    let [_, _, agent, lvsctl] = packages();
    let flags = run("rpm", &["-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", agent]);
    for f in [
        "/usr/sbin/lvs-agent",
        "/usr/lib/systemd/system/lvs-agent.service",
        "/usr/lib/systemd/system/lvs-agent@.service",
        "/usr/share/man/man8/lvs-agent.8.gz",
    ] {
        assert!(flags.lines().any(|l| l.starts_with(&format!("{f} "))), "{f} not in {agent}:\n{flags}");
    }
    assert!(!flags.lines().any(|l| l.starts_with("/etc/")), "nothing in /etc:\n{flags}");
    let example = flags
        .lines()
        .find(|l| l.starts_with("/usr/share/doc/lvs-agent/agent.example.toml "))
        .expect("the example config in the rpm");
    assert!(example.contains('d'), "%doc: {example}");
    assert!(
        run("rpm", &["-qp", "--recommends", agent]).contains("keepalived"),
        "the VRRP engine is recommended"
    );
    let scripts = run("rpm", &["-qp", "--scripts", agent]);
    assert!(scripts.contains("try-restart") && scripts.contains("preset"), "{scripts}");
    // EL8's rpm reads gzip payloads, not zstd.
    assert_eq!(run("rpm", &["-qp", "--qf", "%{PAYLOADCOMPRESSOR}", agent]), "gzip");
    let files = run("rpm", &["-qlp", lvsctl]);
    for f in [
        "/usr/bin/lvsctl",
        "/usr/lib/systemd/system/lvs-drill@.timer",
        "/usr/share/zsh/site-functions/_lvsctl",
        "/usr/share/bash-completion/completions/lvsctl",
    ] {
        assert!(files.lines().any(|l| l == f), "{f} not in {lvsctl}:\n{files}");
    }
}

fn the_binaries_run_on_glibc_2_34() {
    // Debian 12 (2.36), Ubuntu 22.04 (2.35) and EL9 (2.34): nothing newer may be needed.
    let [_, _, agent, lvsctl] = packages();
    for rpm in [agent, lvsctl] {
        let reqs = run("rpm", &["-qpR", rpm]);
        let newest = reqs
            .lines()
            .filter_map(|l| l.split("(GLIBC_").nth(1))
            .filter_map(|v| v.split(')').next())
            .map(|v| v.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
            .max()
            .unwrap();
        assert!(newest <= vec![2, 34], "{rpm} needs GLIBC {newest:?}");
    }
}

/// One build, then every check on it (a test process each would build five times at once).
#[test]
fn the_packages_hold_what_an_admin_needs() {
    the_agent_deb_carries_binary_units_config_and_man_page();
    the_lvsctl_deb_carries_binary_completions_and_man_page();
    lintian_finds_no_error_in_either_deb();
    the_rpms_carry_the_same_files_and_no_config_in_etc();
    the_binaries_run_on_glibc_2_34();
}

#[test]
fn the_instance_unit_differs_from_the_unit_only_where_it_names_the_instance() {
    let unit = std::fs::read_to_string(root().join("deploy/systemd/lvs-agent.service")).unwrap();
    let o = Command::new("sh")
        .arg("-c")
        .arg("packaging/instance-unit.sh < deploy/systemd/lvs-agent.service")
        .current_dir(root())
        .output()
        .unwrap();
    let inst = String::from_utf8(o.stdout).unwrap();
    let code = |t: &str| t.lines().filter(|l| !l.starts_with('#')).map(String::from).collect::<Vec<_>>();
    let (a, b) = (code(&unit), code(&inst));
    assert_eq!(a.len(), b.len());
    let changed: Vec<(&String, &String)> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
    for (x, y) in &changed {
        assert!(y.contains("%i"), "{x} became {y}");
    }
    let keys: Vec<&str> = changed.iter().map(|(x, _)| x.split('=').next().unwrap()).collect();
    assert_eq!(
        keys,
        ["Description", "ConditionPathExists", "ExecStart", "StateDirectory"],
        "only the instance's own lines change"
    );
    // Every hardening line is there, unchanged.
    for l in a
        .iter()
        .filter(|l| l.starts_with("Protect") || l.starts_with("Restrict") || l.starts_with("SystemCall"))
    {
        assert!(b.contains(l), "{l} missing from the instance unit");
    }
}

#[test]
fn the_unit_lets_the_agent_write_the_certificates_the_example_config_names() {
    let unit = std::fs::read_to_string(root().join("deploy/systemd/lvs-agent.service")).unwrap();
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("deploy/agent.example.toml")).unwrap()).unwrap();
    let writable: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ReadWritePaths="))
        .flat_map(str::split_whitespace)
        .collect();
    for key in ["ca", "cert", "key"] {
        let path = Path::new(config["tls"][key].as_str().unwrap());
        // Enrolment writes the key there first, rotation replaces key and certificate.
        assert!(
            writable.iter().any(|w| path.starts_with(w)),
            "ProtectSystem=strict and {} is not under ReadWritePaths {writable:?}",
            path.display()
        );
    }
    // The README enrols, and keeps the copy-the-key path only as the offline fallback.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("lvsctl node enroll"), "README does not enrol");
    assert!(readme.contains("/etc/lvs-agent/agent.pem") && readme.contains("offline fallback"));
}
