//! Order gateway: consumes hedge orders from the orders ring, routes them to a [`venue::Venue`]
//! (the built-in exchange simulator or a FIX 4.4 counterparty), and publishes execution reports
//! and simulated client option flow into the execs ring.
#![forbid(unsafe_code)]

pub mod fix;
pub mod venue;

pub use venue::{Venue, VenueReport};
pub mod config;
pub mod flow;
pub mod gateway;
pub mod journal;
pub mod rng;
pub mod run;
pub mod sim;
