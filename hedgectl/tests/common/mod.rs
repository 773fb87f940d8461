//! Set-up shared by the hedgectl integration tests: running the `hedgectl` binary, the engine's
//! binaries beside it, scraping `hedgectl export` once, and temp input files.
//!
//! Each test file uses only part of this (`mod common;`), hence the module-wide allow.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The directory holding `hedgectl`, checked to hold the engine's binaries too.
pub fn bin_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hedgectl"));
    let dir = exe.parent().unwrap().to_path_buf();
    for b in ["feed-handler", "hedger", "order-gateway"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: build the engine's binaries first (`cargo build --bins`; \
             `cargo test --workspace` builds them)",
            dir.join(b).display()
        );
    }
    dir
}

/// The stdout of a `hedgectl` run that must have succeeded.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "hedgectl failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `hedgectl export --max-requests 1` on a free loopback port (`target` picks the
/// namespace: `--shm-dir DIR` or `--namespace NS`), GETs /metrics once and returns the whole
/// HTTP response. The exporter must then exit successfully.
pub fn scrape<S: AsRef<OsStr>>(target: &[S], stderr: Stdio) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["export", "--listen", &listen, "--max-requests", "1"])
        .args(target)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut body = String::new();
    for _ in 0..500 {
        if let Ok(mut s) = TcpStream::connect(&listen) {
            write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
            s.read_to_string(&mut body).unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server.wait().unwrap().success());
    body
}

/// `hedgectl replay ARGS`, which must succeed; its stdout.
pub fn replay(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A temp file holding `text`, removed on drop.
pub fn temp_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}
