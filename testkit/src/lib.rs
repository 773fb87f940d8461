//! Fixtures shared by the test suites of several crates, so that a test idiom is written once.
//! A dev-dependency only (and a dependency of `bench`'s harness binaries): nothing here reaches a
//! product binary.
//!
//! [`exec_event`] is an execution report as the order gateway sends it; [`ExecStream`] numbers
//! and delivers them, as the gateway's execution stream.
//! [`ChildGuard`] is a process under test that is killed and reaped on drop.
//! [`shm`] gives a namespace directory of one's own and a small engine's instruments.
//! [`config_fuzz`] is the harness of the processes' TOML config fuzz targets (hedger, order
//! gateway, feed handler): hostile values, `key = value` lines, and the run that checks every
//! refusal and tallies it by key.
//!
//! ```
//! use testkit::config_fuzz::{self, Outcome};
//! use proptest::prelude::*;
//! let files = config_fuzz::key_lines(&["a", "b"], config_fuzz::value(100, &[]));
//! config_fuzz::run("doc", 50, files, |text| {
//!     Ok(if text.contains("nan") || text.is_empty() {
//!         Outcome::Refused { key: "a".into() }
//!     } else {
//!         Outcome::Accepted
//!     })
//! });
//! ```
#![forbid(unsafe_code)]

pub mod child;
pub mod config_fuzz;
pub mod exec;
pub mod shm;

pub use child::ChildGuard;
pub use exec::{exec_event, ExecStream};
