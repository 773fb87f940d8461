//! `hedgectl stat`: an AeronStat-like view of a running namespace, refreshed every second.
//!
//! Attaches read-only: it maps the counters segments and reads their words with relaxed atomic
//! loads, reads the rings' position words, and never writes anything, so watching the engine
//! cannot slow its hot path.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use risk_bridge::bridge::BridgeCounter::FailsafeReduceOnly as FAILSAFE;
use shm_layout::CounterSchema as _;

use crate::metrics::{Liveness, Metric, ProcessSnap, RiskRow, Snapshot, Value};
use crate::procs::{self, NsArgs};

/// Options of `hedgectl stat`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatArgs {
    /// Namespace to attach to.
    #[command(flatten)]
    pub ns: NsArgs,
    /// Print one snapshot and exit (for scripts and tests).
    #[arg(long)]
    pub once: bool,
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Show counters that are still zero.
    #[arg(long)]
    pub all: bool,
}

fn fmt_age(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

/// Why the host is reduce-only by itself, if the risk bridge says it holds it there (its
/// `failsafe_reduce_only{reason=...}` gauge is 1).
fn failsafe(snap: &Snapshot) -> Option<String> {
    let bridge = procs::find_role(snap, "risk-bridge")?;
    let m = bridge
        .metrics
        .iter()
        .find(|m| m.name == FAILSAFE.def().name && m.value.as_f64() != 0.0)?;
    let reason = m.label_value("reason").unwrap_or("unknown");
    Some(format!(
        "risk-bridge holds every underlying reduce-only (reason: {reason}, past its bus timeout); \
         `hedgectl resume` or `hedgectl firm resume` clears it"
    ))
}

/// Counts per second of counter `m` of `p` since `prev` (`-` without a previous value; empty
/// for gauges).
fn rate(m: &Metric, before: Option<&ProcessSnap>, dt: Option<f64>) -> String {
    let (Value::Counter(now), Some(b), Some(dt)) = (m.value, before, dt) else {
        return match m.value {
            Value::Gauge(_) => String::new(),
            _ => "-".into(),
        };
    };
    b.metrics
        .iter()
        .find(|x| x.label == m.label)
        .and_then(|x| match x.value {
            Value::Counter(then) if now >= then => Some((now - then) as f64 / dt),
            _ => None,
        })
        .map_or_else(|| "-".into(), |r| format!("{r:.0}"))
}

/// The counters table: each process's global counters, then the per-underlying ones grouped
/// by underlying (label shown without its `underlying` pair). Names, units and help come from
/// the segments; a counter no schema here knows is listed like any other.
fn render_counters(s: &mut String, snap: &Snapshot, prev: Option<&Snapshot>, all: bool) {
    let dt = prev
        .map(|p| snap.taken_ns.saturating_sub(p.taken_ns) as f64 / 1e9)
        .filter(|d| *d > 0.0);
    let shown = |m: &Metric| all || m.value.as_f64() != 0.0;
    let before =
        |p: &ProcessSnap| prev.and_then(|pr| pr.processes.iter().find(|x| x.role == p.role));
    let _ = writeln!(
        s,
        "\n{:<16} {:<52} {:>16} {:<16} {:>10}",
        "ROLE", "COUNTER", "VALUE", "UNIT", "RATE/s"
    );
    let mut underlyings: Vec<&str> = Vec::new();
    for p in &snap.processes {
        for m in p.metrics.iter().filter(|m| shown(m)) {
            if let Some(u) = m.label_value("underlying") {
                if !underlyings.contains(&u) {
                    underlyings.push(u);
                }
                continue;
            }
            let r = rate(m, before(p), dt);
            let v = m.value.display();
            let _ = writeln!(
                s,
                "{:<16} {:<52} {v:>16} {:<16} {r:>10}",
                p.role, m.label, m.unit
            );
        }
    }
    underlyings.sort_unstable();
    for u in underlyings {
        let _ = writeln!(s, "\n{u}");
        for p in &snap.processes {
            let mine = p
                .metrics
                .iter()
                .filter(|m| shown(m) && m.label_value("underlying") == Some(u));
            for m in mine {
                let (r, v) = (rate(m, before(p), dt), m.value.display());
                let label = m.label_without_underlying();
                let _ = writeln!(
                    s,
                    "  {:<14} {label:<52} {v:>16} {:<16} {r:>10}",
                    p.role, m.unit
                );
            }
        }
    }
}

/// Renders one snapshot; rates are computed against `prev` when given.
pub fn render(snap: &Snapshot, prev: Option<&Snapshot>, all: bool) -> String {
    let mut s = String::new();
    let kill = match &snap.control {
        Some(c) if c.kill_switch => "ON (no new orders)",
        Some(_) => "off",
        None => "- (no control block)",
    };
    let _ = writeln!(s, "namespace {}    kill switch: {kill}", snap.dir);
    if let Some(why) = failsafe(snap) {
        let _ = writeln!(s, "FAIL-SAFE: {why}");
    }
    let _ = writeln!(
        s,
        "\n{:<16} {:>8} {:<9} {:<10} {:>10}",
        "PROCESS", "PID", "LIVENESS", "STATE", "HEARTBEAT"
    );
    if snap.processes.is_empty() {
        let _ = writeln!(
            s,
            "(no cnc-* counters segment: no process has started here)"
        );
    }
    for p in &snap.processes {
        let live = match p.liveness {
            Liveness::Alive => "alive",
            Liveness::Stale => "STALE",
            Liveness::Dead => "DEAD",
        };
        let _ = writeln!(
            s,
            "{:<16} {:>8} {:<9} {:<10} {:>10}",
            p.role,
            p.pid,
            live,
            p.state,
            fmt_age(p.heartbeat_age_ns)
        );
    }
    render_counters(&mut s, snap, prev, all);
    if !snap.rings.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<10} {:<10} {:>16} {:>16} {:>10} {:>8}",
            "RING", "KIND", "WRITTEN", "CONSUMED", "QUEUED", "FILL"
        );
        for r in &snap.rings {
            let _ = writeln!(
                s,
                "{:<10} {:<10} {:>16} {:>16} {:>10} {:>8}",
                r.name,
                r.kind,
                r.producer_position,
                r.consumer_position
                    .map_or("-".to_string(), |c| c.to_string()),
                r.queued().map_or("-".to_string(), |q| q.to_string()),
                r.fill().map_or(format!("cap {}", r.capacity), |f| format!(
                    "{:.1}%",
                    f * 100.0
                ))
            );
        }
    }
    let risk = snap.risk();
    if !risk.is_empty() {
        let _ = writeln!(s, "\n{}", RiskRow::table_header());
        for r in risk {
            let _ = writeln!(s, "{}", r.table_line());
        }
    }
    s
}

/// Runs `stat`.
///
/// # Errors
/// The namespace does not exist.
pub fn run(args: &StatArgs) -> anyhow::Result<i32> {
    let dir = args.ns.existing_dir()?;
    if args.once {
        let snap = procs::snapshot(&dir).map_err(anyhow::Error::msg)?;
        print!("{}", render(&snap, None, args.all));
        return Ok(0);
    }
    watch(&dir, args)
}

fn watch(dir: &Path, args: &StatArgs) -> anyhow::Result<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let tty = std::io::stdout().is_terminal();
    let mut prev: Option<Snapshot> = None;
    while !stop.load(Ordering::Relaxed) {
        match procs::snapshot(dir) {
            Ok(snap) => {
                let text = render(&snap, prev.as_ref(), args.all);
                if tty {
                    // Clear the screen and home the cursor, like `watch`.
                    print!("\x1b[2J\x1b[H{text}");
                } else {
                    println!("{text}");
                }
                prev = Some(snap);
            }
            Err(e) => println!("namespace gone: {e}"),
        }
        let mut slept = 0;
        while slept < args.interval_ms && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            slept += 20;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t: u64, n: u64) -> Snapshot {
        Snapshot {
            taken_ns: t,
            dir: "/dev/shm/x".into(),
            processes: vec![ProcessSnap {
                role: "feed-handler".into(),
                pid: 1,
                liveness: Liveness::Stale,
                state: "running".into(),
                heartbeat_age_ns: 2_000_000_000,
                metrics: vec![Metric::new("events_published", Value::Counter(n))],
            }],
            rings: vec![],
            control: None,
        }
    }

    #[test]
    fn a_bridge_fail_safe_is_named_with_its_reason() {
        let mut s = snap(1, 1);
        assert!(!render(&s, None, false).contains("FAIL-SAFE"));
        s.processes.push(ProcessSnap {
            role: "risk-bridge".into(),
            pid: 2,
            liveness: Liveness::Alive,
            state: "running".into(),
            heartbeat_age_ns: 0,
            metrics: vec![Metric::new(
                "failsafe_reduce_only{reason=\"bus_lost\"}",
                Value::Gauge(1.0),
            )],
        });
        let text = render(&s, None, false);
        assert!(
            text.contains(
                "FAIL-SAFE: risk-bridge holds every underlying reduce-only (reason: bus_lost"
            ),
            "{text}"
        );
    }

    #[test]
    fn rates_come_from_the_previous_snapshot_and_stale_processes_stand_out() {
        let a = snap(1_000_000_000, 100);
        let b = snap(3_000_000_000, 700);
        let text = render(&b, Some(&a), false);
        assert!(text.contains("STALE"), "{text}");
        let line = text
            .lines()
            .find(|l| l.contains("events_published"))
            .unwrap();
        assert!(line.trim_end().ends_with("300"), "{line}");
    }
}
