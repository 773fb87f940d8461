//! Helpers shared by the integration tests.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `text` to the file `dir/name` (the test's own temporary directory) and returns its
/// path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}
