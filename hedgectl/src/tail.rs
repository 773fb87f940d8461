//! `hedgectl tail md|orders|execs`: decodes live messages without consuming them.
//!
//! - `md`: a [`BroadcastReader`] of its own on the broadcast ring. Readers never slow the
//!   writer; if `tail` is too slow it is lapped and says how many messages it skipped.
//! - `orders` / `execs`: an observer view of the SPSC ring ([`SpscView`]) that copies slots
//!   between the producer's position minus the capacity and the producer's position, and never
//!   moves the consumer's position or claims to be the consumer. Without `--follow` it prints
//!   the last N messages written (consumed or not); with `--follow` it keeps printing new ones.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::spsc_view::SpscView;
use anyhow::Context as _;
use shm_layout::broadcast::{BroadcastReader, Poll};
use shm_layout::segment::{names, OpenOptions};
use shm_layout::{ExecEvent, HedgeOrder, InstrumentDef, MarketEvent, MarketEventKind};

use crate::metrics::RingSnap;

/// Which stream to tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stream {
    /// Market data (broadcast ring `md`).
    Md,
    /// Hedge orders (SPSC ring `orders`).
    Orders,
    /// Execution reports and client option trades (SPSC ring `execs`).
    Execs,
}

/// Options of `hedgectl tail`.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// md, orders or execs.
    #[arg(value_enum)]
    pub stream: Stream,
    /// How many messages to print (without --follow: the last N written for orders/execs, the
    /// next N published for md).
    #[arg(short = 'n', long, default_value_t = 20)]
    pub count: usize,
    /// Keep printing new messages until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Give up waiting for md messages after this many seconds (without --follow).
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// The observer's view of one SPSC ring as a [`RingSnap`] (empty if the ring is absent).
pub fn spsc_ring<T: bytemuck::Pod>(dir: &Path, name: &str) -> Option<RingSnap> {
    let v = SpscView::<T>::open(dir, name).ok()?;
    Some(RingSnap {
        name: name.to_string(),
        kind: "spsc",
        producer_position: v.producer_position(),
        consumer_position: Some(v.consumer_position()),
        capacity: v.capacity(),
    })
}

/// Symbols by instrument id, from the instruments segment (empty if absent).
fn symbols(dir: &Path) -> HashMap<u32, String> {
    shm_layout::instruments::InstrumentTable::open(dir, names::INSTRUMENTS, OpenOptions::default())
        .map(|t| {
            t.defs()
                .iter()
                .map(|d: &InstrumentDef| (d.id, d.symbol().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A price or quantity without float noise: up to 8 decimals, trailing zeros trimmed.
fn n(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let t = format!("{x:.8}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn sym(s: &HashMap<u32, String>, id: u32) -> String {
    s.get(&id).cloned().unwrap_or_else(|| format!("#{id}"))
}

/// One market event as a line.
pub fn format_md(e: &MarketEvent, s: &HashMap<u32, String>) -> String {
    let name = sym(s, e.instrument_id);
    let body = match e.kind() {
        Ok(MarketEventKind::Quote) => {
            let [b, bq, a, aq] = e.v;
            format!("quote  {} x {} / {} x {}", n(b), n(bq), n(a), n(aq))
        }
        Ok(MarketEventKind::OptionMark) => {
            let [m, iv, u, _] = e.v;
            format!("mark   {} iv {:.2}% und {}", n(m), iv * 100.0, n(u))
        }
        Ok(MarketEventKind::UnderlyingPrice) => {
            let mut s = format!("price  {}", n(e.v[0]));
            if e.flags & MarketEvent::FLAG_LAST_PRICE != 0 {
                s += " (last)";
            }
            if let Some((funding, index, oi)) = e.as_ticker() {
                if let Some(f) = funding {
                    s += &format!(" funding {:.6}%/8h", f * 100.0);
                }
                if let Some(x) = index {
                    s += &format!(" index {}", n(x));
                }
                if let Some(x) = oi {
                    s += &format!(" oi {}", n(x));
                }
            }
            s
        }
        Ok(MarketEventKind::Trade) => format!(
            "trade  {} x {} {}",
            n(e.v[0]),
            n(e.v[1]),
            shm_layout::Side::try_from(e.side).map_or("?", |x| x.name())
        ),
        Err(_) => format!("kind {} (unknown)", e.kind),
    };
    let stress = if e.flags & MarketEvent::FLAG_STRESS != 0 {
        " [stress]"
    } else {
        ""
    };
    let size = if e.kind() == Ok(MarketEventKind::Quote)
        && e.flags & MarketEvent::FLAG_SIZE_UNKNOWN != 0
    {
        " [size unknown]"
    } else {
        ""
    };
    format!("md seq={} {name} {body}{stress}{size}", e.seq)
}

/// One hedge order as a line; `state` says whether the gateway has consumed it yet.
pub fn format_order(pos: u64, o: &HedgeOrder, s: &HashMap<u32, String>, state: &str) -> String {
    let side = o.side().map_or("?", |x| x.name());
    let t2o = o.publish_ts_ns.saturating_sub(o.feed_recv_ts_ns);
    format!(
        "order pos={pos} cid={} {} {side} {} {} @ {} {} {} tick-to-order {:.2}us ({state})",
        o.client_order_id,
        o.action().map_or("?", |x| x.name()),
        n(o.qty),
        sym(s, o.instrument_id),
        n(o.limit_px),
        o.order_type().map_or("?", |x| x.name()),
        o.tif().map_or("?", |x| x.name()),
        t2o as f64 / 1000.0,
    )
}

/// One exec report as a line.
pub fn format_exec(pos: u64, e: &ExecEvent, s: &HashMap<u32, String>, state: &str) -> String {
    let kind = e.kind().map_or("?", |x| x.name());
    let mut line = format!(
        "exec pos={pos} id={} cid={} {kind} {} {} {} @ {}",
        e.exec_id,
        e.client_order_id,
        e.side().map_or("?", |x| x.name()),
        n(e.qty),
        sym(s, e.instrument_id),
        n(e.price),
    );
    if e.fee != 0.0 {
        line.push_str(&format!(" fee {}", n(e.fee)));
    }
    if e.leaves_qty != 0.0 {
        line.push_str(&format!(" leaves {}", n(e.leaves_qty)));
    }
    if let Ok(r) = e.reject_reason() {
        if r != shm_layout::RejectReason::None {
            line.push_str(&format!(" reason {}", r.name()));
        }
    }
    if let Ok(l) = e.liquidity() {
        if l != shm_layout::Liquidity::None {
            line.push_str(&format!(" {}", l.name()));
        }
    }
    line.push_str(&format!(" ({state})"));
    line
}

/// Runs `tail`; returns the number of messages printed.
///
/// # Errors
/// The ring does not exist.
pub fn run(dir: &Path, args: &TailArgs) -> anyhow::Result<usize> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let s = symbols(dir);
    match args.stream {
        Stream::Md => tail_md(dir, args, &s, &stop),
        Stream::Orders => tail_spsc::<HedgeOrder>(dir, names::ORDERS, args, &stop, |p, o, st| {
            format_order(p, o, &s, st)
        }),
        Stream::Execs => tail_spsc::<ExecEvent>(dir, names::EXECS, args, &stop, |p, e, st| {
            format_exec(p, e, &s, st)
        }),
    }
}

fn tail_md(
    dir: &Path,
    args: &TailArgs,
    s: &HashMap<u32, String>,
    stop: &AtomicBool,
) -> anyhow::Result<usize> {
    let mut r = BroadcastReader::<MarketEvent>::open(dir, names::MD, OpenOptions::default())
        .with_context(|| format!("cannot attach to the market-data ring in {}", dir.display()))?;
    let mut printed = 0usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(args.timeout);
    while !stop.load(Ordering::Relaxed) {
        match r.poll() {
            Poll::Message(e) => {
                println!("{}", format_md(&e, s));
                printed += 1;
                if !args.follow && printed >= args.count {
                    break;
                }
            }
            Poll::Lapped { lost } => {
                println!("md: lapped, {lost} messages skipped (tail is slower than the feed)");
            }
            Poll::Empty => {
                if !args.follow && std::time::Instant::now() > deadline {
                    eprintln!(
                        "hedgectl tail md: no new market data within {} s (is the feed handler \
                         publishing?)",
                        args.timeout
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    Ok(printed)
}

fn tail_spsc<T: bytemuck::Pod>(
    dir: &Path,
    name: &str,
    args: &TailArgs,
    stop: &AtomicBool,
    fmt: impl Fn(u64, &T, &str) -> String,
) -> anyhow::Result<usize> {
    let v = SpscView::<T>::open(dir, name)
        .with_context(|| format!("cannot observe ring {name} in {}", dir.display()))?;
    let cap = v.capacity();
    let producer = v.producer_position();
    let mut next = producer.saturating_sub((args.count as u64).min(cap));
    let mut printed = 0usize;
    if !args.follow {
        eprintln!(
            "{name}: producer position {producer}, consumer position {}, {} queued",
            v.consumer_position(),
            producer.saturating_sub(v.consumer_position())
        );
    }
    loop {
        let producer = v.producer_position();
        if producer.saturating_sub(next) > cap {
            println!(
                "{name}: skipped {} messages overwritten before tail could read them",
                producer - cap - next
            );
            next = producer - cap;
        }
        while next < producer {
            let consumed = next < v.consumer_position();
            match v.peek_at(next) {
                Some(m) => {
                    println!(
                        "{}",
                        fmt(next, &m, if consumed { "consumed" } else { "queued" })
                    );
                    printed += 1;
                }
                None => println!("{name}: message {next} was overwritten while being read"),
            }
            next += 1;
        }
        if !args.follow || stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_shows_ticker_funding_and_size_unknown_quotes() {
        let names = HashMap::from([(1, "BTC-PERPETUAL".to_string())]);
        let mut p = MarketEvent::underlying_price(1, 0, 0, 78_926.0);
        p.v[1..].copy_from_slice(&[0.0001, 78_900.5, 50_000.0]);
        p.flags = MarketEvent::FLAG_FUNDING | MarketEvent::FLAG_LAST_PRICE;
        let line = format_md(&p, &names);
        assert!(line.contains("(last)"), "{line}");
        assert!(line.contains("funding 0.010000%/8h"), "{line}");
        assert!(line.contains("oi 50000"), "{line}");
        let mut q = MarketEvent::quote(1, 0, 0, 99.0, 0.0, 100.0, 0.0);
        q.flags = MarketEvent::FLAG_SIZE_UNKNOWN;
        assert!(format_md(&q, &names).ends_with("[size unknown]"));
    }
}
