//! Writing a file so that a reader sees the old bytes or the new, never
//! half of them, and a write killed midway leaves nothing that lasts.

use super::ModelFileError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the temporary file of a write to `name` is called, before its
/// random part: `.NAME.nabla-tmp-PID-`. The process id tells a stale file
/// (of a process that is gone) from one being written now.
fn temp_prefix(name: &str, pid: u32) -> String {
    format!(".{name}.nabla-tmp-{pid}-")
}

/// Whether a process with this id is running. Where that cannot be asked
/// (no `/proc`), a temporary file counts as stale once an hour old.
fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.is_dir().then(|| proc.join(pid.to_string()).exists())
}

/// Removes the temporary files that earlier writes to `path` left behind
/// when they were killed: those of processes that are gone (or, where that
/// cannot be known, older than an hour). Best effort: a file that cannot be
/// removed is left.
fn remove_stale(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stem = format!(".{name}.nabla-tmp-");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&stem)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let stale = match pid.and_then(process_alive) {
            Some(alive) => !alive,
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600),
        };
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory (`.NAME.nabla-tmp-PID-XXXXXX`), fsync, rename, fsync of the
/// directory. Temporary files that killed writes to the same path left
/// behind are removed first.
///
/// # Errors
/// [`ModelFileError::Io`] naming `path` (never the temporary file).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), ModelFileError> {
    let io = |source: std::io::Error| ModelFileError::Io {
        path: path.to_path_buf(),
        // Without the temporary file's name, which tempfile adds.
        source: std::io::Error::new(source.kind(), strip_path(&source)),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    remove_stale(&dir, &name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(&name, std::process::id()))
        .tempfile_in(&dir)
        .map_err(io)?;
    tmp.as_file_mut().write_all(bytes).map_err(io)?;
    // Temporary files are created private (0600); a model file is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An I/O error's message without the " at path …" that tempfile appends.
fn strip_path(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" at path ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporary_files_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.safetensors");
        // A process id that no process has (above Linux's pid_max limit).
        let dead = dir
            .path()
            .join(format!("{}abc123", temp_prefix("m.safetensors", 4_194_305)));
        let live = dir.path().join(format!(
            "{}abc123",
            temp_prefix("m.safetensors", std::process::id())
        ));
        let other = dir.path().join(format!(
            "{}abc123",
            temp_prefix("other.safetensors", 4_194_305)
        ));
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"half a model").unwrap();
        }
        atomic_write(&target, b"whole").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        if Path::new("/proc").is_dir() {
            assert!(!dead.exists(), "the dead process's file is removed");
        }
        assert!(live.exists(), "a write in progress is not touched");
        assert!(
            other.exists(),
            "only files of writes to this path are touched"
        );
        // Only the live write's file is left beside the target.
        let temps = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                name.starts_with(".m.safetensors.nabla-tmp-")
            })
            .count();
        if Path::new("/proc").is_dir() {
            assert_eq!(temps, 1);
        }
    }

    #[test]
    fn a_failed_write_names_the_target_not_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing").join("m.safetensors");
        let err = atomic_write(&target, b"x").unwrap_err().to_string();
        assert!(
            err.contains("m.safetensors") && !err.contains("nabla-tmp"),
            "{err}"
        );
    }
}
