//! Files and directories the engine creates: owner-only from the first instant.
//!
//! Every process creates its state, journal, lock and log files through these helpers, so they
//! are born mode 0600 (directories 0700) by `open(2)`/`mkdir(2)` itself: no window in which a
//! 0644 file holds positions or orders, and no `chmod` afterwards. The process umask can only
//! remove bits, never add them. An existing file or directory keeps its mode.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let d = dir.path().join("state");
//! shm_layout::private::create_dir_all(&d).unwrap();
//! let f = shm_layout::private::file_options().write(true).create(true).open(d.join("x")).unwrap();
//! # drop(f);
//! use std::os::unix::fs::PermissionsExt;
//! assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
//! assert_eq!(std::fs::metadata(d.join("x")).unwrap().permissions().mode() & 0o777, 0o600);
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of every file the engine creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the engine creates.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left as they are).
///
/// # Errors
/// The `mkdir(2)` error.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// `OpenOptions` whose `create`/`create_new` make the file with mode 0600; set the access
/// flags as usual.
pub fn file_options() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Creates or truncates `path` for writing, mode 0600 if it is new (`File::create`, private).
///
/// # Errors
/// The `open(2)` error.
pub fn create_file(path: &Path) -> io::Result<fs::File> {
    file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Writes `bytes` to `path` (created mode 0600 if new, truncated if not): the private
/// `fs::write`.
///
/// # Errors
/// The `open(2)` or `write(2)` error.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write as _;
    create_file(path)?.write_all(bytes.as_ref())
}
