//! Typed errors of the pricing functions.

use thiserror::Error;

/// Why a pricing input was rejected. Inputs are checked before any arithmetic, so an error
/// never leaves a NaN or an infinity behind.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum PricingError {
    /// The underlying (spot for BSM, forward for Black-76) is not a finite number > 0.
    #[error("underlying price {0} must be finite and > 0")]
    BadUnderlying(f64),
    /// The strike is not a finite number > 0.
    #[error("strike {0} must be finite and > 0")]
    BadStrike(f64),
    /// Time to expiry in years is NaN, negative or above 100 years.
    #[error("time to expiry {0} years must be finite, >= 0 and <= 100")]
    BadTime(f64),
    /// Volatility (1.00 = 100%) is NaN, negative or above 10.0 (1000%).
    #[error("volatility {0} must be finite, >= 0 and <= 10 (1.00 = 100%)")]
    BadVol(f64),
    /// Interest rate (continuously compounded, per year) is NaN or outside [-1, 1].
    #[error("rate {0} must be finite and within [-1, 1] (continuously compounded, per year)")]
    BadRate(f64),
    /// Dividend yield / carry (continuously compounded, per year) is NaN or outside [-1, 1].
    #[error(
        "dividend yield {0} must be finite and within [-1, 1] (continuously compounded, per year)"
    )]
    BadDividend(f64),
    /// A price given to the implied-volatility solver is NaN or negative.
    #[error("option price {0} must be finite and >= 0")]
    BadPrice(f64),
    /// The price is below the option's discounted intrinsic value: no volatility fits.
    #[error("price {price} is below the intrinsic value {intrinsic}: no implied volatility")]
    BelowIntrinsic {
        /// Price asked for.
        price: f64,
        /// Discounted intrinsic value (lower arbitrage bound).
        intrinsic: f64,
    },
    /// The price is at or above the upper arbitrage bound (discounted forward for a call,
    /// discounted strike for a put), or needs a volatility above 10.0.
    #[error("price {price} is at or above the attainable maximum {bound}: no implied volatility")]
    AboveMaximum {
        /// Price asked for.
        price: f64,
        /// Price at the highest volatility the solver accepts, or the arbitrage bound.
        bound: f64,
    },
}
