//! Option pricing: Black-Scholes-Merton and Black-76 prices and Greeks, implied volatility,
//! linear and inverse settlement, and an accurate normal distribution.
//!
//! A leaf crate: it depends on no other workspace crate and knows nothing about shared memory,
//! so the engine, the feed handler's synthetic market and hedgectl price options with the same
//! code (the engine re-exports it as `engine::pricing`).
//!
//! Conventions: see [`black`]. Accuracy against QuantLib (1e-9 relative) and against Deribit's
//! published greeks is tested in `pricing/tests/`.
//!
//! ```
//! use pricing::{bsm_greeks, OptionType};
//! let g = bsm_greeks(OptionType::Call, 100.0, 105.0, 0.5, 0.25, 0.03, 0.01).unwrap();
//! assert!(g.delta > 0.0 && g.delta < 1.0);
//! println!("vega per vol point {}, theta per day {}", g.vega_per_vol_point(), g.theta_per_day());
//! ```
#![forbid(unsafe_code)]

pub mod black;
pub mod error;
pub mod implied;
pub mod normal;
pub mod settlement;
pub mod time;

pub use black::{
    black76_greeks, black76_price, bsm_greeks, bsm_price, Greeks, Model, OptionInputs, OptionType,
};
pub use error::PricingError;
pub use implied::black76_implied_vol;
pub use settlement::{inverse_greeks, InverseGreeks, Settlement};
