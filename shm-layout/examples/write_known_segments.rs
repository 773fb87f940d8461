//! Writes one segment of every kind with known contents into a directory and prints, as JSON,
//! what a reader following `docs/shm-layout.md` must find there. Used by
//! `scripts/check-python-reader.sh` to check `scripts/shm_reader.py` against the Rust code.
//!
//! Usage: `cargo run -p shm-layout --example write_known_segments -- <dir>`

use bytemuck::Zeroable;
use serde_json::{json, Value};
use shm_layout::segment::{layout_fingerprint, LAYOUT_VERSION, MAGIC};
use shm_layout::*;
use std::path::Path;

fn header(kind: u32, cap: u64, msg_size: usize, msg_type: &str, total: u64) -> Value {
    header_with_pid(kind, cap, msg_size, msg_type, total, std::process::id())
}

fn header_with_pid(
    kind: u32,
    cap: u64,
    msg_size: usize,
    msg_type: &str,
    total: u64,
    pid: u32,
) -> Value {
    json!({
        "magic": MAGIC, "layout_version": LAYOUT_VERSION, "kind": kind,
        "fingerprint": layout_fingerprint(), "capacity": cap, "msg_size": msg_size,
        "msg_align": if msg_size == 1 { 1 } else { 8 }, "total_size": total,
        "creator_pid": pid, "initialized": true, "msg_type": msg_type,
    })
}

fn file_len(dir: &Path, name: &str) -> u64 {
    std::fs::metadata(dir.join(name)).unwrap().len()
}

/// What a reader must see in the SPSC queue `name` (kind 4, 64-byte messages, released by its
/// producer): `(capacity, message type)`, `(head, tail)` and the unconsumed `messages`.
fn spsc_json(
    dir: &Path,
    name: &str,
    (cap, msg_type): (u64, &str),
    (head, tail): (u64, u64),
    messages: Vec<Value>,
) -> Value {
    json!({
        "header": header_with_pid(4, cap, 64, msg_type, file_len(dir, name), 0),
        "head": head, "tail": tail, "consumer_pid": 0,
        "messages": messages,
    })
}

fn market_event(e: &MarketEvent) -> Value {
    json!({"seq": e.seq, "exch_ts_ns": e.exch_ts_ns, "recv_ts_ns": e.recv_ts_ns,
           "instrument_id": e.instrument_id, "kind": e.kind, "side": e.side, "flags": e.flags,
           "v": e.v})
}

fn hedge_order(o: &HedgeOrder) -> Value {
    json!({"client_order_id": o.client_order_id, "instrument_id": o.instrument_id,
           "side": o.side, "order_type": o.order_type, "tif": o.tif, "action": o.action,
           "qty": o.qty, "limit_px": o.limit_px, "feed_recv_ts_ns": o.feed_recv_ts_ns,
           "hedger_read_ts_ns": o.hedger_read_ts_ns, "decision_ts_ns": o.decision_ts_ns,
           "publish_ts_ns": o.publish_ts_ns})
}

fn exec_event(x: &ExecEvent) -> Value {
    json!({"exec_id": x.exec_id, "client_order_id": x.client_order_id,
           "instrument_id": x.instrument_id, "kind": x.kind, "side": x.side,
           "liquidity": x.liquidity, "reject_reason": x.reject_reason, "qty": x.qty,
           "price": x.price, "fee": x.fee, "leaves_qty": x.leaves_qty, "ts_ns": x.ts_ns})
}

fn instrument(d: &InstrumentDef) -> Value {
    json!({"id": d.id, "kind": d.kind, "option_type": d.option_type,
           "settlement": d.settlement, "underlying_id": d.underlying_id,
           "forward_id": d.forward_id, "strike": d.strike, "expiry_ns": d.expiry_ns,
           "contract_multiplier": d.contract_multiplier, "tick_size": d.tick_size,
           "lot_size": d.lot_size, "min_qty": d.min_qty, "symbol": d.symbol()})
}

fn last_value(v: &LastValue) -> Value {
    json!({"last_seq": v.last_seq, "exch_ts_ns": v.exch_ts_ns, "recv_ts_ns": v.recv_ts_ns,
           "instrument_id": v.instrument_id, "valid": v.valid, "bid_px": v.bid_px,
           "bid_qty": v.bid_qty, "ask_px": v.ask_px, "ask_qty": v.ask_qty,
           "mark_px": v.mark_px, "mark_iv": v.mark_iv,
           "mark_underlying_px": v.mark_underlying_px, "price": v.price,
           "last_trade_px": v.last_trade_px, "last_trade_qty": v.last_trade_qty,
           "bid_levels": v.bid_levels, "ask_levels": v.ask_levels,
           "bid_depth": v.bid_depth, "ask_depth": v.ask_depth})
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: write_known_segments <dir>");
    let dir = Path::new(&dir);
    let fail = StalePolicy::Fail;
    let mut out = serde_json::Map::new();

    // Broadcast ring of 8 slots after 13 publishes: positions 6..13 readable (wrapped).
    let mut md = BroadcastWriter::<MarketEvent>::create(dir, names::MD, 8, fail).unwrap();
    let events: Vec<MarketEvent> = (0..13u64)
        .map(|i| {
            let mut e = match i % 4 {
                0 => MarketEvent::quote(
                    3,
                    1_700_000_000_000_000_000 + i,
                    1000 + i,
                    99.5,
                    2.0,
                    100.5,
                    3.0,
                ),
                1 => MarketEvent::option_mark(5, 0, 1000 + i, 0.0125, 0.7687, 91_234.5),
                // A derivative_ticker price: funding per 8 h, index price, open interest.
                2 => {
                    let mut e = MarketEvent::underlying_price(1, 0, 1000 + i, 91_000.25 + i as f64);
                    e.v[1..].copy_from_slice(&[0.0001, 90_990.5, 52_000.0]);
                    e.flags = MarketEvent::FLAG_FUNDING;
                    e
                }
                _ => MarketEvent::trade(3, 0, 1000 + i, 100.0, 0.1, Side::Sell),
            };
            e.seq = i + 1;
            e
        })
        .collect();
    md.publish_batch(&events[..5]);
    for e in &events[5..] {
        md.publish(e);
    }
    out.insert(
        names::MD.into(),
        json!({
            "header": header(1, 8, 64, "MarketEvent", file_len(dir, names::MD)),
            "tail": 13,
            "messages": events[6..].iter().map(|e| json!({"position": e.seq - 1, "msg": market_event(e)})).collect::<Vec<_>>(),
        }),
    );

    // Last-value table: entries 0 and 2 written (2 twice), 1 and 3 never.
    let lvt = LastValueTable::create(dir, names::LVT, 4, fail).unwrap();
    let mut v0 = LastValue::zeroed();
    v0.apply(&events[0]);
    v0.bid_levels = 2;
    v0.bid_depth[0] = [99.5, 2.0];
    v0.bid_depth[1] = [99.0, 7.5];
    v0.valid |= LastValue::HAS_DEPTH;
    let mut v2 = LastValue::zeroed();
    v2.apply(&events[1]);
    lvt.write(0, &v0);
    lvt.write(2, &v2);
    v2.apply(&events[2]);
    lvt.write(2, &v2);
    out.insert(
        names::LVT.into(),
        json!({
            "header": header(2, 4, 384, "LastValue", file_len(dir, names::LVT)),
            "entries": [
                {"id": 0, "seq": 2, "value": last_value(&v0)},
                {"id": 2, "seq": 4, "value": last_value(&v2)},
            ],
        }),
    );

    // Instruments.
    let defs: Vec<InstrumentDef> = (0..3u32)
        .map(|i| {
            let mut d = InstrumentDef::zeroed();
            d.id = i;
            d.kind = [
                InstrumentKind::Index,
                InstrumentKind::Perpetual,
                InstrumentKind::Option,
            ][i as usize] as u8;
            d.option_type = if i == 2 { OptionType::Call as u8 } else { 0 };
            d.settlement = Settlement::Inverse as u8;
            d.underlying_id = 0;
            d.forward_id = NO_FORWARD;
            d.strike = if i == 2 { 90_000.0 } else { 0.0 };
            d.expiry_ns = if i == 2 { 1_768_550_400_000_000_000 } else { 0 };
            d.contract_multiplier = if i == 1 { 10.0 } else { 1.0 };
            d.tick_size = 0.5;
            d.lot_size = 0.1;
            d.min_qty = 0.1;
            d.set_symbol(["BTC", "BTC-PERPETUAL", "BTC-16JAN26-90000-C"][i as usize]);
            d
        })
        .collect();
    InstrumentTable::create(dir, names::INSTRUMENTS, &defs, fail).unwrap();
    out.insert(
        names::INSTRUMENTS.into(),
        json!({
            "header": header(3, 3, 128, "InstrumentDef", file_len(dir, names::INSTRUMENTS)),
            "defs": defs.iter().map(instrument).collect::<Vec<_>>(),
        }),
    );

    // Orders queue of 4: 6 pushed, 3 consumed -> 3 pending, wrapped.
    let mut p = SpscProducer::<HedgeOrder>::create(dir, names::ORDERS, 4, fail).unwrap();
    let mut c =
        SpscConsumer::<HedgeOrder>::open(dir, names::ORDERS, OpenOptions::default()).unwrap();
    let orders: Vec<HedgeOrder> = (0..6u64)
        .map(|i| {
            let mut o = HedgeOrder::zeroed();
            o.client_order_id = 100 + i;
            o.instrument_id = 1;
            o.side = if i % 2 == 0 { Side::Buy } else { Side::Sell } as u8;
            o.order_type = OrderType::Limit as u8;
            o.tif = TimeInForce::Ioc as u8;
            o.action = OrderAction::New as u8;
            o.qty = 10.0 * (i + 1) as f64;
            o.limit_px = 91_000.5;
            o.feed_recv_ts_ns = 5000 + i;
            o.hedger_read_ts_ns = 5100 + i;
            o.decision_ts_ns = 5200 + i;
            o.publish_ts_ns = 5300 + i;
            o
        })
        .collect();
    for o in &orders[..4] {
        p.push(*o).unwrap();
    }
    c.pop().unwrap();
    c.pop().unwrap();
    c.pop().unwrap();
    p.push_batch(&orders[4..]);
    drop(c);
    // A dropped producer releases ownership (creator_pid -> 0); drop it now so that the file
    // the reader sees matches what is printed.
    drop(p);
    let messages = orders[3..]
        .iter()
        .enumerate()
        .map(|(k, o)| json!({"position": 3 + k, "msg": hedge_order(o)}));
    out.insert(
        names::ORDERS.into(),
        spsc_json(
            dir,
            names::ORDERS,
            (4, "HedgeOrder"),
            (3, 6),
            messages.collect(),
        ),
    );

    // Execs queue: empty except one fill.
    let mut px = SpscProducer::<ExecEvent>::create(dir, names::EXECS, 8, fail).unwrap();
    let mut fill = ExecEvent::zeroed();
    fill.exec_id = 77;
    fill.client_order_id = 100;
    fill.instrument_id = 1;
    fill.kind = ExecKind::Fill as u8;
    fill.side = Side::Buy as u8;
    fill.liquidity = Liquidity::Taker as u8;
    fill.qty = 10.0;
    fill.price = 91_000.5;
    fill.fee = 0.0005;
    fill.ts_ns = 6000;
    px.push(fill).unwrap();
    drop(px);
    out.insert(
        names::EXECS.into(),
        spsc_json(
            dir,
            names::EXECS,
            (8, "ExecEvent"),
            (0, 1),
            vec![json!({"position": 0, "msg": exec_event(&fill)})],
        ),
    );

    // Counters.
    let mut cnc = CountersWriter::create(dir, "example", fail).unwrap();
    cnc.counter("events_published").add(13);
    cnc.gauge("net_delta").set(-0.25);
    cnc.record_meta(shm_layout::RecordMeta {
        label: r#"orders{underlying="BTC"}"#,
        kind: shm_layout::counters::KIND_COUNTER,
        unit: "orders",
        help: "Hedge orders sent",
    })
    .add(2);
    cnc.set_state(ProcessState::Running);
    let name = names::counters("example");
    out.insert(
        name.clone(),
        json!({
            "header": header(5, 1024, 256, "CounterRecord", file_len(dir, &name)),
            "state": "running",
            "counters": [
                {"label": "events_published", "kind": "counter", "value": 13, "unit": "", "help": ""},
                {"label": "net_delta", "kind": "gauge", "value": -0.25, "unit": "", "help": ""},
                {"label": "orders{underlying=\"BTC\"}", "kind": "counter", "value": 2,
                 "unit": "orders", "help": "Hedge orders sent"},
            ],
        }),
    );

    // Control block.
    let ctl = ControlBlock::create(dir, fail).unwrap();
    ctl.set_trading_state(1, TradingState::ReduceOnly);
    ctl.set_trading_state(7, TradingState::Halted);
    ctl.set_kill_switch(false);
    out.insert(
        names::CONTROL.into(),
        json!({
            "header": header(6, 4096, 1, "TradingState", file_len(dir, names::CONTROL)),
            "generation": 3, "kill_switch": false,
            "trading_state": {"1": "reduce-only", "7": "halted"},
        }),
    );

    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(out)).unwrap()
    );
}
