//! The metadata snapshot, `snapshot.json` in the metadata partition's directory: the
//! image at one version, so a restart replays only the records after it.
//!
//! Format (one line of JSON):
//!
//! ```json
//! {"version":1234,"image_crc32":305419896,"image":{"version":1234,…}}
//! ```
//!
//! `image_crc32` is the CRC-32 of the image's compact JSON as written; on load the image is
//! re-encoded and checked against it, which also catches a snapshot written by a build
//! whose image had other fields. A snapshot is only a hint: one that is missing, damaged,
//! too large or inconsistent is ignored with a warning and the metadata log is replayed
//! from its start. Writes go through `checkpoint::write_atomic` (temp, fsync, rename,
//! fsync directory), so a crash leaves the old or the new snapshot, never half of one.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::log::checkpoint;

use super::error::ControllerError;
use super::image::MetadataImage;

/// The snapshot's file name.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// The largest snapshot that is read (a hint larger than this is ignored).
pub const SNAPSHOT_BYTES_MAX: u64 = 256 << 20;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: i64,
    image_crc32: u32,
    image: &'a MetadataImage,
}

#[derive(Deserialize)]
struct SnapshotFile {
    version: i64,
    image_crc32: u32,
    image: MetadataImage,
}

fn image_crc32(image: &MetadataImage) -> Result<u32, serde_json::Error> {
    serde_json::to_vec(image).map(|json| crc32fast::hash(&json))
}

/// Replaces the snapshot in `dir` with `image`, atomically and durably.
pub fn store(dir: &Path, image: &MetadataImage) -> Result<(), ControllerError> {
    let encode = |error: serde_json::Error| {
        ControllerError::invalid_record(format!("cannot encode the metadata snapshot: {error}"))
    };
    let snapshot = SnapshotRef {
        version: image.version,
        image_crc32: image_crc32(image).map_err(encode)?,
        image,
    };
    let mut json = serde_json::to_vec(&snapshot).map_err(encode)?;
    json.push(b'\n');
    checkpoint::write_atomic(dir, SNAPSHOT_FILE, &json)?;
    Ok(())
}

/// The snapshot in `dir`, if there is a sound one. Never fails: see the module docs.
pub fn load(dir: &Path) -> Option<MetadataImage> {
    let path = dir.join(SNAPSHOT_FILE);
    match try_load(dir, &path) {
        Ok(image) => image,
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "ignoring the metadata snapshot; replaying the whole metadata log");
            None
        }
    }
}

fn try_load(dir: &Path, path: &Path) -> Result<Option<MetadataImage>, String> {
    checkpoint::remove_stale_temp(dir, SNAPSHOT_FILE).map_err(|error| error.to_string())?;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot open: {error}")),
    };
    let mut bytes = Vec::new();
    file.take(SNAPSHOT_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read: {error}"))?;
    if bytes.len() as u64 > SNAPSHOT_BYTES_MAX {
        return Err(format!("larger than {SNAPSHOT_BYTES_MAX} bytes"));
    }
    let snapshot: SnapshotFile =
        serde_json::from_slice(&bytes).map_err(|error| format!("not a snapshot: {error}"))?;
    let crc = image_crc32(&snapshot.image).map_err(|error| error.to_string())?;
    if crc != snapshot.image_crc32 {
        return Err(format!(
            "image crc mismatch: stored {}, computed {crc}",
            snapshot.image_crc32
        ));
    }
    if snapshot.version != snapshot.image.version || snapshot.version < 0 {
        return Err(format!(
            "version {} does not match the image's {}",
            snapshot.version, snapshot.image.version
        ));
    }
    Ok(Some(snapshot.image))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs;

    use super::*;

    fn image() -> MetadataImage {
        MetadataImage {
            version: 42,
            cluster_id: Some("abc".into()),
            next_producer_id: 2000,
            ..MetadataImage::default()
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        store(dir.path(), &image()).unwrap();
        assert_eq!(load(dir.path()), Some(image()));
        let text = fs::read_to_string(dir.path().join(SNAPSHOT_FILE)).unwrap();
        assert!(
            text.starts_with(r#"{"version":42,"image_crc32":"#),
            "{text}"
        );
    }

    #[test]
    fn every_damaged_snapshot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), &image()).unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        let good = fs::read(&path).unwrap();
        for position in 0..good.len() {
            let mut bytes = good.clone();
            bytes[position] ^= 0x01;
            fs::write(&path, &bytes).unwrap();
            let loaded = load(dir.path());
            // A flipped bit in insignificant whitespace or the final newline may still
            // decode to the same image; anything else must be refused.
            assert!(
                loaded.is_none() || loaded == Some(image()),
                "byte {position}"
            );
        }
        for length in 0..good.len() - 1 {
            fs::write(&path, &good[..length]).unwrap();
            assert_eq!(load(dir.path()), None, "cut at {length}");
        }
    }

    #[test]
    fn mismatched_version_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let image = image();
        let json = format!(
            r#"{{"version":41,"image_crc32":{},"image":{}}}"#,
            image_crc32(&image).unwrap(),
            serde_json::to_string(&image).unwrap()
        );
        fs::write(dir.path().join(SNAPSHOT_FILE), json).unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
