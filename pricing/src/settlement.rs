//! Linear and inverse (coin-settled) options.
//!
//! A linear option pays its premium and payoff in the quote currency (USD): its value is the
//! model price `V` and its delta is the model delta `dV/dS`, in units of the underlying.
//!
//! An inverse option (Deribit's BTC and ETH options) is quoted, paid and settled in the coin:
//! its premium is `P = V / S` coins, where `V` is the model price in USD and `S` the model's
//! underlying (the forward of the expiry for Black-76). Two deltas are useful, both in coins:
//! - the **model delta** `dV/dS`: the USD value sensitivity of the option, what Deribit shows;
//! - the **premium-adjusted delta** `dV/dS - V/S = S dP/dS`: the amount of coin to sell so that
//!   the option's value *measured in coin* does not move. The premium is itself a coin amount,
//!   so a coin-denominated book that holds (or owes) it is exposed to the underlying by less
//!   than the model delta (for a long call, by the premium).
//!
//! The hedger uses the premium-adjusted delta for inverse options by default
//! (`engine::risk::InverseDelta::PremiumAdjusted`): on a coin-margined venue the collateral,
//! the premium, the fees and the inverse perpetual used as hedge all live in coin, and the book
//! is flat when its coin value does not move. A desk that measures its P&L in USD and treats
//! its coin balance separately selects `engine::risk::InverseDelta::Model`.

use super::black::Greeks;

/// How an option's premium and payoff are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settlement {
    /// Premium and payoff in the quote currency.
    Linear,
    /// Premium and payoff in the coin (the underlying asset): value = model price / underlying.
    Inverse,
}

/// Coin-denominated view of an inverse option, per option on 1 coin of underlying.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InverseGreeks {
    /// Premium in coin: `V / S`.
    pub premium_coin: f64,
    /// Model delta `dV/dS`, in coin.
    pub delta_model: f64,
    /// Premium-adjusted delta `dV/dS - V/S`, in coin.
    pub delta_premium_adjusted: f64,
    /// d(premium-adjusted delta)/dS: `gamma - delta/S + V/S^2`.
    pub gamma_premium_adjusted: f64,
}

/// Converts quote-currency Greeks of an inverse option (computed with `underlying`, the
/// model's spot or forward) into its coin premium and its two deltas.
#[inline]
pub fn inverse_greeks(g: &Greeks, underlying: f64) -> InverseGreeks {
    let p = g.price / underlying;
    InverseGreeks {
        premium_coin: p,
        delta_model: g.delta,
        delta_premium_adjusted: g.delta - p,
        gamma_premium_adjusted: g.gamma - (g.delta - p) / underlying,
    }
}
