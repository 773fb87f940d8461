//! `risk-bridge`: one process per host that carries the host's drop copy, risk and heartbeat to
//! NATS JetStream, and firm control (kill, halt, reduce-only, resume, budgets) back into the
//! local control block the hedger already reads. The hedger's hot path never waits on the
//! network: the bridge only reads shared memory and the gateway's journal, and writes the
//! control block's words. `docs/firm-risk.md` has the subjects, buckets, schemas and failure
//! behaviour.
//!
//! - [`schema`]: subjects, buckets and JSON messages.
//! - [`local`]: reading the hedger's gauges, validating and applying control commands.
//! - [`state`]: the persisted position (last acknowledged exec id, last control revision).
//! - [`bus`]: connecting and declaring the stream and buckets.
//! - [`bridge`]: the bridge loop.
//! - [`firm`]: the firm client behind `hedgectl firm`.
//!
//! # Example: validating a control message before anything is applied
//! ```
//! use risk_bridge::{local, schema::ControlMsg};
//! let known = vec![(0, "BTC".to_string())];
//! let msg: ControlMsg = serde_json::from_str(r#"{"host":"all","action":"halt","underlyings":["BTC"]}"#).unwrap();
//! let plan = local::validate(&msg, "all", "host-a", &known).unwrap();
//! assert_eq!(plan.targets, vec![(0, "BTC".to_string())]);
//! let bad: ControlMsg = serde_json::from_str(r#"{"host":"all","action":"halt","underlyings":["XRP"]}"#).unwrap();
//! assert!(local::validate(&bad, "all", "host-a", &known).unwrap_err().contains("unknown underlying 'XRP'"));
//! ```
#![forbid(unsafe_code)]

pub mod bridge;
pub mod bus;
pub mod cli;
pub mod firm;
pub mod local;
pub mod schema;
pub mod state;
