//! The harness of the project's netns and VM suites. It drives only what a user has: the
//! `lvsctl` and `lvs-agent` binaries (through `lvsctl lab`), `ip`, and the load generator.
pub mod ntp;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the project's binaries are: `$LVS_BIN_DIR`, else beside this test executable's
/// directory (`target/<profile>/`), else `/bin` (the VM).
pub fn bin(name: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("LVS_BIN_DIR") {
        return Path::new(&d).join(name);
    }
    let exe = std::env::current_exe().expect("current exe");
    for dir in exe.ancestors().skip(1).take(2) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    Path::new("/bin").join(name)
}

/// Text of a command's stdout and stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Whether we may create network namespaces.
pub fn can_netns() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// Run `f` on a thread inside the network namespace `ns` (`/run/netns/NS`); threads and
/// processes that thread starts (a runtime's workers, a child) are in it too.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
            use std::os::fd::AsRawFd as _;
            // SAFETY: a valid namespace fd; setns affects only this thread.
            assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
            f()
        })
        .join()
        .unwrap()
    })
}

/// Whether a root suite must fail rather than skip when it cannot run: under `CI`, and
/// under `tests/run` (which sets `LVS_REQUIRE_ROOT_SUITES=1`).
pub fn must_run_root_suites() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("LVS_REQUIRE_ROOT_SUITES")
}

/// The one guard of the suites that need root (network namespaces, iproute2) and, where
/// `also` is given, something more (`(what, present)`, e.g. keepalived): `true` when the
/// suite can run. Otherwise it says SKIPPED, or fails where skipping is not allowed
/// ([`must_run_root_suites`]), so that no suite passes in CI having run nothing.
pub fn root_suite_can_run(also: Option<(&str, bool)>) -> bool {
    let (what, present) = also.unwrap_or(("", true));
    if can_netns() && present {
        return true;
    }
    let needs =
        if what.is_empty() { "root and iproute2".to_string() } else { format!("root, iproute2 and {what}") };
    assert!(!must_run_root_suites(), "needs {needs} (tests/prereqs.sh installs the tools)");
    eprintln!("SKIPPED: needs {needs}");
    false
}

/// A running lab: namespaces `<prefix>-*`, state in `dir`. Torn down on drop.
pub struct Lab {
    /// Namespace prefix.
    pub prefix: String,
    /// Lab directory.
    pub dir: PathBuf,
    /// The definition in use (a copy the test may edit).
    pub def: PathBuf,
    extra: Vec<Child>,
    /// Extra `lvsctl lab` arguments (e.g. `--agents systemd`), for `up` and `down` alike.
    lab_args: Vec<String>,
    /// Leave the lab up when this value is dropped (a test that reboots the machine).
    keep: bool,
}

impl Lab {
    /// [`Lab::up`] when this process may create namespaces. Otherwise the test is skipped
    /// with a SKIPPED line for a developer's quick loop, but it fails when skipping is not
    /// allowed ([`must_run_root_suites`]): `tests/run` and CI may never go green with the
    /// root suites unexercised.
    pub fn up_as_root(prefix: &str, definition: &str) -> Option<Lab> {
        if can_netns() {
            return Some(Lab::up(prefix, definition));
        }
        let why = "needs root and iproute2 (run as root; CI does)";
        assert!(!must_run_root_suites(), "root suite cannot run here: {why}");
        eprintln!("SKIPPED: {why}");
        None
    }

    /// Copy `definition` into a fresh directory and bring the lab up.
    pub fn up(prefix: &str, definition: &str) -> Lab {
        let dir = std::env::temp_dir().join(format!("lvs-{prefix}-{}", std::process::id()));
        Lab::up_at(prefix, &dir, definition, &[])
    }

    /// [`Lab::up`] in `dir` (emptied first), with extra `lvsctl lab` arguments.
    pub fn up_at(prefix: &str, dir: &Path, definition: &str, lab_args: &[&str]) -> Lab {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        // The lab refuses a directory others could read or write.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let def = dir.join("cluster.toml");
        std::fs::write(&def, definition).unwrap();
        let lab = Lab::attach(prefix, dir, lab_args);
        let o = lab.lvsctl_host(&["lab", "up"]);
        assert!(o.status.success(), "lab up: {}", text(&o));
        lab
    }

    /// The lab already up in `dir` (brought up by [`Lab::up_at`] before a reboot, say).
    pub fn attach(prefix: &str, dir: &Path, lab_args: &[&str]) -> Lab {
        Lab {
            prefix: prefix.into(),
            dir: dir.join("lab"),
            def: dir.join("cluster.toml"),
            extra: Vec::new(),
            lab_args: lab_args.iter().map(|a| a.to_string()).collect(),
            keep: false,
        }
    }

    /// Leave the lab up when this value is dropped.
    pub fn keep(mut self) {
        self.keep = true;
    }

    fn lvsctl_host(&self, args: &[&str]) -> Output {
        Command::new(bin("lvsctl"))
            .arg("-f")
            .arg(&self.def)
            .args(args)
            .args(["--prefix", &self.prefix, "--dir"])
            .arg(&self.dir)
            .args(&self.lab_args)
            .env("LVS_AGENT_BIN", bin("lvs-agent"))
            .stdin(Stdio::null())
            .output()
            .expect("run lvsctl")
    }

    /// The namespace of `short`.
    pub fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// `lvsctl ARGS` run from the admin box.
    pub fn lvsctl(&self, args: &[&str]) -> Output {
        self.lvsctl_as(&self.dir.join("pki"), args)
    }

    /// [`Lab::lvsctl`] as the caller whose PKI directory is `pki` (a viewer, another admin).
    pub fn lvsctl_as(&self, pki: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns("admin")])
            .arg(bin("lvsctl"))
            .arg("-f")
            .arg(&self.def)
            .arg("--pki")
            .arg(pki)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run lvsctl")
    }

    /// `lvsctl ARGS -o json`, parsed; panics with the output when it is not JSON.
    pub fn json(&self, args: &[&str]) -> (bool, serde_json::Value) {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let o = self.lvsctl(&a);
        let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)));
        (o.status.success(), v)
    }

    /// A command in namespace `short`.
    pub fn exec(&self, short: &str, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(short)])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A background command in namespace `short` (ended on drop).
    pub fn spawn(&mut self, short: &str, cmd: &[&str], log: &str) -> u32 {
        let f = std::fs::File::create(self.dir.join(log)).unwrap();
        let c = Command::new("ip")
            .args(["netns", "exec", &self.ns(short)])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let id = c.id();
        self.extra.push(c);
        id
    }

    /// `lvsctl ARGS` in the background on the admin box (ended on drop), its output in `log`.
    pub fn spawn_lvsctl(&mut self, args: &[&str], log: &str) -> u32 {
        let (ctl, def, pki) = (bin("lvsctl"), self.def.clone(), self.dir.join("pki"));
        let mut cmd =
            vec![ctl.to_str().unwrap(), "-f", def.to_str().unwrap(), "--pki", pki.to_str().unwrap()];
        cmd.extend(args);
        let cmd: Vec<String> = cmd.into_iter().map(String::from).collect();
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        self.spawn("admin", &cmd, log)
    }

    /// Wait for a background command started by [`Lab::spawn`] and return its stdout log.
    pub fn wait(&mut self, pid: u32, log: &str) -> String {
        if let Some(i) = self.extra.iter().position(|c| c.id() == pid) {
            let mut c = self.extra.remove(i);
            let _ = c.wait();
        }
        std::fs::read_to_string(self.dir.join(log)).unwrap_or_default()
    }

    /// PID of a process the lab started, by its name in the lab's `pids` file.
    pub fn pid_of(&self, name: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("pids"))
            .ok()?
            .lines()
            .rev()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
    }

    /// Send `sig` to a PID this lab started.
    pub fn kill(&self, pid: i32, sig: &str) {
        let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
    }

    /// Replace the definition (the test's next generation).
    pub fn redefine(&self, text: &str) {
        std::fs::write(&self.def, text).unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.extra {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            return;
        }
        let o = self.lvsctl_host(&["lab", "down"]);
        if !o.status.success() {
            eprintln!("lab down: {}", text(&o));
        }
    }
}

/// Poll `f` every `step` until it returns `Some`, or `timeout`.
pub fn poll<T>(timeout: Duration, step: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(step);
    }
}

/// The lab definition with a few edits (`from` → `to`, each must match).
pub fn edit(base: &str, edits: &[(&str, &str)]) -> String {
    let mut s = base.to_string();
    for (from, to) in edits {
        assert!(s.contains(from), "definition has no `{from}`");
        s = s.replacen(from, to, 1);
    }
    s
}

/// A test's step heading in its output.
pub fn step(name: &str) {
    println!("\n=== {name}");
}

/// The output of a command that must succeed (printed, and returned as text).
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    let t = text(o);
    println!("{t}");
    t
}

/// Continuous load from the lab's client to `vip`; returns (pid, stop file, log name).
pub fn start_load(lab: &mut Lab, vip: &str, name: &str) -> (u32, PathBuf, String) {
    start_load_with(lab, vip, name, &[])
}

/// [`start_load`] with more `lvs-load` arguments (e.g. `--timeout 10s`).
pub fn start_load_with(lab: &mut Lab, vip: &str, name: &str, extra: &[&str]) -> (u32, PathBuf, String) {
    let stop = lab.dir.join(format!("{name}.stop"));
    let log = format!("{name}.json");
    let load = bin("lvs-load");
    let mut args = vec![load.to_str().unwrap(), vip, "-d", "600s", "--stop-file", stop.to_str().unwrap()];
    // Four clients unless the caller says how many.
    if !extra.iter().any(|a| *a == "-c" || *a == "--concurrency") {
        args.extend(["-c", "4"]);
    }
    args.extend(extra);
    let pid = lab.spawn("client", &args, &log);
    std::thread::sleep(Duration::from_millis(500));
    (pid, stop, log)
}

/// Stop the load of [`start_load`]; its report.
pub fn stop_load(lab: &mut Lab, load: (u32, PathBuf, String)) -> serde_json::Value {
    std::fs::write(&load.1, "").unwrap();
    let out = lab.wait(load.0, &load.2);
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("load report: {e}: {out}"));
    // A lost worker's requests are missing from every count: such a report proves nothing.
    assert_eq!(report["lost_workers"], 0, "the load generator lost workers: {report}");
    report
}
