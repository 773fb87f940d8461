//! The selective rebuild (only options whose last value changed) against a full rebuild
//! (every option), over random lapped market sequences.

use crate::hedger::core::{FixedClock, HedgerCore};
use crate::hedger::io::{MemControl, MemExecs, MemMarket, MemOrders};
use crate::hedger::risk::{BookRiskAdapter, OptionRisk};
use crate::hedger::test_support::{btc_setup, def, fixed_band, BTC, DAY, PERP, T0};
use crate::limits::LimitsConfig;
use crate::policy::PolicyConfig;
use proptest::prelude::*;
use shm_layout::{InstrumentDef, InstrumentKind, LastValue, MarketEvent, OptionType, NO_FORWARD};

const MS: u64 = 1_000_000;
/// Forward instruments of the first two expiries (the third has none: a virtual forward).
const FWD: [u32; 2] = [2, 3];
const FIRST_OPTION: u32 = 4;
const STRIKES: [f64; 3] = [9_000.0, 10_000.0, 11_000.0];
const EXPIRIES: usize = 3;
const OPTIONS: u32 = (EXPIRIES * STRIKES.len() * 2) as u32;
const N_IDS: usize = (FIRST_OPTION + OPTIONS) as usize;

fn option_sym(id: u32) -> String {
    format!("BTC-O-{id}")
}

fn defs() -> Vec<InstrumentDef> {
    let mut v = vec![
        def(BTC, "BTC", InstrumentKind::Index),
        def(PERP, "BTC-PERP", InstrumentKind::Perpetual),
        def(FWD[0], "SYN.BTC-1", InstrumentKind::Index),
        def(FWD[1], "SYN.BTC-2", InstrumentKind::Index),
    ];
    for i in 0..OPTIONS {
        let e = i as usize / (2 * STRIKES.len());
        let mut d = def(
            FIRST_OPTION + i,
            &option_sym(FIRST_OPTION + i),
            InstrumentKind::Option,
        );
        d.option_type = if i % 2 == 0 {
            OptionType::Call
        } else {
            OptionType::Put
        } as u8;
        d.strike = STRIKES[(i as usize / 2) % STRIKES.len()];
        if i == OPTIONS - 1 {
            // Unpriceable: the risk book refuses it, so its marks change nothing (and it is
            // not the mark that sets its expiry's forward).
            d.strike = 0.0;
        }
        d.expiry_ns = T0 + (10 + 30 * e as u64) * DAY;
        d.forward_id = FWD.get(e).copied().unwrap_or(NO_FORWARD);
        v.push(d);
    }
    v
}

fn core() -> HedgerCore<BookRiskAdapter> {
    let defs = defs();
    let policy = PolicyConfig {
        rule: fixed_band(1.0),
        ..PolicyConfig::default()
    };
    let setup = btc_setup(&defs, policy, LimitsConfig::default());
    let risk = BookRiskAdapter::new(&[BTC], N_IDS as u32 + 4, OPTIONS as usize, T0);
    let mut c = HedgerCore::new(defs, vec![setup], risk, T0, T0);
    for i in 0..OPTIONS {
        let qty = if i % 3 == 0 { -7.0 } else { 3.0 + i as f64 };
        c.set_option_position(&option_sym(FIRST_OPTION + i), qty)
            .unwrap();
    }
    c
}

/// One step of the generated market.
#[derive(Debug, Clone)]
enum Op {
    /// Index price; `lost`: written to the last-value table, never read from the ring.
    Index { px: f64, lost: bool },
    /// A forward price, as a ratio to the index.
    Forward {
        which: usize,
        ratio: f64,
        lost: bool,
    },
    /// An option mark: vol (some refused by the book) and its forward as a ratio to the index.
    Mark {
        opt: u32,
        iv: f64,
        ratio: f64,
        lost: bool,
    },
    /// The reader was lapped: both cores rebuild.
    Lap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (9_000.0..11_000.0f64, any::<bool>()).prop_map(|(px, lost)| Op::Index { px, lost }),
        1 => (0..FWD.len(), 0.97..1.03f64, any::<bool>())
            .prop_map(|(which, ratio, lost)| Op::Forward { which, ratio, lost }),
        4 => (0..OPTIONS, prop_oneof![0.2..1.5f64, Just(0.0005)], 0.95..1.05f64, any::<bool>())
            .prop_map(|(opt, iv, ratio, lost)| Op::Mark { opt, iv, ratio, lost }),
        1 => Just(Op::Lap),
    ]
}

/// Two cores read the same market: `sel` rebuilds selectively, `full` forgets what it
/// applied before every rebuild, so it reprices every option (the previous behaviour).
struct Pair {
    sel: HedgerCore<BookRiskAdapter>,
    full: HedgerCore<BookRiskAdapter>,
    md: [MemMarket; 2],
    lvt_template: MemMarket,
    seq: u64,
    now: u64,
    index: f64,
}

impl Pair {
    fn new() -> Self {
        let md = MemMarket {
            lvt: vec![None; N_IDS],
            ..MemMarket::default()
        };
        Pair {
            sel: core(),
            full: core(),
            md: [md.clone(), md.clone()],
            lvt_template: md,
            seq: 0,
            now: T0,
            index: 10_000.0,
        }
    }

    /// Writes `e` to the last-value table and, unless lost, to the ring of both cores.
    fn publish(&mut self, mut e: MarketEvent, lost: bool) {
        self.seq += 1;
        e.seq = self.seq;
        let id = e.instrument_id as usize;
        let mut lv = self.lvt_template.lvt[id].unwrap_or(bytemuck::Zeroable::zeroed());
        lv.apply(&e);
        self.lvt_template.lvt[id] = Some(lv);
        for md in &mut self.md {
            md.lvt[id] = Some(lv);
            if !lost {
                md.events.push(e);
            }
        }
    }

    fn step(&mut self, lap: bool) {
        self.now += MS;
        let cores = [&mut self.sel, &mut self.full];
        for (k, (c, md)) in cores.into_iter().zip(self.md.iter_mut()).enumerate() {
            if lap {
                if k == 1 {
                    c.forget_applied_marks();
                }
                md.lap = Some(1);
            }
            let (mut ex, mut orders, ctl) = (
                MemExecs::default(),
                MemOrders::new(64),
                MemControl::default(),
            );
            while c.poll(
                md,
                &mut ex,
                &mut orders,
                &ctl,
                self.now,
                &FixedClock(self.now),
            ) > 0
            {}
        }
    }

    fn apply(&mut self, op: &Op) {
        let t = self.now;
        match *op {
            Op::Index { px, lost } => {
                self.index = px;
                self.publish(MarketEvent::underlying_price(BTC, t, t, px), lost);
            }
            Op::Forward { which, ratio, lost } => {
                let px = self.index * ratio;
                self.publish(MarketEvent::underlying_price(FWD[which], t, t, px), lost);
            }
            Op::Mark {
                opt,
                iv,
                ratio,
                lost,
            } => {
                let fwd = self.index * ratio;
                let e = MarketEvent::option_mark(FIRST_OPTION + opt, t, t, 100.0, iv, fwd);
                self.publish(e, lost);
            }
            Op::Lap => {}
        }
        self.step(matches!(op, Op::Lap));
    }
}

/// Exact risk of both cores' books (full recomputation from their vols, forwards, prices
/// and time): equal bit for bit when the two books hold the same state.
fn assert_same_state(p: &Pair) -> Result<(), TestCaseError> {
    let a = p.sel.risk.book.full_recompute(BTC).unwrap();
    let b = p.full.risk.book.full_recompute(BTC).unwrap();
    for (x, y, what) in [
        (a.price, b.price, "price"),
        (a.net_delta, b.net_delta, "delta"),
        (a.gamma, b.gamma, "gamma"),
        (a.vega, b.vega, "vega"),
        (a.theta, b.theta, "theta"),
    ] {
        prop_assert_eq!(x.to_bits(), y.to_bits(), "{} {} != {}", what, x, y);
    }
    // And the incremental risk the hedger decides on is within the book's tolerance of it.
    let tol = p.sel.risk.book.config().delta_tolerance;
    prop_assert!((p.sel.risk.delta(0) - a.net_delta).abs() <= tol + 1e-12);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn selective_rebuild_ends_where_a_full_rebuild_ends(ops in prop::collection::vec(op(), 1..80)) {
        let mut p = Pair::new();
        // Every instrument has a value before the first lap.
        p.apply(&Op::Index { px: 10_000.0, lost: false });
        for i in 0..OPTIONS {
            p.apply(&Op::Mark { opt: i, iv: 0.6, ratio: 1.0, lost: false });
        }
        for op in ops.iter().chain([Op::Lap].iter()) {
            p.apply(op);
            if matches!(op, Op::Lap) {
                assert_same_state(&p)?;
            }
        }
        prop_assert_eq!(p.sel.stats.rebuilds, p.full.stats.rebuilds);
        prop_assert!(p.sel.rebuild_repriced() <= p.full.rebuild_repriced());
    }
}

#[test]
fn a_lap_reprices_the_changed_option_and_the_last_mark_of_each_expiry() {
    let mut p = Pair::new();
    p.apply(&Op::Index {
        px: 10_000.0,
        lost: false,
    });
    for i in 0..OPTIONS {
        p.apply(&Op::Mark {
            opt: i,
            iv: 0.6,
            ratio: 1.0,
            lost: false,
        });
    }
    // One mark lost in the first expiry (not its last option), then the lap.
    p.apply(&Op::Mark {
        opt: 1,
        iv: 0.8,
        ratio: 1.01,
        lost: true,
    });
    p.apply(&Op::Lap);
    // Option 1 changed; the last option of each of the 3 expiries sets its forward.
    assert_eq!(p.sel.rebuild_repriced(), 1 + EXPIRIES as u64);
    // The full rebuild: every option the book holds (all but the refused one).
    assert_eq!(p.full.rebuild_repriced(), OPTIONS as u64 - 1);
    assert_same_state(&p).unwrap();
    // A second lap with nothing new reprices only the forward-setting marks.
    p.apply(&Op::Lap);
    assert_eq!(p.sel.rebuild_repriced(), 1 + 2 * EXPIRIES as u64);
    assert_same_state(&p).unwrap();
    assert_eq!(p.sel.stats.rebuilds, 2);
}

#[test]
fn last_value_entries_record_the_event_seq() {
    // The selective rebuild relies on the entry's `last_seq` being the seq of the event.
    let mut lv: LastValue = bytemuck::Zeroable::zeroed();
    let mut e = MarketEvent::option_mark(FIRST_OPTION, 1, 1, 1.0, 0.5, 10_000.0);
    e.seq = 42;
    lv.apply(&e);
    assert_eq!(lv.last_seq, 42);
}
