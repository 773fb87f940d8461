//! FIX 4.4 venue adapter: a no-allocation codec, an initiator session and [`FixVenue`], the
//! [`Venue`](crate::venue::Venue) that sends hedge orders to a FIX counterparty.
//!
//! Layers, bottom up:
//! - [`codec`]: tag=value encode/decode into fixed buffers; BodyLength and CheckSum checked;
//!   every bad input is a typed, counted [`codec::DecodeError`], never a panic.
//! - [`store`]: MsgSeqNum in and out, persisted in `<state_dir>/fix-<sender>-<target>.seqnums`.
//! - [`session`]: TCP connect, Logon (HeartBtInt, Username/Password), Heartbeat/TestRequest,
//!   ResendRequest and SequenceReset-GapFill, Logout, reconnect with backoff. Non-blocking,
//!   polled from the gateway loop: no thread.
//! - [`venue`]: HedgeOrder → NewOrderSingle (35=D, IOC) / OrderCancelRequest (35=F);
//!   ExecutionReport (35=8), Reject (35=3), BusinessMessageReject (35=j) → `VenueReport`;
//!   orders of a killed run recovered with OrderStatusRequest (35=H).
//!
//! Proved against QuickFIX in `tests/fix_quickfix.rs` (run `scripts/setup-quickfix.sh` first).
//!
//! # Examples
//! ```no_run
//! use order_gateway::fix::{FixConfig, FixVenue};
//! use order_gateway::venue::Venue;
//! use shm_layout::clock::now_ns;
//!
//! let cfg = FixConfig::new("127.0.0.1", 9876, "HEDGER", "EXCH", "/var/lib/hedge/fix")
//!     .with_env_credentials(); // HEDGE_FIX_USERNAME / HEDGE_FIX_PASSWORD
//! let defs = []; // the InstrumentDefs from the instruments segment
//! let mut venue = FixVenue::new(cfg, &defs)?;
//! loop {
//!     venue.poll(now_ns(), &mut |report| println!("{report:?}"));
//!     if venue.is_connected() {
//!         break;
//!     }
//! }
//! # Ok::<(), order_gateway::fix::FixVenueError>(())
//! ```
pub mod codec;
pub mod config;
pub mod counters;
pub mod session;
pub mod store;
pub mod venue;

pub use config::{FixConfig, Secret};
pub use session::{Session, SessionState, SessionStats};
pub use venue::{FixVenue, FixVenueError, FixVenueStats};
