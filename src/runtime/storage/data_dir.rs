//! The data directory: created with mode 0700, locked for one process at a time.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// An open, locked data directory. The lock is released when this is dropped (or the process
/// dies: the kernel releases `flock` locks of dead processes).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates `path` (mode 0700) if needed and takes its lock. A second process opening the
    /// same directory gets [`Error::DataDirLocked`] naming the holder's pid.
    pub fn open(path: &Path) -> Result<DataDir> {
        create_private_dir(path)?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("opening {}", lock_path.display()), &e))?;
        // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
        let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            return Err(Error::DataDirLocked {
                dir: path.display().to_string(),
                holder: match holder.trim() {
                    "" => "unknown".to_string(),
                    pid => pid.to_string(),
                },
            });
        }
        let record_pid = |lock: &mut File| -> std::io::Result<()> {
            lock.set_len(0)?;
            lock.seek(SeekFrom::Start(0))?;
            writeln!(lock, "{}", std::process::id())
        };
        record_pid(&mut lock)
            .map_err(|e| Error::io(format!("writing {}", lock_path.display()), &e))?;
        // Files an earlier version left readable by others are made private too.
        make_private(path, 2)
            .map_err(|e| Error::io(format!("restricting {} to its owner", path.display()), &e))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory (created 0700 if missing).
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let path = self.path.join(name);
        create_private_dir(&path)?;
        Ok(path)
    }
}

/// Creates `path` and its missing parents with mode 0700; fsyncs the parent of a new directory.
fn create_private_dir(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(format!("creating data directory {}", path.display()), &e))?;
    // `recursive` applies the mode to created parents too, but the umask may have narrowed
    // nothing we need; make sure the leaf is exactly 0700.
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("setting permissions of {}", path.display()), &e))?;
    if let Some(parent) = path.parent() {
        let _ = super::sync_dir(parent);
    }
    Ok(())
}

/// Sets every file under `dir` to 0600 and every directory to 0700, `depth` levels down
/// (a data directory has one level of subdirectories; bounded by their entries).
fn make_private(dir: &Path, depth: u32) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.permissions().mode() & 0o777 != wanted {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(wanted))?;
        }
        if meta.is_dir() && depth > 1 {
            make_private(&entry.path(), depth - 1)?;
        }
    }
    Ok(())
}

/// Creates (or truncates) the file `path` for writing, readable and writable by its owner
/// only (0600): a data directory holds every key and value, and nobody else may read them.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_a_locked_directory_names_the_holder() {
        let dir = super::super::test_dir("lock");
        let first = DataDir::open(&dir).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        match DataDir::open(&dir) {
            Err(Error::DataDirLocked { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            other => panic!("expected a lock error, got {other:?}"),
        }
        drop(first);
        DataDir::open(&dir).unwrap();
        let _ = fs::remove_dir_all(&dir);
    }
}
