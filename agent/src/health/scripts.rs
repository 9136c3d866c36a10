//! Check scripts and notify hooks: the node decides what runs, and as whom.
//!
//! A spec only *names* a script (`check-app`, see [`lvs_proto::names::script_problem`]);
//! the program is the file of that name in the node's script directory
//! ([`DEFAULT_DIR`], `[scripts] dir` in agent.toml), which only the node's root can fill.
//! This is keepalived's `enable_script_security` + `script_user`, made the only mode: a
//! stolen admin certificate can choose among the programs the node's owner installed and
//! their arguments, never run a program of its own.
//!
//! Before every run the script's path is checked as keepalived checks it: the file and
//! every directory above it belong to root and no one else can write them (a sticky
//! directory such as `/tmp` may be on the way: there only root can replace root's
//! entries); the file is a regular, executable file. Then it runs:
//! - as the unprivileged script user ([`DEFAULT_USER`], created by the package; `nobody`
//!   where it does not exist), never uid 0, so with no capability at all (the kernel clears
//!   permitted, effective and ambient sets when every uid leaves 0) and no supplementary
//!   group;
//! - with `no_new_privs` (a set-uid program it starts gains nothing);
//! - with a clean environment (the caller's `LVS_*` variables, `PATH`, `LANG`, `HOME=/`),
//!   in `/`;
//! - under resource limits ([`LIMITS`]): no core dumps, few files and processes, bounded
//!   memory and file size, CPU time a little over its timeout.
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a node's scripts live unless its agent.toml says otherwise.
pub const DEFAULT_DIR: &str = lvs_proto::agent_config::DEFAULT_SCRIPTS_DIR;

/// Whom scripts run as unless agent.toml says otherwise (the package creates the user).
pub const DEFAULT_USER: &str = lvs_proto::agent_config::DEFAULT_SCRIPT_USER;

/// The user scripts run as when [`DEFAULT_USER`] does not exist on this node (an agent not
/// installed from the package), as keepalived falls back to `nobody`.
const FALLBACK_USER: &str = "nobody";

/// The environment's `PATH` for scripts: they run with a clean environment, so nothing of
/// the agent's own leaks into them.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resource limits of a script (soft = hard), beside the CPU time its timeout decides.
/// Processes are counted per user: this bounds every script of the node together (a fork
/// bomb in one check stops there), with room for 200 destinations' checks at once.
pub const LIMITS: &[(libc::__rlimit_resource_t, u64)] = &[
    (libc::RLIMIT_CORE, 0),
    (libc::RLIMIT_NOFILE, 256),
    (libc::RLIMIT_NPROC, 1024),
    (libc::RLIMIT_AS, 1 << 30),
    (libc::RLIMIT_FSIZE, 64 << 20),
];

/// The user a script runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// Its name.
    pub name: String,
    /// Its uid (never 0).
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

/// This node's script policy: the directory scripts come from and whom they run as.
#[derive(Debug, Clone)]
pub struct Scripts {
    dir: PathBuf,
    /// The user, or why there is none (reported when a spec names a script).
    user: Result<RunAs, String>,
}

impl Default for Scripts {
    /// [`DEFAULT_DIR`], run as [`DEFAULT_USER`] (or `nobody`).
    fn default() -> Self {
        Scripts::new(Path::new(DEFAULT_DIR), None)
    }
}

impl Scripts {
    /// Scripts from `dir`, run as `user` (`None`: [`DEFAULT_USER`], else `nobody`). A user
    /// that does not exist or is root is not an error here: it is reported, and every
    /// script refused, when a spec names one.
    pub fn new(dir: &Path, user: Option<&str>) -> Self {
        let user = match user {
            Some(u) => lookup(u),
            None => lookup(DEFAULT_USER).or_else(|_| lookup(FALLBACK_USER)),
        };
        Scripts { dir: dir.to_path_buf(), user }
    }

    /// The directory scripts come from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whom scripts run as, or why no one can.
    pub fn user(&self) -> Result<&RunAs, &str> {
        self.user.as_ref().map_err(String::as_str)
    }

    /// The program `name` stands for, checked as [the module](self) says; or why it cannot
    /// run, in words.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, String> {
        if let Some(p) = lvs_proto::names::script_problem(name) {
            return Err(format!("script {p}"));
        }
        let path = self.dir.join(name);
        let real = std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
        if !m.is_file() || m.mode() & 0o111 == 0 {
            return Err(format!("{} is not an executable file", real.display()));
        }
        secure(&real, &m, false)?;
        let user = self.user.as_ref().ok();
        reachable(&real, &m, user, 0o5)?;
        let mut dir = real.parent();
        while let Some(d) = dir {
            let m = std::fs::metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
            secure(d, &m, true)?;
            reachable(d, &m, user, 0o1)?;
            dir = d.parent();
        }
        Ok(real)
    }

    /// `argv` (a script name, then its arguments) ready to spawn: resolved, as the script
    /// user, with the limits and the clean environment of [the module](self). The caller
    /// adds its `LVS_*` variables and the stdio it wants. `timeout` sets the CPU limit.
    pub fn command(&self, argv: &[String], timeout: Duration) -> Result<tokio::process::Command, String> {
        let Some((name, args)) = argv.split_first() else { return Err("empty command".into()) };
        let user = self.user.as_ref().map_err(|e| format!("{name}: {e}"))?;
        let program = self.resolve(name)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("LANG", "C.UTF-8")
            .env("HOME", "/")
            .current_dir("/")
            // std sets the group, drops supplementary groups (setgroups(0) as root), then
            // the uid, before `pre_exec`: leaving uid 0 clears every capability.
            .gid(user.gid)
            .uid(user.uid);
        let cpu = timeout.as_secs() + 2;
        // SAFETY: the closure runs in the child between fork and exec and makes only
        // async-signal-safe system calls (prctl, setrlimit) on values copied in before.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Cleared already by the uid change; said again in case the agent itself
                // runs as a non-root user with ambient capabilities.
                libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
                for &(res, v) in LIMITS.iter().chain(&[(libc::RLIMIT_CPU, cpu)]) {
                    let l = libc::rlimit { rlim_cur: v, rlim_max: v };
                    if libc::setrlimit(res, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(cmd)
    }
}

/// Whether `path` (whose metadata is `m`) is root's alone: owned by uid 0 and not writable
/// by group or others, unless it is a sticky directory on the way to the script.
fn secure(path: &Path, m: &std::fs::Metadata, on_the_way: bool) -> Result<(), String> {
    const STICKY: u32 = 0o1000;
    if m.uid() != 0 {
        return Err(format!(
            "{} belongs to uid {}, not root: scripts and the directories above them must be root's",
            path.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 && !(on_the_way && m.mode() & STICKY != 0) {
        return Err(format!(
            "{} is writable by {}: scripts and the directories above them must be writable by root alone",
            path.display(),
            if m.mode() & 0o002 != 0 { "others" } else { "its group" }
        ));
    }
    Ok(())
}

/// Whether `user` has the permission bits `want` (4 read, 1 execute or search) on `path`
/// (metadata `m`, owned by root): through its group or as others. Said before a run, it
/// names the directory that keeps the script from its user instead of a bare EACCES.
fn reachable(path: &Path, m: &std::fs::Metadata, user: Option<&RunAs>, want: u32) -> Result<(), String> {
    let Some(user) = user else { return Ok(()) };
    let others = m.mode() & want == want;
    let group = m.gid() == user.gid && (m.mode() >> 3) & want == want;
    if others || group {
        return Ok(());
    }
    Err(format!(
        "{} (mode {:04o}) cannot be {} by {}: give others {}",
        path.display(),
        m.mode() & 0o7777,
        if want == 0o1 { "searched" } else { "read and run" },
        user.name,
        if want == 0o1 { "x" } else { "r and x" }
    ))
}

/// The user `name`, if it exists and is not root.
fn lookup(name: &str) -> Result<RunAs, String> {
    let c = CString::new(name).map_err(|_| format!("script user `{name}` holds a NUL"))?;
    let mut pw: libc::passwd = unsafe_zeroed_passwd();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes the entry into `pw` and its strings into `buf`, both ours
    // and alive for the call; `out` is set to `&pw` on success or null.
    let rc = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return Err(format!(
            "script user `{name}` does not exist (the lvs-agent package creates {DEFAULT_USER}; or set [scripts] user in agent.toml)"
        ));
    }
    if pw.pw_uid == 0 {
        return Err(format!("script user `{name}` is root: scripts never run as uid 0"));
    }
    Ok(RunAs { name: name.to_string(), uid: pw.pw_uid, gid: pw.pw_gid })
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: `passwd` is plain C data (integers and pointers); all zeroes is a valid value
    // that getpwnam_r overwrites.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn root_is_never_the_script_user_and_a_missing_user_is_said() {
        assert!(lookup("root").unwrap_err().contains("is root"));
        assert!(lookup("no-such-user-lvs").unwrap_err().contains("does not exist"));
        let s = Scripts::new(Path::new("/nonexistent"), Some("root"));
        let e = s.command(&["x".into()], Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("is root"), "{e}");
    }

    #[test]
    fn a_script_others_could_change_is_refused_and_a_name_never_leaves_the_directory() {
        if !root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let scripts = dir.path().join("scripts");
        std::fs::create_dir(&scripts).unwrap();
        std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = scripts.join("check");
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        let s = Scripts::new(&scripts, None);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(s.resolve("check").unwrap(), std::fs::canonicalize(&p).unwrap());
        for (mode, why) in
            [(0o775, "writable by its group"), (0o757, "writable by others"), (0o644, "not an executable")]
        {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = s.resolve("check").unwrap_err();
            assert!(e.contains(why), "{mode:o}: {e}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A directory the script user cannot pass through: said, not a bare EACCES later.
        std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = s.resolve("check").unwrap_err();
        assert!(e.contains("(mode 0700) cannot be searched by"), "{e}");
        // A directory on the way that others may write (not sticky): anyone could swap it.
        std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(s.resolve("check").unwrap_err().contains("writable by others"));
        std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Not root's.
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        assert!(s.resolve("check").unwrap_err().contains("not root"));
        std::os::unix::fs::chown(&p, Some(0), None).unwrap();
        // A symlink out of the directory is judged by where it leads.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(outside.join("evil"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(outside.join("evil"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(outside.join("evil"), scripts.join("link")).unwrap();
        assert!(s.resolve("link").unwrap_err().contains("writable by others"));
        for bad in ["../outside/evil", "/bin/sh", ".."] {
            assert!(s.resolve(bad).is_err(), "{bad}");
        }
        assert!(s.resolve("absent").unwrap_err().contains("No such file"));
    }
}
