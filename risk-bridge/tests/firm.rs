//! Firm-wide risk and control over a private nats-server: three simulated hosts, kill and
//! resume with acks, bad control messages.

mod common;

use std::time::Duration;

use common::{rt, wait_for, Bridge, NatsServer, SimHost};
use risk_bridge::firm::{self, Firm};
use risk_bridge::schema::{ControlAction, ControlMsg, ACKS_BUCKET, CONTROL_BUCKET};
use shm_layout::control::TradingState;

const LIMIT: Duration = Duration::from_secs(20);

fn msg(host: &str, action: ControlAction, underlyings: &[&str]) -> ControlMsg {
    ControlMsg {
        host: host.into(),
        action,
        underlyings: underlyings.iter().map(|s| s.to_string()).collect(),
        net_delta_budget: None,
        issued_by: "test".into(),
    }
}

#[test]
fn three_hosts_firm_net_delta_is_the_sum_and_kill_reaches_every_control_block() {
    let nats = NatsServer::start();
    let hosts: Vec<SimHost> = ["ny4", "ld4", "ty3"]
        .iter()
        .map(|h| SimHost::new(h))
        .collect();
    let deltas = [(1.5, -2.25), (-0.75, 4.0), (3.125, 0.5)];
    for (h, (btc, eth)) in hosts.iter().zip(deltas) {
        h.btc.net_delta.set(btc);
        h.btc.option_delta.set(btc - 10.0);
        h.btc.hedge_position.set(10.0);
        h.eth.net_delta.set(eth);
    }
    let _bridges: Vec<Bridge> = hosts
        .iter()
        .map(|h| Bridge::start(h, &nats.url(), 5000))
        .collect();
    let rt = rt();
    let f = rt.block_on(Firm::connect(&nats.url())).unwrap();
    let st = wait_for("6 risk rows and 3 heartbeats", LIMIT, || {
        let st = rt.block_on(f.stat()).ok()?;
        (st.rows.len() == 6 && st.hosts.len() == 3).then_some(st)
    });
    // Each host's own figure, read from its namespace the way `hedgectl positions` does.
    let own = |u: &str| -> f64 {
        hosts
            .iter()
            .map(|h| risk_bridge::local::read_risk(h.path()).unwrap().underlyings[u].net_delta)
            .sum()
    };
    assert_eq!(st.firm_net_delta["BTC"], own("BTC"));
    assert_eq!(st.firm_net_delta["ETH"], own("ETH"));
    assert_eq!(own("BTC"), 1.5 - 0.75 + 3.125);
    let table = firm::render_stat(&st);
    assert!(
        table.contains("FIRM NET DELTA") && table.contains("3.8750"),
        "{table}"
    );

    for trial in 0..5 {
        let r = rt
            .block_on(f.command(&msg("all", ControlAction::Kill, &[]), LIMIT, LIMIT))
            .unwrap();
        assert!(r.ok(), "trial {trial}: {r:?}");
        assert_eq!(r.acks.len(), 3);
        assert!(
            hosts.iter().all(|h| h.control.kill_switch()),
            "trial {trial}"
        );
        let r = rt
            .block_on(f.command(&msg("all", ControlAction::Resume, &[]), LIMIT, LIMIT))
            .unwrap();
        assert!(r.ok(), "trial {trial}: {r:?}");
        assert!(
            hosts.iter().all(|h| !h.control.kill_switch()),
            "trial {trial}"
        );
    }
    // One host, one underlying.
    let r = rt
        .block_on(f.command(&msg("ld4", ControlAction::Halt, &["ETH"]), LIMIT, LIMIT))
        .unwrap();
    assert!(r.ok() && r.waited_for == ["ld4"], "{r:?}");
    assert_eq!(hosts[1].control.trading_state(2), TradingState::Halted);
    assert_eq!(hosts[0].control.trading_state(2), TradingState::Active);
    assert_eq!(hosts[1].control.trading_state(0), TradingState::Active);
}

#[test]
fn bad_control_messages_are_rejected_whole_and_logged() {
    let nats = NatsServer::start();
    let host = SimHost::new("bad1");
    let bridge = Bridge::start(&host, &nats.url(), 5000);
    let rt = rt();
    let f = rt.block_on(Firm::connect(&nats.url())).unwrap();
    wait_for("the heartbeat", LIMIT, || {
        (rt.block_on(f.stat()).ok()?.hosts.len() == 1).then_some(())
    });
    // Unknown host: refused by the client before anything is written.
    let err = rt
        .block_on(f.command(&msg("nowhere", ControlAction::Kill, &[]), LIMIT, LIMIT))
        .unwrap_err();
    assert!(err.to_string().contains("unknown host 'nowhere'"), "{err}");
    // One good and one unknown underlying: nothing applied.
    let r = rt
        .block_on(f.command(
            &msg("all", ControlAction::Halt, &["BTC", "XRP"]),
            LIMIT,
            LIMIT,
        ))
        .unwrap();
    assert!(!r.ok() && !r.acks[0].applied, "{r:?}");
    assert!(
        r.acks[0].detail.contains("unknown underlying 'XRP'"),
        "{r:?}"
    );
    assert_eq!(host.control.trading_state(0), TradingState::Active);
    // Raw bad entries written straight into the bucket.
    let raw = |key: &str, body: &str| -> String {
        rt.block_on(async {
            let client = async_nats::connect(nats.url()).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let control = js.get_key_value(CONTROL_BUCKET).await.unwrap();
            let acks = js.get_key_value(ACKS_BUCKET).await.unwrap();
            let rev = control.put(key, body.to_string().into()).await.unwrap();
            loop {
                if let Some(v) = acks.get("bad1").await.unwrap() {
                    let a: risk_bridge::schema::AckMsg = serde_json::from_slice(&v).unwrap();
                    if a.revision >= rev {
                        assert!(!a.applied, "{body}: {a:?}");
                        return a.detail;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let d = raw("all", r#"{"host":"all","action":"explode"}"#);
    assert!(d.contains("unknown variant"), "{d}");
    let d = raw("bad1", r#"{"host":"all","action":"kill"}"#);
    assert!(d.contains("does not match key"), "{d}");
    let d = raw(
        "all",
        r#"{"host":"all","action":"limits","net_delta_budget":-3}"#,
    );
    assert!(d.contains("finite and > 0"), "{d}");
    assert!(!host.control.kill_switch());
    assert_eq!(host.control.trading_state(0), TradingState::Active);
    let log = bridge.log_text();
    assert!(
        log.matches("control message rejected, nothing applied")
            .count()
            >= 4,
        "{log}"
    );
}
