//! Properties of the simulator over random books and orders, and of the journal over random
//! damage.

use bytemuck::Zeroable;
use order_gateway::journal::{Journal, JournalError, RECORD};
use order_gateway::sim::{SimConfig, SimVenue};
use order_gateway::{Venue, VenueReport};
use proptest::prelude::*;
use shm_layout::{
    ExecEvent, ExecKind, HedgeOrder, InstrumentDef, InstrumentKind, LastValue, Liquidity,
    OrderAction, OrderType, Settlement, Side, TimeInForce,
};

const TICK: f64 = 0.5;
const LOT: f64 = 0.01;

fn def() -> InstrumentDef {
    let mut d = InstrumentDef::zeroed();
    d.kind = InstrumentKind::Perpetual as u8;
    d.settlement = Settlement::Linear as u8;
    d.contract_multiplier = 1.0;
    d.tick_size = TICK;
    d.lot_size = LOT;
    d.min_qty = LOT;
    d
}

/// A book around 1000 with `levels` levels per side of random sizes (not lot multiples).
fn book(bid_sizes: &[f64], ask_sizes: &[f64], depth: bool) -> LastValue {
    let mut b = LastValue::zeroed();
    b.valid = LastValue::HAS_QUOTE | if depth { LastValue::HAS_DEPTH } else { 0 };
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (999.5, bid_sizes[0], 1000.0, ask_sizes[0]);
    b.bid_levels = bid_sizes.len() as u32;
    b.ask_levels = ask_sizes.len() as u32;
    for (i, q) in bid_sizes.iter().enumerate() {
        b.bid_depth[i] = [999.5 - TICK * i as f64, *q];
    }
    for (i, q) in ask_sizes.iter().enumerate() {
        b.ask_depth[i] = [1000.0 + TICK * i as f64, *q];
    }
    b
}

fn sizes() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.0f64..3.0, 1..=8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn fills_respect_limit_lots_and_size_and_end_exactly_once(
        bids in sizes(),
        asks in sizes(),
        depth in any::<bool>(),
        buy in any::<bool>(),
        lots in 1u64..1000,
        ticks_away in -6i64..6,
        tif in prop::sample::select(vec![TimeInForce::Ioc, TimeInForce::Fok]),
        market in any::<bool>(),
    ) {
        let side = if buy { Side::Buy } else { Side::Sell };
        let touch = if buy { 1000.0 } else { 999.5 };
        let limit = touch + side.sign() * TICK * ticks_away as f64;
        let cfg = SimConfig { latency_us: 0.0, jitter_us: 0.0, rate_limit_per_s: 0.0, ..SimConfig::default() };
        let mut v = SimVenue::new(cfg, vec![def()], vec![Some(book(&bids, &asks, depth))]);
        let qty = lots as f64 * LOT;
        let o = HedgeOrder {
            client_order_id: 1,
            side: side as u8,
            order_type: if market { OrderType::Market } else { OrderType::Limit } as u8,
            tif: tif as u8,
            action: OrderAction::New as u8,
            qty,
            limit_px: limit,
            ..HedgeOrder::zeroed()
        };
        v.submit(&o, 0);
        let mut out: Vec<VenueReport> = Vec::new();
        v.poll(0, &mut |r| out.push(r));
        prop_assert!(!out.is_empty());
        let terminals = out.iter().filter(|r| r.kind.is_terminal()).count();
        prop_assert_eq!(terminals, 1);
        prop_assert!(out.last().unwrap().kind.is_terminal());
        let mut filled = 0.0;
        for r in &out {
            if matches!(r.kind, ExecKind::Fill | ExecKind::PartialFill) {
                prop_assert!(r.qty > 0.0);
                let l = r.qty / LOT;
                prop_assert!((l - l.round()).abs() < 1e-6, "lot multiple {}", r.qty);
                if !market {
                    prop_assert!(side.sign() * (limit - r.price) >= -1e-9, "price {} limit {}", r.price, limit);
                }
                prop_assert_eq!(r.liquidity, Liquidity::Taker);
                prop_assert!(r.fee > 0.0);
                filled += r.qty;
                prop_assert!((r.leaves_qty - (qty - filled)).abs() < 1e-6);
            }
        }
        prop_assert!(filled <= qty + 1e-9);
        let last = out.last().unwrap();
        if last.kind == ExecKind::Fill {
            prop_assert!((filled - qty).abs() < 1e-6);
        }
        if tif == TimeInForce::Fok {
            prop_assert!(filled == 0.0 || (filled - qty).abs() < 1e-6);
        }
        // Never more than the displayed size on the side taken.
        let shown: f64 = if buy { asks.iter().sum() } else { bids.iter().sum() };
        let shown = if depth { shown } else if buy { asks[0] } else { bids[0] };
        prop_assert!(filled <= shown + 1e-9);
    }

    #[test]
    fn journal_replay_survives_any_truncation_or_bit_flip(
        n in 1usize..60,
        cut in 0usize..5000,
        flip in prop::option::of((0usize..5000, 0u8..8)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        {
            let (mut j, _) = Journal::open(&p).unwrap();
            for i in 0..n as u64 {
                j.append_order(i, &HedgeOrder { client_order_id: i + 1, ..HedgeOrder::zeroed() });
                if i % 2 == 0 {
                    j.append_exec(&ExecEvent {
                        exec_id: i + 1,
                        client_order_id: i + 1,
                        kind: ExecKind::Fill as u8,
                        ..ExecEvent::zeroed()
                    });
                }
            }
            j.flush().unwrap();
        }
        let mut bytes = std::fs::read(&p).unwrap();
        let full = bytes.len();
        bytes.truncate(full.saturating_sub(cut % (full + 1)));
        if let Some((at, bit)) = flip {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= 1 << bit;
            }
        }
        std::fs::write(&p, &bytes).unwrap();
        let whole = bytes.len() / RECORD * RECORD;
        let (j, r) = match Journal::open(&p) {
            Ok(x) => x,
            // A flipped bit in a whole record refuses the journal, naming that record.
            Err(JournalError::Corrupt { offset, .. }) => {
                let at = flip.map(|(at, _)| at % bytes.len().max(1));
                prop_assert!(at.is_some_and(|at| at < whole), "refused without a flip in a whole record");
                prop_assert_eq!(Some(offset as usize), at.map(|a| a / RECORD * RECORD));
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        // Otherwise no whole record was damaged (a flip in the cut-off tail at most).
        prop_assert!(flip.is_none() || bytes.is_empty() || flip.unwrap().0 % bytes.len() >= whole);
        // What is replayed is a whole-record prefix of what was written.
        prop_assert_eq!(j.bytes() % RECORD as u64, 0);
        prop_assert!(j.bytes() <= bytes.len() as u64);
        prop_assert!(r.open.len() <= n);
        prop_assert!(r.last_exec_id <= n as u64);
        for (id, o) in &r.open {
            prop_assert_eq!(*id, o.order.client_order_id);
        }
    }
}
