//! What the loop reads and writes, as traits: shared-memory rings in production
//! ([`crate::hedger::live`]), plain in-process queues in tests and replay ([`MemMarket`],
//! [`MemExecs`], [`MemOrders`], [`MemControl`]).

use crate::limits::TradingMode;
use shm_layout::{ExecEvent, HedgeOrder, LastValue, MarketEvent};

/// One poll of the market-data source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MdPoll {
    /// Nothing new.
    Empty,
    /// The next event.
    Event(MarketEvent),
    /// The reader fell a whole lap behind and lost this many events.
    Lapped(u64),
}

/// Market data: the event stream plus the last-value table to rebuild from.
pub trait MarketSource {
    /// Next event, if any.
    fn poll(&mut self) -> MdPoll;
    /// Last value of an instrument (None: never written).
    fn last_value(&self, instrument_id: u32) -> Option<LastValue>;
}

pub use shm_layout::queue::{Consumer, Producer};

/// Execution reports: a [`Consumer`] of [`ExecEvent`], committed once the state that applied
/// them is persisted. Implemented by every such consumer: the execs ring
/// ([`shm_layout::SpscConsumer`]) and [`MemExecs`].
pub trait ExecSource: Consumer<ExecEvent> {}
impl<C: Consumer<ExecEvent> + ?Sized> ExecSource for C {}

/// Where orders go: a [`Producer`] of [`HedgeOrder`] (`pending` = published, not yet consumed
/// by the gateway). Implemented by every such producer: the orders ring
/// ([`shm_layout::SpscProducer`]) and [`MemOrders`].
pub trait OrderSink: Producer<HedgeOrder> {}
impl<P: Producer<HedgeOrder> + ?Sized> OrderSink for P {}

/// Operator control words.
pub trait ControlSource {
    /// Bumps on every write; the loop re-reads the words only when it changes.
    fn generation(&self) -> u64;
    /// Kill switch.
    fn kill_switch(&self) -> bool;
    /// Trading state of an underlying (by its instrument id).
    fn trading_mode(&self, underlying_id: u32) -> TradingMode;
}

/// In-process market source: a preallocated event buffer replayed in order.
#[derive(Debug, Clone, Default)]
pub struct MemMarket {
    /// Events to deliver.
    pub events: Vec<MarketEvent>,
    /// Next index.
    pub next: usize,
    /// Last values by instrument id.
    pub lvt: Vec<Option<LastValue>>,
    /// When set, the next poll reports a lap of this many events.
    pub lap: Option<u64>,
}

impl MemMarket {
    /// No events yet, and an empty last-value table of `instruments` ids.
    pub fn with_instruments(instruments: usize) -> Self {
        MemMarket {
            lvt: vec![None; instruments],
            ..MemMarket::default()
        }
    }
}

impl MarketSource for MemMarket {
    #[inline]
    fn poll(&mut self) -> MdPoll {
        if let Some(n) = self.lap.take() {
            return MdPoll::Lapped(n);
        }
        match self.events.get(self.next) {
            Some(e) => {
                self.next += 1;
                MdPoll::Event(*e)
            }
            None => MdPoll::Empty,
        }
    }
    fn last_value(&self, id: u32) -> Option<LastValue> {
        self.lvt.get(id as usize).copied().flatten()
    }
}

/// In-process exec source: a ring buffer with a commit position, like the SPSC ring.
#[derive(Debug, Clone, Default)]
pub struct MemExecs {
    /// Reports (committed ones are kept; `head` marks the commit).
    pub buf: Vec<ExecEvent>,
    /// Committed position.
    pub head: usize,
    /// Read position.
    pub read: usize,
}

impl Consumer<ExecEvent> for MemExecs {
    #[inline]
    fn peek(&mut self) -> Option<ExecEvent> {
        let e = self.buf.get(self.read).copied();
        if e.is_some() {
            self.read += 1;
        }
        e
    }
    #[inline]
    fn commit(&mut self, n: usize) {
        self.head = (self.head + n).min(self.read);
    }
}

/// In-process order sink with a fixed capacity (never grows: pushes fail when full).
#[derive(Debug, Clone)]
pub struct MemOrders {
    /// Published orders, oldest first.
    pub buf: std::collections::VecDeque<HedgeOrder>,
    /// Capacity.
    pub capacity: usize,
}

impl MemOrders {
    /// A sink of `capacity` orders (allocated now).
    pub fn new(capacity: usize) -> Self {
        MemOrders {
            buf: std::collections::VecDeque::with_capacity(capacity),
            capacity,
        }
    }
}

impl Producer<HedgeOrder> for MemOrders {
    #[inline]
    fn push(&mut self, order: HedgeOrder) -> Result<(), HedgeOrder> {
        if self.buf.len() >= self.capacity {
            return Err(order);
        }
        self.buf.push_back(order);
        Ok(())
    }
    #[inline]
    fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// In-process control words.
#[derive(Debug, Clone, Default)]
pub struct MemControl {
    /// Generation.
    pub generation: u64,
    /// Kill switch.
    pub kill: bool,
    /// Trading modes by underlying instrument id (missing: active).
    pub modes: Vec<(u32, TradingMode)>,
}

impl MemControl {
    /// Sets a mode and bumps the generation.
    pub fn set_mode(&mut self, id: u32, m: TradingMode) {
        self.modes.retain(|(i, _)| *i != id);
        self.modes.push((id, m));
        self.generation += 1;
    }
    /// Sets the kill switch and bumps the generation.
    pub fn set_kill(&mut self, on: bool) {
        self.kill = on;
        self.generation += 1;
    }
}

impl ControlSource for MemControl {
    fn generation(&self) -> u64 {
        self.generation
    }
    fn kill_switch(&self) -> bool {
        self.kill
    }
    fn trading_mode(&self, id: u32) -> TradingMode {
        self.modes
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(TradingMode::Active, |(_, m)| *m)
    }
}
