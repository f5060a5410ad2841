//! Putting a cleaned segment in place of the old one so that a crash at any moment leaves
//! exactly one of them (Kafka's `.cleaned` / `.swap` protocol).
//!
//! Files of the segment at base `B` (`<B>` = `B` as 20 digits), in the order of the steps:
//!
//! ```text
//! 0. <B>.index.cleaned  <B>.timeindex.cleaned  <B>.log.cleaned   written and fsynced
//!    (Segment::create_cleaned + seal), beside the old <B>.index <B>.timeindex <B>.log
//! 1. <B>.index.cleaned     → <B>.index.swap
//! 2. <B>.timeindex.cleaned → <B>.timeindex.swap
//! 3. <B>.log.cleaned       → <B>.log.swap          the commit point
//! 4. fsync of the directory
//! 5. <B>.index.swap     → <B>.index               (each rename replaces the old file)
//! 6. <B>.timeindex.swap → <B>.timeindex
//! 7. <B>.log.swap       → <B>.log                 the old segment is gone
//! 8. fsync of the directory
//! ```
//!
//! Recovery ([`recover`], run when a partition log is opened, before its segments are
//! listed) looks at what a crash left:
//! - `<B>.log.swap` exists (a crash after step 3): the cleaned segment is complete and
//!   fsynced, so the swap is finished — every `<B>.*.swap` left is renamed over its old
//!   file, the `.log` last. Before step 5 the old files are all still there; after step 5
//!   or 6 an index is new and the `.log` old, which this repairs. (If `<B>.log` itself is
//!   missing, the segment was deleted meanwhile, which cannot happen under the partition
//!   log's lock; the swap files are deleted rather than bringing data back.)
//! - otherwise (a crash before step 3) every `<B>.*.cleaned` and `<B>.*.swap` file is
//!   deleted: the old segment never stopped being whole.
//!
//! The `.log` never exists twice under names recovery counts: only `<B>.log` is a
//! segment, and `<B>.log.swap` is turned into it or deleted before the segments are
//! listed. Every step runs under the partition log's write lock (`compaction.rs`), so no
//! truncation, retention or append interleaves with it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use strata_proto::types::Offset;

use super::super::durable;
use super::super::error::{LogError, LogResult};
use super::super::segment::segment_file_name;

/// The suffix of the files being written.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// The suffix of a complete cleaned segment being swapped in.
pub const SWAP_SUFFIX: &str = ".swap";
/// The segment's files, the `.log` last: its rename is each phase's last step.
const EXTENSIONS: [&str; 3] = ["index", "timeindex", "log"];

/// How many of the steps 1–8 (module docs) [`commit_steps`] runs: all of them, except in
/// crash tests.
pub const STEPS: usize = 8;

/// Runs steps 1–8 of the module docs for the cleaned segment at `base_offset`.
pub fn commit(dir: &Path, base_offset: Offset) -> LogResult<()> {
    commit_steps(dir, base_offset, STEPS)
}

/// The first `steps` steps of [`commit`]; fewer than [`STEPS`] only to simulate a crash.
pub fn commit_steps(dir: &Path, base_offset: Offset, steps: usize) -> LogResult<()> {
    let path = |extension: &str, suffix: &str| {
        dir.join(segment_file_name(base_offset, extension) + suffix)
    };
    let mut step = 0;
    for extension in EXTENSIONS {
        if step == steps {
            return Ok(());
        }
        rename(
            &path(extension, CLEANED_SUFFIX),
            &path(extension, SWAP_SUFFIX),
        )?;
        step += 1;
    }
    if step == steps {
        return Ok(());
    }
    durable::sync_dir(dir)?;
    step += 1;
    for extension in EXTENSIONS {
        if step == steps {
            return Ok(());
        }
        rename(&path(extension, SWAP_SUFFIX), &path(extension, ""))?;
        step += 1;
    }
    if step == steps {
        return Ok(());
    }
    durable::sync_dir(dir)
}

/// Finishes or undoes what a crash left of a swap in `dir` (module docs). Returns how
/// many segments were swapped in.
pub fn recover(dir: &Path) -> LogResult<usize> {
    let mut leftovers: Vec<(Offset, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(LogError::io("list partition directory", dir, source)),
    };
    for entry in entries {
        let entry =
            entry.map_err(|source| LogError::io("list partition directory", dir, source))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = name
            .strip_suffix(CLEANED_SUFFIX)
            .or_else(|| name.strip_suffix(SWAP_SUFFIX));
        if let Some(base) = stem.and_then(base_of) {
            leftovers.push((base, entry.path()));
        }
    }
    if leftovers.is_empty() {
        return Ok(0);
    }
    let mut bases: Vec<Offset> = leftovers.iter().map(|(base, _)| *base).collect();
    bases.sort();
    bases.dedup();
    let mut swapped = 0;
    for base in bases {
        let file =
            |extension: &str, suffix: &str| dir.join(segment_file_name(base, extension) + suffix);
        let committed = file("log", SWAP_SUFFIX).exists() && file("log", "").exists();
        if committed {
            for extension in EXTENSIONS {
                let swap = file(extension, SWAP_SUFFIX);
                if swap.exists() {
                    rename(&swap, &file(extension, ""))?;
                }
            }
            tracing::warn!(dir = %dir.display(), %base, "finished swapping in a cleaned segment after a crash");
            swapped += 1;
        }
        for extension in EXTENSIONS {
            for suffix in [CLEANED_SUFFIX, SWAP_SUFFIX] {
                remove_if_present(&file(extension, suffix))?;
            }
        }
    }
    durable::sync_dir(dir)?;
    Ok(swapped)
}

/// The base offset of `<base:020>.<extension>`.
fn base_of(stem: &str) -> Option<Offset> {
    let (digits, extension) = stem.split_once('.')?;
    if digits.len() != 20 || !EXTENSIONS.contains(&extension) {
        return None;
    }
    digits.parse::<i64>().ok().map(Offset)
}

fn rename(from: &Path, to: &Path) -> LogResult<()> {
    fs::rename(from, to).map_err(|source| LogError::io("rename cleaned segment file", from, source))
}

fn remove_if_present(path: &Path) -> LogResult<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::io("delete cleaned segment file", path, source)),
    }
}
