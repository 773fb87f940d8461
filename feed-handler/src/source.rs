//! The [`Source`] trait every market data source implements, the event it yields, and the
//! reject accounting shared by all sources.
//!
//! Sources know nothing about shared memory: the live publisher
//! ([`crate::publish::Publisher`]) and the replay/backtest driver consume the same events.

use shm_layout::{MarketEvent, DEPTH_LEVELS};

use crate::instruments::Registry;

/// Book depth that came with an event, best level first; copied into the last-value table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Depth {
    /// Valid bid levels (0..=DEPTH_LEVELS).
    pub bid_levels: u32,
    /// Valid ask levels (0..=DEPTH_LEVELS).
    pub ask_levels: u32,
    /// `[price, qty]`, best (highest) first.
    pub bids: [[f64; 2]; DEPTH_LEVELS],
    /// `[price, qty]`, best (lowest) first.
    pub asks: [[f64; 2]; DEPTH_LEVELS],
    /// Bid levels that may differ from this source's previous depth of the same instrument
    /// (bit `i`: level `i`); a clear bit promises the level is unchanged, so the publisher need
    /// not store it. [`Depth::ALL_CHANGED`] (the default) promises nothing: file sources keep it,
    /// the synthetic market, which knows what it changed, narrows it.
    pub bid_changed: u32,
    /// Ask levels that may have changed, as `bid_changed`.
    pub ask_changed: u32,
}

impl Depth {
    /// Every level may have changed (the table's own "no promise" value).
    pub const ALL_CHANGED: u32 = shm_layout::DepthUpdate::ALL_CHANGED;
}

impl Default for Depth {
    fn default() -> Self {
        Depth {
            bid_levels: 0,
            ask_levels: 0,
            bids: [[0.0; 2]; DEPTH_LEVELS],
            asks: [[0.0; 2]; DEPTH_LEVELS],
            bid_changed: Depth::ALL_CHANGED,
            ask_changed: Depth::ALL_CHANGED,
        }
    }
}

/// One normalized event from a source: the market event (its `seq` and `recv_ts_ns` are set by
/// the publisher) and, for book sources, the depth behind a quote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceEvent {
    /// The event; `seq = 0` and `recv_ts_ns = 0` until published.
    pub event: MarketEvent,
    /// Replay clock of the event, ns since the epoch: the time the source says it was seen
    /// (Tardis `local_timestamp`, LOBSTER `Time`, synthetic clock). Pacing and merging use it.
    pub source_ts_ns: u64,
    /// Whether `depth` is meaningful for this event.
    pub has_depth: bool,
    /// Depth (only when `has_depth`).
    pub depth: Depth,
}

impl Default for SourceEvent {
    fn default() -> Self {
        SourceEvent {
            event: bytemuck::Zeroable::zeroed(),
            source_ts_ns: 0,
            has_depth: false,
            depth: Depth::default(),
        }
    }
}

/// Declares a reason enum from one list: each variant with its doc, its dense index from 0
/// (counter order) and its snake-case counter name. Generates the enum, `ALL` (every reason in
/// counter order), `name()` (counter labels, summaries, JSON keys) and its [`Reason`] impl, so
/// that the order, the names and the count cannot disagree.
macro_rules! reasons {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $index:literal => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant = $index, )+
        }

        impl $name {
            /// Every reason, in counter order.
            pub const ALL: [$name; [$($label),+].len()] = [$($name::$variant),+];

            /// Snake-case name (counter labels, summaries, JSON keys).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }

        impl $crate::source::Reason for $name {
            const ALL: &'static [Self] = &$name::ALL;
            fn index(self) -> usize {
                self as usize
            }
            fn name(self) -> &'static str {
                $name::name(self)
            }
        }
    };
}
pub(crate) use reasons;

reasons! {
    /// Why an input row (or generated event) was skipped. Every reason is counted.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum RejectReason {
        /// Not parsable: a CSV error, bad UTF-8, a number, boolean or side that does not parse.
        Malformed = 0 => "malformed",
        /// The row has a different number of columns than the header.
        ColumnCount = 1 => "column_count",
        /// A price or quantity is NaN or infinite.
        NonFinite = 2 => "non_finite",
        /// A price is zero or negative, or a quantity negative.
        NegativePrice = 3 => "negative_price",
        /// Best bid at or above best ask.
        Crossed = 4 => "crossed",
        /// The symbol is not in the (fixed) instruments registry.
        UnknownSymbol = 5 => "unknown_symbol",
        /// The symbol cannot be parsed into an instrument.
        UnparsableSymbol = 6 => "unparsable_symbol",
        /// The row's timestamp is earlier than the previous row's of the same file.
        TimeBackwards = 7 => "time_backwards",
        /// No two-sided top of book to publish (an empty side, LOBSTER dummy levels).
        OneSided = 8 => "one_sided",
        /// The event failed `MarketEvent::is_valid` for another reason (e.g. a zero implied vol).
        InvalidEvent = 9 => "invalid_event",
        /// A timestamp is outside the supported range (from 2100-01-01 on), e.g. a 19-digit
        /// microsecond value whose nanoseconds would not fit in a u64.
        TimestampRange = 10 => "timestamp_range",
    }
}

/// A reason a row or a part of one was dropped: dense indices from 0 (`as usize`) and a
/// counter name. Implemented by [`RejectReason`] and [`crate::partial::PartialReason`].
pub trait Reason: Copy + 'static {
    /// Every reason, in counter order (index `i` is the reason whose `index()` is `i`).
    const ALL: &'static [Self];
    /// Dense index.
    fn index(self) -> usize;
    /// Snake-case name (counter labels, summaries, JSON keys).
    fn name(self) -> &'static str;
}

/// Counts by reason (plain integers: a source is single-threaded). `N` is the number of
/// reasons of `R`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts<R: Reason, const N: usize> {
    counts: [u64; N],
    _reason: std::marker::PhantomData<R>,
}

impl<R: Reason, const N: usize> Default for Counts<R, N> {
    fn default() -> Self {
        Counts {
            counts: [0; N],
            _reason: std::marker::PhantomData,
        }
    }
}

impl<R: Reason, const N: usize> Counts<R, N> {
    /// Counts one.
    #[inline]
    pub fn add(&mut self, r: R) {
        self.counts[r.index()] += 1;
    }
    /// Count for one reason.
    pub fn get(&self, r: R) -> u64 {
        self.counts[r.index()]
    }
    /// Total, all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Adds another set of counts.
    pub fn merge(&mut self, o: &Self) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
    }
    /// `(reason, count)` for every reason with a non-zero count.
    pub fn nonzero(&self) -> Vec<(R, u64)> {
        R::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

impl<R: Reason, const N: usize> std::fmt::Display for Counts<R, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nz = self.nonzero();
        if nz.is_empty() {
            return write!(f, "none");
        }
        for (i, (r, n)) in nz.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}={n}", r.name())?;
        }
        Ok(())
    }
}

/// Reject counts by reason.
pub type Rejects = Counts<RejectReason, { RejectReason::ALL.len() }>;

/// A market data source: yields normalized events in source-time order.
///
/// Contract: every event a source yields satisfies `MarketEvent::is_valid()` and its
/// `instrument_id` is in [`Source::registry`], which is complete before the first call to
/// [`Source::next`] (sources that discover symbols scan their input when opened). Bad input is
/// never an error: it is skipped and counted in [`Source::rejects`].
pub trait Source {
    /// Instrument definitions (ids dense from 0).
    fn registry(&self) -> &Registry;
    /// Writes the next event into `out` and returns `true`, or `false` when the source is
    /// exhausted. Implementations reuse their buffers: no allocation per event.
    fn next(&mut self, out: &mut SourceEvent) -> bool;
    /// Rows or events skipped so far, by reason.
    fn rejects(&self) -> Rejects;
    /// Parts of used rows dropped or degraded so far, by reason, and how many rows were used
    /// only in part (sources whose rows are all-or-nothing keep the default: none).
    fn partials(&self) -> crate::partial::Partials {
        crate::partial::Partials::default()
    }
    /// Input rows read so far (for rate reporting; synthetic sources report events).
    fn rows_read(&self) -> u64;
    /// Underlyings renamed mid-file so far, each pair once (counter `underlying_renames`;
    /// only Tardis files rename). Called once, at the end: it may allocate.
    fn renames_seen(&self) -> u64 {
        0
    }
}

/// `Source` for a pointer to a source (`Box<dyn Source>`, `&mut S`): every method forwards.
macro_rules! forward_source {
    ($($ptr:ty),*) => {$(
        impl<S: Source + ?Sized> Source for $ptr {
            fn registry(&self) -> &Registry {
                (**self).registry()
            }
            fn next(&mut self, out: &mut SourceEvent) -> bool {
                (**self).next(out)
            }
            fn rejects(&self) -> Rejects {
                (**self).rejects()
            }
            fn partials(&self) -> crate::partial::Partials {
                (**self).partials()
            }
            fn rows_read(&self) -> u64 {
                (**self).rows_read()
            }
            fn renames_seen(&self) -> u64 {
                (**self).renames_seen()
            }
        }
    )*};
}

forward_source!(Box<S>, &mut S);

/// Marks snapshot batches: an event gets [`MarketEvent::FLAG_BATCH_MORE`] when the next event
/// of the source has the same non-zero exchange timestamp (one options-chain snapshot is
/// hundreds of rows with one timestamp). Reads one event ahead. The live publisher and
/// `hedgectl replay` both wrap file sources in it, so the hedger sees the same batch
/// boundaries live and in replay (`docs/shm-layout.md`, "Snapshot batches"). The last event a
/// source yields always has the flag clear.
#[derive(Debug)]
pub struct Batched<S> {
    inner: S,
    ahead: SourceEvent,
    has_ahead: bool,
    primed: bool,
}

impl<S: Source> Batched<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Batched {
            inner,
            ahead: SourceEvent::default(),
            has_ahead: false,
            primed: false,
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Source> Source for Batched<S> {
    fn registry(&self) -> &Registry {
        self.inner.registry()
    }
    #[inline]
    fn next(&mut self, out: &mut SourceEvent) -> bool {
        if !self.primed {
            self.primed = true;
            self.has_ahead = self.inner.next(&mut self.ahead);
        }
        if !self.has_ahead {
            return false;
        }
        std::mem::swap(out, &mut self.ahead);
        out.event.flags &= !MarketEvent::FLAG_BATCH_MORE;
        self.has_ahead = self.inner.next(&mut self.ahead);
        let ts = out.event.exch_ts_ns;
        if self.has_ahead && ts != 0 && self.ahead.event.exch_ts_ns == ts {
            out.event.flags |= MarketEvent::FLAG_BATCH_MORE;
        }
        true
    }
    fn rejects(&self) -> Rejects {
        self.inner.rejects()
    }
    fn partials(&self) -> crate::partial::Partials {
        self.inner.partials()
    }
    fn rows_read(&self) -> u64 {
        self.inner.rows_read()
    }
    fn renames_seen(&self) -> u64 {
        self.inner.renames_seen()
    }
}

/// Why an event may not leave a source (`None`: it is valid). The replays reject the row
/// with this reason.
#[inline]
pub(crate) fn invalid_reason(e: &MarketEvent) -> Option<RejectReason> {
    if e.is_valid() {
        return None;
    }
    let v = e.v;
    Some(if v.iter().any(|x| !x.is_finite()) {
        RejectReason::NonFinite
    } else if e
        .as_quote()
        .is_some_and(|(b, _, a, _)| b > 0.0 && a > 0.0 && b >= a)
    {
        RejectReason::Crossed
    } else if e
        .as_quote()
        .is_some_and(|(b, bq, a, aq)| b <= 0.0 || a <= 0.0 || bq < 0.0 || aq < 0.0)
        || e.as_underlying_price().is_some_and(|p| p <= 0.0)
        || e.as_trade().is_some_and(|(p, q, _)| p <= 0.0 || q < 0.0)
        || e.as_option_mark()
            .is_some_and(|(m, _, u)| m < 0.0 || u <= 0.0)
    {
        RejectReason::NegativePrice
    } else {
        RejectReason::InvalidEvent
    })
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    struct Fixed(Vec<MarketEvent>, usize, Registry);

    impl Source for Fixed {
        fn registry(&self) -> &Registry {
            &self.2
        }
        fn next(&mut self, out: &mut SourceEvent) -> bool {
            let Some(e) = self.0.get(self.1) else {
                return false;
            };
            self.1 += 1;
            out.event = *e;
            true
        }
        fn rejects(&self) -> Rejects {
            Rejects::default()
        }
        fn rows_read(&self) -> u64 {
            self.1 as u64
        }
    }

    #[test]
    fn every_event_of_a_snapshot_but_its_last_says_more_follow() {
        let at = |ts| MarketEvent::underlying_price(0, ts, 0, 100.0);
        let stamps = [5, 5, 5, 6, 0, 0, 7, 7];
        let src = Fixed(stamps.iter().map(|&t| at(t)).collect(), 0, Registry::new());
        let mut b = Batched::new(src);
        let mut ev = SourceEvent::default();
        let mut flags = Vec::new();
        while b.next(&mut ev) {
            flags.push(ev.event.flags & MarketEvent::FLAG_BATCH_MORE != 0);
        }
        // Timestamp 0 (unknown) never batches; the last event closes its batch.
        assert_eq!(flags, [true, true, false, false, false, false, true, false]);
    }
}
