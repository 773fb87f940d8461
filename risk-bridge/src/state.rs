//! The bridge's persisted position: the highest exec id JetStream acknowledged and the
//! highest control revision applied, in one owner-only file replaced atomically.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What survives a bridge restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Highest exec id whose publication JetStream acknowledged (0 = none).
    pub last_acked_exec_id: u64,
    /// Highest KV revision of the control bucket applied or rejected (0 = none).
    pub last_control_revision: u64,
}

/// Errors of the position file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Read or write failed.
    #[error("risk-bridge state file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file exists but is not a position.
    #[error("risk-bridge state file {path} is corrupt ({source}); move it away to start from exec id 0 (JetStream deduplicates what is re-sent within its window)")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
}

/// Loads the position at `path`; a missing file is the zero position.
///
/// # Errors
/// [`StateError`] when the file cannot be read or parsed.
pub fn load(path: &Path) -> Result<Position, StateError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| StateError::Corrupt {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Position::default()),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `pos` to `path` atomically: a 0600 temporary file in the same directory, fsynced,
/// renamed over `path`. A kill at any instant leaves the old or the new position.
///
/// # Errors
/// [`StateError::Io`].
pub fn store(path: &Path, pos: &Position) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(pos).expect("a Position always serializes");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&body).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn position_round_trips_owner_only_and_missing_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos");
        assert_eq!(load(&p).unwrap(), Position::default());
        let pos = Position {
            last_acked_exec_id: 42,
            last_control_revision: 7,
        };
        store(&p, &pos).unwrap();
        assert_eq!(load(&p).unwrap(), pos);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::write(&p, b"{").unwrap();
        assert!(matches!(load(&p), Err(StateError::Corrupt { .. })));
    }
}
