//! Feed handler: turns a market data source (a deterministic synthetic market, Tardis.dev CSV
//! files, LOBSTER files) into normalized [`shm_layout::MarketEvent`]s and publishes them into
//! shared memory.
//!
//! Layers, each usable alone (the replay/backtest driver reuses the sources in-process):
//! - [`instruments`]: Deribit-style symbol parsing, the [`instruments::Registry`] (symbol -> id)
//!   and the instruments file.
//! - [`source`]: the [`source::Source`] trait, [`source::SourceEvent`] and reject accounting.
//! - [`tardis`], [`lobster`], [`synthetic`]: the sources.
//! - [`publish`]: the [`publish::Publisher`] writing the broadcast ring, last-value table,
//!   instruments table and counters.
//! - [`run`]: the process: configuration, pacing, pinning, signals, summary.
//!
//! ```
//! use feed_handler::source::{Source, SourceEvent};
//! use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
//! let mut src = SyntheticSource::new(SyntheticConfig { seed: 7, ..SyntheticConfig::default() });
//! let mut ev = SourceEvent::default();
//! let mut n = 0;
//! while n < 1000 && src.next(&mut ev) {
//!     assert!(ev.event.is_valid());
//!     n += 1;
//! }
//! assert_eq!(n, 1000);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod instruments;
pub mod lobster;
pub mod publish;
pub mod run;
pub mod source;
pub mod synthetic;
pub mod tardis;
