//! FIX 4.4 venue adapter: a no-allocation codec, an initiator session and [`FixVenue`], the
//! [`Venue`](crate::venue::Venue) that sends hedge orders to a FIX counterparty.
pub mod codec;
pub mod config;
pub mod session;
pub mod store;
pub mod venue;

pub use config::{FixConfig, Secret};
pub use session::{Session, SessionState, SessionStats};
pub use venue::{FixVenue, FixVenueError, FixVenueStats};
