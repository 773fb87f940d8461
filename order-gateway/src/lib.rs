//! Order gateway: consumes hedge orders from the orders ring, routes them to a [`venue::Venue`]
//! (the built-in exchange simulator or a FIX 4.4 counterparty), and publishes execution reports
//! and simulated client option flow into the execs ring.
//!
//! - [`venue`]: the `Venue` trait every venue implements, and `VenueReport`.
//! - [`sim`]: the exchange simulator (depth walk, lots, fees, rejects, latency queue).
//! - [`flow`]: Poisson client option flow with a scheduled directional bias.
//! - [`journal`]: the write-ahead journal that makes restarts exact.
//! - [`md_trades`]: the simulator's trade feed from the md ring in the live gateway.
//! - [`gateway`]: the loop body over abstract order source / exec sink.
//! - [`config`], [`run`]: the `order-gateway` process (TOML + CLI, shared memory, signals).
//! - `fix`: the FIX 4.4 adapter.
//!
//! # Example: one order through the simulator
//! ```
//! use bytemuck::Zeroable;
//! use order_gateway::sim::{SimConfig, SimVenue};
//! use order_gateway::Venue;
//! use shm_layout::*;
//!
//! let mut perp = InstrumentDef::zeroed();
//! perp.kind = InstrumentKind::Perpetual as u8;
//! perp.settlement = Settlement::Linear as u8;
//! (perp.contract_multiplier, perp.tick_size, perp.lot_size, perp.min_qty) = (1.0, 0.5, 0.001, 0.001);
//! let mut book = LastValue::zeroed();
//! book.valid = LastValue::HAS_QUOTE;
//! (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty) = (99.5, 1.0, 100.0, 0.25);
//!
//! let cfg = SimConfig { latency_us: 0.0, jitter_us: 0.0, ..SimConfig::default() };
//! let mut venue = SimVenue::new(cfg, vec![perp], vec![Some(book)]);
//! let order = HedgeOrder {
//!     client_order_id: 1, side: Side::Buy as u8, order_type: OrderType::Limit as u8,
//!     tif: TimeInForce::Ioc as u8, action: OrderAction::New as u8, qty: 1.0, limit_px: 100.0,
//!     ..HedgeOrder::zeroed()
//! };
//! venue.submit(&order, 0);
//! let mut reports = Vec::new();
//! venue.poll(0, &mut |r| reports.push(r));
//! // 0.25 filled at 100.0 (all the displayed size), the IOC remainder cancelled.
//! assert_eq!(reports[0].kind, ExecKind::PartialFill);
//! assert_eq!((reports[0].qty, reports[0].price), (0.25, 100.0));
//! assert_eq!(reports[1].kind, ExecKind::Cancelled);
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod counters;
pub mod fix;
pub mod flow;
pub mod gateway;
pub mod journal;
pub mod md_trades;
pub mod rng;
pub mod run;
pub mod sim;
pub mod venue;

pub use venue::{Venue, VenueReport};
