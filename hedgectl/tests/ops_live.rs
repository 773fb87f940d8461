//! The operator commands against the real running system: a `hedgectl demo` runs in the
//! background (feed-handler, hedger, order-gateway over shared memory) while this test uses
//! `stat --once`, `tail`, `export`, `kill`/`halt`/`resume` on its namespace, checks that a
//! second demo is refused on the same namespace, then stops the demo with SIGINT (Ctrl-C) and
//! checks that it cleaned up.
//!
//! Needs the engine's binaries beside hedgectl (see demo_run.rs).

mod common;

use common::{bin_dir, ok};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The background demo; interrupted (and its namespace removed) when dropped.
struct Demo {
    child: Child,
    ns: String,
    lines: mpsc::Receiver<String>,
    _out: tempfile::TempDir,
}

impl Demo {
    fn start(ns: &str) -> Demo {
        let out = tempfile::TempDir::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
            .args(["demo", "--duration", "120", "--namespace", ns, "--out"])
            .arg(out.path())
            .env("HEDGE_BIN_DIR", bin_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let demo = Demo {
            child,
            ns: ns.to_string(),
            lines: rx,
            _out: out,
        };
        demo.wait_for_line("all three processes running", Duration::from_secs(60));
        demo
    }

    fn wait_for_line(&self, needle: &str, timeout: Duration) -> Vec<String> {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        while t0.elapsed() < timeout {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    seen.push(l);
                    if hit {
                        return seen;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "demo never printed '{needle}'; output so far:\n{}",
            seen.join("\n")
        );
    }

    fn interrupt(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.interrupt();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(PathBuf::from("/dev/shm").join(&self.ns));
    }
}

fn hedgectl(ns: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(args)
        .args(["--namespace", ns])
        .output()
        .unwrap()
}

fn scrape(ns: &str) -> String {
    common::scrape(&["--namespace", ns], Stdio::null())
}

/// Value of the first sample line starting with `prefix` in a Prometheus text body.
fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls the exported metrics until `prefix` has value `want` (the hedger publishes its gauges
/// every few ms; a control word takes effect within one loop iteration).
fn wait_for_sample(ns: &str, prefix: &str, want: f64) {
    let t0 = Instant::now();
    let mut body = String::new();
    while t0.elapsed() < Duration::from_secs(10) {
        body = scrape(ns);
        if sample(&body, prefix) == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{prefix} never became {want}:\n{body}");
}

#[test]
fn operator_commands_against_a_running_system() {
    let ns = format!("hedgectl-ops-live-{}", std::process::id());
    let mut demo = Demo::start(&ns);

    // A second instance is refused, naming the holder.
    let second = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["demo", "--duration", "1", "--namespace", &ns])
        .env("HEDGE_BIN_DIR", bin_dir())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("is in use") && err.contains(&demo.child.id().to_string()),
        "{err}"
    );

    // stat: three live processes, rings, risk.
    // Two status lines: the pipeline has been running for a couple of seconds.
    demo.wait_for_line("] md ", Duration::from_secs(30));
    demo.wait_for_line("] md ", Duration::from_secs(30));
    let stat = ok(hedgectl(&ns, &["stat", "--once"]));
    for role in ["feed-handler", "hedger", "gateway"] {
        let line = stat
            .lines()
            .find(|l| l.starts_with(role) && l.contains("running"))
            .unwrap_or_else(|| panic!("no running {role} in:\n{stat}"));
        assert!(line.contains("alive"), "{line}");
    }
    for ring in ["md ", "orders ", "execs "] {
        assert!(
            stat.lines().any(|l| l.starts_with(ring)),
            "no ring {ring}in:\n{stat}"
        );
    }
    assert!(
        stat.contains("events_published") && stat.contains("md_events"),
        "{stat}"
    );
    assert!(stat.lines().any(|l| l.starts_with("BTC ")), "{stat}");

    // tail: live market data with a reader of its own; execs (client option trades, fills)
    // without consuming them.
    let md = ok(hedgectl(&ns, &["tail", "md", "-n", "5"]));
    assert_eq!(
        md.lines().filter(|l| l.starts_with("md seq=")).count(),
        5,
        "{md}"
    );
    let execs = ok(hedgectl(&ns, &["tail", "execs", "-n", "5"]));
    assert!(execs.lines().any(|l| l.starts_with("exec pos=")), "{execs}");
    ok(hedgectl(&ns, &["tail", "orders", "-n", "5"]));
    ok(hedgectl(&ns, &["positions"]));

    // export: Prometheus text with every process up.
    let body = scrape(&ns);
    for role in ["feed-handler", "hedger", "gateway"] {
        assert_eq!(
            sample(&body, &format!("hedge_process_up{{role=\"{role}\"}}")),
            Some(1.0),
            "{body}"
        );
    }
    assert!(sample(&body, "hedge_md_events_total{role=\"hedger\"}").unwrap() > 0.0);

    // kill / halt / resume reach the hedger (its own gauges report them back).
    ok(hedgectl(&ns, &["kill"]));
    wait_for_sample(&ns, "hedge_kill_switch{role=\"hedger\"}", 1.0);
    ok(hedgectl(&ns, &["halt", "BTC"]));
    wait_for_sample(
        &ns,
        "hedge_trading_state{role=\"hedger\",underlying=\"BTC\"}",
        2.0,
    );
    let stat = ok(hedgectl(&ns, &["stat", "--once"]));
    assert!(stat.contains("kill switch: ON"), "{stat}");
    ok(hedgectl(&ns, &["resume"]));
    wait_for_sample(&ns, "hedge_kill_switch{role=\"hedger\"}", 0.0);
    wait_for_sample(
        &ns,
        "hedge_trading_state{role=\"hedger\",underlying=\"BTC\"}",
        0.0,
    );

    // Ctrl-C: the demo stops its children, prints its summary and removes the namespace.
    demo.interrupt();
    let rest = demo
        .wait_for_line("logs:", Duration::from_secs(30))
        .join("\n");
    assert!(rest.contains("stopped by signal"), "{rest}");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = demo.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "demo did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{rest}");
    assert!(
        !PathBuf::from("/dev/shm").join(&ns).exists(),
        "namespace left behind"
    );
}
