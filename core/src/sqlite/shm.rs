//! The wal-index header of a WAL-mode SQLite file, read lock-free from a read-only shared map
//! of its `-shm` file (<https://www.sqlite.org/walformat.html>): two copies of a 48-byte
//! header that every commit rewrites (`iChange` is incremented, `mxFrame` and the frame
//! checksum move). Reading it costs a few nanoseconds, where `PRAGMA data_version` starts a
//! read transaction (shm locks, syscalls: microseconds). The record cache uses it only to
//! learn that nothing was committed since its last look; any difference sends it to
//! `data_version`.
//!
//! The only `unsafe` code of the crate lives here (the map and the atomic loads from it).

#![allow(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// 32-bit words in one header copy (48 bytes).
pub(crate) const WORDS: usize = 12;

/// One consistent copy of the header, as native-endian words (compared, never interpreted
/// beyond the version and `isInit`).
pub(crate) type Header = [u32; WORDS];

/// `iVersion` of the wal-index format SQLite has written since 3.7.0.
const WALINDEX_VERSION: u32 = 3_007_000;

/// Bytes mapped: the two header copies.
const MAPPED: usize = 2 * WORDS * 4;

/// A read-only shared map of the first bytes of a `-shm` file.
pub(crate) struct ShmHeader {
    map: memmap2::Mmap,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl std::fmt::Debug for ShmHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmHeader").field("path", &self.path).field("ino", &self.ino).finish_non_exhaustive()
    }
}

/// The `-shm` file of the database at `db`.
pub(crate) fn shm_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

impl ShmHeader {
    /// Maps `shm` read-only; None when it is missing or too short to hold the header (not a
    /// WAL database, or not initialised yet): the caller then asks `data_version` every time.
    ///
    /// The caller must keep a connection to the database open (with a read done in WAL mode)
    /// for as long as it reads through this map: that connection holds SQLite's shared
    /// "DMS" lock on the `-shm` file and a shared lock on the database, so no SQLite process
    /// truncates, re-initialises or deletes the `-shm` file, or leaves WAL mode, meanwhile.
    pub(crate) fn open(shm: &Path) -> Option<Self> {
        let file = File::open(shm).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() < MAPPED as u64 {
            return None;
        }
        // SAFETY: a read-only, shared map of `MAPPED` bytes of a regular file at least that
        // long. Other processes write to it concurrently (that is the point); we never form a
        // reference to the mapped bytes (no `&[u8]` whose contents change underneath), only
        // atomic loads through raw pointers in `read`. The file is not truncated while mapped:
        // SQLite truncates a `-shm` file only when its process is the first to open the
        // database (holding the DMS lock exclusively), which the open connection the caller
        // keeps (see above) prevents. A truncation by something other than SQLite would fault
        // SQLite's own map of the same file in this process just the same.
        let map = unsafe { memmap2::MmapOptions::new().len(MAPPED).map(&file) }.ok()?;
        if map.len() < MAPPED || map.as_ptr().align_offset(4) != 0 {
            return None;
        }
        Some(ShmHeader { map, path: shm.to_path_buf(), dev: meta.dev(), ino: meta.ino() })
    }

    fn word(&self, index: usize) -> u32 {
        debug_assert!(index < 2 * WORDS);
        let index = index.min(2 * WORDS - 1);
        // SAFETY: `index * 4 + 4 <= MAPPED == map.len()` (clamped above), the map is page
        // aligned so the address is 4-aligned, and it stays mapped for `&self`'s lifetime. The
        // memory is shared with writers in other processes, so it is only ever accessed
        // atomically (never through a plain reference); `AtomicU32::load` only reads, so the
        // read-only protection is respected.
        unsafe {
            let p = self.map.as_ptr().add(index * 4) as *mut u32;
            AtomicU32::from_ptr(p).load(Ordering::Relaxed)
        }
    }

    /// The header, or None when the two copies differ (a commit is rewriting it: SQLite
    /// writes copy 1, then copy 0, and readers read 0 then 1) or it is not initialised. None
    /// means "revalidate", never "unchanged".
    pub(crate) fn read(&self) -> Option<Header> {
        let mut first = [0u32; WORDS];
        for (i, w) in first.iter_mut().enumerate() {
            *w = self.word(i);
        }
        // SQLite's walShmBarrier between the two copies.
        fence(Ordering::SeqCst);
        let mut torn = false;
        for (i, w) in first.iter().enumerate() {
            torn |= self.word(WORDS + i) != *w;
        }
        let [version, _, _, init, ..] = first;
        let initialised = init.to_ne_bytes().first() == Some(&1);
        (!torn && version == WALINDEX_VERSION && initialised).then_some(first)
    }

    /// True while `path` still names the file mapped (not deleted or replaced).
    pub(crate) fn same_file(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use std::io::Write;

    fn header(change: u32) -> Vec<u8> {
        let mut h = [0u32; WORDS];
        h[0] = WALINDEX_VERSION;
        h[2] = change;
        h[3] = u32::from_ne_bytes([1, 0, 0x10, 0]);
        h[4] = 7;
        h.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    fn file_with(name: &str, bytes: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("keycel-shm-{name}-{}", std::process::id()));
        let mut f = File::create(&p).unwrap();
        f.write_all(bytes).unwrap();
        f.write_all(&[0u8; 64]).unwrap();
        p
    }

    #[test]
    fn a_consistent_header_is_read() {
        let mut b = header(5);
        b.extend(header(5));
        let p = file_with("ok", &b);
        let shm = ShmHeader::open(&p).unwrap();
        let h = shm.read().unwrap();
        assert_eq!(h[2], 5);
        assert!(shm.same_file());
        let _ = std::fs::remove_file(&p);
        assert!(!shm.same_file(), "a deleted file is noticed");
    }

    /// A torn header (the copies differ mid-commit) is never taken as a header.
    #[test]
    fn torn_or_uninitialised_headers_are_refused() {
        let mut b = header(5);
        b.extend(header(6));
        let p = file_with("torn", &b);
        assert!(ShmHeader::open(&p).unwrap().read().is_none());
        let _ = std::fs::remove_file(&p);
        let p = file_with("zero", &[0u8; 96]);
        assert!(ShmHeader::open(&p).unwrap().read().is_none());
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn short_or_missing_files_are_not_mapped() {
        let p = std::env::temp_dir().join(format!("keycel-shm-short-{}", std::process::id()));
        std::fs::write(&p, [1u8; 10]).unwrap();
        assert!(ShmHeader::open(&p).is_none());
        let _ = std::fs::remove_file(&p);
        assert!(ShmHeader::open(&p).is_none());
    }
}
