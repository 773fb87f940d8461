//! A live session replayed bit-exactly: the real feed-handler (synthetic market), order-gateway
//! (simulated venue and client option flow) and hedger run as processes; in the middle the
//! kill switch is set and cleared (`hedgectl kill` / `resume`) and the hedger is SIGKILLed and
//! started again; then `hedgectl replay --session <state_dir>/session` must reproduce every
//! order the hedger sent in both runs with zero divergences.
//!
//! Each run uses its own namespace and temp directory, removed even when the test fails
//! (guards). The binaries are looked up beside `hedgectl` (`cargo build --bins` first when
//! running `cargo test -p hedgectl` alone).

mod common;

use common::bin_dir;
use shm_layout::{OrderAction, TimeInForce};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::ChildGuard;

/// The demo's hedger config (`hedgectl demo` writes the same file: cost-aware band, so the hot
/// path also reads the hedge book's depth from the last-value table), with the default
/// `on_stale = recover` for the restart.
fn hedger_config() -> String {
    let demo = include_str!("../src/demo_hedger.toml");
    let replace = "on_stale = \"replace\"\n";
    assert!(demo.contains(replace), "the demo's hedger config changed");
    demo.replace(replace, "")
}

/// The longest a process may take to stop cleanly after SIGTERM.
const TERM_WAIT: Duration = Duration::from_secs(30);

/// Removes the namespace's segment directory on drop.
struct Namespace(PathBuf);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Records of the journal so far with this kind and `small` field (None: any), read as
/// docs/operations.md lays them out (80 bytes: kind u32, small u32, value u64, payload).
fn journal_count(dir: &Path, kind: u32, small: Option<u32>) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let word = |r: &[u8], at: usize| u32::from_le_bytes(r[at..at + 4].try_into().unwrap());
    rd.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .map(|b| {
            b.chunks_exact(80)
                .filter(|r| word(r, 0) == kind && small.is_none_or(|s| word(r, 4) == s))
                .count()
        })
        .sum()
}

/// Order records in the journal so far.
fn journal_orders(dir: &Path) -> usize {
    journal_count(dir, 23, None)
}

/// Order records whose `HedgeOrder` (the payload, from byte 16) has `byte` at offset `at`.
fn journal_orders_with(dir: &Path, at: usize, byte: u8) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .map(|b| {
            b.chunks_exact(80)
                .filter(|r| r[0..4] == 23u32.to_le_bytes() && r[16 + at] == byte)
                .count()
        })
        .sum()
}

/// Waits until the journal holds at least `n` orders (the hedger is trading).
fn wait_orders(dir: &Path, n: usize, what: &str) {
    let t0 = Instant::now();
    while journal_orders(dir) < n {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "{what}: fewer than {n} orders in the journal after 40 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hedgectl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn live_session_with_restart_and_kill_switch_replays_with_zero_divergences() {
    replays_with_zero_divergences(hedger_config(), "ioc", |_| true, |_| {});
}

/// The same session with passive hedges: orders rest, are re-decided as client flow moves
/// delta (withdrawn, resized), replaced and crossed; the replay reproduces every order and
/// cancel.
#[test]
fn a_passive_session_with_restart_replays_with_zero_divergences() {
    let policy = "[underlyings.BTC.policy]\n";
    let config = hedger_config();
    assert!(config.contains(policy), "the demo's hedger config changed");
    // The outer band far away: a hedge rests first and crosses only at its timeout (with
    // the default of twice the band, the first hedge of a run and the one after the kill
    // switch often crossed at once, and a short session could hold no passive order).
    let config = config.replace(
        policy,
        &format!("{policy}style = \"passive\"\npassive_timeout_ms = 500\ncross_band = 50.0\n"),
    );
    // Offsets in `HedgeOrder`: tif at 14, action at 15.
    let gtc = |session: &Path| journal_orders_with(session, 14, TimeInForce::Gtc as u8);
    let cancels = |session: &Path| journal_orders_with(session, 15, OrderAction::Cancel as u8);
    replays_with_zero_divergences(
        config,
        "passive",
        |session| gtc(session) >= 1 && cancels(session) >= 1,
        |session| {
            let (g, c) = (gtc(session), cancels(session));
            assert!(g >= 1 && c >= 1, "passive orders {g}, cancels {c}");
        },
    );
}

/// Runs feed, gateway and hedger (`config`) in a namespace of their own, kills and resumes
/// hedging, crashes and restarts the hedger, runs it until `until` holds of its journal (the
/// session directory; at most 40 s), then replays the journal; `check` looks at it at the end.
fn replays_with_zero_divergences(
    config: String,
    tag: &str,
    until: impl Fn(&Path) -> bool,
    check: impl Fn(&Path),
) {
    let bins = bin_dir();
    let tmp = tempfile::TempDir::new().unwrap();
    let t = tmp.path();
    let ns = format!("session-replay-test-{tag}-{}", std::process::id());
    let _ns_guard = Namespace(PathBuf::from("/dev/shm").join(&ns));
    std::fs::write(t.join("hedger.toml"), config).unwrap();
    let start_ns = shm_layout::clock::wall_ns();
    std::fs::write(
        t.join("feed.toml"),
        format!("[synthetic]\nstart_ns = {start_ns}\n"),
    )
    .unwrap();
    let idle = ["--idle", "backoff-park"];
    let mut feed = ChildGuard::spawn(
        Command::new(bins.join("feed-handler"))
            .args(["--namespace", &ns, "--seed", "7", "--rate", "2000"])
            .args(["--stats-interval", "0"])
            .args(idle)
            .arg("--config")
            .arg(t.join("feed.toml")),
        &t.join("feed.log"),
    );
    let mut gateway = ChildGuard::spawn(
        Command::new(bins.join("order-gateway"))
            .args(["--namespace", &ns, "--seed", "7"])
            .args(idle)
            .arg("--state-dir")
            .arg(t.join("gateway-state")),
        &t.join("gateway.log"),
    );
    let state = t.join("hedger-state");
    let hedger = |log: &str| {
        ChildGuard::spawn(
            Command::new(bins.join("hedger"))
                .args(["--namespace", &ns])
                .args(idle)
                .arg("--config")
                .arg(t.join("hedger.toml"))
                .arg("--state-dir")
                .arg(&state),
            &t.join(log),
        )
    };
    let session = state.join("session");
    let mut h1 = hedger("hedger1.log");
    wait_orders(&session, 3, "first run");
    // Kill switch on, then off, while the flow keeps trading.
    assert!(hedgectl(&["kill", "--namespace", &ns]).status.success());
    std::thread::sleep(Duration::from_millis(700));
    assert!(hedgectl(&["resume", "--namespace", &ns]).status.success());
    let before = journal_orders(&session);
    wait_orders(&session, before + 2, "after resume");
    h1.sigkill();
    let mut h2 = hedger("hedger2.log");
    let before = journal_orders(&session);
    wait_orders(&session, before + 3, "after the restart");
    let t0 = Instant::now();
    while !until(&session) {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "{tag}: the journal still lacks what the test needs after 40 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(h2.sigterm(TERM_WAIT).success());
    gateway.sigterm(TERM_WAIT);
    feed.sigterm(TERM_WAIT);

    let o = hedgectl(&["replay", "--json", "--session", session.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let logs = ["hedger1.log", "hedger2.log"]
        .map(|f| std::fs::read_to_string(t.join(f)).unwrap_or_default())
        .join("\n");
    assert!(
        o.status.success(),
        "replay failed:\n{stdout}\n{}\n{logs}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(r["divergence"].is_null(), "{stdout}");
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "two hedger runs: {stdout}");
    assert_eq!(runs[0]["end"], "crashed", "{stdout}");
    assert_eq!(runs[1]["end"], "clean", "{stdout}");
    for run in runs {
        assert_eq!(
            run["orders_reproduced"], run["orders_recorded"],
            "every order of every run: {stdout}"
        );
        assert!(run["orders_recorded"].as_u64().unwrap() >= 3, "{stdout}");
    }
    assert_eq!(
        runs[1]["epoch"], 2,
        "the restart restored the state: {stdout}"
    );
    assert!(r["orders_reproduced"].as_u64().unwrap() >= 8, "{stdout}");
    // The hedger read the kill switch on, then off (Kill records, small = 1 / 0).
    assert!(
        journal_count(&session, 19, Some(1)) >= 1,
        "kill switch seen"
    );
    assert!(
        journal_count(&session, 19, Some(0)) >= 2,
        "kill switch cleared"
    );
    check(&session);
}
