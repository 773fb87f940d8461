//! `hedgectl demo` with the real feed-handler, hedger and order-gateway binaries: a short run
//! whose summary shows hedge orders sent and filled, the artifacts it writes, and the
//! namespace removed afterwards.
//!
//! The binaries are looked up beside `hedgectl` (target/<profile>/); `cargo test --workspace`
//! builds them (each of their packages has integration tests). With `cargo test -p hedgectl`
//! alone, build them first: `cargo build --bins`.

mod common;

use common::bin_dir;
use std::path::PathBuf;
use std::process::Command;

/// The number in the summary row starting with `label`.
fn summary_value(out: &str, label: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no '{label}' row in:\n{out}"));
    line[label.len()..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad value in '{line}'"))
}

/// Files under `dir` not mode 0600 and directories not 0700, with their modes.
fn loose_modes(dir: &std::path::Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut loose = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            if mode != 0o700 {
                loose.push((path.clone(), mode));
            }
            loose.extend(loose_modes(&path));
        } else if mode != 0o600 {
            loose.push((path, mode));
        }
    }
    loose
}

#[test]
fn short_demo_sends_and_fills_hedge_orders_and_cleans_up() {
    let bins = bin_dir();
    let out_dir = tempfile::TempDir::new().unwrap();
    let ns = format!("hedgectl-demo-test-{}", std::process::id());
    let ns_dir = PathBuf::from("/dev/shm").join(&ns);
    let o = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["demo", "--duration", "6", "--namespace", &ns, "--out"])
        .arg(out_dir.path())
        .env("HEDGE_BIN_DIR", &bins)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // A status line per second with the pipeline's numbers.
    let status: Vec<&str> = stdout.lines().filter(|l| l.starts_with("[")).collect();
    assert!(status.len() >= 3, "{stdout}");
    assert!(
        status
            .iter()
            .all(|l| l.contains("orders") && l.contains("md ")),
        "{stdout}"
    );
    assert!(stdout.contains("BTC net delta"), "{stdout}");

    // The summary: market data flowed, client flow traded, orders were sent and filled.
    for line in [
        "market events published",
        "client option trades",
        "hedge orders sent",
        "hedge orders filled",
    ] {
        assert!(summary_value(&stdout, line) > 0.0, "{line}: {stdout}");
    }
    assert!(
        stdout.contains("process exits: feed-handler exit 0, hedger exit 0, order-gateway exit 0"),
        "{stdout}"
    );

    // Artifacts: the interval log, percentile distributions, the plot, the summary.
    let p = out_dir.path();
    assert!(p.join("hedger.hlog").is_file());
    assert!(p.join("recv_to_publish.hgrm").is_file(), "{stdout}");
    let svg = std::fs::read_to_string(p.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    assert!(std::fs::read_to_string(p.join("summary.txt"))
        .unwrap()
        .contains("hedge orders sent"));

    // Everything the demo and its processes wrote is owner-only: configs, logs, state,
    // journals, histograms, the plot and the summary.
    let loose = loose_modes(p);
    assert!(loose.is_empty(), "not owner-only: {loose:?}");

    // Segments removed.
    assert!(!ns_dir.exists(), "{} left behind", ns_dir.display());
}

#[test]
fn demo_names_missing_binaries() {
    let empty = tempfile::TempDir::new().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["demo", "--duration", "1"])
        .env("HEDGE_BIN_DIR", empty.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("binaries not found") && err.contains("feed-handler, hedger, order-gateway"),
        "{err}"
    );
}
