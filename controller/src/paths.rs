//! Where lvsctl keeps what is not the definition: the PKI (its CA key signs every node's
//! certificate) under the user's configuration directory, a rollout's progress under the
//! user's state directory — never beside a definition that usually lives in a git work tree.
use std::path::{Path, PathBuf};

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).filter(|p| p.is_absolute())
}

fn home() -> Option<PathBuf> {
    env_dir("HOME")
}

/// The PKI of `cluster`: `$XDG_CONFIG_HOME/lvsctl/CLUSTER/pki` (default
/// `~/.config/lvsctl/CLUSTER/pki`); `./pki` only when there is no home at all.
pub fn default_pki(cluster: &str) -> PathBuf {
    env_dir("XDG_CONFIG_HOME")
        .or_else(|| home().map(|h| h.join(".config")))
        .map_or_else(|| PathBuf::from("pki"), |c| c.join("lvsctl").join(cluster).join("pki"))
}

/// Where a rollout keeps its progress: `$XDG_STATE_HOME/lvsctl` (default
/// `~/.local/state/lvsctl`); `beside` (the definition's directory) only without a home.
pub fn state_dir(beside: &Path) -> PathBuf {
    env_dir("XDG_STATE_HOME")
        .or_else(|| home().map(|h| h.join(".local/state")))
        .map_or_else(|| beside.to_path_buf(), |s| s.join("lvsctl"))
}

/// The git work tree `path` is in (or would be in, for a path not created yet).
pub fn git_work_tree(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().ok()?.join(path) };
    abs.ancestors().find(|d| d.join(".git").exists()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_inside_a_work_tree_is_found_even_before_it_exists() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".git")).unwrap();
        let pki = d.path().join("clusters/web/pki");
        assert_eq!(git_work_tree(&pki).as_deref(), Some(d.path()));
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(git_work_tree(&outside.path().join("pki")), None);
    }
}
