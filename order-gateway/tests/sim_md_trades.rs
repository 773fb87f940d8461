//! The live gateway's simulated venue reads trades from the md ring: the gateway agent runs in
//! this process (its duty cycles called one by one) on segments this test plays the feed and
//! the hedger for, in a unique temp dir under /dev/shm removed on drop (even when a test
//! fails). The feed's order is kept: each event goes into the last-value table, then the ring.

mod common;

use order_gateway::config::Config;
use order_gateway::run::GatewayAgent;
use order_gateway::sim::{QueueModel, SimConfig};
use shm_layout::agent::Agent;
use shm_layout::broadcast::BroadcastWriter;
use shm_layout::{
    names, ExecEvent, ExecKind, HedgeOrder, InstrumentTable, LastValueTable, MarketEvent,
    OpenOptions, Side, SpscConsumer, SpscProducer, StalePolicy, TimeInForce,
};

const PERP: u32 = 0;
const BID: f64 = 99.5;
/// Duty cycles run after each step of a scenario: the venue's latency is 0, so its reports
/// are out after one or two; more only make a missing one certain.
const CYCLES: usize = 50;

/// The feed's segments (instruments, last-value table, md ring), the hedger's orders ring and
/// execs reader, and the gateway agent on them.
struct Rig {
    dir: tempfile::TempDir,
    _instruments: InstrumentTable,
    lvt: LastValueTable,
    /// The md ring (None until the feed creates it: see `Rig::start`'s `md_capacity`).
    md: Option<BroadcastWriter<MarketEvent>>,
    orders: SpscProducer<HedgeOrder>,
    execs: SpscConsumer<ExecEvent>,
    gw: GatewayAgent,
    /// Filled quantity reported so far, contracts.
    filled: f64,
}

fn config(dir: &std::path::Path, model: QueueModel) -> Config {
    Config {
        shm_dir: Some(dir.to_path_buf()),
        open_wait_ms: 0,
        venue_connect_wait_ms: 0,
        execs_capacity: 1024,
        on_stale: StalePolicy::Fail,
        sim: SimConfig {
            latency_us: 0.0,
            jitter_us: 0.0,
            rate_limit_per_s: 0.0,
            queue_model: model,
            ..SimConfig::default()
        },
        flow: order_gateway::flow::FlowConfig {
            enabled: false,
            ..Default::default()
        },
        ..Config::default()
    }
}

impl Rig {
    /// The feed's segments with a perpetual (lot 0.1) quoted 99.5 x 5 / 100 x 10 (an md ring of
    /// `md_capacity`; 0: none yet, the feed is older or not started) and the orders ring,
    /// then the gateway on them.
    fn start(prefix: &str, md_capacity: usize, model: QueueModel) -> Rig {
        let dir = testkit::shm::namespace_dir(prefix);
        let defs = [common::linear_perp(0.1, 0.1)];
        let instruments =
            InstrumentTable::create(dir.path(), names::INSTRUMENTS, &defs, StalePolicy::Fail)
                .unwrap();
        let lvt = LastValueTable::create(dir.path(), names::LVT, 4, StalePolicy::Fail).unwrap();
        let mut md = (md_capacity > 0).then(|| {
            BroadcastWriter::create(dir.path(), names::MD, md_capacity, StalePolicy::Fail).unwrap()
        });
        let orders =
            SpscProducer::<HedgeOrder>::create(dir.path(), names::ORDERS, 64, StalePolicy::Fail)
                .unwrap();
        let mut e = MarketEvent::quote(PERP, 1, 1, BID, 5.0, 100.0, 10.0);
        e.seq = md.as_ref().map_or(0, |m| m.position()) + 1;
        lvt.apply(PERP, &e, None);
        if let Some(m) = &mut md {
            m.publish(&e);
        }
        let gw = GatewayAgent::start(&config(dir.path(), model)).unwrap();
        let execs = SpscConsumer::open(dir.path(), names::EXECS, OpenOptions::default()).unwrap();
        Rig {
            dir,
            _instruments: instruments,
            lvt,
            md,
            orders,
            execs,
            gw,
            filled: 0.0,
        }
    }

    fn ring(&mut self) -> &mut BroadcastWriter<MarketEvent> {
        self.md.as_mut().expect("the md ring exists")
    }

    /// Publishes `e` as the feed does: the table first, then the ring.
    fn publish(&mut self, mut e: MarketEvent) {
        e.seq = self.ring().position() + 1;
        self.lvt.apply(PERP, &e, None);
        self.ring().publish(&e);
    }

    /// The feed sequence of the next event on the ring.
    fn next_seq(&self) -> u64 {
        self.md.as_ref().expect("the md ring exists").position() + 1
    }

    fn quote(&mut self, bid_qty: f64) -> MarketEvent {
        let mut e = MarketEvent::quote(PERP, 1, 1, BID, bid_qty, 100.0, 10.0);
        e.seq = self.next_seq();
        e
    }

    /// A seller hitting our bid for `qty`.
    fn sold_at_bid(&self, qty: f64) -> MarketEvent {
        let mut e = MarketEvent::trade(PERP, 1, 1, BID, qty, Side::Sell);
        e.seq = self.next_seq();
        e
    }

    /// Runs [`CYCLES`] duty cycles and returns the quantity filled meanwhile.
    fn run(&mut self) -> f64 {
        let before = self.filled;
        for _ in 0..CYCLES {
            self.gw.do_work().unwrap();
            while let Some(x) = self.execs.pop() {
                if matches!(x.kind(), Ok(ExecKind::Fill | ExecKind::PartialFill)) {
                    assert_eq!(x.price, BID);
                    self.filled += x.qty;
                }
            }
        }
        ((self.filled - before) * 1e6).round() / 1e6
    }

    /// A passive buy of 3 at the bid, behind the 5 displayed there; acked and resting.
    fn rest_buy(&mut self) {
        let mut o = common::ioc_order(7, PERP, Side::Buy, 3.0, BID);
        o.tif = TimeInForce::Gtc as u8;
        self.orders.push(o).unwrap();
        assert_eq!(self.run(), 0.0, "nobody sells at our bid yet");
    }

    /// The gateway's counters after a publication.
    fn counters(&mut self) -> std::collections::HashMap<String, f64> {
        self.gw.publish_counters(shm_layout::clock::now_ns());
        common::gateway_counters(self.dir.path())
    }
}

#[test]
fn two_trades_between_two_polls_both_advance_the_queue() {
    let mut rig = Rig::start("ogw-mdt-two-", 1024, QueueModel::RiskAverse);
    rig.rest_buy();
    // 3 and 3 trade at our bid before the gateway looks again: the table keeps only the
    // second, the ring both. 6 against the 5 ahead of us: 1 is ours.
    for _ in 0..2 {
        let t = rig.sold_at_bid(3.0);
        rig.publish(t);
    }
    assert_eq!(rig.run(), 1.0, "both trades advance the queue");
    let c = rig.counters();
    assert_eq!(c["sim_md_trades"], 2.0, "{c:?}");
    assert_eq!(c["sim_md_attached"], 1.0, "{c:?}");
    assert_eq!(c["sim_md_lost"], 0.0, "{c:?}");
}

/// A trade the table shows before the ring does (the feed writes the table first) and the
/// decrease it leaves at our price move the queue once: not from the table and the ring, not
/// as a trade and a cancel. The `prob` model (a decrease beyond the trades is split between
/// ahead and behind) and 0.1 lots make each double count visible in the fills.
#[test]
fn a_trade_seen_in_the_table_and_the_ring_moves_the_queue_once() {
    let mut rig = Rig::start("ogw-mdt-once-", 1024, QueueModel::Prob);
    rig.rest_buy();
    // 3 join behind us: 5 ahead, 8 displayed.
    let q = rig.quote(8.0);
    rig.publish(q);
    assert_eq!(rig.run(), 0.0);
    // 3 trade ahead of us: in the table, not yet in the ring; the gateway polls meanwhile.
    let t = rig.sold_at_bid(3.0);
    rig.lvt.apply(PERP, &t, None);
    assert_eq!(rig.run(), 0.0);
    rig.ring().publish(&t);
    // The gateway polls between the trade and the quote that shows what it took.
    assert_eq!(rig.run(), 0.0);
    // The level shows what the trade left: 5 (2 ahead of us, 3 behind). Not a cancel.
    let q = rig.quote(5.0);
    rig.publish(q);
    assert_eq!(rig.run(), 0.0, "2 still ahead");
    // 2 trade: the queue ahead is gone, nothing left for us.
    let t = rig.sold_at_bid(2.0);
    rig.publish(t);
    assert_eq!(rig.run(), 0.0, "the 2 ahead, none of ours");
    // 1 more: ours.
    let t = rig.sold_at_bid(1.0);
    rig.publish(t);
    assert_eq!(rig.run(), 1.0, "the next trade is ours");
    assert_eq!(rig.counters()["sim_md_trades"], 3.0);
}

/// An order that joins the queue on a book already showing a trade (the table is written
/// before the ring) was not behind that trade: reading it from the ring later does not move
/// the order.
#[test]
fn a_trade_printed_before_the_order_joined_does_not_move_it() {
    let mut rig = Rig::start("ogw-mdt-before-", 1024, QueueModel::RiskAverse);
    let t = rig.sold_at_bid(3.0);
    rig.lvt.apply(PERP, &t, None);
    rig.rest_buy();
    rig.ring().publish(&t);
    assert_eq!(rig.run(), 0.0);
    // The 5 displayed when it joined are all ahead of it.
    let t = rig.sold_at_bid(5.0);
    rig.publish(t);
    assert_eq!(rig.run(), 0.0, "the 5 ahead, none of ours");
    let t = rig.sold_at_bid(0.5);
    rig.publish(t);
    assert_eq!(rig.run(), 0.5);
}

#[test]
fn a_lapped_reader_counts_the_loss_and_keeps_reading_trades() {
    let mut rig = Rig::start("ogw-mdt-lap-", 16, QueueModel::RiskAverse);
    rig.rest_buy();
    // 40 events while the gateway does not look: the ring holds 16, the gateway loses the
    // rest. Quotes at an unchanged book, then a trade of 1 at our bid that is lost with them.
    let t = rig.sold_at_bid(1.0);
    rig.publish(t);
    for _ in 0..39 {
        let q = rig.quote(5.0);
        rig.publish(q);
    }
    assert_eq!(rig.run(), 0.0);
    let c = rig.counters();
    assert!(c["sim_md_lost"] >= 24.0, "the lap is counted: {c:?}");
    assert_eq!(
        c["sim_md_trades"], 0.0,
        "the lost trade is not applied: {c:?}"
    );
    // Still reading: 5 more trade at our bid (1 of them ours if the lost trade had counted,
    // none otherwise), then 1 for us.
    let t = rig.sold_at_bid(5.0);
    rig.publish(t);
    assert_eq!(rig.run(), 0.0, "the 5 ahead");
    let t = rig.sold_at_bid(1.5);
    rig.publish(t);
    assert_eq!(rig.run(), 1.5);
    assert_eq!(rig.counters()["sim_md_trades"], 2.0);
}

/// A gateway started before the feed's ring exists says so, takes trades from the table
/// meanwhile, and attaches in its housekeeping once the ring is there.
#[test]
fn a_gateway_started_before_the_ring_attaches_to_it_later() {
    let mut rig = Rig::start("ogw-mdt-late-", 0, QueueModel::RiskAverse);
    rig.rest_buy();
    assert_eq!(rig.counters()["sim_md_attached"], 0.0);
    // From the table: a trade of 4 at our bid moves the queue (1 left ahead).
    let mut t = MarketEvent::trade(PERP, 1, 1, BID, 4.0, Side::Sell);
    t.seq = 2;
    rig.lvt.apply(PERP, &t, None);
    assert_eq!(rig.run(), 0.0, "1 still ahead");
    // The ring appears (holding what the table was given: the quote and that trade); the
    // next housekeeping opens it at the writer's position.
    let md =
        BroadcastWriter::<MarketEvent>::create(rig.dir.path(), names::MD, 64, StalePolicy::Fail)
            .unwrap();
    rig.md = Some(md);
    let mut q = MarketEvent::quote(PERP, 1, 1, BID, 5.0, 100.0, 10.0);
    q.seq = 1;
    rig.ring().publish(&q);
    rig.ring().publish(&t);
    rig.gw.on_duty(u64::MAX).unwrap();
    assert_eq!(rig.counters()["sim_md_attached"], 1.0);
    // Two trades of 1 between two polls: the second is ours.
    for _ in 0..2 {
        let t = rig.sold_at_bid(1.0);
        rig.publish(t);
    }
    assert_eq!(rig.run(), 1.0);
}

#[global_allocator]
static GLOBAL: shm_layout::alloc_count::CountingAlloc = shm_layout::alloc_count::CountingAlloc;

/// Reading the md ring on the gateway's loop allocates nothing: quotes and trades moving a
/// resting order's queue, a lap, and the fill they end in.
#[test]
fn reading_trades_from_the_ring_allocates_nothing() {
    let mut rig = Rig::start("ogw-mdt-alloc-", 16, QueueModel::Prob);
    rig.rest_buy();
    // Warm: one fill report through the journal and the execs ring (its buffers grow once).
    let t = rig.sold_at_bid(5.1);
    rig.publish(t);
    assert_eq!(rig.run(), 0.1);
    let region = shm_layout::alloc_count::Region::start();
    for i in 0..20 {
        let q = rig.quote(10.0 - 0.1 * f64::from(i));
        rig.publish(q);
        let t = rig.sold_at_bid(0.05);
        rig.publish(t);
        rig.gw.do_work().unwrap();
    }
    for _ in 0..40 {
        let q = rig.quote(3.0);
        rig.publish(q);
    }
    rig.gw.do_work().unwrap();
    let t = rig.sold_at_bid(0.5);
    rig.publish(t);
    let filled = rig.run();
    let c = region.change();
    assert_eq!(filled, 0.5, "the last trade fills");
    assert_eq!(c.allocations, 0, "{c:?}");
    assert!(rig.counters()["sim_md_lost"] > 0.0, "the lap happened");
}
