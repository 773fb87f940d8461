//! Incremental portfolio risk: net delta, gamma, vega, theta per underlying and per expiry,
//! updated in O(1) per event in the number of options held, with an explicit, rigorous bound
//! on the error of the delta.
//!
//! # Model of the book
//! - An **underlying** (e.g. BTC) has a price `S` and a rate `r` and dividend/carry yield `q`.
//! - Each expiry has **one forward** `F_e` (Deribit's `SYN.BTC-<expiry>` or its future). A
//!   forward moves with the underlying (`F_e / S` is kept when `S` moves) and can also be
//!   quoted on its own. Black-76 options are priced on their expiry's forward.
//! - BSM options on the spot are priced as Black-76 options on the implied forward
//!   `S exp((r - q) T)`, which is exactly equivalent; each expiry of them forms a bucket.
//! - Position `q_i = contracts * multiplier`, in units of underlying.
//!
//! # Deltas reported
//! `net_delta` is the **spot-equivalent delta**: the change of the book's value per 1.0 move
//! of the underlying when every forward moves with it, `sum_e dV/dF_e * F_e / S`, in units of
//! underlying (what a perpetual or spot hedge must offset). Buckets also give the forward
//! delta `dV/dF_e` (what a future of that expiry must offset). Inverse options contribute
//! their premium-adjusted delta by default ([`InverseDelta`]; the reason is in
//! [`crate::pricing::settlement`]). The hedge position and orders in flight are the
//! hedger's: see [`linear_position_delta`] and [`inverse_position_delta`].
//!
//! # How the delta stays exact enough, in O(1)
//! Each option is evaluated exactly at an *anchor* (its forward's log-level `Y0`, time to
//! expiry `T0`). Its delta, divided by the discount factor, is a function `g(y, s)` of the
//! log-move `y = ln(F / F0)` and of the log-change of its total deviation
//! `s = ln(sigma sqrt(T) / (sigma sqrt(T0))) = ln(T / T0) / 2`. Between exact evaluations the
//! book uses `g0 + g_y y + g_yy y^2 / 2 + g_s s` for every option. Because `y` is the same for
//! all options of an expiry up to each option's anchor, these polynomials add up into a few
//! sums per expiry, and the expiries of an underlying add up into one polynomial in the
//! underlying's log-move (with its bound). An underlying move evaluates that polynomial: O(1),
//! about 18 ns whatever the book size. A fill or a vol update changes one option's terms in
//! its expiry (O(1)) and re-adds the underlying's expiries from that one on (running sums
//! kept per expiry in registration order, so the result is bit for bit the full sum's;
//! O(expiries) at most, arithmetic only): independent of the number of options held.
//! Figures: `docs/benchmarks.md`.
//!
//! The error is bounded by Taylor's theorem with the derivatives' sup over *all* moneyness:
//! in log coordinates every derivative of `N(d1)` is a Hermite polynomial times the normal
//! density over a power of `v = sigma sqrt(T)`, whose sup over `d1` is a constant
//! (`sup |d| n(d) = 0.24197`, `sup |d^2 - 1| n(d) = 1/sqrt(2 pi)`, ...). So for each option
//!
//! `|error| <= D * ( |g_yyy|max |y|^3 / 6 + |g_sy|max |y| |s| + |g_ss|max s^2 / 2 )`
//!
//! with the sups taken at the smallest `v` (now) and largest `v` (oldest anchor) seen. The
//! sups depend on the option only through `sigma` (and the strike for inverse puts), so the
//! bound also aggregates into a few sums per expiry; `|y|` and `|s|` are bounded by the range
//! of anchors in the expiry, which [`BookRisk::idle_step`] keeps short by re-evaluating a
//! few options per call (round robin). The bound is reported with every result
//! ([`UnderlyingRisk::delta_error_bound`]) and compared with the configured tolerance
//! ([`UnderlyingRisk::within_tolerance`]); when it is exceeded the caller forces an exact
//! re-evaluation ([`BookRisk::force_reeval`], O(n)) or waits for idle steps.
//!
//! Gamma is the derivative of the delta approximation; vega and theta are the sums of each
//! option's values at its last exact evaluation (refreshed by idle steps and vol updates).
//! Floating-point rounding of the running sums is not part of the bound (it is about 1e-13
//! relative; [`BookRisk::force_reeval`] rebuilds the sums from scratch).
//!
//! Time passes through [`BookRisk::advance_time`]: discounting is exact, the decay of delta
//! enters through `g_s` (charm in log-deviation time), and the remainder is in the bound.
//! # Expiry and settlement
//! When the clock passes an expiry, the book settles it in cash ([`ExpirySettlement::Cash`],
//! the only style implemented: Deribit's options are European and cash-settled; physically
//! settled options are out of scope). Each of the expiry's positions becomes a
//! [`SettledOption`] record (contracts, the expiry's forward at that moment, intrinsic value in
//! the option's premium currency: quote currency for linear options, coin for inverse ones),
//! its position becomes 0 and stays 0 ([`BookRisk::add_position`] refuses it), and the expiry's
//! sums are zeroed: it contributes exactly 0 delta, gamma, vega and theta from then on. This
//! is O(options of that expiry), once per expiry, inside [`BookRisk::advance_time`]; totals per
//! underlying are in [`BookRisk::settlement_totals`], and a restart restores records with
//! [`BookRisk::restore_settlement`]. Between the expiry and the first clock update after it an
//! option has `T = 0` and an unbounded gamma, reported as a very large bound.
//!
//! # Example
//! ```
//! use engine::pricing::{Model, OptionType, Settlement};
//! use engine::risk::{BookRisk, OptionSpec, RiskConfig};
//! let year = 365 * 24 * 3600 * 1_000_000_000u64;
//! let mut book = BookRisk::new(RiskConfig::default());
//! book.add_underlying(0, 9000.0).unwrap();
//! book.add_forward(1, 0, year / 4, 9050.0).unwrap();
//! book.add_option(OptionSpec {
//!     id: 2, underlying_id: 0, forward_id: Some(1), strike: 10_000.0, expiry_ns: year / 4,
//!     kind: OptionType::Call, model: Model::Black76, settlement: Settlement::Inverse,
//!     multiplier: 1.0,
//! }, 0.8).unwrap();
//! book.add_position(2, -25.0);
//! book.on_price(0, 9100.0);
//! let risk = book.underlying(0).unwrap();
//! let exact = book.full_recompute(0).unwrap();
//! assert!((risk.net_delta - exact.net_delta).abs() <= risk.delta_error_bound + 1e-9);
//! ```

mod book;

pub use book::{
    inverse_position_delta, linear_position_delta, BookRisk, BucketRisk, ExpirySettlement,
    InverseDelta, OptionSpec, RiskConfig, RiskError, SettledOption, SettlementTotals,
    UnderlyingRisk, MIN_BOOK_VOL, NS_PER_YEAR, RATE_LIMIT,
};
