//! The `lvsctl` binary as a user runs it: exit codes, messages, `--help` snapshots.
use std::process::{Command, Output};

/// `lvsctl ARGS`. The user's directories (the default PKI, a rollout's progress) are kept
/// beside a definition in a test's own directory (`-f /abs/path`), else in a throwaway one:
/// a test never writes to the real ~/.config.
fn lvsctl(args: &[&str]) -> Output {
    let home = args
        .windows(2)
        .find(|w| w[0] == "-f" && w[1].starts_with('/'))
        .and_then(|w| std::path::Path::new(w[1]).parent().map(std::path::Path::to_path_buf));
    lvsctl_home(args, home.as_deref())
}

/// [`lvsctl`] with the user's directories under `home` (a throwaway one when `None`).
fn lvsctl_home(args: &[&str], home: Option<&std::path::Path>) -> Output {
    let scratch = tempfile::tempdir().unwrap();
    let home = home.unwrap_or(scratch.path());
    Command::new(env!("CARGO_BIN_EXE_lvsctl"))
        .args(args)
        .env_remove("LVSCTL_FILE")
        .env_remove("LVSCTL_PKI")
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join(".state"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run lvsctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_snapshots() {
    insta::assert_snapshot!("help", text(&lvsctl(&["--help"]).stdout));
    insta::assert_snapshot!("help_plan", text(&lvsctl(&["plan", "--help"]).stdout));
    insta::assert_snapshot!("help_validate", text(&lvsctl(&["validate", "--help"]).stdout));
    insta::assert_snapshot!("help_apply", text(&lvsctl(&["apply", "--help"]).stdout));
    insta::assert_snapshot!("help_rs_drain", text(&lvsctl(&["rs", "drain", "--help"]).stdout));
    insta::assert_snapshot!("help_rollout", text(&lvsctl(&["rollout", "--help"]).stdout));
    insta::assert_snapshot!(
        "help_import_keepalived",
        text(&lvsctl(&["import", "keepalived", "--help"]).stdout)
    );
}

#[test]
fn a_keepalived_conf_imports_into_a_file_that_validate_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cluster.toml");
    let fixtures = "../controller/tests/fixtures/keepalived";
    let (master, backup) = (format!("{fixtures}/dr-master.conf"), format!("{fixtures}/dr-backup.conf"));
    let o = lvsctl(&[
        "import",
        "keepalived",
        &master,
        &backup,
        "--director",
        "lvs1=198.18.0.2/24",
        "--director",
        "lvs2=198.18.0.3/24",
        "--router",
        "198.18.0.1",
        "--firewall",
        &format!("{fixtures}/dr-master.iptables"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The fwmark service's marks come from the iptables-save dump.
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(toml.contains("marks = [{ protocol = \"tcp\", ports = [8443, \"9000-9010\"] }"), "{toml}");
    assert!(
        text(&o.stderr).contains("imported 3 service(s) from 2 file(s); 23 keepalived option(s)"),
        "{}",
        text(&o.stderr)
    );
    let o = lvsctl(&["-f", out.to_str().unwrap(), "validate"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("valid: cluster lvs-web generation 1, 7 nodes, 3 services"),
        "{}",
        text(&o.stdout)
    );
    // An existing file is not replaced; a director without its prefix is refused.
    let again = [
        "import",
        "keepalived",
        &master,
        "--director",
        "lvs1=198.18.0.2/24",
        "--router",
        "198.18.0.1",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = lvsctl(&again);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("exists: not replaced"), "{}", text(&o.stderr));
    let o =
        lvsctl(&["import", "keepalived", &master, "--director", "lvs1=198.18.0.2", "--router", "198.18.0.1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("expected NAME=ADDRESS/PREFIX"), "{}", text(&o.stderr));
    // A NAT configuration: written, with the reasons it does not validate (exit 1).
    let o = lvsctl(&[
        "import",
        "keepalived",
        &format!("{fixtures}/nat.conf"),
        "--director",
        "lvs1=198.18.0.2/24",
        "--router",
        "198.18.0.1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("`lb_kind NAT`: this tool runs direct routing only"));
    assert!(
        text(&o.stderr).contains("the definition needs the changes above before it validates"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn fleet_commands_without_a_pki_say_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = lvsctl(&["-f", "../deploy/examples/lab.toml", "--pki", dir.path().to_str().unwrap(), "status"]);
    assert_eq!(o.status.code(), Some(8), "a local failure");
    assert!(text(&o.stderr).contains("lvsctl pki init"), "{}", text(&o.stderr));
}

#[test]
fn an_unreachable_agent_is_named_and_the_exit_code_says_so() {
    // A definition whose agents listen nowhere (TEST-NET addresses in 198.18/15, port 9).
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("cluster.toml");
    let lab = include_str!("../../deploy/examples/lab.toml").replace(":7443", ":9");
    std::fs::write(&def, lab.replace("198.18.0.1:9", "127.0.0.1:9")).unwrap();
    let d = def.to_str().unwrap();
    assert!(lvsctl(&["-f", d, "pki", "init"]).status.success());
    let o = lvsctl(&["-f", d, "--deadline", "2s", "apply", "--yes", "--node", "router"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stdout));
    let t = text(&o.stdout);
    assert!(t.contains("router: FAILED unreachable") && t.contains("nothing was changed"), "{t}");
    // A scrape of an agent that does not answer: named, exit 3; of no such node: exit 2.
    let o = lvsctl(&["-f", d, "--deadline", "2s", "metrics", "router", "--address", "127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("router at 127.0.0.1:9"), "{}", text(&o.stderr));
    let o = lvsctl(&["-f", d, "metrics", "nosuch"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no node `nosuch`"), "{}", text(&o.stderr));
}

#[test]
fn ipvs_restore_turns_ipvsadm_save_into_definition_services() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("rules");
    std::fs::write(&saved, "-A -t 172.16.21.10:80 -s rr\n-a -t 172.16.21.10:80 -r 192.168.40.12:80 -g -w 2\n-a -t 172.16.21.10:80 -r 192.168.40.13:80 -g -w 1\n").unwrap();
    let o = lvsctl(&["-f", "../deploy/examples/seed.toml", "ipvs", "restore", saved.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let t = text(&o.stdout);
    // TOML as serde writes it: read it back rather than match its layout.
    let v: toml::Value = toml::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"));
    let svc = &v["services"][0];
    assert_eq!(
        (svc["vip"].as_str(), svc["port"].as_integer(), svc["scheduler"].as_str()),
        (Some("172.16.21.10"), Some(80), Some("rr")),
        "{t}"
    );
    let reals: Vec<(&str, i64)> = svc["real_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["node"].as_str().unwrap(), r["weight"].as_integer().unwrap()))
        .collect();
    assert_eq!(reals, [("rs1", 2), ("rs2", 1)], "{t}");
    std::fs::write(&saved, "-A -t 172.16.21.10:80 -s rr\n-a -t 172.16.21.10:80 -q\n").unwrap();
    let o = lvsctl(&["-f", "../deploy/examples/seed.toml", "ipvs", "restore", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("line 2: unknown option -q"), "{}", text(&o.stderr));
}

#[test]
fn validate_seed_exits_zero() {
    let o = lvsctl(&["validate", "-f", "../deploy/examples/seed.toml"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("valid: cluster seed-web generation 1, 4 nodes, 1 services"));
}

#[test]
fn invalid_file_exits_one_with_every_error_and_location() {
    let dir = std::env::temp_dir().join(format!("lvsctl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    let lab = include_str!("../../deploy/examples/lab.toml");
    std::fs::write(
        &bad,
        lab.replace("scheduler = \"rr\"", "scheduler = \"xx\"")
            .replace("weight = 1 },\n  { node = \"rs2\"", "weight = 70000 },\n  { node = \"rs2\""),
    )
    .unwrap();
    let before = std::fs::read(&bad).unwrap();
    let o = lvsctl(&["validate", "-f", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("error[unknown-scheduler]: services[0].scheduler: unknown scheduler `xx`"), "{err}");
    assert!(err.contains("error[weight-range]: services[0].real_servers[0].weight"), "{err}");
    assert!(err.contains("bad.toml:59:1: error[unknown-scheduler]"), "file:line:column: {err}");
    assert!(err.contains("bad.toml:62:19: error[weight-range]"), "file:line:column: {err}");
    assert!(err.contains("2 error(s)") && err.contains("nothing was changed"), "{err}");
    assert_eq!(std::fs::read(&bad).unwrap(), before, "validate changes nothing");
    assert!(o.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_comes_from_env_and_missing_file_is_clear() {
    let o = Command::new(env!("CARGO_BIN_EXE_lvsctl"))
        .args(["plan", "--offline", "-o", "json"])
        .env("LVSCTL_FILE", "../deploy/examples/lab.toml")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    let o = lvsctl(&["validate", "-f", "/nonexistent/cluster.toml"]);
    assert_eq!(o.status.code(), Some(8), "a local failure");
    assert!(text(&o.stderr).contains("cannot read definition /nonexistent/cluster.toml"));
}

/// A definition copy with a PKI, agents unreachable (nothing listens): for usage errors
/// that must be refused before any agent is asked.
fn with_pki() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("cluster.toml");
    std::fs::write(&def, include_str!("../../deploy/examples/lab.toml")).unwrap();
    let d = def.to_str().unwrap().to_string();
    assert!(lvsctl(&["-f", &d, "pki", "init"]).status.success());
    (dir, d)
}

#[test]
fn live_changes_refuse_bad_targets_before_asking_any_agent() {
    let (_dir, d) = with_pki();
    let o = lvsctl(&["-f", &d, "rs", "drain", "director"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("director is a director, not a real server"), "{}", text(&o.stderr));
    let o = lvsctl(&["-f", &d, "rs", "weight", "rs1", "70000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("weight 70000 is outside 0..=65535"), "{}", text(&o.stderr));
    let o = lvsctl(&["-f", &d, "rs", "enable", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no node `nosuch`"), "{}", text(&o.stderr));
    let o = lvsctl(&["-f", &d, "apply", "--yes", "--node", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no node `nosuch`"), "{}", text(&o.stderr));
    // The same for every command that names nodes, before any agent is asked.
    for args in [
        &["plan", "--node", "nosuch"][..],
        &["status", "--node", "nosuch"],
        &["node", "remove", "nosuch", "--yes"],
    ] {
        let mut a = vec!["-f", d.as_str()];
        a.extend(args);
        let o = lvsctl(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o.stderr).contains("no node `nosuch`"), "{args:?}: {}", text(&o.stderr));
    }
    let o = lvsctl(&["-f", &d, "ipvs", "list", "--node", "rs1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("`rs1` is not a director"), "{}", text(&o.stderr));
    // A planned failover needs a VRRP instance, and a director of it.
    let o = lvsctl(&["-f", &d, "director", "failover"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("has no [[vrrp]] instance"), "{}", text(&o.stderr));
    let o = lvsctl(&["-f", &d, "director", "failover", "--to", "rs1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("rs1 is in no VRRP instance"), "{}", text(&o.stderr));
}

#[test]
fn pki_issue_refuses_unknown_nodes_and_writes_nothing() {
    let (dir, d) = with_pki();
    let o = lvsctl(&["-f", &d, "pki", "issue", "rs1", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no node `nosuch`"), "{}", text(&o.stderr));
    let pki = dir.path().join(".config/lvsctl/lab/pki");
    assert!(!pki.join("agent-rs1.pem").exists(), "nothing issued when one name is bad");
    let o = lvsctl(&["-f", &d, "pki", "issue"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for n in ["router", "director", "rs1", "rs2"] {
        assert!(pki.join(format!("agent-{n}.pem")).exists());
    }
}

#[test]
fn a_closed_pipe_ends_lvsctl_quietly() {
    // `lvsctl completions bash | head`, with the reader gone before the first write: every
    // write fails with EPIPE. No panic (exit 101), no "Broken pipe" error (exit 2).
    for args in [
        &["completions", "bash"][..],
        &["-f", "../deploy/examples/lab.toml", "plan", "--offline", "-o", "json"],
        &["-f", "../deploy/examples/lab.toml", "plan", "--offline"],
        &["man"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_lvsctl"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn every_command_honours_json_or_refuses_it() {
    // validate: the verdict as JSON, for a valid and an invalid definition.
    let o = lvsctl(&["-f", "../deploy/examples/lab.toml", "validate", "-o", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["cluster"]["nodes"], 4);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let lab = include_str!("../../deploy/examples/lab.toml");
    std::fs::write(&bad, lab.replace("scheduler = \"rr\"", "scheduler = \"nope\"")).unwrap();
    let o = lvsctl(&["-f", bad.to_str().unwrap(), "validate", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["rule"].as_str(), d["severity"].as_str()),
        (Some("unknown-scheduler"), Some("error")),
        "{v:#}"
    );
    assert_eq!(d["path"], "services[0].scheduler");
    // pki: the files written.
    let def = dir.path().join("cluster.toml");
    std::fs::write(&def, lab).unwrap();
    let o = lvsctl(&["-f", def.to_str().unwrap(), "pki", "init", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["written"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().ends_with("ca.pem")), "{v}");
    // Output that is not data refuses -o json instead of ignoring it.
    for args in [
        &["completions", "bash"][..],
        &["man"],
        &["ipvs", "restore", "-"],
        &["lab", "down"],
        &["metrics", "rs1"],
        &["import", "keepalived", "x.conf", "--director", "d=198.18.0.2/24", "--router", "198.18.0.1"],
    ] {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let o = lvsctl(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        assert!(text(&o.stderr).contains("does not take -o json"), "{a:?}: {}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "{a:?}");
    }
}

#[test]
fn help_lists_every_exit_status() {
    let help = text(&lvsctl(&["--help"]).stdout);
    let table = lvs_controller::commands::exit::table();
    assert!(help.contains(&format!("Exit status:\n{table}")), "{help}");
    assert_eq!(lvsctl::cli::EXIT_HELP, format!("Exit status:\n{table}"));
    // And the README's table says the same.
    let readme = include_str!("../../README.md");
    for e in lvs_controller::commands::Exit::ALL {
        let row = format!("| {} | {} |", e.code(), e.meaning());
        assert!(readme.contains(&row), "README lacks `{row}`");
    }
}

#[test]
fn habits_from_ipvsadm_and_kubectl_parse() {
    use clap::Parser;
    use lvsctl::cli::{Cli, Command, IpvsCommand, RsCommand};
    // `--wait rs1`: rs1 is the server, the wait its default (a value needs `=`).
    let c = Cli::try_parse_from(["lvsctl", "rs", "drain", "--wait", "rs1"]).unwrap();
    let Command::Rs(RsCommand::Drain { rs, wait }) = c.command else { panic!() };
    assert_eq!((rs.as_str(), wait), ("rs1", Some(std::time::Duration::from_secs(60))));
    let c = Cli::try_parse_from(["lvsctl", "rs", "drain", "rs1", "--drain-timeout=5m"]).unwrap();
    let Command::Rs(RsCommand::Drain { wait, .. }) = c.command else { panic!() };
    assert_eq!(wait, Some(std::time::Duration::from_secs(300)));
    // ipvsadm's `-L -n -t VIP:PORT`, and a director filter.
    let c = Cli::try_parse_from([
        "lvsctl",
        "ipvs",
        "list",
        "-n",
        "-t",
        "198.18.0.100:80",
        "--node",
        "director",
        "--stats",
    ])
    .unwrap();
    let Command::Ipvs(IpvsCommand::List(a)) = c.command else { panic!() };
    assert!(a.numeric && a.view.stats && a.nodes == ["director"]);
    assert_eq!(a.tcp, Some("198.18.0.100:80".parse().unwrap()));
    // One family of waits: --call-timeout (alias --deadline), --drain-timeout, --health-timeout.
    let c = Cli::try_parse_from(["lvsctl", "--deadline", "5s", "status", "--node", "rs1"]).unwrap();
    assert_eq!(c.deadline, std::time::Duration::from_secs(5));
    assert!(
        Cli::try_parse_from(["lvsctl", "--call-timeout", "5s", "rollout", "--drain-timeout", "1m"]).is_ok()
    );
}

#[test]
fn the_man_pages_have_what_an_admin_looks_for_and_every_page_they_name() {
    let page = text(&lvsctl(&["man"]).stdout);
    assert!(page.contains("lvsctl \\- Set up and run"), "NAME names the tool once: {}", &page[..200]);
    for s in ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"] {
        assert!(page.contains(&format!(".SH \"{s}\"")), "no {s} section");
    }
    for e in lvs_controller::commands::Exit::ALL {
        assert!(page.contains(&format!(".TP\n{}\n", e.code())), "exit {} missing", e.code());
    }
    let dir = tempfile::tempdir().unwrap();
    let o = lvsctl(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Every page the pages name (lvsctl\-plan(1), …) was written.
    let mut named = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for w in t.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some(name) = w.strip_suffix("(1)").filter(|n| n.starts_with("lvsctl")) {
                named.insert(name.replace("\\-", "-").replace("\\fB", "").replace("\\fR", ""));
            }
        }
    }
    assert!(named.len() > 10, "{named:?}");
    for n in named {
        assert!(dir.path().join(format!("{n}.1")).exists(), "{n}(1) is named but not written");
    }
}

#[test]
fn the_ca_key_stays_out_of_git_trees_and_is_not_replaced_unasked() {
    let (repo, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(repo.path().join(".git")).unwrap();
    let def = repo.path().join("cluster.toml");
    std::fs::write(&def, include_str!("../../deploy/examples/lab.toml")).unwrap();
    let d = def.to_str().unwrap();
    let lvsctl = |args: &[&str]| lvsctl_home(args, Some(home.path()));
    // The default is the user's config directory, outside the work tree.
    let o = lvsctl(&["-f", d, "pki", "init"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ca = home.path().join(".config/lvsctl/lab/pki/ca.pem");
    assert!(ca.exists());
    // An explicit PKI inside the work tree is refused, unless asked for.
    let inside = repo.path().join("pki");
    let o = lvsctl(&["-f", d, "--pki", inside.to_str().unwrap(), "pki", "init"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("inside the git work tree"), "{}", text(&o.stderr));
    assert!(!inside.join("ca.key").exists());
    let o = lvsctl(&["-f", d, "--pki", inside.to_str().unwrap(), "pki", "init", "--allow-git-tree"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Replacing a CA cuts every node off: asked, and without a terminal it needs --yes.
    let before = std::fs::read(&ca).unwrap();
    let o = lvsctl(&["-f", d, "pki", "init", "--force"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("must be issued again"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&ca).unwrap(), before, "the CA is unchanged");
    let o = lvsctl(&["-f", d, "pki", "init", "--force", "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_ne!(std::fs::read(&ca).unwrap(), before);
}

#[test]
fn callers_get_pki_directories_of_their_own_and_the_ledger_lists_and_revokes() {
    let (dir, d) = with_pki();
    let out = dir.path().join("grafana-pki");
    let issue =
        ["-f", &d, "pki", "issue-admin", "grafana", "--role", "viewer", "--out", out.to_str().unwrap()];
    let o = lvsctl(&issue);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for f in ["ca.pem", "controller.pem", "controller.key"] {
        assert!(out.join(f).exists(), "{f}");
    }
    assert!(!out.join("ca.key").exists(), "a caller's directory holds no CA key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(out.join("controller.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let again = lvsctl(&issue);
    assert!(!again.status.success() && text(&again.stderr).contains("--force"), "{}", text(&again.stderr));
    // Never an admin key into a git work tree unless told.
    std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
    let in_git = dir.path().join("repo/keys");
    let o = lvsctl(&[
        "-f",
        &d,
        "pki",
        "issue-admin",
        "bob",
        "--role",
        "admin",
        "--out",
        in_git.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("inside the git work tree"),
        "{}",
        text(&o.stderr)
    );
    assert!(!in_git.join("controller.key").exists());
    let o = lvsctl(&["-f", &d, "pki", "issue-admin", "../x", "--role", "admin"]);
    assert!(!o.status.success() && text(&o.stderr).contains("cannot be a DNS name"), "{}", text(&o.stderr));
    let o = lvsctl(&["-f", &d, "pki", "issue-admin", "x", "--role", "root"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses the role: {}", text(&o.stderr));
    // The ledger: every certificate issued, then revoked.
    let list = |d: &str| {
        let o = lvsctl(&["-f", d, "pki", "list", "-o", "json"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = list(&d);
    let subjects: Vec<&str> = v.as_array().unwrap().iter().map(|i| i["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["admin:controller", "viewer:grafana"], "{v:#}");
    let o = lvsctl(&["-f", &d, "pki", "revoke", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no certificate issued to `nosuch`"), "{}", text(&o.stderr));
    // Revoked in the ledger; the agents (none listening here) are named as not updated.
    let o = lvsctl(&["-f", &d, "--call-timeout", "2s", "pki", "revoke", "grafana"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stdout));
    let t = text(&o.stdout);
    assert!(t.contains("revoked viewer:grafana") && t.contains("rs1: NOT updated"), "{t}");
    assert_eq!(list(&d)[1]["revoked"], true);
    // Enrolment refuses a bad node or code before anything is sent.
    let o = lvsctl(&["-f", &d, "node", "enroll", "nosuch", "--code", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = lvsctl(&["-f", &d, "node", "enroll", "rs1", "--code", "ABCD-EFGH"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stdout).contains("rs1: NOT enrolled: pairing code: 8 characters"), "{}", text(&o.stdout));
}

#[test]
fn a_damaged_ledger_is_a_local_failure_not_bad_usage() {
    // The admin typed nothing wrong: a ledger that cannot be read is the admin box's
    // failure (8), named, and no agent is asked (none listens; 6 would say one was).
    let (dir, d) = with_pki();
    let ledger = dir.path().join(".config/lvsctl/lab/pki/issued.json");
    assert!(ledger.exists(), "pki init keeps a ledger");
    std::fs::write(&ledger, b"{ not json").unwrap();
    for args in [&["apply", "--yes"][..], &["pki", "revoke", "rs1"], &["pki", "list"]] {
        let mut a = vec!["-f", d.as_str()];
        a.extend(args);
        let o = lvsctl(&a);
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("issued.json"), "{args:?}: {}", text(&o.stderr));
    }
    // A name that was never issued stays bad usage (2), with the way to see the ledger.
    std::fs::write(&ledger, b"[]").unwrap();
    let o = lvsctl(&["-f", &d, "pki", "revoke", "nosuch"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("lvsctl pki list"), "{}", text(&o.stderr));
}
