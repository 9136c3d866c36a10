//! The one way this project writes a file that must never be seen half-written: the
//! agent's state, the PKI's keys and certificates, the rollout's progress. (It lives in
//! `lvs-proto` because that is the crate the agent and the controller share.)
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Write `data` to `path` atomically and durably: a temporary file beside it created with
/// `mode` (so a key is never readable by others, not even for a moment), fsync, rename over
/// `path`, fsync of the directory so the rename itself survives a crash. A crash leaves
/// the old file or the new one, never a torn one. Concurrent writers (two processes, or
/// two threads) each use a temporary of their own, so the last rename wins whole rather
/// than one writer renaming away the other's half-written temporary.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let (dir, tmp) = write_temporary(path, data, mode)?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Like [`atomic_write`], but only if `path` does not exist yet: true if this call made
/// it, false if it was already there (possibly made a moment ago by another process, whose
/// content then stands). For what must be made once, such as a node's key: two makers
/// racing must end with one key, not with each holding a key the other overwrote.
pub fn create_exclusive(path: &Path, data: &[u8], mode: u32) -> std::io::Result<bool> {
    let (dir, tmp) = write_temporary(path, data, mode)?;
    // Never replaces its target, unlike rename(2): the whole file appears, or the call
    // fails because another one already did (and the temporary is removed on drop).
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            std::fs::File::open(dir)?.sync_all()?;
            Ok(true)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// A fsynced temporary beside `path` holding `data`: a fresh random name, created
/// exclusively with `mode`, removed again if anything fails before it is persisted.
fn write_temporary<'a>(
    path: &'a Path,
    data: &[u8],
    mode: u32,
) -> std::io::Result<(&'a Path, tempfile::NamedTempFile)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    Ok((dir, tmp))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_the_mode_asked_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        super::atomic_write(&p, b"one", 0o600).unwrap();
        super::atomic_write(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn concurrent_writers_each_land_whole_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        super::atomic_write(p, &[i; 4096], 0o600).expect("no writer fails");
                    }
                });
            }
        });
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.iter().all(|b| *b == got[0]), "one writer's content, whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn exclusive_creation_has_one_winner_whose_content_stands() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.key");
        let won: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u8)
                .map(|i| {
                    let p = &p;
                    s.spawn(move || super::create_exclusive(p, &[i; 64], 0o600).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "exactly one maker: {won:?}");
        let winner = won.iter().position(|w| *w).unwrap() as u8;
        assert_eq!(std::fs::read(&p).unwrap(), vec![winner; 64]);
        assert!(!super::create_exclusive(&p, b"late", 0o600).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }
}
