//! Partial rows: rows that were used, but not whole.
//!
//! A recorded row carries several independent parts (an options_chain row: the underlying
//! price, the mark with its implied vol, the bid, the ask, their sizes, the exchange's greeks).
//! A source publishes every valid part of a row and counts each part it dropped or degraded
//! here, by [`PartialReason`]; the row itself counts as rejected
//! ([`crate::source::RejectReason`]) only when no part of it could be used or the row as a whole
//! is unusable (wrong column count, bad timestamp, unknown symbol).

use crate::source::Counts;

crate::source::reasons! {
    /// Why a part of a used row was dropped or degraded. Every reason is counted.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum PartialReason {
        /// A quote was published with a price and no size (empty `bid_amount`/`ask_amount`): it
        /// carries `MarketEvent::FLAG_SIZE_UNKNOWN`.
        QuoteSizeUnknown = 0 => "quote_size_unknown",
        /// A size was present but not a finite non-negative number: the quote was published as
        /// size-unknown.
        QuoteSizeInvalid = 1 => "quote_size_invalid",
        /// No quote: the bid or the ask is empty (or 0, Deribit's "no order").
        QuoteOneSided = 2 => "quote_one_sided",
        /// No quote: the bid is at or above the ask.
        QuoteCrossed = 3 => "quote_crossed",
        /// No quote: a bid or ask price is unparsable, NaN, infinite or negative.
        QuotePriceInvalid = 4 => "quote_price_invalid",
        /// No mark: `mark_price` or `mark_iv` is empty.
        MarkMissing = 5 => "mark_missing",
        /// No mark: `mark_price` or `mark_iv` is unparsable, non-finite, negative, or the vol zero.
        MarkInvalid = 6 => "mark_invalid",
        /// No underlying price (and so no mark, which needs it: counted as `mark_no_underlying`
        /// when its own fields were valid): `underlying_price` is empty.
        UnderlyingMissing = 7 => "underlying_missing",
        /// No underlying price (and so no mark): `underlying_price` is unparsable, non-finite or
        /// not positive.
        UnderlyingInvalid = 8 => "underlying_invalid",
        /// An exchange greek (`delta`, `gamma`, `vega`, `theta`, `rho`) is present but unparsable
        /// or non-finite (greeks do not travel in market events; static risk reads them).
        GreekInvalid = 9 => "greek_invalid",
        /// A `derivative_ticker` field (index price, open interest, funding rate, last price) is
        /// present but unparsable, non-finite or negative: the row was published without it.
        TickerFieldInvalid = 10 => "ticker_field_invalid",
        /// A `derivative_ticker` row had both a mark and a last price: the event carries the mark,
        /// the last price is not published.
        TickerLastUnused = 11 => "ticker_last_unused",
        /// No mark: its own fields were valid, but the row's underlying price (which the mark
        /// carries) was not (that part is counted under `underlying_*`).
        MarkNoUnderlying = 12 => "mark_no_underlying",
    }
}

/// Counts of dropped or degraded parts by reason (`add`, `get`, `total`, `nonzero` through
/// [`Counts`]), and of rows used only in part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Partials {
    parts: Counts<PartialReason, { PartialReason::ALL.len() }>,
    rows: u64,
}

impl std::ops::Deref for Partials {
    type Target = Counts<PartialReason, { PartialReason::ALL.len() }>;
    fn deref(&self) -> &Self::Target {
        &self.parts
    }
}

impl std::ops::DerefMut for Partials {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.parts
    }
}

impl Partials {
    /// Counts one row that was used with at least one part dropped or degraded.
    #[inline]
    pub fn add_row(&mut self) {
        self.rows += 1;
    }
    /// Rows used in part (each counted once, however many of its parts were dropped).
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Adds another set of counts, rows included.
    pub fn merge(&mut self, o: &Partials) {
        self.parts.merge(&o.parts);
        self.rows += o.rows;
    }
}

impl std::fmt::Display for Partials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parts.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_counts_add_merge_and_name_every_reason() {
        let mut a = Partials::default();
        a.add(PartialReason::QuoteSizeUnknown);
        a.add(PartialReason::QuoteSizeUnknown);
        a.add_row();
        let mut b = Partials::default();
        b.add(PartialReason::GreekInvalid);
        b.add_row();
        a.merge(&b);
        assert_eq!(a.get(PartialReason::QuoteSizeUnknown), 2);
        assert_eq!(a.total(), 3);
        assert_eq!(a.rows(), 2);
        assert_eq!(a.to_string(), "quote_size_unknown=2, greek_invalid=1");
        for (i, r) in PartialReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
