//! Order gateway: consumes hedge orders from the orders ring, routes them to a [`venue::Venue`]
//! (the built-in exchange simulator or a FIX 4.4 counterparty), and publishes execution reports
//! and simulated client option flow into the execs ring.
#![forbid(unsafe_code)]

pub mod fix;
pub mod venue;

pub use venue::{Venue, VenueReport};
pub mod rng;
pub mod sim;
pub mod flow;
pub mod journal;
pub mod gateway;
