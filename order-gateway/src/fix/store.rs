//! Persistent MsgSeqNum state: `<state_dir>/fix-<sender>-<target>.seqnums`.
//!
//! The file holds one line, `<next_out> <next_in>`, each 20 digits wide, rewritten in place
//! with one `pwrite` (no truncation, no rename: a crash leaves either the old or the new line,
//! since 42 bytes at offset 0 never straddle a page). Ordering rules (what makes a restart
//! safe):
//! - outgoing: `next_out` is persisted *before* the message is written to the socket, so a
//!   restarted session never reuses a number (at worst it skips one, which the counterparty
//!   turns into a ResendRequest that we answer with a gap fill);
//! - incoming: `next_in` is persisted *after* the message was handled, so a crash in between
//!   makes us ask for that message again (at-least-once; PossDup copies of reports for orders
//!   we no longer track are dropped and counted).
//!
//! Without `fsync` the state survives a process crash (the page cache keeps it), not a power
//! loss; `FixConfig::fsync_seqnums` adds an `fdatasync` per change.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Length of the state line.
const LINE_LEN: usize = 42;

/// Sequence numbers that survive restarts.
#[derive(Debug)]
pub struct SeqStore {
    file: File,
    path: PathBuf,
    next_out: u64,
    next_in: u64,
    fsync: bool,
}

/// Why the sequence-number file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file or its directory could not be created, read or written.
    #[error("FIX sequence-number file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file exists but does not hold `<next_out> <next_in>`.
    #[error("FIX sequence-number file {path} is corrupt ({found:?}); fix or delete it only after agreeing sequence numbers with the venue")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (truncated).
        found: String,
    },
}

impl SeqStore {
    /// Opens (creating if needed, with `next_out = next_in = 1`) the state of the session
    /// `sender`→`target` under `dir`.
    ///
    /// # Errors
    /// [`StoreError`] if the directory or file cannot be used or the file is corrupt.
    pub fn open(dir: &Path, sender: &str, target: &str, fsync: bool) -> Result<Self, StoreError> {
        let path = dir.join(format!("fix-{sender}-{target}.seqnums"));
        let io_err = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        shm_layout::private::create_dir_all(dir).map_err(io_err)?;
        let mut file = shm_layout::private::file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let mut s = String::new();
        file.read_to_string(&mut s).map_err(io_err)?;
        let (next_out, next_in) = if s.is_empty() {
            (1, 1)
        } else {
            let mut it = s.split_ascii_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(o)), Some(Ok(i)), None) if o > 0 && i > 0 => (o, i),
                _ => {
                    return Err(StoreError::Corrupt {
                        path,
                        found: s.chars().take(64).collect(),
                    })
                }
            }
        };
        let mut st = SeqStore {
            file,
            path,
            next_out,
            next_in,
            fsync,
        };
        st.write()?;
        Ok(st)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// MsgSeqNum of our next outgoing message.
    pub fn next_out(&self) -> u64 {
        self.next_out
    }
    /// MsgSeqNum we expect next from the counterparty.
    pub fn next_in(&self) -> u64 {
        self.next_in
    }

    /// Persists a new `next_out`.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the write fails (the in-memory value is then unchanged).
    pub fn set_next_out(&mut self, v: u64) -> Result<(), StoreError> {
        let old = self.next_out;
        self.next_out = v;
        self.write().inspect_err(|_| self.next_out = old)
    }

    /// Persists a new `next_in`.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the write fails (the in-memory value is then unchanged).
    pub fn set_next_in(&mut self, v: u64) -> Result<(), StoreError> {
        let old = self.next_in;
        self.next_in = v;
        self.write().inspect_err(|_| self.next_in = old)
    }

    /// Persists both (sequence reset).
    ///
    /// # Errors
    /// [`StoreError::Io`] if the write fails.
    pub fn reset(&mut self, next_out: u64, next_in: u64) -> Result<(), StoreError> {
        self.next_out = next_out;
        self.next_in = next_in;
        self.write()
    }

    fn write(&mut self) -> Result<(), StoreError> {
        let mut line = [b' '; LINE_LEN];
        put20(&mut line[0..20], self.next_out);
        put20(&mut line[21..41], self.next_in);
        line[41] = b'\n';
        let r = self.file.write_all_at(&line, 0).and_then(|()| {
            if self.fsync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        r.map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

fn put20(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_survive_reopen_and_corruption_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = SeqStore::open(dir.path(), "A", "B", false).unwrap();
            assert_eq!((s.next_out(), s.next_in()), (1, 1));
            s.set_next_out(17).unwrap();
            s.set_next_in(5).unwrap();
        }
        let s = SeqStore::open(dir.path(), "A", "B", true).unwrap();
        assert_eq!((s.next_out(), s.next_in()), (17, 5));
        std::fs::write(s.path(), "garbage").unwrap();
        assert!(matches!(
            SeqStore::open(dir.path(), "A", "B", false),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
