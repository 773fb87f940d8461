//! The operator subcommands (`stat`, `positions`, `kill`, `halt`, `reduce-only`, `resume`,
//! `tail`, `export`, `demo`), flattened into hedgectl's command enum by `main.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::control::{Action, ControlArgs};
use crate::demo::DemoArgs;
use crate::procs::NsArgs;
use crate::stat::StatArgs;
use crate::tail::TailArgs;

/// Options of `hedgectl export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Namespace to export.
    #[command(flatten)]
    pub ns: NsArgs,
    /// Address to serve /metrics on; only this address is bound (e.g. 127.0.0.1:9464).
    #[arg(long)]
    pub listen: String,
    /// Exit after answering this many requests (for tests).
    #[arg(long, hide = true)]
    pub max_requests: Option<u64>,
}

/// Operator subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OpsCommand {
    /// Run the whole system (feed handler, hedger, order gateway) for a while and report.
    Demo(DemoArgs),
    /// AeronStat-like live view: liveness, counters and rates, rings, risk, trading state.
    Stat(StatArgs),
    /// Per-underlying option delta, hedge position, net delta, gamma, vega, band, state.
    Positions(NsArgs),
    /// Set the kill switch: the hedger sends no new order until `resume`.
    Kill(ControlArgs),
    /// Halt hedging of one underlying (or all).
    Halt(ControlArgs),
    /// Only orders that reduce the hedge position, for one underlying (or all).
    ReduceOnly(ControlArgs),
    /// Back to active for one underlying, or for all (and clear the kill switch).
    Resume(ControlArgs),
    /// Decode live messages (md, orders, execs) without consuming them.
    Tail {
        /// Namespace to read.
        #[command(flatten)]
        ns: NsArgs,
        /// What to tail.
        #[command(flatten)]
        args: TailArgs,
    },
    /// Serve counters and risk gauges in Prometheus text format over HTTP.
    Export(ExportArgs),
}

/// Runs an operator subcommand; returns the process exit code.
///
/// # Errors
/// Whatever the subcommand reports (one line for the user).
pub fn run(cmd: &OpsCommand) -> anyhow::Result<i32> {
    match cmd {
        OpsCommand::Demo(a) => crate::demo::run(a),
        OpsCommand::Stat(a) => crate::stat::run(a),
        OpsCommand::Positions(ns) => crate::positions::run(ns),
        OpsCommand::Kill(a) => crate::control::run(Action::Kill, a),
        OpsCommand::Halt(a) => crate::control::run(Action::Halt, a),
        OpsCommand::ReduceOnly(a) => crate::control::run(Action::ReduceOnly, a),
        OpsCommand::Resume(a) => crate::control::run(Action::Resume, a),
        OpsCommand::Tail { ns, args } => {
            let dir = ns.existing_dir()?;
            crate::tail::run(&dir, args)?;
            Ok(0)
        }
        OpsCommand::Export(a) => {
            let dir = a.ns.dir()?;
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&stop))?;
            }
            crate::export::serve(
                &a.listen,
                a.max_requests,
                || crate::procs::snapshot(&dir).map(|s| crate::metrics::render_prometheus(&s)),
                || stop.load(Ordering::Relaxed),
            )?;
            Ok(0)
        }
    }
}
