//! Deleting the runner's own files (each session's data, the `dd` probes) without
//! disturbing the steps that follow.
//!
//! Why: on the VMs this project is measured on (ext4 mounted with `discard` on a virtual
//! disk), removing a file of gigabytes in one `unlink` stalls the whole guest for a few
//! hundred milliseconds while the host takes the freed blocks back (docs/bench/history.md, items
//! 19 and 24): an e2e run at 10,000 records/s showed a p99 of 178–246 ms when a 2 GB
//! file was removed during it, 11–16 ms when the same file was cut from its end
//! [`CHUNK_BYTES`] at a time with [`PAUSE`] between cuts, and 1.5–2 ms with no deletion.
//! So large files are shortened a chunk at a time before they are removed, as RocksDB's
//! delete scheduler does, and the runner pays a little wall time instead of the next
//! step's tail latency.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// How much of a file one cut frees.
pub const CHUNK_BYTES: u64 = 64 << 20;
/// Pause after each cut.
pub const PAUSE: Duration = Duration::from_millis(50);

/// Removes `dir` and everything under it, cutting large files down gradually first.
/// A missing `dir` is not an error.
pub fn remove_dir_gently(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    shrink_tree(dir)?;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("deleting {}", dir.display())),
    }
}

/// Removes the file at `path`, cutting it down gradually first. A missing file is not an
/// error.
pub fn remove_file_gently(path: &Path) -> anyhow::Result<()> {
    match OpenOptions::new().write(true).open(path) {
        Ok(file) => shrink(&file).with_context(|| format!("shrinking {}", path.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("opening {}", path.display())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("deleting {}", path.display())),
    }
}

/// Shrinks every regular file under `dir` (symbolic links are not followed).
fn shrink_tree(dir: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            shrink_tree(&entry.path())?;
        } else if kind.is_file() {
            // A file that cannot be opened for writing is simply removed whole later.
            if let Ok(file) = OpenOptions::new().write(true).open(entry.path()) {
                shrink(&file).with_context(|| format!("shrinking {}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Cuts `file` from its end, [`CHUNK_BYTES`] at a time, pausing after each cut. Files of
/// one chunk or less are left for the removal itself.
fn shrink(file: &File) -> std::io::Result<()> {
    let mut len = file.metadata()?.len();
    while len > CHUNK_BYTES {
        len -= CHUNK_BYTES;
        file.set_len(len)?;
        std::thread::sleep(PAUSE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_with_large_and_small_files_is_removed() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("run");
        std::fs::create_dir_all(dir.join("t-0"))?;
        // Sparse: the size takes no disk space, and needs three cuts before removal.
        let large = File::create(dir.join("t-0").join("00000000000000000000.log"))?;
        large.set_len(3 * CHUNK_BYTES + 1)?;
        std::fs::write(dir.join("small"), b"x")?;
        remove_dir_gently(&dir)?;
        assert!(!dir.exists());
        remove_dir_gently(&dir)?; // gone already: fine
        Ok(())
    }

    #[test]
    fn shrinking_cuts_whole_chunks_while_more_than_one_is_left() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let path = root.path().join("big");
        let file = File::create(&path)?;
        file.set_len(2 * CHUNK_BYTES + 5)?;
        shrink(&OpenOptions::new().write(true).open(&path)?)?;
        assert_eq!(
            std::fs::metadata(&path)?.len(),
            5,
            "cut while more than a chunk is left"
        );
        remove_file_gently(&path)?;
        assert!(!path.exists());
        remove_file_gently(&path)?;
        Ok(())
    }
}
