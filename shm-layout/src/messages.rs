//! Message layouts that travel through shared memory.
//!
//! Every message is `#[repr(C)]`, derives bytemuck's `Pod`/`Zeroable` (no implicit padding, no
//! pointers, no atomics), has explicit `_pad` fields, and has its size asserted at compile time.
//! Multi-byte fields are little-endian (the only byte order this build supports, see
//! `docs/shm-layout.md`). Enums travel as integers and are decoded with a checked `TryFrom<u8>`
//! that rejects unknown values with [`UnknownEnumValue`].
//!
//! Time: every `*_ts_ns` field named `recv`, `read`, `decision`, `publish` or `local` is
//! nanoseconds of `CLOCK_MONOTONIC` (one clock that every process on the host shares, see
//! [`crate::clock::now_ns`]). `exch_ts_ns` and `expiry_ns` are nanoseconds since the Unix epoch
//! (UTC), as the exchange reports them.

use bytemuck::{Pod, Zeroable};
use core::mem::{align_of, size_of};

/// An enum field held a value this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown {field} value {value}")]
pub struct UnknownEnumValue {
    /// Which field (for example `MarketEvent.kind`).
    pub field: &'static str,
    /// The raw value found.
    pub value: u8,
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $var:ident = $val:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $var = $val),+ }

        impl TryFrom<u8> for $name {
            type Error = UnknownEnumValue;
            #[inline]
            fn try_from(v: u8) -> Result<Self, UnknownEnumValue> {
                match v {
                    $($val => Ok(Self::$var),)+
                    _ => Err(UnknownEnumValue { field: $field, value: v }),
                }
            }
        }

        impl From<$name> for u8 {
            #[inline]
            fn from(v: $name) -> u8 { v as u8 }
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// Lower-case name, for logs and tools.
            pub const fn name(self) -> &'static str {
                match self { $(Self::$var => stringify!($var)),+ }
            }
        }
    };
}

wire_enum!(
    /// What a [`MarketEvent`] carries; decides the meaning of its payload `v`.
    MarketEventKind, "MarketEvent.kind" {
        /// Top of book: `v = [bid_px, bid_qty, ask_px, ask_qty]`.
        Quote = 1,
        /// Option mark: `v = [mark_px, mark_iv, underlying_px, 0]`; `mark_iv` is a fraction
        /// (0.7687 for 76.87%), `mark_px` in the option's premium currency (coin for inverse),
        /// `underlying_px` the forward (or index) for the option's expiry, in quote currency.
        OptionMark = 2,
        /// Underlying index or per-expiry forward price: `v = [price, 0, 0, 0]`.
        UnderlyingPrice = 3,
        /// A trade printed on the venue: `v = [price, qty, 0, 0]`, aggressor in `side`.
        Trade = 4,
    }
);

wire_enum!(
    /// Buy or sell.
    Side, "side" {
        /// Buy.
        Buy = 1,
        /// Sell.
        Sell = 2,
    }
);

impl Side {
    /// +1.0 for buy, -1.0 for sell.
    #[inline]
    pub const fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }
    /// The other side.
    #[inline]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

wire_enum!(
    /// Order type of a [`HedgeOrder`].
    OrderType, "HedgeOrder.order_type" {
        /// Limit order at `limit_px`.
        Limit = 1,
        /// Market order (`limit_px` ignored; the gateway may still apply a collar).
        Market = 2,
    }
);

wire_enum!(
    /// Time in force of a [`HedgeOrder`].
    TimeInForce, "HedgeOrder.tif" {
        /// Immediate or cancel: what the hedger sends.
        Ioc = 1,
        /// Good till cancelled.
        Gtc = 2,
        /// Fill or kill.
        Fok = 3,
    }
);

wire_enum!(
    /// What a [`HedgeOrder`] asks the gateway to do.
    OrderAction, "HedgeOrder.action" {
        /// Send a new order.
        New = 1,
        /// Cancel the order `client_order_id`.
        Cancel = 2,
    }
);

wire_enum!(
    /// What an [`ExecEvent`] reports.
    ExecKind, "ExecEvent.kind" {
        /// The venue accepted the order (not terminal).
        Ack = 1,
        /// A fill that completes the order (terminal, `leaves_qty == 0`).
        Fill = 2,
        /// A fill that leaves quantity open (not terminal).
        PartialFill = 3,
        /// The open quantity was cancelled, e.g. an IOC remainder (terminal).
        Cancelled = 4,
        /// The order was rejected; reason in `reject_reason` (terminal).
        Rejected = 5,
        /// A client traded an option with the market maker: changes option inventory.
        /// `side` is the market maker's side; `client_order_id` is 0.
        OptionTrade = 6,
    }
);

impl ExecKind {
    /// Whether this report ends the order's life (filled, cancelled or rejected).
    #[inline]
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecKind::Fill | ExecKind::Cancelled | ExecKind::Rejected
        )
    }
}

wire_enum!(
    /// Who provided liquidity in a fill.
    Liquidity, "ExecEvent.liquidity" {
        /// Not a fill.
        None = 0,
        /// We rested and were hit.
        Maker = 1,
        /// We crossed the spread.
        Taker = 2,
    }
);

wire_enum!(
    /// Why an order was rejected.
    RejectReason, "ExecEvent.reject_reason" {
        /// Not a reject.
        None = 0,
        /// Price not a multiple of the tick size.
        BadTick = 1,
        /// Quantity not a multiple of the lot size.
        BadLot = 2,
        /// Quantity below the instrument's minimum.
        BelowMinSize = 3,
        /// Price outside the venue's band around mid.
        PriceOutsideBand = 4,
        /// Instrument not known to the venue.
        UnknownInstrument = 5,
        /// Venue rate limit hit.
        RateLimit = 6,
        /// No liquidity / empty book on the venue.
        NoLiquidity = 7,
        /// Malformed order (bad enum, NaN, non-positive quantity).
        InvalidOrder = 8,
        /// Venue (or FIX counterparty) rejected with its own text; see gateway logs.
        VenueOther = 9,
        /// Gateway lost the order across a crash and reports it cancelled-by-recovery.
        GatewayRecovery = 10,
        /// Duplicate client order id.
        DuplicateOrder = 11,
        /// The venue session is down.
        NotConnected = 12,
    }
);

wire_enum!(
    /// Instrument kind in an [`InstrumentDef`].
    InstrumentKind, "InstrumentDef.kind" {
        /// European option.
        Option = 1,
        /// Dated future.
        Future = 2,
        /// Perpetual swap.
        Perpetual = 3,
        /// Spot.
        Spot = 4,
        /// Index or synthetic forward (not tradable); the underlying of options.
        Index = 5,
    }
);

wire_enum!(
    /// Call or put; `None` for non-options.
    OptionType, "InstrumentDef.option_type" {
        /// Not an option.
        None = 0,
        /// Call.
        Call = 1,
        /// Put.
        Put = 2,
    }
);

wire_enum!(
    /// How an instrument settles.
    Settlement, "InstrumentDef.settlement" {
        /// Premium and PnL in the quote currency (USD).
        Linear = 1,
        /// Premium and PnL in the coin (Deribit BTC and ETH options, inverse perpetuals).
        Inverse = 2,
    }
);

/// One normalized market data event: 64 bytes, one cache line.
///
/// The meaning of the payload `v` depends on `kind` (see [`MarketEventKind`]); use the typed
/// constructors and accessors rather than indexing `v`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct MarketEvent {
    /// Feed sequence number, assigned by the feed handler, starting at 1, +1 per event.
    pub seq: u64,
    /// Exchange timestamp, ns since the Unix epoch (0 if the source has none).
    pub exch_ts_ns: u64,
    /// When the feed handler received (for replay: published) the event, monotonic ns.
    pub recv_ts_ns: u64,
    /// Instrument id (index into the instruments segment).
    pub instrument_id: u32,
    /// [`MarketEventKind`] as u8.
    pub kind: u8,
    /// Trade aggressor [`Side`] as u8 (0 when not a trade).
    pub side: u8,
    /// Bit flags: [`MarketEvent::FLAG_STRESS`] (synthetic stress episode),
    /// [`MarketEvent::FLAG_BATCH_MORE`] (more events of the same snapshot follow),
    /// [`MarketEvent::FLAG_SIZE_UNKNOWN`] (quote sizes unknown), [`MarketEvent::FLAG_FUNDING`]
    /// and [`MarketEvent::FLAG_LAST_PRICE`] (derivative_ticker prices).
    pub flags: u16,
    /// Payload; meaning depends on `kind`.
    pub v: [f64; 4],
}
const _: () = assert!(size_of::<MarketEvent>() == 64);
const _: () = assert!(align_of::<MarketEvent>() == 8);

impl MarketEvent {
    /// Set on events generated during a scheduled synthetic stress episode (informational).
    pub const FLAG_STRESS: u16 = 1;
    /// More events of the same source snapshot follow this one (same exchange timestamp, e.g.
    /// the hundreds of rows of one options-chain snapshot). A reader that decides on the
    /// market state (the hedger) applies an event with this flag and decides only at the
    /// first event without it, so it never acts on a half-applied snapshot. The feed handler
    /// sets it live and the replay sees the same flags (`feed_handler::source::Batched`).
    pub const FLAG_BATCH_MORE: u16 = 2;
    /// On a quote: the source gave prices without sizes (Deribit's book summary, Tardis
    /// `options_chain` rows with empty `bid_amount`/`ask_amount`). `bid_qty`/`ask_qty` are 0 and
    /// mean "unknown", not "empty": a consumer must not read it as liquidity of any depth (the
    /// simulator fills it only up to a configured default size; the cost model prices the whole
    /// trade through the spread). Mirrored in [`LastValue::QUOTE_SIZE_UNKNOWN`].
    pub const FLAG_SIZE_UNKNOWN: u16 = 4;
    /// On an underlying price from a `derivative_ticker` row: `v[1]` is a funding rate, a
    /// fraction per 8 hours (0.0001 = 0.01% per 8 h), paid by longs to shorts when positive.
    pub const FLAG_FUNDING: u16 = 8;
    /// On an underlying price from a `derivative_ticker` row: `v[0]` is the last trade price
    /// (the row had no mark price), not the venue's mark.
    pub const FLAG_LAST_PRICE: u16 = 16;

    fn base(instrument_id: u32, kind: MarketEventKind, exch_ts_ns: u64, recv_ts_ns: u64) -> Self {
        MarketEvent {
            seq: 0,
            exch_ts_ns,
            recv_ts_ns,
            instrument_id,
            kind: kind as u8,
            side: 0,
            flags: 0,
            v: [0.0; 4],
        }
    }

    /// A top-of-book quote.
    pub fn quote(
        instrument_id: u32,
        exch_ts_ns: u64,
        recv_ts_ns: u64,
        bid_px: f64,
        bid_qty: f64,
        ask_px: f64,
        ask_qty: f64,
    ) -> Self {
        let mut e = Self::base(
            instrument_id,
            MarketEventKind::Quote,
            exch_ts_ns,
            recv_ts_ns,
        );
        e.v = [bid_px, bid_qty, ask_px, ask_qty];
        e
    }

    /// An option mark; `mark_iv` as a fraction (0.7687 for 76.87%).
    pub fn option_mark(
        instrument_id: u32,
        exch_ts_ns: u64,
        recv_ts_ns: u64,
        mark_px: f64,
        mark_iv: f64,
        underlying_px: f64,
    ) -> Self {
        let mut e = Self::base(
            instrument_id,
            MarketEventKind::OptionMark,
            exch_ts_ns,
            recv_ts_ns,
        );
        e.v = [mark_px, mark_iv, underlying_px, 0.0];
        e
    }

    /// An index or forward price.
    pub fn underlying_price(
        instrument_id: u32,
        exch_ts_ns: u64,
        recv_ts_ns: u64,
        price: f64,
    ) -> Self {
        let mut e = Self::base(
            instrument_id,
            MarketEventKind::UnderlyingPrice,
            exch_ts_ns,
            recv_ts_ns,
        );
        e.v = [price, 0.0, 0.0, 0.0];
        e
    }

    /// A trade print.
    pub fn trade(
        instrument_id: u32,
        exch_ts_ns: u64,
        recv_ts_ns: u64,
        price: f64,
        qty: f64,
        aggressor: Side,
    ) -> Self {
        let mut e = Self::base(
            instrument_id,
            MarketEventKind::Trade,
            exch_ts_ns,
            recv_ts_ns,
        );
        e.side = aggressor as u8;
        e.v = [price, qty, 0.0, 0.0];
        e
    }

    /// The decoded kind, or an error for a value this build does not know.
    #[inline]
    pub fn kind(&self) -> Result<MarketEventKind, UnknownEnumValue> {
        MarketEventKind::try_from(self.kind)
    }

    /// `(bid_px, bid_qty, ask_px, ask_qty)` of a quote.
    #[inline]
    pub fn as_quote(&self) -> Option<(f64, f64, f64, f64)> {
        (self.kind == MarketEventKind::Quote as u8)
            .then_some((self.v[0], self.v[1], self.v[2], self.v[3]))
    }

    /// `(mark_px, mark_iv, underlying_px)` of an option mark.
    #[inline]
    pub fn as_option_mark(&self) -> Option<(f64, f64, f64)> {
        (self.kind == MarketEventKind::OptionMark as u8)
            .then_some((self.v[0], self.v[1], self.v[2]))
    }

    /// Price of an index/forward update (`v[0]`; the ticker fields are in
    /// [`MarketEvent::as_ticker`]).
    #[inline]
    pub fn as_underlying_price(&self) -> Option<f64> {
        (self.kind == MarketEventKind::UnderlyingPrice as u8).then_some(self.v[0])
    }

    /// `(funding_rate_per_8h, index_px, open_interest)` of an underlying price that came from a
    /// `derivative_ticker` row: the funding rate only with [`MarketEvent::FLAG_FUNDING`], the
    /// index price and open interest (contracts) only when non-zero.
    #[inline]
    pub fn as_ticker(&self) -> Option<(Option<f64>, Option<f64>, Option<f64>)> {
        (self.kind == MarketEventKind::UnderlyingPrice as u8).then(|| {
            let nz = |x: f64| (x > 0.0).then_some(x);
            (
                (self.flags & Self::FLAG_FUNDING != 0).then_some(self.v[1]),
                nz(self.v[2]),
                nz(self.v[3]),
            )
        })
    }

    /// `(price, qty, aggressor)` of a trade.
    #[inline]
    pub fn as_trade(&self) -> Option<(f64, f64, Option<Side>)> {
        (self.kind == MarketEventKind::Trade as u8)
            .then(|| (self.v[0], self.v[1], Side::try_from(self.side).ok()))
    }

    /// Whether the event is well formed: known kind, finite payload, positive prices,
    /// non-negative sizes, bid below ask for quotes, and a positive vol for marks.
    /// Publishers must never publish an event for which this is `false`.
    ///
    /// Written for the hot path (every market event): each field's lower bound is one
    /// comparison, false for NaN (`x > 0.0`, `x >= 0.0`, which admits -0.0 as before), and
    /// the fields' finiteness one comparison of their maximum (`max_or_nan`, a `maxsd`)
    /// with infinity. Comparisons are joined by `&`, not `&&`: cheaper to evaluate than to
    /// branch over. (The obvious `x >= 0.0 && x < INF` per field is turned by LLVM into an
    /// integer classification of the bits, about 15 instructions a field.)
    #[inline]
    pub fn is_valid(&self) -> bool {
        const INF: f64 = f64::INFINITY;
        let [a, b, c, d] = self.v;
        match self.kind {
            // [bid, bid_qty, ask, ask_qty]: 0 < bid < ask, so ask bounds both prices.
            1 => {
                (a > 0.0)
                    & (a < c)
                    & (b >= 0.0)
                    & (d >= 0.0)
                    & (max_or_nan(max_or_nan(c, b), d) < INF)
            }
            // [mark, iv, underlying, _]
            2 => (a >= 0.0) & (b > 0.0) & (c > 0.0) & (max_or_nan(max_or_nan(a, b), c) < INF),
            // [price, funding, index, open interest]: funding has no lower bound, so its
            // NaN must reach the maximum: it goes last (see `max_or_nan`).
            3 => {
                let m = max_or_nan(max_or_nan(a, max_or_nan(c, d)), b.abs());
                (a > 0.0) & (c >= 0.0) & (d >= 0.0) & (m < INF)
            }
            // [price, qty, _, _]
            4 => (a > 0.0) & (b > 0.0) & (max_or_nan(a, b) < INF),
            _ => false,
        }
    }
}

/// `x` if `x > y`, else `y` (one `maxsd`): NaN if `y` is NaN, `y` if only `x` is. Not
/// `f64::max`, which ignores NaN at the cost of extra instructions.
#[inline(always)]
fn max_or_nan(x: f64, y: f64) -> f64 {
    if x > y {
        x
    } else {
        y
    }
}

const _: () = assert!(
    MarketEventKind::Quote as u8 == 1
        && MarketEventKind::OptionMark as u8 == 2
        && MarketEventKind::UnderlyingPrice as u8 == 3
        && MarketEventKind::Trade as u8 == 4
        && MarketEventKind::ALL.len() == 4,
    "MarketEvent::is_valid matches on these wire values"
);

#[cfg(test)]
mod is_valid_equivalence {
    use super::*;
    use proptest::prelude::*;

    /// `is_valid` before it was rewritten with NaN-false comparisons (the reference).
    fn is_valid_reference(e: &MarketEvent) -> bool {
        let ok_px = |p: f64| p.is_finite() && p > 0.0;
        let ok_qty = |q: f64| q.is_finite() && q >= 0.0;
        match e.kind() {
            Ok(MarketEventKind::Quote) => {
                let [b, bq, a, aq] = e.v;
                ok_px(b) && ok_px(a) && ok_qty(bq) && ok_qty(aq) && b < a
            }
            Ok(MarketEventKind::OptionMark) => {
                let [m, iv, u, _] = e.v;
                m.is_finite() && m >= 0.0 && iv.is_finite() && iv > 0.0 && ok_px(u)
            }
            Ok(MarketEventKind::UnderlyingPrice) => {
                let [p, funding, index, oi] = e.v;
                ok_px(p) && funding.is_finite() && ok_qty(index) && ok_qty(oi)
            }
            Ok(MarketEventKind::Trade) => ok_px(e.v[0]) && ok_qty(e.v[1]) && e.v[1] > 0.0,
            Err(_) => false,
        }
    }

    /// Any bit pattern, or one of the edges: NaNs (quiet, signalling, negative), infinities,
    /// signed zeros, subnormals, the smallest normal, the largest finite, ordinary values.
    fn field() -> impl Strategy<Value = f64> {
        prop_oneof![
            3 => any::<u64>().prop_map(f64::from_bits),
            4 => prop::sample::select(vec![
                f64::NAN,
                -f64::NAN,
                f64::from_bits(0x7ff0_0000_0000_0001),
                f64::from_bits(0xfff8_0000_0000_0001),
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
                -0.0,
                f64::from_bits(1),
                -f64::from_bits(1),
                f64::from_bits(0x000f_ffff_ffff_ffff),
                f64::MIN_POSITIVE,
                f64::MAX,
                f64::MIN,
                1.0,
                -1.0,
                100.0,
                101.0,
            ]),
            3 => -1.0e6..1.0e6f64,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn is_valid_decides_as_the_reference(
            kind in prop_oneof![8 => 0u8..=5, 1 => any::<u8>()],
            v in [field(), field(), field(), field()],
            equal_prices in any::<bool>(),
        ) {
            let mut e = MarketEvent::zeroed();
            e.kind = kind;
            e.v = v;
            if equal_prices {
                e.v[2] = e.v[0]; // bid == ask, and NaN == NaN bit patterns
            }
            prop_assert_eq!(e.is_valid(), is_valid_reference(&e), "{:?}", e);
        }
    }

    #[test]
    fn the_reference_rejects_what_it_should() {
        // Guards the property test against a reference that accepts everything.
        let q = MarketEvent::quote(1, 0, 0, 100.0, 1.0, 101.0, 1.0);
        assert!(is_valid_reference(&q));
        let mut crossed = q;
        crossed.v[2] = 99.0;
        assert!(!is_valid_reference(&crossed) && !crossed.is_valid());
    }
}

/// A hedge order from the hedger to the gateway: 64 bytes, one cache line.
///
/// Carries one monotonic timestamp per pipeline stage so that tick-to-order latency can be
/// measured across processes.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct HedgeOrder {
    /// Client order id: unique and increasing per hedger across restarts.
    pub client_order_id: u64,
    /// Hedge instrument id.
    pub instrument_id: u32,
    /// [`Side`] as u8.
    pub side: u8,
    /// [`OrderType`] as u8.
    pub order_type: u8,
    /// [`TimeInForce`] as u8.
    pub tif: u8,
    /// [`OrderAction`] as u8.
    pub action: u8,
    /// Quantity in the instrument's own quantity units (contracts), a multiple of its lot size.
    pub qty: f64,
    /// Limit price in the instrument's quote currency.
    pub limit_px: f64,
    /// `recv_ts_ns` of the market event that triggered the order (monotonic ns).
    pub feed_recv_ts_ns: u64,
    /// When the hedger read that event from the ring (monotonic ns).
    pub hedger_read_ts_ns: u64,
    /// When the hedger decided to send (monotonic ns).
    pub decision_ts_ns: u64,
    /// When the hedger published into the orders ring (monotonic ns).
    pub publish_ts_ns: u64,
}
const _: () = assert!(size_of::<HedgeOrder>() == 64);

impl HedgeOrder {
    /// Decoded side.
    #[inline]
    pub fn side(&self) -> Result<Side, UnknownEnumValue> {
        Side::try_from(self.side)
    }
    /// Decoded order type.
    #[inline]
    pub fn order_type(&self) -> Result<OrderType, UnknownEnumValue> {
        OrderType::try_from(self.order_type)
    }
    /// Decoded time in force.
    #[inline]
    pub fn tif(&self) -> Result<TimeInForce, UnknownEnumValue> {
        TimeInForce::try_from(self.tif)
    }
    /// Decoded action.
    #[inline]
    pub fn action(&self) -> Result<OrderAction, UnknownEnumValue> {
        OrderAction::try_from(self.action)
    }
}

/// An execution report or option trade from the gateway to the hedger: 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct ExecEvent {
    /// Unique, strictly increasing across gateway restarts. The hedger dedups on it.
    pub exec_id: u64,
    /// The order this report belongs to (0 for [`ExecKind::OptionTrade`]).
    pub client_order_id: u64,
    /// Instrument traded.
    pub instrument_id: u32,
    /// [`ExecKind`] as u8.
    pub kind: u8,
    /// [`Side`] as u8: the order's side, or the market maker's side of an option trade.
    pub side: u8,
    /// [`Liquidity`] as u8.
    pub liquidity: u8,
    /// [`RejectReason`] as u8 (0 unless rejected).
    pub reject_reason: u8,
    /// Quantity of this fill or option trade, in the instrument's quantity units (contracts);
    /// 0 for acks, cancels and rejects.
    pub qty: f64,
    /// Price of this fill or option trade (option: premium per contract in its premium currency).
    pub price: f64,
    /// Fee charged for this fill, in the instrument's settlement currency (negative = rebate).
    pub fee: f64,
    /// Quantity still open after this report (0 for terminal reports).
    pub leaves_qty: f64,
    /// When the gateway published the report (monotonic ns).
    pub ts_ns: u64,
}
const _: () = assert!(size_of::<ExecEvent>() == 64);

impl ExecEvent {
    /// Decoded kind.
    #[inline]
    pub fn kind(&self) -> Result<ExecKind, UnknownEnumValue> {
        ExecKind::try_from(self.kind)
    }
    /// Decoded side.
    #[inline]
    pub fn side(&self) -> Result<Side, UnknownEnumValue> {
        Side::try_from(self.side)
    }
    /// Decoded liquidity flag.
    #[inline]
    pub fn liquidity(&self) -> Result<Liquidity, UnknownEnumValue> {
        Liquidity::try_from(self.liquidity)
    }
    /// Decoded reject reason.
    #[inline]
    pub fn reject_reason(&self) -> Result<RejectReason, UnknownEnumValue> {
        RejectReason::try_from(self.reject_reason)
    }
}

/// Length of the NUL-padded ASCII symbol in an [`InstrumentDef`].
pub const SYMBOL_LEN: usize = 48;

/// Static definition of one instrument: 128 bytes (two cache lines).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct InstrumentDef {
    /// Instrument id; equals its slot index in the instruments segment and the last-value table.
    pub id: u32,
    /// [`InstrumentKind`] as u8.
    pub kind: u8,
    /// [`OptionType`] as u8.
    pub option_type: u8,
    /// [`Settlement`] as u8.
    pub settlement: u8,
    /// Explicit padding, zero.
    pub _pad0: u8,
    /// The underlying (an [`InstrumentKind::Index`] instrument such as "BTC"); for an index,
    /// its own id.
    pub underlying_id: u32,
    /// For options: the instrument whose price is this expiry's forward (Deribit's
    /// SYN.BTC-22MAY20), or `u32::MAX` to use the underlying's price. Otherwise `u32::MAX`.
    pub forward_id: u32,
    /// Strike in quote currency (0 for non-options).
    pub strike: f64,
    /// Expiry, ns since the Unix epoch (0 for perpetuals, spot and index).
    pub expiry_ns: u64,
    /// Underlying units per contract (1 for a Deribit BTC option; 10 USD for BTC-PERPETUAL is
    /// expressed as `contract_multiplier = 10` with `Settlement::Inverse`, meaning 10 USD of
    /// face value per contract).
    pub contract_multiplier: f64,
    /// Minimum price increment.
    pub tick_size: f64,
    /// Quantity increment, in contracts.
    pub lot_size: f64,
    /// Minimum order quantity, in contracts.
    pub min_qty: f64,
    /// NUL-padded ASCII symbol, e.g. `BTC-16JAN26-90000-C`.
    pub symbol: [u8; SYMBOL_LEN],
    /// Reserved, zero.
    pub _reserved: [u8; 16],
}
const _: () = assert!(size_of::<InstrumentDef>() == 128);

/// `forward_id` value meaning "no separate forward: use the underlying's price".
pub const NO_FORWARD: u32 = u32::MAX;

impl InstrumentDef {
    /// The quantity increment, contracts: `lot_size`, or one contract when it is not set
    /// (zero, negative or NaN).
    #[inline]
    pub fn lot(&self) -> f64 {
        if self.lot_size > 0.0 {
            self.lot_size
        } else {
            1.0
        }
    }

    /// A linear instrument (settled in the quote currency, multiplier 1, no separate
    /// forward): `id` of `kind` on the underlying `underlying_id`, price increments of
    /// `tick_size` (quote currency), quantities in `lot_size` steps (contracts) from one lot
    /// up; no symbol, no expiry.
    pub fn linear(
        id: u32,
        kind: InstrumentKind,
        underlying_id: u32,
        tick_size: f64,
        lot_size: f64,
    ) -> InstrumentDef {
        let mut d = InstrumentDef::zeroed();
        d.id = id;
        d.kind = kind as u8;
        d.settlement = Settlement::Linear as u8;
        d.underlying_id = underlying_id;
        d.forward_id = NO_FORWARD;
        d.contract_multiplier = 1.0;
        d.tick_size = tick_size;
        d.lot_size = lot_size;
        d.min_qty = lot_size;
        d
    }

    /// Contract multiplier: `contract_multiplier`, or 1 when the definition leaves it 0 (the
    /// one place this default is decided).
    #[inline]
    pub fn multiplier(&self) -> f64 {
        if self.contract_multiplier > 0.0 {
            self.contract_multiplier
        } else {
            1.0
        }
    }

    /// The symbol as a string (up to the first NUL; lossy on non-UTF-8 bytes is avoided by
    /// returning `"?"`).
    pub fn symbol(&self) -> &str {
        let end = self
            .symbol
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SYMBOL_LEN);
        core::str::from_utf8(&self.symbol[..end]).unwrap_or("?")
    }

    /// Writes `s` into the symbol field; returns `false` (and writes nothing) if it does not
    /// fit in [`SYMBOL_LEN`] bytes or is not ASCII.
    pub fn set_symbol(&mut self, s: &str) -> bool {
        if s.len() > SYMBOL_LEN || !s.is_ascii() {
            return false;
        }
        self.symbol = [0; SYMBOL_LEN];
        self.symbol[..s.len()].copy_from_slice(s.as_bytes());
        true
    }
    /// Decoded kind.
    #[inline]
    pub fn kind(&self) -> Result<InstrumentKind, UnknownEnumValue> {
        InstrumentKind::try_from(self.kind)
    }
    /// Decoded option type.
    #[inline]
    pub fn option_type(&self) -> Result<OptionType, UnknownEnumValue> {
        OptionType::try_from(self.option_type)
    }
    /// Decoded settlement.
    #[inline]
    pub fn settlement(&self) -> Result<Settlement, UnknownEnumValue> {
        Settlement::try_from(self.settlement)
    }
}

/// Number of depth levels per side kept in a [`LastValue`].
pub const DEPTH_LEVELS: usize = 8;

/// The latest state of one instrument, as kept in the last-value table: 384 bytes (6 lines).
///
/// A reader that was lapped on the market-data ring, or starts late, rebuilds its state from
/// these entries. `valid` bits say which groups have been written at least once.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct LastValue {
    /// `seq` of the last market event applied to this entry.
    pub last_seq: u64,
    /// Exchange time of the last update, ns since the Unix epoch.
    pub exch_ts_ns: u64,
    /// Receive time of the last update, monotonic ns.
    pub recv_ts_ns: u64,
    /// Instrument id.
    pub instrument_id: u32,
    /// Bit set of `LastValue::HAS_*`.
    pub valid: u32,
    /// Best bid price.
    pub bid_px: f64,
    /// Best bid size.
    pub bid_qty: f64,
    /// Best ask price.
    pub ask_px: f64,
    /// Best ask size.
    pub ask_qty: f64,
    /// Option mark price (premium currency).
    pub mark_px: f64,
    /// Option mark implied vol, fraction.
    pub mark_iv: f64,
    /// Underlying/forward price that came with the mark.
    pub mark_underlying_px: f64,
    /// Last index/forward price ([`MarketEventKind::UnderlyingPrice`]).
    pub price: f64,
    /// Last trade price.
    pub last_trade_px: f64,
    /// Last trade size.
    pub last_trade_qty: f64,
    /// Number of valid depth levels in `bid_depth` (0..=DEPTH_LEVELS).
    pub bid_levels: u32,
    /// Number of valid depth levels in `ask_depth`.
    pub ask_levels: u32,
    /// Bid depth, best first: `[price, qty]` pairs.
    pub bid_depth: [[f64; 2]; DEPTH_LEVELS],
    /// Ask depth, best first: `[price, qty]` pairs.
    pub ask_depth: [[f64; 2]; DEPTH_LEVELS],
    /// Reserved, zero.
    pub _reserved: [u8; 8],
}
const _: () = assert!(size_of::<LastValue>() == 384);

impl LastValue {
    /// Top of book (`bid_*`, `ask_*`) is set.
    pub const HAS_QUOTE: u32 = 1;
    /// Mark (`mark_*`) is set.
    pub const HAS_MARK: u32 = 2;
    /// Index/forward `price` is set.
    pub const HAS_PRICE: u32 = 4;
    /// Last trade is set.
    pub const HAS_TRADE: u32 = 8;
    /// Depth (`*_depth`, `*_levels`) is set.
    pub const HAS_DEPTH: u32 = 16;
    /// The top of book came from a quote with [`MarketEvent::FLAG_SIZE_UNKNOWN`]: `bid_qty` and
    /// `ask_qty` are unknown, not zero. Set and cleared by every quote.
    pub const QUOTE_SIZE_UNKNOWN: u32 = 32;

    /// `valid` after a quote event: `HAS_QUOTE` set, `QUOTE_SIZE_UNKNOWN` as the quote says.
    #[inline]
    pub const fn valid_after_quote(valid: u32, flags: u16) -> u32 {
        let v = (valid | Self::HAS_QUOTE) & !Self::QUOTE_SIZE_UNKNOWN;
        if flags & MarketEvent::FLAG_SIZE_UNKNOWN != 0 {
            v | Self::QUOTE_SIZE_UNKNOWN
        } else {
            v
        }
    }

    /// Whether the top of book's sizes are known (a quote without
    /// [`MarketEvent::FLAG_SIZE_UNKNOWN`]).
    #[inline]
    pub const fn quote_size_known(&self) -> bool {
        self.valid & Self::QUOTE_SIZE_UNKNOWN == 0
    }

    /// Applies a (valid) market event to this entry. Depth is not touched; the publisher
    /// sets it separately when its source has depth.
    pub fn apply(&mut self, e: &MarketEvent) {
        self.last_seq = e.seq;
        self.exch_ts_ns = e.exch_ts_ns;
        self.recv_ts_ns = e.recv_ts_ns;
        self.instrument_id = e.instrument_id;
        match e.kind() {
            Ok(MarketEventKind::Quote) => {
                [self.bid_px, self.bid_qty, self.ask_px, self.ask_qty] = e.v;
                self.valid = Self::valid_after_quote(self.valid, e.flags);
            }
            Ok(MarketEventKind::OptionMark) => {
                self.mark_px = e.v[0];
                self.mark_iv = e.v[1];
                self.mark_underlying_px = e.v[2];
                self.valid |= Self::HAS_MARK;
            }
            Ok(MarketEventKind::UnderlyingPrice) => {
                self.price = e.v[0];
                self.valid |= Self::HAS_PRICE;
            }
            Ok(MarketEventKind::Trade) => {
                self.last_trade_px = e.v[0];
                self.last_trade_qty = e.v[1];
                self.valid |= Self::HAS_TRADE;
            }
            Err(_) => {}
        }
    }

    /// Mid of the top of book, if a quote is present.
    pub fn mid(&self) -> Option<f64> {
        (self.valid & Self::HAS_QUOTE != 0).then_some(0.5 * (self.bid_px + self.ask_px))
    }
}

/// Layout facts of one message type, folded into the segment fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct LayoutFact {
    /// Type name.
    pub name: &'static str,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// `(field name, offset)` for every field.
    pub fields: &'static [(&'static str, usize)],
}

macro_rules! layout_fact {
    ($t:ty, [$($f:ident),+ $(,)?]) => {
        LayoutFact {
            name: stringify!($t),
            size: size_of::<$t>(),
            align: align_of::<$t>(),
            fields: &[$((stringify!($f), core::mem::offset_of!($t, $f))),+],
        }
    };
}

/// Every message layout in this build; the segment fingerprint is a hash of these.
pub const LAYOUTS: &[LayoutFact] = &[
    layout_fact!(
        MarketEvent,
        [
            seq,
            exch_ts_ns,
            recv_ts_ns,
            instrument_id,
            kind,
            side,
            flags,
            v
        ]
    ),
    layout_fact!(
        HedgeOrder,
        [
            client_order_id,
            instrument_id,
            side,
            order_type,
            tif,
            action,
            qty,
            limit_px,
            feed_recv_ts_ns,
            hedger_read_ts_ns,
            decision_ts_ns,
            publish_ts_ns
        ]
    ),
    layout_fact!(
        ExecEvent,
        [
            exec_id,
            client_order_id,
            instrument_id,
            kind,
            side,
            liquidity,
            reject_reason,
            qty,
            price,
            fee,
            leaves_qty,
            ts_ns
        ]
    ),
    layout_fact!(
        InstrumentDef,
        [
            id,
            kind,
            option_type,
            settlement,
            _pad0,
            underlying_id,
            forward_id,
            strike,
            expiry_ns,
            contract_multiplier,
            tick_size,
            lot_size,
            min_qty,
            symbol,
            _reserved
        ]
    ),
    layout_fact!(
        LastValue,
        [
            last_seq,
            exch_ts_ns,
            recv_ts_ns,
            instrument_id,
            valid,
            bid_px,
            bid_qty,
            ask_px,
            ask_qty,
            mark_px,
            mark_iv,
            mark_underlying_px,
            price,
            last_trade_px,
            last_trade_qty,
            bid_levels,
            ask_levels,
            bid_depth,
            ask_depth,
            _reserved
        ]
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_reject_unknown_values() {
        for &k in MarketEventKind::ALL {
            assert_eq!(MarketEventKind::try_from(k as u8), Ok(k));
        }
        assert!(MarketEventKind::try_from(0).is_err());
        assert!(MarketEventKind::try_from(200).is_err());
        assert!(ExecKind::try_from(7).is_err());
        assert!(RejectReason::try_from(99).is_err());
    }

    #[test]
    fn invalid_market_events_are_detected() {
        assert!(MarketEvent::quote(1, 0, 0, 100.0, 1.0, 101.0, 1.0).is_valid());
        assert!(
            !MarketEvent::quote(1, 0, 0, 101.0, 1.0, 100.0, 1.0).is_valid(),
            "crossed"
        );
        assert!(!MarketEvent::quote(1, 0, 0, f64::NAN, 1.0, 100.0, 1.0).is_valid());
        assert!(!MarketEvent::underlying_price(1, 0, 0, -5.0).is_valid());
        assert!(!MarketEvent::option_mark(1, 0, 0, 0.01, 0.0, 9000.0).is_valid());
        let mut e = MarketEvent::underlying_price(1, 0, 0, 5.0);
        e.kind = 42;
        assert!(!e.is_valid());
    }

    #[test]
    fn symbol_round_trips() {
        let mut d = InstrumentDef::zeroed();
        assert!(d.set_symbol("BTC-16JAN26-90000-C"));
        assert_eq!(d.symbol(), "BTC-16JAN26-90000-C");
        assert!(!d.set_symbol(&"X".repeat(49)));
    }
}
