//! The time convention of every option price and greek here: calendar time over a year of
//! 365 days of 86,400 s (Deribit's, and the one [`crate::Greeks::theta_per_day`] divides by).
//!
//! Declared once: the engine's risk, the hedger, the feed's synthetic market, the backtest
//! and the benchmarks turn nanoseconds into years with these, never with a constant of their
//! own. Every value is exact in an `f64` (365 x 86,400 x 1e9 < 2^53 x 2^12 and a multiple of
//! 2^12), so `ns as f64 / NS_PER_YEAR` is one correctly rounded division.
//!
//! ```
//! use pricing::time::{years_between_ns, NS_PER_YEAR};
//! assert_eq!(years_between_ns(0, 86_400_000_000_000), 1.0 / 365.0);
//! assert_eq!(years_between_ns(10, 5), 0.0, "after the end: none left");
//! assert_eq!(NS_PER_YEAR, 31_536_000e9);
//! ```

/// Days in a year.
pub const DAYS_PER_YEAR: f64 = 365.0;
/// Seconds in a year of [`DAYS_PER_YEAR`] days.
pub const S_PER_YEAR: f64 = DAYS_PER_YEAR * 86_400.0;
/// Nanoseconds in a year of [`DAYS_PER_YEAR`] days.
pub const NS_PER_YEAR: f64 = S_PER_YEAR * 1e9;

/// Years from `from_ns` to `to_ns` (0 when `to_ns` is not later), e.g. time to expiry.
#[inline]
pub fn years_between_ns(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / NS_PER_YEAR
}
