//! `hedgectl firm ...`: the command line of the firm client (parsed by hedgectl, run here so
//! that the NATS client stays in this crate).

use std::time::Duration;

use crate::firm::{self, Firm};
use crate::schema::{ControlAction, ControlMsg, ALL_HOSTS};

/// Options of `hedgectl firm`.
#[derive(Debug, Clone, clap::Args)]
pub struct FirmArgs {
    /// NATS server.
    #[arg(
        long,
        env = "HEDGE_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,
    /// How long a command waits for the acks of live hosts (ms).
    #[arg(long, default_value_t = 3000, global = true)]
    pub timeout_ms: u64,
    /// Hosts whose heartbeat is older than this (ms) are not live: not waited for.
    #[arg(long, default_value_t = firm::DEFAULT_LIVE_WITHIN.as_millis() as u64, global = true)]
    pub live_within_ms: u64,
    /// What to do.
    #[command(subcommand)]
    pub cmd: FirmCmd,
}

/// Which hosts and underlyings a command addresses.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// One host (default: every host).
    #[arg(long)]
    pub host: Option<String>,
    /// Underlying symbols (default: every underlying of the host).
    pub underlyings: Vec<String>,
}

/// `hedgectl firm` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FirmCmd {
    /// Every host and underlying: age of the last update, state, and the firm's net delta.
    Stat,
    /// Kill switch on, on every host (or --host).
    Kill {
        /// One host (default: every host).
        #[arg(long)]
        host: Option<String>,
    },
    /// Trading state halted.
    Halt(Target),
    /// Trading state reduce-only.
    ReduceOnly(Target),
    /// Trading state active; without underlyings also clears the kill switch and a fail-safe.
    Resume(Target),
    /// Set the |net delta| budget (underlying units) over which an underlying goes reduce-only.
    Limits {
        /// Which hosts and underlyings.
        #[command(flatten)]
        target: Target,
        /// Budget for |net delta|, underlying units, finite and > 0.
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        net_delta_budget: Option<f64>,
        /// Remove the budget.
        #[arg(long)]
        clear: bool,
    },
}

impl FirmCmd {
    /// The control message of a command (`None` for `stat`).
    pub fn message(&self) -> Option<ControlMsg> {
        let (action, t, budget) = match self {
            FirmCmd::Stat => return None,
            FirmCmd::Kill { host } => {
                let t = Target {
                    host: host.clone(),
                    underlyings: vec![],
                };
                (ControlAction::Kill, t, None)
            }
            FirmCmd::Halt(t) => (ControlAction::Halt, t.clone(), None),
            FirmCmd::ReduceOnly(t) => (ControlAction::ReduceOnly, t.clone(), None),
            FirmCmd::Resume(t) => (ControlAction::Resume, t.clone(), None),
            FirmCmd::Limits {
                target,
                net_delta_budget,
                ..
            } => (ControlAction::Limits, target.clone(), *net_delta_budget),
        };
        Some(ControlMsg {
            host: t.host.unwrap_or_else(|| ALL_HOSTS.to_string()),
            action,
            underlyings: t.underlyings,
            net_delta_budget: budget,
            issued_by: format!("hedgectl firm (pid {})", std::process::id()),
        })
    }
}

/// Runs `hedgectl firm`; exit code 0 when every live host applied the command, 2 when one
/// rejected it or did not answer.
///
/// # Errors
/// NATS unreachable, unknown host.
pub fn run(a: &FirmArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let f = Firm::connect(&a.nats_url).await?;
        let Some(msg) = a.cmd.message() else {
            print!("{}", firm::render_stat(&f.stat().await?));
            return Ok(0);
        };
        let r = f
            .command(
                &msg,
                Duration::from_millis(a.timeout_ms),
                Duration::from_millis(a.live_within_ms),
            )
            .await?;
        print!("{}", firm::render_report(msg.action, &r));
        Ok(if r.ok() { 0 } else { 2 })
    })
}
