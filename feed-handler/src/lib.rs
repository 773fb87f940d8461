//! Feed handler: turns a market data source (a deterministic synthetic market, Tardis.dev CSV
//! files, LOBSTER files) into normalized [`shm_layout::MarketEvent`]s and publishes them into
//! shared memory.
//!
//! Layers, each usable alone (the replay/backtest driver reuses the sources in-process, with no
//! shared memory involved):
//! - [`instruments`]: Deribit-style symbol parsing, the [`instruments::Registry`] (symbol ->
//!   dense id = slot index, [`shm_layout::InstrumentDef`]s with Deribit contract specs) and the
//!   instruments file ([`instruments::Registry::load_csv`]).
//! - [`source`]: the [`source::Source`] trait (`registry()` complete up front, `next(&mut
//!   SourceEvent) -> bool`, `rejects()`, `rows_read()`), [`source::SourceEvent`] (event, replay
//!   timestamp, optional depth) and reject accounting ([`source::RejectReason`]).
//! - [`tardis`] ([`tardis::TardisSource`]), [`lobster`] ([`lobster::LobsterSource`]),
//!   [`synthetic`] ([`synthetic::SyntheticSource`] from a [`synthetic::SyntheticConfig`]).
//! - [`publish`]: the [`publish::Publisher`] writing the broadcast ring, last-value table,
//!   instruments table and the `cnc-feed-handler` counters.
//! - [`run`] and [`cli`]: the process (configuration, pacing, idle strategies, pinning,
//!   signals, summary); `src/main.rs` only calls [`cli::main`].
//!
//! Every event a source yields passes `MarketEvent::is_valid()`; bad input rows are skipped
//! and counted by reason, never an error; only a missing file or unreadable header is.
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
//!
//! The binary (`feed-handler --help`):
//!
//! ```text
//! feed-handler synthetic --seed 7 --rate 5000 --duration 30       # paced synthetic market
//! feed-handler --rate max --max-events 10000000 synthetic         # as fast as possible
//! feed-handler tardis ../shared/data/deribit/options_chain_2020-05-14.csv --speed 10
//! feed-handler lobster MSG.csv BOOK.csv --speed max
//! feed-handler --config feed-handler/feed-handler.example.toml --namespace demo
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod counters;
pub mod instruments;
pub mod lobster;
pub mod partial;
pub mod publish;
pub mod run;
pub mod source;
pub mod synthetic;
pub mod tardis;
