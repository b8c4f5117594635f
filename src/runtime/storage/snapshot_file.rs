//! Snapshot files: one file per snapshot, written to a temporary name, fsynced, renamed into
//! place, and the directory fsynced, so a crash leaves either the old snapshot or the new one,
//! never a partial file under the final name.
//!
//! ```text
//! file = magic "ACCORDSN" | version:u32 | index:u64 | term:u64
//!        | voters: count:u32 id:u64… | learners: count:u32 id:u64…
//!        | data_length:u64 | data | crc32c:u32 (over everything before it)
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codec::Reader;
use crate::error::{Error, Result};
use crate::limits::{LEARNERS_MAX, SNAPSHOT_BYTES_MAX, VOTERS_MAX};
use crate::types::{ConfState, Index, Payload, Snapshot, SnapshotMeta, Term};

const MAGIC: [u8; 8] = *b"ACCORDSN";
/// Version of the snapshot file format (header, checksum) written and read now.
pub const VERSION: u32 = 2;
const SUFFIX: &str = ".snap";

/// Encodes a snapshot file's whole contents.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = header(&snapshot.meta, snapshot.data.len());
    out.extend_from_slice(snapshot.data.as_slice());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Everything before the data: magic, version, metadata and the data length.
fn header(meta: &SnapshotMeta, data_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&meta.index.to_le_bytes());
    out.extend_from_slice(&meta.term.to_le_bytes());
    for ids in [
        &meta.conf.voters,
        &meta.conf.learners,
        &meta.conf.voters_outgoing,
    ] {
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    out.extend_from_slice(&(data_bytes as u64).to_le_bytes());
    out
}

/// Decodes a snapshot file's contents; the error says what is wrong and at which byte.
pub fn decode(bytes: &[u8]) -> std::result::Result<Snapshot, (u64, String)> {
    if bytes.len() < 4 {
        return Err((0, format!("file of {} bytes is too short", bytes.len())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored {
        return Err((body.len() as u64, "checksum mismatch".into()));
    }
    let mut reader = Reader::new(body);
    let at = |reader: &Reader| (body.len() - reader.bytes.len()) as u64;
    let fail = |reader: &Reader, why: String| (at(reader), why);
    if reader.take(8).map_err(|e| fail(&reader, e))? != MAGIC {
        return Err((0, "not a snapshot file (wrong magic)".into()));
    }
    let version = reader.u32().map_err(|e| fail(&reader, e))?;
    // Version 1 had no outgoing voters (no membership changes existed).
    if version != VERSION && version != 1 {
        return Err((
            8,
            format!("snapshot format version {version} is not supported"),
        ));
    }
    let index = reader.u64().map_err(|e| fail(&reader, e))?;
    let term = reader.u64().map_err(|e| fail(&reader, e))?;
    let voters = reader.ids(VOTERS_MAX).map_err(|e| fail(&reader, e))?;
    let learners = reader.ids(LEARNERS_MAX).map_err(|e| fail(&reader, e))?;
    let voters_outgoing = if version >= 2 {
        reader.ids(VOTERS_MAX).map_err(|e| fail(&reader, e))?
    } else {
        Vec::new()
    };
    let length = reader.u64().map_err(|e| fail(&reader, e))?;
    if length > SNAPSHOT_BYTES_MAX as u64 || length != reader.bytes.len() as u64 {
        return Err(fail(
            &reader,
            format!(
                "data length {length} does not match the {} bytes present",
                reader.bytes.len()
            ),
        ));
    }
    Ok(Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            conf: ConfState {
                voters,
                learners,
                voters_outgoing,
            },
        },
        data: Payload::from_slice(reader.rest()),
    })
}

/// The file name of the snapshot at (`index`, `term`); names sort by index.
pub fn file_name(index: Index, term: Term) -> String {
    format!("{index:020}-{term:020}{SUFFIX}")
}

/// Writes `snapshot` durably into `dir` (temp file, fsync, rename, directory fsync).
pub fn save(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<PathBuf> {
    let name = file_name(meta.index, meta.term);
    let path = dir.join(&name);
    let temp = dir.join(format!("{name}.tmp"));
    // Written piece by piece, so the data is never copied into a second buffer.
    let header = header(meta, data.len());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header), data);
    let write = || -> std::io::Result<()> {
        let mut file = super::data_dir::create_private_file(&temp)?;
        file.write_all(&header)?;
        file.write_all(data)?;
        file.write_all(&crc.to_le_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        super::sync_dir(dir)
    };
    write().map_err(|e| Error::io(format!("writing snapshot {}", path.display()), &e))?;
    Ok(path)
}

/// A snapshot written to its temporary file but not yet durable nor in place.
pub struct UnsyncedSnapshot {
    file: fs::File,
    temp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
}

impl UnsyncedSnapshot {
    /// Fsyncs the file, renames it into place and fsyncs the directory. It blocks on the
    /// disk, so it may run on another thread; until it returns the snapshot does not exist.
    pub fn make_durable(self) -> std::io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.temp, &self.path)?;
        super::sync_dir(&self.dir)
    }
}

/// Streams a snapshot into its temporary file (page cache only: nothing is synced), checking
/// that `write_data` wrote exactly `data_bytes` bytes.
pub fn write_unsynced(
    dir: &Path,
    meta: &SnapshotMeta,
    data_bytes: usize,
    write_data: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<UnsyncedSnapshot> {
    /// Counts and checksums what passes through it.
    struct Checksummed<W> {
        inner: W,
        crc: u32,
        bytes: usize,
    }
    impl<W: Write> Write for Checksummed<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let written = self.inner.write(buf)?;
            self.crc = crc32c::crc32c_append(self.crc, &buf[..written]);
            self.bytes += written;
            Ok(written)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let name = file_name(meta.index, meta.term);
    let path = dir.join(&name);
    let temp = dir.join(format!("{name}.tmp"));
    let header = header(meta, data_bytes);
    let write = || -> std::io::Result<fs::File> {
        let file = super::data_dir::create_private_file(&temp)?;
        let mut out = Checksummed {
            inner: std::io::BufWriter::with_capacity(256 * 1024, file),
            crc: crc32c::crc32c(&header),
            bytes: 0,
        };
        out.inner.write_all(&header)?;
        write_data(&mut out)?;
        if out.bytes != data_bytes {
            return Err(std::io::Error::other(format!(
                "the state machine wrote {} bytes, announced {data_bytes}",
                out.bytes
            )));
        }
        let crc = out.crc;
        let mut inner = out.inner;
        inner.write_all(&crc.to_le_bytes())?;
        inner.into_inner().map_err(|e| e.into_error())
    };
    let file =
        write().map_err(|e| Error::io(format!("writing snapshot {}", path.display()), &e))?;
    Ok(UnsyncedSnapshot {
        file,
        temp,
        path,
        dir: dir.to_path_buf(),
    })
}

/// Snapshot files in `dir`, oldest first, as (index, path). With `remove_temporary` (at
/// start-up only), leftover temporary files are deleted.
pub fn list(dir: &Path, remove_temporary: bool) -> Result<Vec<(Index, PathBuf)>> {
    let mut found = Vec::new();
    for (stem, path) in super::list_files(
        dir,
        SUFFIX,
        crate::limits::WAL_SEGMENTS_MAX,
        remove_temporary,
    )? {
        if let Some(index) = stem.split('-').next().and_then(|s| s.parse::<Index>().ok()) {
            found.push((index, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Reads and verifies the snapshot file at `path`.
pub fn load(path: &Path) -> Result<Snapshot> {
    let bytes = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), &e))?;
    decode(&bytes).map_err(|(offset, detail)| Error::Corruption {
        file: path.display().to_string(),
        offset,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing when format 2 added the outgoing voters: a format 1 file (written
    /// before membership changes existed) still decodes, with no outgoing voters.
    #[test]
    fn a_format_1_file_decodes_and_converts() {
        let mut body = Vec::new();
        body.extend_from_slice(&MAGIC);
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&9u64.to_le_bytes()); // index
        body.extend_from_slice(&2u64.to_le_bytes()); // term
        body.extend_from_slice(&1u32.to_le_bytes()); // one voter
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes()); // no learners
        body.extend_from_slice(&3u64.to_le_bytes()); // data length
        body.extend_from_slice(b"abc");
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let snapshot = decode(&body).expect("a format 1 file decodes");
        assert_eq!(snapshot.meta.conf, ConfState::with_voters(&[1]));
        assert_eq!(snapshot.data.as_slice(), b"abc");
        assert_eq!(decode(&encode(&snapshot)).ok(), Some(snapshot));
    }

    fn sample() -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index: 99,
                term: 4,
                conf: ConfState {
                    voters: vec![1, 2, 4],
                    learners: vec![5],
                    voters_outgoing: vec![1, 2, 3],
                },
            },
            data: Payload::from_slice(b"state machine bytes"),
        }
    }

    #[test]
    fn snapshot_files_round_trip_and_any_damage_is_detected() {
        let bytes = encode(&sample());
        assert_eq!(decode(&bytes).unwrap(), sample());
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x10;
            assert!(
                decode(&damaged).is_err(),
                "damage at {position} went unnoticed"
            );
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[]).is_err());
    }
}
