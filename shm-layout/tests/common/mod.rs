//! Helpers shared by the integration tests.

/// A fresh directory in /dev/shm for one test's segments, removed when dropped (also when the
/// test fails).
pub fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shm-layout-test-")
        .tempdir_in("/dev/shm")
        .expect("tempdir in /dev/shm")
}
