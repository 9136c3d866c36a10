//! Reading the ruleset: `nft -j list ruleset`, with a deadline and a size limit (a ruleset
//! of hundreds of thousands of rules must not stall or swell the agent). The program is
//! `LVS_NFT` or `/usr/sbin/nft`, the one the hand-over bounce uses.
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

/// Largest ruleset read, bytes.
pub const MAX_RULESET: usize = 16 << 20;
const DEADLINE: Duration = Duration::from_secs(5);

/// The ruleset as JSON; `None` when there is no `nft` to ask.
pub async fn nft_ruleset() -> std::io::Result<Option<String>> {
    nft_json(&["-j", "list", "ruleset"]).await
}

/// What `nft args` prints (a JSON listing), within the deadline and the size limit;
/// `None` when there is no `nft` to ask; nft's own words when it fails.
pub async fn nft_json(args: &[&str]) -> std::io::Result<Option<String>> {
    let program = crate::ha::straddle::NftProgram::default_program().0;
    if !program.exists() {
        return Ok(None);
    }
    let what = format!("nft {}", args.join(" "));
    let mut child = tokio::process::Command::new(&program)
        .args(args)
        // nft's errors are strerror's words, which callers read (ENOENT: "No such file or
        // directory"): never in the host's language.
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut out = Vec::new();
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut limited = stdout.take(MAX_RULESET as u64 + 1);
    tokio::time::timeout(DEADLINE, limited.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} took over 5 s")))??;
    if out.len() > MAX_RULESET {
        return Err(std::io::Error::other(format!("{what}: over {} MiB", MAX_RULESET >> 20)));
    }
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "nft did not exit"))??;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err).await;
        }
        return Err(std::io::Error::other(format!("{what}: {}", err.trim())));
    }
    String::from_utf8(out).map(Some).map_err(std::io::Error::other)
}
