//! The lab's working directory: root's alone.
//!
//! The lab runs as root and writes keys, configurations, pid files and logs there, then
//! reads pids back to kill them. A directory someone else made or can write (a local user
//! who pre-created `/tmp/lvslab`, or planted a symlink in its place) would let them point
//! those writes at any file, or those kills at any process. So the directory is made with
//! mode 0700 when it is missing, and refused, before anything is written, when it is a
//! symlink, not root's, or open to group or others.
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use crate::error::{LabError, Result};

/// Make `dir` (mode 0700) if it is missing, then check that it is root's alone.
pub fn private_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(crate::error::file(parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(crate::error::file(dir)(e)),
    }
    // Not followed: a symlink is refused, not judged by where it leads.
    let m = std::fs::symlink_metadata(dir).map_err(crate::error::file(dir))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let why = if m.file_type().is_symlink() {
        Some("is a symlink".to_string())
    } else if !m.is_dir() {
        Some("is not a directory".to_string())
    } else if m.uid() != me {
        Some(format!("belongs to uid {}, not to uid {me} who runs the lab", m.uid()))
    } else if m.mode() & 0o077 != 0 {
        Some(format!("has mode {:04o}, not 0700", m.mode() & 0o7777))
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(LabError::Setup(format!(
            "lab directory {} {why}: the lab writes keys and pid files there as root, so it must be a private directory of root's; remove it or choose another --dir",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_directory_someone_else_could_write_or_a_symlink_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("lab");
        private_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
        private_dir(&d).expect("its own again");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(&d).unwrap_err().to_string().contains("mode 0755, not 0700"));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(private_dir(&link).unwrap_err().to_string().contains("is a symlink"));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&d, Some(65534), None).unwrap();
            assert!(private_dir(&d).unwrap_err().to_string().contains("belongs to uid 65534"));
        }
    }
}
