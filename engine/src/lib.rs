//! The engine: risk core (incremental portfolio risk on the leaf `pricing` crate, re-exported
//! here as `engine::pricing`), hedge policy and limits, and the `hedger` binary's library side.
//!
//! The pricing and risk modules know nothing about shared memory: the hedger's event loop
//! adapts rings to them, so the same code runs live, in replay and in tests.
//!
//! ```
//! use engine::pricing::{black76_price, OptionType};
//! // A 3-month BTC call on a 9,000 USD forward, 80% vol, r = 0.
//! let usd = black76_price(OptionType::Call, 9000.0, 10000.0, 0.25, 0.8, 0.0).unwrap();
//! assert!(usd > 0.0 && usd < 9000.0);
//! ```
#![forbid(unsafe_code)]

/// The leaf `pricing` crate, re-exported so that `engine::pricing::...` paths keep working.
pub use pricing;
pub mod risk;

pub mod config;
pub mod hdr;
pub mod hedger;
pub mod limits;
pub mod policy;
