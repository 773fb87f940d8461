//! Shared-memory layer of the hedging engine: segments, message layouts, rings and counters.
//!
//! This is the only crate of the workspace with `unsafe` code. Its byte-level specification is
//! `docs/shm-layout.md`; the ring protocols are modelled with loom (`tests/loom.rs`).
//!
//! - [`segment`]: create/open/validate named segments (header, typed errors, stale creators).
//! - [`broadcast`]: market-data ring, one writer that never waits, many readers.
//! - [`lvt`]: last-value table, per-entry seqlock.
//! - [`instruments`]: instrument definitions.
//! - [`spsc`]: bounded queues for orders and execs, positions persisted in the segment.
//! - [`batch_queue`]: in-process SPSC queue with batched publication and slice access (the
//!   hedger's session journal).
//! - [`counters`]: per-process liveness and counters (Aeron CnC-like).
//! - [`counter_schema`]: counters declared once per process (name, kind, unit, scope, help).
//! - [`control`]: kill switch and trading states.
//! - [`probe`]: one shared cache line, the raw baseline of the benchmarks.
//! - [`private`]: owner-only (0600/0700) creation of the files and directories processes make.
//! - [`ascii`]: checked ASCII number parsing for the input codecs.
//! - [`process`]: what every process shares around its loop: idle strategy, stale-segment
//!   policy names, pinning to a core.
//!
//! ```
//! use shm_layout::{broadcast::{BroadcastReader, BroadcastWriter, Poll}, OpenOptions, StalePolicy};
//! use shm_layout::MarketEvent;
//! let dir = tempfile::tempdir().unwrap();
//! let mut w = BroadcastWriter::<MarketEvent>::create(dir.path(), "md", 1024, StalePolicy::Fail).unwrap();
//! let mut r = BroadcastReader::<MarketEvent>::open(dir.path(), "md", OpenOptions::default()).unwrap();
//! w.publish(&MarketEvent::underlying_price(1, 0, 0, 100.0));
//! assert!(matches!(r.poll(), Poll::Message(e) if e.v[0] == 100.0));
//! assert!(matches!(r.poll(), Poll::Empty));
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(not(loom))]
pub mod agent;
pub mod alloc_count;
pub mod ascii;
pub mod batch_queue;
pub mod broadcast;
pub mod clock;
#[cfg(not(loom))]
pub mod control;
#[cfg(not(loom))]
pub mod counter_schema;
#[cfg(not(loom))]
pub mod counters;
#[cfg(not(loom))]
pub mod instruments;
pub mod lvt;
pub mod messages;
#[cfg(not(loom))]
pub mod private;
#[cfg(not(loom))]
pub mod probe;
#[cfg(not(loom))]
pub mod process;
pub mod queue;
#[cfg(not(loom))]
pub mod segment;
pub mod spsc;
#[doc(hidden)]
pub mod sync;
pub mod toml_text;

pub use messages::*;

#[cfg(loom)]
pub use broadcast::Poll;
#[cfg(not(loom))]
pub use broadcast::{BroadcastReader, BroadcastWriter, Poll};
#[cfg(not(loom))]
pub use control::{ControlBlock, TradingState};
#[cfg(not(loom))]
pub use counter_schema::{CounterDef, CounterKind, CounterSchema, CounterSet, Scope};
#[cfg(not(loom))]
pub use counters::{
    list_roles, Counter, CounterRecord, CounterValue, CountersReader, CountersWriter, Gauge,
    Liveness, ProcessState, RecordMeta,
};
#[cfg(not(loom))]
pub use instruments::InstrumentTable;
#[cfg(not(loom))]
pub use lvt::{DepthUpdate, LastValueTable};
#[cfg(not(loom))]
pub use segment::{
    names, namespace_dir, validate_namespace, NamespaceError, OpenOptions, SegmentError,
    SegmentKind, StalePolicy,
};
#[cfg(not(loom))]
pub use spsc::{SpscConsumer, SpscProducer};
