//! Firm kill latency: from the firm client's kill command to every hedger's control block
//! showing the kill switch, over a private nats-server with three simulated hosts and three
//! `risk-bridge` processes on this machine. Prints p50/p99/max of 100 trials (or
//! `--trials N`); results with machine, command and date go in docs/firm-risk.md.
//!
//! ```text
//! cargo bench -p risk-bridge --bench firm_kill_latency -- --trials 100
//! ```
//!
//! Each trial: `resume` every host (acknowledged), then start the clock, call
//! [`Firm::command`] with `kill` (what `hedgectl firm kill` runs after connecting: read the
//! hosts bucket, subscribe to acks, write the command, wait for every ack); a second thread
//! polls the three control blocks and stops the clock when all three show the kill.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{rt, wait_for, Bridge, NatsServer, SimHost};
use risk_bridge::firm::Firm;
use risk_bridge::schema::{ControlAction, ControlMsg};

fn msg(action: ControlAction) -> ControlMsg {
    ControlMsg {
        host: "all".into(),
        action,
        underlyings: vec![],
        net_delta_budget: None,
        issued_by: "firm_kill_latency".into(),
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<40} n={:<4} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        v.len(),
        pct(&v, 0.50),
        pct(&v, 0.99),
        v[v.len() - 1]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trials: usize = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(100);
    let nats = NatsServer::start();
    let hosts: Vec<SimHost> = ["h1", "h2", "h3"].iter().map(|h| SimHost::new(h)).collect();
    let bridges: Vec<Bridge> = hosts
        .iter()
        .map(|h| Bridge::start(h, &nats.url(), 5000))
        .collect();
    let rt = rt();
    let f = rt.block_on(Firm::connect(&nats.url())).expect("connect");
    let limit = Duration::from_secs(10);
    wait_for("three heartbeats", limit, || {
        (rt.block_on(f.stat()).ok()?.hosts.len() == 3).then_some(())
    });
    let controls: Vec<_> = hosts.iter().map(|h| h.path().to_path_buf()).collect();
    let (mut visible_ms, mut acked_ms) = (Vec::new(), Vec::new());
    for trial in 0..trials {
        let r = rt
            .block_on(f.command(&msg(ControlAction::Resume), limit, limit))
            .unwrap();
        assert!(r.ok(), "resume, trial {trial}: {r:?}");
        let done = Arc::new(AtomicBool::new(false));
        let dirs = controls.clone();
        let start = Instant::now();
        let d2 = Arc::clone(&done);
        let poller = std::thread::spawn(move || {
            let cbs: Vec<_> = dirs
                .iter()
                .map(|d| shm_layout::control::ControlBlock::open(d, Default::default()).unwrap())
                .collect();
            while !cbs.iter().all(|c| c.kill_switch()) {
                if d2.load(Ordering::Relaxed) && start.elapsed() > Duration::from_secs(10) {
                    return None;
                }
                std::thread::yield_now();
            }
            Some(start.elapsed())
        });
        let r = rt
            .block_on(f.command(&msg(ControlAction::Kill), limit, limit))
            .unwrap();
        let acked = start.elapsed();
        done.store(true, Ordering::Relaxed);
        assert!(r.ok(), "kill, trial {trial}: {r:?}");
        let seen = poller
            .join()
            .unwrap()
            .expect("kill never visible in every control block");
        visible_ms.push(seen.as_secs_f64() * 1e3);
        acked_ms.push(acked.as_secs_f64() * 1e3);
    }
    println!("firm kill latency, 3 hosts, {trials} trials, one nats-server on loopback");
    summary("kill -> every control block shows it", visible_ms);
    summary("kill -> command returns (all acks)", acked_ms);
    drop(bridges);
}
