//! The FIX venue against a real FIX engine: QuickFIX (Debian's libquickfix) running the simple
//! exchange in `scripts/fix/fix_acceptor.cpp` on loopback, validating every message against the
//! FIX 4.4 data dictionary.
//!
//! `scripts/test.sh` sets QuickFIX up first (CI runs it). Set `HEDGE_SKIP_QUICKFIX=1` to skip
//! these tests explicitly; without it a missing acceptor is a failure, not a silent pass.

mod common;

use bytemuck::Zeroable;
use common::{free_port, ioc_order as order};
use order_gateway::fix::{FixConfig, FixVenue, Secret};
use order_gateway::venue::{Venue, VenueReport};
use shm_layout::clock::now_ns;
use shm_layout::{ExecKind, InstrumentDef, OrderType, RejectReason, Side, TimeInForce};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::ChildGuard;

const USER: &str = "hedger-user";
const PASS: &str = "hedger-pass-9z";

fn skip() -> bool {
    common::skip_quickfix("QuickFIX integration test")
}

/// The QuickFIX acceptor child process; killed on drop (and it exits when our stdin pipe
/// closes, so it never outlives a crashed test).
fn start_acceptor(store: &Path, port: u16) -> ChildGuard {
    common::start_acceptor(store, port, USER, PASS)
}

/// A QuickFIX exchange on a free port, its store in a fresh temp dir (`<tmp>/exchange`), and
/// the gateway's FIX config against it with its state in `<tmp>/state`.
fn exchange() -> (tempfile::TempDir, ChildGuard, FixConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let exch = start_acceptor(&tmp.path().join("exchange"), port);
    let cfg = config(port, &tmp.path().join("state"));
    (tmp, exch, cfg)
}

fn instruments() -> Vec<InstrumentDef> {
    ["BTC-PERPETUAL", "UNKNOWN"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut d = InstrumentDef::zeroed();
            d.id = i as u32;
            assert!(d.set_symbol(s));
            d
        })
        .collect()
}

fn config(port: u16, state: &Path) -> FixConfig {
    let mut c = FixConfig::new("127.0.0.1", port, "HEDGER", "EXCH", state);
    c.username = Some(Secret::new(USER));
    c.password = Some(Secret::new(PASS));
    c.heartbeat_interval_s = 5;
    c.reconnect_min_ms = 50;
    c.reconnect_max_ms = 400;
    c
}

/// Polls `v` until `done(reports)` or the deadline; returns every report seen.
fn pump(
    v: &mut FixVenue,
    reports: &mut Vec<VenueReport>,
    what: &str,
    done: impl Fn(&FixVenue, &[VenueReport]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(v, reports) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; session {:?} stats {:?} app {:?} reports {reports:?}",
            v.session(),
            v.session().stats(),
            v.stats()
        );
        v.poll(now_ns(), &mut |r| reports.push(r));
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Polls for `ms` milliseconds regardless (to let late messages, e.g. a ResendRequest, arrive).
fn settle(v: &mut FixVenue, reports: &mut Vec<VenueReport>, ms: u64) {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        v.poll(now_ns(), &mut |r| reports.push(r));
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn connect(v: &mut FixVenue) {
    let mut sink = Vec::new();
    pump(v, &mut sink, "logon", |v, _| v.is_connected());
    assert!(sink.is_empty());
}

/// Logs on, then polls for `ms`: what was reported meanwhile.
fn connect_and_settle(v: &mut FixVenue, ms: u64) -> Vec<VenueReport> {
    connect(v);
    let mut reps = Vec::new();
    settle(v, &mut reps, ms);
    reps
}

/// What a report says: kind, quantity, price and reject reason.
type Said = (ExecKind, f64, f64, RejectReason);

fn kinds_of(reports: &[VenueReport], id: u64) -> Vec<Said> {
    reports
        .iter()
        .filter(|r| r.client_order_id == id)
        .map(|r| (r.kind, r.qty, r.price, r.reject_reason))
        .collect()
}

/// Each order's reports are exactly the expected ones, in order (`why` says what it shows).
fn assert_reports(reports: &[VenueReport], expected: &[(u64, &[Said], &str)]) {
    for &(id, want, why) in expected {
        assert_eq!(kinds_of(reports, id), want, "order {id}: {why}");
    }
}

fn terminal_count(reports: &[VenueReport]) -> usize {
    reports.iter().filter(|r| r.kind.is_terminal()).count()
}

#[test]
fn orders_fill_partially_fill_and_reject_against_quickfix_and_sequence_numbers_survive_restarts() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exch_store = tmp.path().join("exchange");
    let state = tmp.path().join("gateway-state");
    let port = free_port();
    let mut exch = start_acceptor(&exch_store, port);
    let defs = instruments();

    // --- Orders and their exec events. ---
    let mut v = FixVenue::new(config(port, &state), &defs).unwrap();
    assert!(!v.is_connected());
    connect(&mut v);
    let mut reps = Vec::new();
    v.submit(&order(1, 0, Side::Buy, 10.0, 100.5), now_ns());
    v.submit(&order(2, 0, Side::Sell, 150.0, 99.0), now_ns());
    v.submit(&order(3, 0, Side::Buy, 5000.0, 100.0), now_ns());
    v.submit(&order(4, 0, Side::Buy, 1.0, 13.13), now_ns());
    v.submit(&order(5, 1, Side::Buy, 1.0, 100.0), now_ns());
    let mut market = order(6, 0, Side::Sell, 2.0, 0.0);
    market.order_type = OrderType::Market as u8;
    v.submit(&market, now_ns());
    pump(&mut v, &mut reps, "6 terminal reports", |_, r| {
        terminal_count(r) == 6
    });
    use ExecKind::*;
    use RejectReason as R;
    assert_reports(
        &reps,
        &[
            (
                1,
                &[(Ack, 0.0, 0.0, R::None), (Fill, 10.0, 100.5, R::None)],
                "",
            ),
            (
                2,
                &[
                    (Ack, 0.0, 0.0, R::None),
                    (PartialFill, 100.0, 99.0, R::None),
                    (Cancelled, 0.0, 0.0, R::None),
                ],
                "",
            ),
            (3, &[(Rejected, 0.0, 0.0, R::VenueOther)], ""),
            (4, &[(Rejected, 0.0, 0.0, R::VenueOther)], ""),
            (
                5,
                &[(Rejected, 0.0, 0.0, R::VenueOther)],
                "business reject (35=j) ends the order",
            ),
            (
                6,
                &[(Ack, 0.0, 0.0, R::None), (Fill, 2.0, 100.0, R::None)],
                "",
            ),
        ],
    );
    let partial = reps
        .iter()
        .find(|r| r.client_order_id == 2 && r.kind == PartialFill)
        .unwrap();
    assert_eq!(partial.leaves_qty, 50.0);
    // The exchange charges 5 bps taker fee as Commission (12) with CommType 3.
    assert_eq!(partial.liquidity, shm_layout::Liquidity::Taker);
    assert!(
        (partial.fee - 0.0005 * 100.0 * 99.0).abs() < 1e-9,
        "{partial:?}"
    );
    assert_eq!(partial.side, Side::Sell);
    assert_eq!(v.stats().venue_rejects, 2);
    assert_eq!(v.stats().business_rejects, 1);
    assert_eq!(v.session().stats().decode.total_rejected(), 0);
    // A resting (GTC) order is acked, then cancelled on request (35=F, ClOrdID "<id>-C").
    let mut gtc = order(40, 0, Side::Buy, 5.0, 90.0);
    gtc.tif = TimeInForce::Gtc as u8;
    v.submit(&gtc, now_ns());
    pump(&mut v, &mut reps, "GTC ack", |_, r| {
        r.iter().any(|r| r.client_order_id == 40)
    });
    v.cancel(40, now_ns());
    pump(&mut v, &mut reps, "GTC cancelled", |_, r| {
        terminal_count(r) == 7
    });
    assert_eq!(
        kinds_of(&reps, 40),
        [(Ack, 0.0, 0.0, R::None), (Cancelled, 0.0, 0.0, R::None)]
    );
    assert_eq!(v.stats().cancels_sent, 1);
    // A cancel of a finished order reports nothing.
    v.cancel(1, now_ns());
    settle(&mut v, &mut reps, 100);
    assert_eq!(reps.len(), 12, "the cancel added no report");
    assert_eq!(v.orders_in_flight(), 0);
    let (out_before, in_before) = (v.session().next_out(), v.session().next_in());
    assert!(out_before > 9 && in_before > 9);

    // --- Kill our side (no Logout: the socket just closes) and restart from the state dir. ---
    drop(v);
    let mut v = FixVenue::new(config(port, &state), &defs).unwrap();
    assert_eq!(v.session().next_out(), out_before, "next_out persisted");
    assert_eq!(v.session().next_in(), in_before, "next_in persisted");
    let mut reps = connect_and_settle(&mut v, 300);
    let s = v.session().stats();
    assert_eq!(
        (
            s.resend_requests_sent,
            s.resend_requests_received,
            s.seq_too_low,
            s.logouts_received
        ),
        (0, 0, 0, 0),
        "clean sequence recovery: no resend in either direction, no logon reject: {s:?}"
    );
    v.submit(&order(7, 0, Side::Buy, 3.0, 101.0), now_ns());
    pump(&mut v, &mut reps, "order 7 filled", |_, r| {
        terminal_count(r) == 1
    });
    assert_eq!(kinds_of(&reps, 7).last().unwrap().0, Fill);

    // --- Clean shutdown (Logout) and restart. ---
    v.shutdown(now_ns());
    assert!(!v.is_connected());
    drop(v);
    let mut v = FixVenue::new(config(port, &state), &defs).unwrap();
    connect_and_settle(&mut v, 300);
    let s = v.session().stats();
    assert_eq!((s.resend_requests_sent, s.resend_requests_received), (0, 0));

    // --- A crash after persisting outgoing numbers that never went out: the exchange sees a
    // gap, asks once, we gap-fill once, and the session carries on. ---
    let seq_file = state.join("fix-HEDGER-EXCH.seqnums");
    let (out, inn) = (v.session().next_out(), v.session().next_in());
    drop(v);
    std::fs::write(&seq_file, format!("{:020} {:020}\n", out + 3, inn)).unwrap();
    let mut v = FixVenue::new(config(port, &state), &defs).unwrap();
    let mut reps = connect_and_settle(&mut v, 500);
    let s = v.session().stats();
    assert_eq!(
        (
            s.resend_requests_received,
            s.gap_fills_sent,
            s.resend_requests_sent
        ),
        (1, 1, 0),
        "{s:?}"
    );
    v.submit(&order(8, 0, Side::Sell, 1.0, 100.0), now_ns());
    pump(&mut v, &mut reps, "order 8 filled", |_, r| {
        terminal_count(r) == 1
    });

    // --- A crash before persisting incoming numbers: we ask once for what we missed, the
    // exchange resends (PossDup) and gap-fills; the reports of orders this process does not
    // know are dropped and counted, nothing is reported twice. ---
    let (out, inn) = (v.session().next_out(), v.session().next_in());
    drop(v);
    std::fs::write(&seq_file, format!("{:020} {:020}\n", out, inn - 3)).unwrap();
    let mut v = FixVenue::new(config(port, &state), &defs).unwrap();
    let mut reps = connect_and_settle(&mut v, 500);
    let s = v.session().stats();
    assert_eq!(s.resend_requests_sent, 1, "{s:?}");
    assert!(reps.is_empty(), "{reps:?}");
    assert!(v.session().next_in() > inn, "caught up");
    v.submit(&order(9, 0, Side::Buy, 1.0, 100.0), now_ns());
    pump(&mut v, &mut reps, "order 9 filled", |_, r| {
        terminal_count(r) == 1
    });

    // --- The exchange restarts (its store keeps its numbers): we reconnect with backoff. ---
    drop(exch);
    let mut reps = Vec::new();
    pump(&mut v, &mut reps, "disconnect noticed", |v, _| {
        !v.is_connected()
    });
    v.submit(&order(10, 0, Side::Buy, 1.0, 100.0), now_ns());
    pump(&mut v, &mut reps, "not-connected reject", |_, r| {
        terminal_count(r) == 1
    });
    assert_eq!(kinds_of(&reps, 10), [(Rejected, 0.0, 0.0, R::NotConnected)]);
    exch = start_acceptor(&exch_store, port);
    let mut reps = connect_and_settle(&mut v, 300);
    v.submit(&order(11, 0, Side::Buy, 1.0, 100.0), now_ns());
    pump(&mut v, &mut reps, "order 11 filled", |_, r| {
        terminal_count(r) == 1
    });
    assert!(v.session().stats().logons >= 2);
    assert_eq!(v.session().stats().seq_too_low, 0);
    drop(exch);
}

#[test]
fn a_restarted_gateway_recovers_orders_of_the_killed_run_with_order_status_requests() {
    if skip() {
        return;
    }
    let (_tmp, _exch, cfg) = exchange();
    let defs = instruments();
    let mut v = FixVenue::new(cfg.clone(), &defs).unwrap();
    connect(&mut v);
    // Orders 20 (150: partial fill then IOC cancel), 21 (10: full fill), 22 (150, of which the
    // killed run had already published the 100 partial fill) go out; the venue executes them,
    // but the gateway is killed before publishing any of their reports.
    let o20 = order(20, 0, Side::Buy, 150.0, 101.0);
    let o21 = order(21, 0, Side::Sell, 10.0, 99.5);
    let o22 = order(22, 0, Side::Buy, 150.0, 100.0);
    for o in [&o20, &o21, &o22] {
        v.submit(o, now_ns());
    }
    let mut lost = Vec::new();
    pump(&mut v, &mut lost, "execution", |_, r| {
        terminal_count(r) == 3
    });
    drop(v);
    // Order 23 was accepted by the killed gateway but never sent.
    let o23 = order(23, 0, Side::Buy, 1.0, 100.0);

    let mut v = FixVenue::new(cfg, &defs).unwrap();
    assert!(v.recover_order(&o20, 0.0, now_ns()));
    assert!(v.recover_order(&o21, 0.0, now_ns()));
    assert!(v.recover_order(&o22, 100.0, now_ns()));
    assert!(v.recover_order(&o23, 0.0, now_ns()));
    let mut reps = Vec::new();
    pump(&mut v, &mut reps, "recovered terminal reports", |_, r| {
        terminal_count(r) == 4
    });
    use ExecKind::*;
    use RejectReason as R;
    assert_reports(
        &reps,
        &[
            (
                20,
                &[
                    (PartialFill, 100.0, 101.0, R::None),
                    (Cancelled, 0.0, 0.0, R::None),
                ],
                "",
            ),
            (21, &[(Fill, 10.0, 99.5, R::None)], ""),
            (
                22,
                &[(Cancelled, 0.0, 0.0, R::None)],
                "only quantity beyond filled_qty is reported",
            ),
            (
                23,
                &[(Cancelled, 0.0, 0.0, R::GatewayRecovery)],
                "an order the venue never saw ends cancelled by recovery",
            ),
        ],
    );
    assert_eq!(v.stats().status_requests_sent, 4);
    settle(&mut v, &mut reps, 200);
    assert_eq!(reps.len(), 5, "nothing reported twice: {reps:?}");
}

#[test]
fn heartbeats_keep_the_session_up_and_a_silent_exchange_is_detected_by_test_request() {
    if skip() {
        return;
    }
    let (_tmp, exch, mut cfg) = exchange();
    cfg.heartbeat_interval_s = 1;
    cfg.logon_timeout_ms = 1_000;
    let mut v = FixVenue::new(cfg, &instruments()).unwrap();
    let mut reps = connect_and_settle(&mut v, 3_000);
    let s = v.session().stats();
    assert!(v.is_connected());
    assert!(s.heartbeats_sent >= 2, "{s:?}");
    assert_eq!(
        s.test_requests_sent, 0,
        "the exchange's heartbeats arrived: {s:?}"
    );
    assert!(s.msgs_in >= 3, "logon + heartbeats from QuickFIX: {s:?}");
    // Freeze the exchange: its kernel still holds the socket open, so only the silence tells.
    let pid = exch.pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    // An order sent into the frozen exchange: its fate is learned after the reconnect.
    v.submit(&order(31, 0, Side::Sell, 150.0, 98.0), now_ns());
    pump(&mut v, &mut reps, "dead peer detected", |v, _| {
        !v.is_connected()
    });
    assert!(v.session().stats().test_requests_sent >= 1);
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    connect(&mut v);
    pump(&mut v, &mut reps, "order 31 resolved", |_, r| {
        terminal_count(r) == 1
    });
    settle(&mut v, &mut reps, 500);
    use ExecKind::*;
    let k31: Vec<ExecKind> = kinds_of(&reps, 31).iter().map(|k| k.0).collect();
    assert_eq!(
        k31.iter().filter(|k| k.is_terminal()).count(),
        1,
        "exactly one terminal report: {reps:?}"
    );
    let filled: f64 = reps
        .iter()
        .filter(|r| r.client_order_id == 31)
        .map(|r| r.qty)
        .sum();
    assert_eq!(filled, 100.0, "the partial fill is reported once: {reps:?}");
    assert_eq!(*k31.last().unwrap(), Cancelled);
    eprintln!(
        "order 31 across a dead-peer reconnect: {k31:?}; venue {:?}; session {:?}",
        v.stats(),
        v.session().stats()
    );
    let mut reps = Vec::new();
    v.submit(&order(30, 0, Side::Buy, 1.0, 100.0), now_ns());
    pump(&mut v, &mut reps, "order 30 filled", |_, r| {
        terminal_count(r) == 1
    });
    assert_eq!(v.session().stats().seq_too_low, 0);
}

#[test]
fn wrong_password_is_refused_and_never_logged_in() {
    if skip() {
        return;
    }
    let (_tmp, _exch, mut cfg) = exchange();
    cfg.password = Some(Secret::new("wrong-password"));
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("wrong-password") && !debug.contains(USER));
    let mut v = FixVenue::new(cfg, &instruments()).unwrap();
    let mut reps = Vec::new();
    pump(&mut v, &mut reps, "logon refused", |v, _| {
        v.session().stats().connect_attempts >= 2
    });
    assert!(!v.is_connected());
    assert_eq!(v.session().stats().logons, 0);
    assert!(!format!("{v:?}").contains("wrong-password"));
}

/// Runs this test binary's `wrong_password_is_refused_and_never_logged_in` in a child process,
/// pointed at a QuickFIX acceptor that does not exist, with `HEDGE_SKIP_QUICKFIX` as given.
fn run_without_acceptor(absent: &Path, skip: Option<&str>) -> (bool, String) {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "wrong_password_is_refused_and_never_logged_in"])
        .args(["--nocapture", "--test-threads", "1"])
        .env("HEDGE_FIX_ACCEPTOR", absent)
        .env_remove("HEDGE_SKIP_QUICKFIX");
    if let Some(v) = skip {
        c.env("HEDGE_SKIP_QUICKFIX", v);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A newcomer's plain `cargo test` without the QuickFIX exchange: each FIX test fails with one
/// line that names the command that installs it; `HEDGE_SKIP_QUICKFIX=1` skips it, saying so.
/// Needs no QuickFIX itself, so it runs (and is checked) on every machine.
#[test]
fn without_quickfix_a_fix_test_fails_in_one_line_naming_scripts_test_sh() {
    let tmp = tempfile::tempdir().unwrap();
    let absent = tmp.path().join("no-such-fix-acceptor");

    let (passed, stderr) = run_without_acceptor(&absent, None);
    assert!(!passed, "a missing exchange must fail the test: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("QuickFIX test exchange"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&absent.display().to_string()), "{stderr}");
    assert!(
        lines[0].contains("run the tests with scripts/test.sh"),
        "{stderr}"
    );
    assert!(lines[0].contains("HEDGE_SKIP_QUICKFIX=1"), "{stderr}");

    let (passed, stderr) = run_without_acceptor(&absent, Some("1"));
    assert!(passed, "HEDGE_SKIP_QUICKFIX=1 skips: {stderr}");
    assert!(
        stderr.contains("SKIPPED: HEDGE_SKIP_QUICKFIX=1 set, QuickFIX integration test not run"),
        "{stderr}"
    );
}
