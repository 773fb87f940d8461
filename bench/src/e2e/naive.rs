//! The baseline a user would build first: three threads in one process joined by crossbeam
//! channels (unbounded, so nothing is ever dropped: a slow consumer shows up as queueing
//! delay), and a hedger that recomputes the whole book's delta with the engine's pricing
//! (`black76_greeks` per option) on every tick. Same synthetic market, same book, same band
//! as the shared-memory pipeline; the "gateway" thread stamps each order when it receives it.

use engine::pricing::time::years_between_ns;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel;
use feed_handler::source::{Source, SourceEvent};
use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
use hdrhistogram::Histogram;
use shm_layout::clock::now_ns;
use shm_layout::{InstrumentKind, MarketEvent, MarketEventKind};

use super::market::option_delta;
use super::pin;
use super::report::new_hist;

/// What the naive pipeline measured.
#[derive(Debug)]
pub struct NaiveResult {
    /// Feed send to hedger receive (every event), ns.
    pub recv_to_read: Histogram<u64>,
    /// Hedger receive to decision (the full recomputation), per order, ns.
    pub read_to_decision: Histogram<u64>,
    /// Decision to send, per order, ns.
    pub decision_to_publish: Histogram<u64>,
    /// Hedger send to gateway receive, per order, ns.
    pub publish_to_gateway: Histogram<u64>,
    /// Feed send to gateway receive: tick to order, ns.
    pub tick_to_order: Histogram<u64>,
    /// Full recomputation time per event, ns.
    pub recompute: Histogram<u64>,
    /// Events the feed sent.
    pub sent: u64,
    /// Events the hedger processed.
    pub processed: u64,
    /// Orders the gateway received.
    pub orders: u64,
    /// Events still queued when the time budget ran out.
    pub backlog: u64,
    /// Seconds from the first event sent to the last processed.
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Copy)]
struct Order {
    feed_recv: u64,
    read: u64,
    decision: u64,
    publish: u64,
}

/// Runs the naive pipeline over `events` events of the market `cfg` (paced at `cfg.rate`, or
/// as fast as possible when infinite), threads on `cores` (feed, hedger, gateway), for at
/// most `budget`.
pub fn run(
    cfg: &SyntheticConfig,
    events: u64,
    cores: [Option<usize>; 3],
    band: f64,
    budget: Duration,
) -> NaiveResult {
    let src = SyntheticSource::new(cfg.clone());
    let defs = src.registry().defs().to_vec();
    let index_id = defs
        .iter()
        .find(|d| d.kind() == Ok(InstrumentKind::Index))
        .map_or(0, |d| d.id);
    let spot0 = cfg.underlyings.first().map_or(60_000.0, |u| u.spot);
    let opts: Vec<_> = super::market::options(&defs).copied().collect();
    let mut opt_of = vec![u32::MAX; defs.len()];
    for (i, d) in opts.iter().enumerate() {
        opt_of[d.id as usize] = i as u32;
    }
    // The same initial hedge as the shared-memory hedger's config.
    let start_ns = cfg.start_ns;
    let hedge0: f64 = -opts
        .iter()
        .map(|d| option_delta(d, spot0, years_between_ns(start_ns, d.expiry_ns), 0.6))
        .sum::<f64>();

    let (md_tx, md_rx) = channel::unbounded::<MarketEvent>();
    let (ord_tx, ord_rx) = channel::unbounded::<Order>();
    let stop = AtomicBool::new(false);
    let rate = cfg.rate;
    let t_start = Instant::now();

    std::thread::scope(|s| {
        // Feed.
        let feed = s.spawn(|| {
            pin(cores[0]);
            let mut src = src;
            let mut ev = SourceEvent::default();
            let gap_ns = if rate.is_finite() { 1e9 / rate } else { 0.0 };
            let start = now_ns();
            let mut sent = 0u64;
            while sent < events && !stop.load(Ordering::Relaxed) {
                if !src.next(&mut ev) {
                    break;
                }
                let target = start + (sent as f64 * gap_ns) as u64;
                let mut now = now_ns();
                while now < target {
                    if target - now > 50_000 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    now = now_ns();
                }
                let mut e = ev.event;
                sent += 1;
                e.seq = sent;
                e.recv_ts_ns = now;
                if md_tx.send(e).is_err() {
                    break;
                }
            }
            drop(md_tx);
            sent
        });
        // Hedger.
        let hedger = s.spawn(|| {
            pin(cores[1]);
            let mut rtr = new_hist();
            let mut r2d = new_hist();
            let mut d2p = new_hist();
            let mut recompute = new_hist();
            let mut fwd = vec![0.0f64; defs.len()];
            let mut vol = vec![0.6f64; opts.len()];
            let mut spot = spot0;
            let mut hedge = hedge0;
            let mut processed = 0u64;
            while let Ok(e) = md_rx.recv() {
                let read = now_ns();
                rtr.saturating_record(read.saturating_sub(e.recv_ts_ns).max(1));
                match e.kind() {
                    Ok(MarketEventKind::UnderlyingPrice) => {
                        if e.instrument_id == index_id {
                            spot = e.v[0];
                        } else if let Some(f) = fwd.get_mut(e.instrument_id as usize) {
                            *f = e.v[0];
                        }
                    }
                    Ok(MarketEventKind::OptionMark) => {
                        if let Some(&i) = opt_of.get(e.instrument_id as usize) {
                            if i != u32::MAX {
                                vol[i as usize] = e.v[1];
                                let fid = opts[i as usize].forward_id as usize;
                                if let Some(f) = fwd.get_mut(fid) {
                                    *f = e.v[2];
                                }
                            }
                        }
                    }
                    _ => {}
                }
                // Full recomputation of the book's delta, every tick.
                let now_mkt = if e.exch_ts_ns != 0 {
                    e.exch_ts_ns
                } else {
                    start_ns
                };
                let mut delta = 0.0;
                for (i, d) in opts.iter().enumerate() {
                    let f = match fwd.get(d.forward_id as usize) {
                        Some(&f) if f > 0.0 => f,
                        _ => spot,
                    };
                    let t = years_between_ns(now_mkt, d.expiry_ns);
                    delta += option_delta(d, f, t, vol[i]);
                }
                let decision = now_ns();
                recompute.saturating_record(decision.saturating_sub(read).max(1));
                processed += 1;
                let net = delta + hedge;
                if net.abs() > band {
                    hedge -= net;
                    let publish = now_ns();
                    r2d.saturating_record(decision.saturating_sub(read).max(1));
                    d2p.saturating_record(publish.saturating_sub(decision).max(1));
                    let _ = ord_tx.send(Order {
                        feed_recv: e.recv_ts_ns,
                        read,
                        decision,
                        publish,
                    });
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            drop(ord_tx);
            (rtr, r2d, d2p, recompute, processed, md_rx.len() as u64)
        });
        // Gateway.
        let gateway = s.spawn(|| {
            pin(cores[2]);
            let mut p2g = new_hist();
            let mut t2o = new_hist();
            let mut n = 0u64;
            while let Ok(o) = ord_rx.recv() {
                let now = now_ns();
                let _ = (o.read, o.decision);
                p2g.saturating_record(now.saturating_sub(o.publish).max(1));
                t2o.saturating_record(now.saturating_sub(o.feed_recv).max(1));
                n += 1;
            }
            (p2g, t2o, n)
        });
        // Watchdog: the time budget.
        while !hedger.is_finished() {
            if t_start.elapsed() > budget {
                stop.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let sent = feed.join().unwrap_or(0);
        let (rtr, r2d, d2p, recompute, processed, backlog) = hedger
            .join()
            .unwrap_or_else(|_| (new_hist(), new_hist(), new_hist(), new_hist(), 0, 0));
        let (p2g, t2o, orders) = gateway
            .join()
            .unwrap_or_else(|_| (new_hist(), new_hist(), 0));
        NaiveResult {
            recv_to_read: rtr,
            read_to_decision: r2d,
            decision_to_publish: d2p,
            publish_to_gateway: p2g,
            tick_to_order: t2o,
            recompute,
            sent,
            processed,
            orders,
            backlog,
            elapsed_s: t_start.elapsed().as_secs_f64(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_pipeline_processes_every_event_and_sends_orders() {
        let c = super::super::market::synthetic_config(
            200,
            f64::INFINITY,
            1_767_312_000_000_000_000,
            3,
        );
        let r = run(&c, 3000, [None, None, None], 0.001, Duration::from_secs(60));
        assert_eq!(r.sent, 3000);
        assert_eq!(r.processed, 3000);
        assert!(r.orders > 0);
        assert_eq!(r.tick_to_order.len(), r.orders);
    }
}
