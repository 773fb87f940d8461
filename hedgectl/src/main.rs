//! `hedgectl`: the operator's CLI of the hedging engine.
//!
//! Subcommands: `greeks` (calculator, see README); operator subcommands (see
//! `docs/operations.md`): `demo`, `stat`, `positions`, `kill`,
//! `halt`, `reduce-only`, `resume`, `tail`, `export`; `firm` (docs/firm-risk.md).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod control;
mod demo;
mod export;
mod greeks;
mod hist;
mod metrics;
mod ops;
mod positions;
mod procs;
mod replay;
mod spsc_view;
mod stat;
mod tail;

/// The operator's CLI of the hedging engine.
#[derive(Debug, Parser)]
#[command(name = "hedgectl", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once at start-up: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Prices and Greeks of European options from CSV (see README).
    Greeks(greeks::GreeksArgs),
    /// Backtest hedge policies on recorded or synthetic data; static book risk (docs/replay.md).
    Replay(Box<replay::ReplayArgs>),
    /// Firm-wide risk and control over NATS JetStream, through every host's risk-bridge
    /// (docs/firm-risk.md): stat, kill, halt, reduce-only, resume, limits.
    Firm(risk_bridge::cli::FirmArgs),
    #[command(flatten)]
    Ops(ops::OpsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Greeks(a) => greeks::run(a),
        Cmd::Replay(a) => replay::run(a),
        Cmd::Firm(a) => risk_bridge::cli::run(a),
        Cmd::Ops(c) => ops::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("hedgectl: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
