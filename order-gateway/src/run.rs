//! The `order-gateway` process: wires shared memory, the journal, the venue and the flow to
//! [`Gateway`], and runs the loop until SIGINT/SIGTERM.

use crate::config::{Config, VenueKind};
use crate::counters::Counters;
use crate::flow::OptionFlow;
use crate::gateway::{ExecSink, Gateway, GatewayLimits, OrderSource};
use crate::journal::Journal;
use crate::md_trades::{MdTrades, MD_EVENTS_PER_STEP};
use crate::sim::{MarketView, SimVenue};
use crate::venue::{Venue, VenueReport};
use anyhow::Context;
use shm_layout::agent::{stop_on_signals, Agent, AgentRunner, RunnerConfig};
use shm_layout::clock::now_ns;
use shm_layout::process::Backoff;
use shm_layout::{
    names, CountersWriter, ExecEvent, HedgeOrder, InstrumentDef, InstrumentTable, LastValue,
    LastValueTable, OpenOptions, SpscConsumer, SpscProducer,
};
use std::rc::Rc;
use std::time::Duration;

/// Builds the FIX venue from the `[fix]` table (its `state_dir` defaults to the gateway's
/// state directory; credentials from the environment win over the file).
///
/// # Errors
/// A bad `[fix]` table or an unusable sequence-number store.
pub fn fix_venue(cfg: &Config, defs: &[InstrumentDef]) -> anyhow::Result<Box<dyn Venue>> {
    let mut table = cfg.fix.clone().unwrap_or_default();
    if !table.contains_key("state_dir") {
        let dir = match &cfg.state_dir {
            Some(d) => d.clone(),
            None => cfg.shm_dir()?,
        }
        .to_string_lossy()
        .into_owned();
        table.insert("state_dir".into(), toml::Value::String(dir));
    }
    // A deserialization error may quote a value (`invalid type: integer `1234`, expected a
    // string` for a numeric password): scrub the credentials out of it.
    let secrets = crate::fix::config::credential_values(&table);
    let fix_cfg: crate::fix::FixConfig = table.try_into().map_err(|e| {
        anyhow::anyhow!(
            "[fix] table: {}",
            crate::fix::config::scrub(&e.to_string(), &secrets)
        )
    })?;
    let venue = crate::fix::FixVenue::new(fix_cfg.with_env_credentials(), defs)?;
    Ok(Box::new(venue))
}

impl Venue for Box<dyn Venue> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn submit(&mut self, order: &HedgeOrder, now_ns: u64) {
        (**self).submit(order, now_ns)
    }
    fn cancel(&mut self, client_order_id: u64, now_ns: u64) {
        (**self).cancel(client_order_id, now_ns)
    }
    fn poll(&mut self, now_ns: u64, sink: &mut dyn FnMut(VenueReport)) {
        (**self).poll(now_ns, sink)
    }
    fn is_connected(&self) -> bool {
        (**self).is_connected()
    }
    fn recover_order(&mut self, order: &HedgeOrder, filled_qty: f64, now_ns: u64) -> bool {
        (**self).recover_order(order, filled_qty, now_ns)
    }
    fn shutdown(&mut self, now_ns: u64) {
        (**self).shutdown(now_ns)
    }
    fn for_each_counter(
        &self,
        f: &mut dyn FnMut(&'static shm_layout::counter_schema::CounterDef, usize, u64),
    ) {
        (**self).for_each_counter(f)
    }
    fn wants_md_trades(&self) -> bool {
        (**self).wants_md_trades()
    }
    fn on_md_trade(&mut self, e: &shm_layout::MarketEvent, now_ns: u64) {
        (**self).on_md_trade(e, now_ns)
    }
    fn md_trades_through(&mut self, seq: u64) {
        (**self).md_trades_through(seq)
    }
}

/// The last-value table as the simulator's book source.
pub struct LvtView(pub LastValueTable);

impl MarketView for LvtView {
    #[inline]
    fn book(&self, instrument_id: u32) -> Option<LastValue> {
        self.0.read(instrument_id)
    }
}

/// A shared handle so that the simulator and the flow read the same table (one thread).
impl MarketView for Rc<LvtView> {
    #[inline]
    fn book(&self, instrument_id: u32) -> Option<LastValue> {
        self.0.read(instrument_id)
    }
}

struct Orders(SpscConsumer<HedgeOrder>);
impl OrderSource for Orders {
    #[inline]
    fn peek(&mut self) -> Option<HedgeOrder> {
        self.0.peek()
    }
    #[inline]
    fn commit(&mut self, n: usize) {
        self.0.commit(n)
    }
    fn rewind(&mut self) {
        self.0.rewind()
    }
    #[inline]
    fn position(&self) -> u64 {
        self.0.position()
    }
}

struct Execs(SpscProducer<ExecEvent>, u64);
impl ExecSink for Execs {
    fn ring_id(&self) -> u64 {
        self.1
    }
    #[inline]
    fn free(&self) -> usize {
        self.0.capacity() - self.0.len()
    }
    #[inline]
    fn push_batch(&mut self, msgs: &[ExecEvent]) -> usize {
        self.0.push_batch(msgs)
    }
    #[inline]
    fn position(&self) -> u64 {
        self.0.position()
    }
}

/// How often the venue's counters are copied into the counters segment.
const VENUE_COUNTERS_NS: u64 = 100_000_000;

/// Runs the gateway until SIGINT/SIGTERM: [`GatewayAgent`] on the [`AgentRunner`].
///
/// # Errors
/// Segments that cannot be created or opened, journal errors, a bad `[fix]` table.
pub fn run(cfg: &Config) -> anyhow::Result<()> {
    let stop = stop_on_signals(None).context("installing signal handler")?;
    let mut agent = GatewayAgent::start(cfg)?;
    AgentRunner::new(runner_config(cfg)).run(&mut agent, &stop)
}

/// The runner's settings from the config: the gateway's core, idle strategy, heartbeat and
/// drain.
pub fn runner_config(cfg: &Config) -> RunnerConfig {
    RunnerConfig {
        core: cfg.core,
        idle: cfg.idle,
        backoff: Backoff::DEFAULT,
        heartbeat_interval_ns: cfg.heartbeat_ms.max(1) * 1_000_000,
        status_interval_ns: 0,
        drain_timeout_ns: cfg.drain_ms.saturating_mul(1_000_000),
        duty_every_cycles: 64,
    }
}

/// The order gateway as an [`Agent`]: each duty cycle is one [`Gateway::step`] (orders in,
/// venue polled, execs out).
///
/// At start-up it waits, bounded by `venue_connect_wait_ms`, for the venue (FIX: the Logon)
/// before taking orders, so that orders left in the ring (by a killed run, or sent while the
/// gateway was down) are not rejected NotConnected for nothing: the venue is polled (it
/// connects), recovery reports are published, the heartbeat goes on (state stays `Starting`);
/// orders stay in the ring. On stop it takes no new orders and drains (`drain_ms`) until no
/// order is open and nothing waits to be published.
pub struct GatewayAgent {
    gw: Gateway<Box<dyn Venue>>,
    orders: Orders,
    execs: Execs,
    market: Rc<LvtView>,
    /// The simulated venue's trade feed (None: a FIX venue).
    md: Option<MdTrades>,
    counters: Counters,
    /// Until when the start-up waits for the venue, ns (None: taking orders).
    venue_wait: Option<VenueWait>,
    accepting: bool,
    /// A step has run since the stop (it publishes what the venue reported meanwhile).
    stepped_since_stop: bool,
    next_venue_counters: u64,
    next_interval: u64,
    /// Whole-run transit for --latency-log (the gateway's own histogram is reset per
    /// interval); merged once per interval, off the per-order path.
    run_transit: hdrhistogram::Histogram<u64>,
    run_start: std::time::SystemTime,
    latency_log: Option<std::path::PathBuf>,
}

struct VenueWait {
    start_ns: u64,
    until_ns: u64,
    wait_ms: u64,
}

impl GatewayAgent {
    /// Creates and opens the segments, opens the journal, builds the venue and the flow and
    /// recovers the previous run's orders (printing one line about it).
    ///
    /// # Errors
    /// As [`run`].
    pub fn start(cfg: &Config) -> anyhow::Result<Self> {
        let dir = cfg.shm_dir()?;
        shm_layout::private::create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let seg = open_segments(cfg, &dir)?;
        let (mut orders, mut execs) = (seg.orders, seg.execs);
        let venue: Box<dyn Venue> = match cfg.venue {
            VenueKind::Sim => Box::new(SimVenue::new(
                cfg.sim.clone(),
                seg.defs.clone(),
                seg.lvt.clone(),
            )),
            VenueKind::Fix => fix_venue(cfg, &seg.defs)?,
        };
        let now = now_ns();
        let flow = cfg
            .flow
            .enabled
            .then(|| OptionFlow::new(cfg.flow.clone(), &seg.defs, now));
        let (journal, replay) = Journal::open(&cfg.journal_path()?)?;
        let limits = GatewayLimits {
            id_epoch: shm_layout::clock::wall_ns() / 1_000_000_000,
            ..GatewayLimits::default()
        };
        let (gw, summary) = Gateway::recover(
            venue,
            flow,
            journal,
            replay,
            limits,
            &mut orders,
            &mut execs,
            now,
        )?;
        print_start(&dir, &gw, &summary);
        let md = gw
            .venue()
            .wants_md_trades()
            .then(|| MdTrades::open(&dir, now_ns()));
        let counters = Counters::new(seg.counters, gw.venue());
        let wait_start = now_ns();
        Ok(GatewayAgent {
            run_transit: gw.transit().clone(),
            gw,
            orders,
            execs,
            market: seg.lvt,
            md,
            counters,
            venue_wait: Some(VenueWait {
                start_ns: wait_start,
                until_ns: wait_start + cfg.venue_connect_wait_ms.saturating_mul(1_000_000),
                wait_ms: cfg.venue_connect_wait_ms,
            }),
            accepting: true,
            stepped_since_stop: false,
            next_venue_counters: 0,
            next_interval: 0,
            run_start: std::time::SystemTime::now(),
            latency_log: cfg.latency_log.clone(),
        })
    }

    /// Ends the start-up wait when the venue is connected or the wait is over.
    fn check_venue_wait(&mut self, now: u64) {
        let Some(w) = &self.venue_wait else { return };
        if self.gw.venue().is_connected() {
            if now - w.start_ns >= 1_000_000 {
                eprintln!(
                    "order-gateway: venue {} connected after {} ms",
                    self.gw.venue().name(),
                    (now - w.start_ns) / 1_000_000
                );
            }
        } else if now >= w.until_ns {
            self.counters.venue_connect_timeout();
            eprintln!(
                "order-gateway: warning: venue {} not connected after {} ms (venue_connect_wait_ms); taking orders anyway: new orders are rejected NotConnected until it connects",
                self.gw.venue().name(),
                w.wait_ms
            );
        } else {
            return;
        }
        self.venue_wait = None;
        // The first transit interval starts when orders are taken.
        self.next_interval = now_ns() + 1_000_000_000;
    }

    /// The final transit interval, the whole-run latency log.
    fn write_latency_log(&mut self) -> anyhow::Result<()> {
        self.counters.publish_transit(self.gw.transit());
        let _ = self.run_transit.add(self.gw.transit());
        let Some(path) = &self.latency_log else {
            return Ok(());
        };
        write_latency_log(
            path,
            self.run_start,
            &[
                ("recv_to_gateway", self.gw.tick_to_order()),
                ("publish_to_gateway", &self.run_transit),
            ],
        )
        .with_context(|| format!("writing the latency log {}", path.display()))
    }
}

impl Agent for GatewayAgent {
    type Error = anyhow::Error;

    fn name(&self) -> &str {
        "order-gateway"
    }

    fn counters(&self) -> Option<&CountersWriter> {
        Some(&self.counters.w)
    }

    fn is_ready(&self) -> bool {
        self.venue_wait.is_none()
    }

    #[inline]
    fn do_work(&mut self) -> anyhow::Result<usize> {
        let now = now_ns();
        if self.venue_wait.is_some() {
            self.check_venue_wait(now);
        }
        let accept_new = self.accepting && self.venue_wait.is_none();
        // Trades first: the venue's poll below moves resting orders with the books.
        let md_events = match &mut self.md {
            Some(md) => md.drain(self.gw.venue_mut(), now),
            None => 0,
        };
        let worked = self.gw.step(
            now,
            accept_new,
            &mut self.orders,
            &mut self.execs,
            &self.market,
        )?;
        self.stepped_since_stop = !self.accepting;
        // Market data alone is not work to stay awake for: at 100k events/s there would be
        // some every cycle and the gateway would never back off (it shares a core with the
        // feed in the demo and e2e). The ring holds what arrives while it idles, and a book
        // waits for the trades before it; only a full batch (a backlog) keeps it going.
        Ok(usize::from(worked) + usize::from(md_events >= MD_EVENTS_PER_STEP))
    }

    fn on_duty(&mut self, now_ns: u64) -> anyhow::Result<()> {
        if let Some(md) = &mut self.md {
            md.retry(now_ns);
        }
        Ok(())
    }

    fn publish_counters(&mut self, now: u64) {
        self.counters.publish(&self.gw);
        self.counters.publish_md(self.md.as_ref());
        if now >= self.next_venue_counters {
            self.next_venue_counters = now + VENUE_COUNTERS_NS;
            self.counters.publish_venue(self.gw.venue());
        }
        if self.venue_wait.is_none() && now >= self.next_interval {
            self.next_interval = now + 1_000_000_000;
            self.counters.publish_transit(self.gw.transit());
            let _ = self.run_transit.add(self.gw.transit());
            self.gw.reset_transit();
        }
        self.execs.0.heartbeat();
    }

    fn on_stop(&mut self, _now: u64, _by_signal: bool) {
        self.accepting = false;
        self.venue_wait = None;
    }

    /// After at least one step without new orders, as before the runner: nothing open and
    /// nothing waiting to be published.
    fn is_drained(&mut self) -> bool {
        self.stepped_since_stop && self.gw.open_orders() == 0 && self.gw.backlog() == 0
    }

    fn on_close(&mut self, now: u64) -> anyhow::Result<()> {
        self.gw.shutdown(now);
        self.counters.publish(&self.gw);
        self.counters.publish_md(self.md.as_ref());
        self.counters.publish_venue(self.gw.venue());
        self.write_latency_log()?;
        eprintln!(
            "order-gateway: stopped; {} orders, {} execs published, {} still open (recovered at next start)",
            self.gw.stats().orders_received,
            self.gw.stats().execs_published,
            self.gw.open_orders()
        );
        Ok(())
    }
}

/// The gateway's segments: what it creates (counters, execs) and what it opens (instruments,
/// last values, orders).
struct Segments {
    counters: CountersWriter,
    execs: Execs,
    defs: Vec<InstrumentDef>,
    lvt: Rc<LvtView>,
    orders: Orders,
}

fn open_segments(cfg: &Config, dir: &std::path::Path) -> anyhow::Result<Segments> {
    let wait = OpenOptions::wait(Duration::from_millis(cfg.open_wait_ms));
    let stale = cfg.on_stale;
    let counters = CountersWriter::create(dir, "gateway", stale)
        .context("creating the gateway's counters segment")?;
    // Create the execs ring first: the hedger waits for it.
    let execs = SpscProducer::<ExecEvent>::create(dir, names::EXECS, cfg.execs_capacity, stale)
        .context("creating the execs ring")?;
    // The ring file's inode tells a replaced ring from the one the journal refers to.
    let ring_id = std::fs::metadata(dir.join(names::EXECS)).map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    });
    let instruments = InstrumentTable::open(dir, names::INSTRUMENTS, wait)
        .context("opening the instruments segment (start the feed handler)")?;
    let lvt = Rc::new(LvtView(
        LastValueTable::open(dir, names::LVT, wait)
            .context("opening the last-value table (start the feed handler)")?,
    ));
    let orders = SpscConsumer::<HedgeOrder>::open(dir, names::ORDERS, wait)
        .context("opening the orders ring (start the hedger)")?;
    Ok(Segments {
        counters,
        execs: Execs(execs, ring_id),
        defs: instruments.defs().to_vec(),
        lvt,
        orders: Orders(orders),
    })
}

/// The start-up line: where, which venue and journal, what recovery did.
fn print_start(
    dir: &std::path::Path,
    gw: &Gateway<Box<dyn Venue>>,
    summary: &crate::gateway::RecoverySummary,
) {
    eprintln!(
        "order-gateway: dir {} venue {} journal {} | recovery: {} open orders cancelled, {} handed to venue, {} execs republished, {} orders skipped{}{} | flow: {} options",
        dir.display(),
        gw.venue().name(),
        gw.journal().path().display(),
        summary.orders_cancelled,
        summary.orders_to_venue,
        summary.execs_republished,
        summary.orders_skipped,
        if summary.execs_ring_reset { ", execs ring was reset" } else { "" },
        if summary.journal_truncated_bytes > 0 { ", torn journal tail cut" } else { "" },
        gw.flow().map_or(0, |f| f.universe()),
    );
}

/// Writes tagged whole-run histograms (ns) as one HdrHistogram interval log (V2 deflate),
/// the format of the hedger's `--histogram-path` and of Java's `HistogramLogWriter`.
fn write_latency_log(
    path: &std::path::Path,
    start: std::time::SystemTime,
    hists: &[(&str, &hdrhistogram::Histogram<u64>)],
) -> anyhow::Result<()> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    use std::io::Write as _;
    let length = start.elapsed().unwrap_or_default();
    let mut out = std::io::BufWriter::new(shm_layout::private::create_file(path)?);
    let mut ser = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("order-gateway order latencies over the whole run, ns")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut out, &mut ser)?;
        for (tag, h) in hists {
            if h.is_empty() {
                continue;
            }
            let tag = Tag::new(tag).context("histogram tag")?;
            log.write_histogram(h, Duration::ZERO, length, Some(tag))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_venue_is_built_from_the_fix_table_with_state_dir_defaulted() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "venue = \"fix\"\nstate_dir = \"{}\"\n[fix]\nhost = \"127.0.0.1\"\nport = 9876\nsender_comp_id = \"HEDGER\"\ntarget_comp_id = \"VENUE\"\n",
            dir.path().display()
        );
        let cfg: Config = toml::from_str(&text).unwrap();
        cfg.validate().unwrap();
        let v = fix_venue(&cfg, &[]).unwrap();
        assert_eq!(v.name(), "fix");
        let bad: Config = toml::from_str("venue = \"fix\"\n[fix]\nhost = 1\n").unwrap();
        assert!(fix_venue(&bad, &[]).is_err());
    }

    #[test]
    fn fix_table_errors_never_quote_credentials() {
        let dir = tempfile::tempdir().unwrap();
        for (user, pass) in [
            ("424242", "\"pw-ok\""),
            ("\"u-ok\"", "13579"),
            ("[\"u-9\"]", "\"pw-ok\""),
        ] {
            let text = format!(
                "venue = \"fix\"\nstate_dir = \"{}\"\n[fix]\nhost = \"127.0.0.1\"\nport = 9876\nsender_comp_id = \"HEDGER\"\ntarget_comp_id = \"VENUE\"\nusername = {user}\npassword = {pass}\n",
                dir.path().display()
            );
            let cfg: Config = toml::from_str(&text).unwrap();
            let Err(e) = fix_venue(&cfg, &[]) else {
                panic!("a bad [fix] table must be refused")
            };
            let e = format!("{e:#}");
            for s in ["424242", "13579", "u-9", "pw-ok", "u-ok"] {
                assert!(!e.contains(s), "{s} in {e}");
            }
            let d = format!("{cfg:?} {cfg:#?}");
            for s in ["424242", "13579", "u-9", "pw-ok", "u-ok"] {
                assert!(!d.contains(s), "{s} in {d}");
            }
        }
    }
}
