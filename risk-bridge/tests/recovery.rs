//! Exactly once across a SIGKILLed bridge, and nothing lost across a nats-server restart
//! (with the fail-safe engaging while the bus is down and clearing on resume).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{rt, stream_execs, wait_for, Bridge, NatsServer, SimHost};
use risk_bridge::firm::Firm;
use risk_bridge::schema::{ControlAction, ControlMsg};
use risk_bridge::state;
use shm_layout::control::TradingState;
use shm_layout::counters::{CounterValue, CountersReader};
use shm_layout::segment::OpenOptions;

const LIMIT: Duration = Duration::from_secs(30);

/// Waits until the stream holds `n` messages, then checks they are exec ids 1..=n of
/// `host`, each once.
fn assert_stream_holds_each_once(url: &str, host: &str, n: u64) {
    let rt = rt();
    let all = wait_for(&format!("{n} execs in the stream"), LIMIT, || {
        let v = rt.block_on(stream_execs(url));
        (v.len() as u64 >= n).then_some(v)
    });
    // Give a late duplicate the chance to show up before counting.
    std::thread::sleep(Duration::from_millis(200));
    let all = if all.len() as u64 == n {
        rt.block_on(stream_execs(url))
    } else {
        all
    };
    let ids: Vec<u64> = all.iter().map(|(_, m)| m.exec_id).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicates in the stream");
    assert_eq!(unique, (1..=n).collect::<BTreeSet<u64>>());
    for (id, m) in &all {
        assert_eq!(id, &format!("{host}.{}", m.exec_id));
        assert_eq!(m.host, host);
    }
}

fn acked(host: &SimHost) -> u64 {
    state::load(&host.path().join("risk-bridge.position"))
        .unwrap()
        .last_acked_exec_id
}

#[test]
fn sigkilled_bridge_restarts_and_the_stream_holds_every_exec_once() {
    let nats = NatsServer::start();
    let mut host = SimHost::new("crash1");
    host.fills(500);
    let mut bridge = Bridge::start(&host, &nats.url(), 5000);
    wait_for("some execs acknowledged", LIMIT, || {
        (acked(&host) > 0).then_some(())
    });
    for _ in 0..20 {
        host.fills(25);
        std::thread::sleep(Duration::from_millis(1));
    }
    bridge.kill();
    host.fills(300);
    // A crash after JetStream acked but before the position was written: the restarted
    // bridge re-sends everything; the message ids make the stream drop the copies.
    let pos_file = host.path().join("risk-bridge.position");
    let mut pos = state::load(&pos_file).unwrap();
    assert!(pos.last_acked_exec_id > 0);
    pos.last_acked_exec_id = 0;
    state::store(&pos_file, &pos).unwrap();
    let bridge = Bridge::start(&host, &nats.url(), 5000);
    host.fills(200);
    assert_stream_holds_each_once(&nats.url(), "crash1", 1500);
    let dups = CountersReader::open(host.path(), "risk-bridge", OpenOptions::default())
        .unwrap()
        .snapshot()
        .into_iter()
        .find(|(l, _)| l == "execs_duplicate")
        .map(|(_, v)| v);
    assert!(
        matches!(dups, Some(CounterValue::Counter(n)) if n > 0),
        "{dups:?}\n{}",
        bridge.log_text()
    );
}

fn failsafe_gauge(host: &SimHost) -> f64 {
    CountersReader::open(host.path(), "risk-bridge", OpenOptions::default())
        .ok()
        .and_then(|c| {
            c.snapshot()
                .into_iter()
                .find(|(l, _)| l.starts_with("failsafe_reduce_only"))
        })
        .map_or(-1.0, |(_, v)| match v {
            CounterValue::Gauge(g) => g,
            CounterValue::Counter(n) => n as f64,
        })
}

#[test]
fn nats_restart_loses_nothing_and_the_host_goes_reduce_only_until_resume() {
    let mut nats = NatsServer::start();
    let mut host = SimHost::new("outage1");
    host.btc.net_delta.set(2.0);
    let bridge = Bridge::start(&host, &nats.url(), 300);
    host.fills(200);
    wait_for("execs acknowledged", LIMIT, || {
        (acked(&host) == 200).then_some(())
    });
    nats.stop();
    host.fills(300);
    wait_for("fail-safe reduce-only", LIMIT, || {
        (host.control.trading_state(0) == TradingState::ReduceOnly
            && host.control.trading_state(2) == TradingState::ReduceOnly)
            .then_some(())
    });
    assert_eq!(failsafe_gauge(&host), 1.0);
    assert!(
        bridge.log_text().contains("FAIL-SAFE: bus lost"),
        "{}",
        bridge.log_text()
    );
    nats.resume();
    host.fills(100);
    assert_stream_holds_each_once(&nats.url(), "outage1", 600);
    // Back on the bus, still reduce-only: only a resume clears it.
    assert_eq!(host.control.trading_state(0), TradingState::ReduceOnly);
    let rt = rt();
    let f = rt.block_on(Firm::connect(&nats.url())).unwrap();
    let hb_failsafe = wait_for("a heartbeat naming the fail-safe", LIMIT, || {
        let st = rt.block_on(f.stat()).ok()?;
        st.hosts.first().and_then(|(h, _)| h.failsafe.clone())
    });
    assert!(hb_failsafe.contains("bus lost"), "{hb_failsafe}");
    let resume = ControlMsg {
        host: "all".into(),
        action: ControlAction::Resume,
        underlyings: vec![],
        net_delta_budget: None,
        issued_by: "test".into(),
    };
    let r = rt.block_on(f.command(&resume, LIMIT, LIMIT)).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(host.control.trading_state(0), TradingState::Active);
    wait_for("fail-safe cleared", LIMIT, || {
        (failsafe_gauge(&host) == 0.0).then_some(())
    });
}
