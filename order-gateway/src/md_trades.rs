//! The simulator's trade feed in the live gateway: a reader of its own on the market-data
//! broadcast ring (`md`), handing every trade to the venue ([`Venue::on_md_trade`]).
//!
//! Without it the simulator notices a trade only as the last-value table's last trade when it
//! polls, and misses every trade the table overwrote between two polls (queues move less than
//! they should, passive fills are undercounted).
//!
//! - **Where it starts**: at the writer's position when it opens (like a late joiner); never at
//!   the ring's start, which would replay trades older than the books the venue has seen.
//! - **Order against the books**: the feed writes the last-value table before the ring, so the
//!   table (the simulator's books) can be newer than the trades read. After each read the
//!   venue is told how far the trades go ([`Venue::md_trades_through`]); a resting order moves
//!   with a book only once the trades before that book are in, so the size decrease a trade
//!   caused is netted against it, and a trade already in the book an order has seen does not
//!   move it again (see [`crate::sim::SimVenue::trades_through`]).
//! - **Bounded**: at most [`MD_EVENTS_PER_STEP`] events per duty cycle, so orders and reports
//!   are not starved by a burst of market data.
//! - **Lapped** (the gateway fell a whole ring behind): the lost events are counted
//!   (`sim_md_lost`) and the reader skips to the writer, as the hedger does: the table is newer
//!   than anything skipped. The trades lost move the queues only through the size decreases
//!   they left in the table (as cancels, under the configured queue model): the conservative
//!   side (a trade that would have filled an order beyond its queue is missed).
//! - **No ring** (the gateway started before the feed, or a ring of another layout version):
//!   one line at start, the simulator notices trades from the table as before, and opening is
//!   retried once per [`MD_RETRY_NS`] from the agent's housekeeping, never per cycle.

use crate::venue::Venue;
use shm_layout::broadcast::{BroadcastReader, Poll};
use shm_layout::{names, MarketEvent, MarketEventKind, OpenOptions, SegmentError};
use std::path::{Path, PathBuf};

/// Most md ring events read per duty cycle (a trade or not). The feed publishes far fewer
/// per microsecond; a backlog drains over a few cycles.
pub const MD_EVENTS_PER_STEP: usize = 256;

/// How often a missing md ring is looked for again, ns.
pub const MD_RETRY_NS: u64 = 1_000_000_000;

/// The gateway's reader of the md ring for its simulated venue.
pub struct MdTrades {
    dir: PathBuf,
    reader: Option<BroadcastReader<MarketEvent>>,
    /// When to look for the ring again (while it is not open), monotonic ns.
    next_retry_ns: u64,
    /// Trades handed to the venue.
    trades: u64,
    /// Events lost to laps, and skipped after them.
    lost: u64,
}

impl MdTrades {
    /// Opens `dir`'s md ring at the writer's position, or says (one line on stderr) why not
    /// and that trades come from the last-value table until it opens.
    pub fn open(dir: &Path, now_ns: u64) -> Self {
        let mut md = MdTrades {
            dir: dir.to_path_buf(),
            reader: None,
            next_retry_ns: 0,
            trades: 0,
            lost: 0,
        };
        if let Err(e) = md.try_open(now_ns) {
            eprintln!(
                "order-gateway: simulator trade feed: cannot open the md ring ({e}); the simulator notices trades from the last-value table's last trade (missing those it overwrites between two polls) until it opens; retrying every {} s",
                MD_RETRY_NS / 1_000_000_000
            );
        }
        md
    }

    fn try_open(&mut self, now_ns: u64) -> Result<(), SegmentError> {
        self.next_retry_ns = now_ns.saturating_add(MD_RETRY_NS);
        let r = BroadcastReader::<MarketEvent>::open(&self.dir, names::MD, OpenOptions::default())?;
        eprintln!(
            "order-gateway: simulator trade feed: reading trades from the md ring from position {} (capacity {})",
            r.position(),
            r.capacity()
        );
        self.reader = Some(r);
        Ok(())
    }

    /// Housekeeping: while the ring is not open, tries again once per [`MD_RETRY_NS`] (a
    /// failed try prints nothing: the start line said it).
    pub fn retry(&mut self, now_ns: u64) {
        if self.reader.is_none() && now_ns >= self.next_retry_ns {
            let _ = self.try_open(now_ns);
        }
    }

    /// Reads up to [`MD_EVENTS_PER_STEP`] events, hands each trade to `venue`, then tells it
    /// how far the trades go. Returns the events read (and laps), 0 without a ring. No
    /// allocation, syscall or lock.
    #[inline]
    pub fn drain<V: Venue + ?Sized>(&mut self, venue: &mut V, now_ns: u64) -> usize {
        let Some(r) = &mut self.reader else {
            return 0;
        };
        let mut n = 0;
        while n < MD_EVENTS_PER_STEP {
            match r.poll() {
                Poll::Empty => break,
                Poll::Message(e) => {
                    if e.kind == MarketEventKind::Trade as u8 {
                        self.trades += 1;
                        venue.on_md_trade(&e, now_ns);
                    }
                }
                Poll::Lapped { lost } => self.lost += lost + r.skip_to_writer(),
            }
            n += 1;
        }
        // Position p holds the event of feed sequence p + 1 (docs/shm-layout.md): every
        // event up to sequence `position` has been read or lost.
        venue.md_trades_through(r.position());
        n
    }

    /// Whether the ring is open.
    pub fn attached(&self) -> bool {
        self.reader.is_some()
    }

    /// Trades handed to the venue so far.
    pub fn trades(&self) -> u64 {
        self.trades
    }

    /// Events lost to laps (and skipped after them) so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}
