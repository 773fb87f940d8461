//! Shared-memory layer of the hedging engine: segments, message layouts, rings and counters.
//!
//! This is the only crate of the workspace with `unsafe` code. Its byte-level specification is
//! `docs/shm-layout.md`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod clock;
pub mod messages;

pub use messages::*;
