//! `hedgectl kill | halt | reduce-only | resume [UNDERLYING]`: operator control words in the
//! hedger's control block.
//!
//! The control block is a handful of atomic words in shared memory; the hedger checks its
//! generation word once per loop iteration and applies a change before its next decision. These
//! commands write the words, read them back and print the result.

use std::path::Path;

use anyhow::{bail, Context as _};
use shm_layout::control::{ControlBlock, TradingState};
use shm_layout::segment::OpenOptions;

use crate::procs::{self, NsArgs};

/// What to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Kill switch on.
    Kill,
    /// Trading state halted.
    Halt,
    /// Trading state reduce-only.
    ReduceOnly,
    /// Trading state active (and, for all underlyings, kill switch off).
    Resume,
}

/// Options of the control commands.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// Namespace to act on.
    #[command(flatten)]
    pub ns: NsArgs,
    /// Underlying symbol (e.g. BTC, or any instrument of it such as BTC-PERPETUAL) or id;
    /// all underlyings when omitted.
    pub underlying: Option<String>,
}

/// Resolves an underlying given as id or symbol against `(id, symbol)` pairs and the
/// instruments table (an instrument's symbol names its underlying).
fn resolve(dir: &Path, known: &[(u32, String)], u: &str) -> anyhow::Result<(u32, String)> {
    if let Ok(id) = u.parse::<u32>() {
        let sym = known
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(id.to_string(), |(_, s)| s.clone());
        return Ok((id, sym));
    }
    if let Some((id, s)) = known.iter().find(|(_, s)| s.eq_ignore_ascii_case(u)) {
        return Ok((*id, s.clone()));
    }
    if let Ok(t) = shm_layout::instruments::InstrumentTable::open(
        dir,
        shm_layout::segment::names::INSTRUMENTS,
        OpenOptions::default(),
    ) {
        if let Some(d) = t.defs().iter().find(|d| d.symbol().eq_ignore_ascii_case(u)) {
            let sym = known
                .iter()
                .find(|(i, _)| *i == d.underlying_id)
                .map_or(d.underlying_id.to_string(), |(_, s)| s.clone());
            return Ok((d.underlying_id, sym));
        }
    }
    let names: Vec<&str> = known.iter().map(|(_, s)| s.as_str()).collect();
    bail!(
        "unknown underlying '{u}'; known: {}",
        if names.is_empty() {
            "none (no instruments table: give the numeric id)".to_string()
        } else {
            names.join(", ")
        }
    )
}

/// Runs one control command; prints what it did.
///
/// # Errors
/// No control block (the hedger has not started), unknown underlying.
pub fn run(action: Action, args: &ControlArgs) -> anyhow::Result<i32> {
    let dir = args.ns.existing_dir()?;
    let cb = ControlBlock::open(&dir, OpenOptions::default()).with_context(|| {
        format!(
            "no control block in {} (the hedger creates it: is it running?)",
            dir.display()
        )
    })?;
    let known = procs::underlyings(&dir);
    let targets: Vec<(u32, String)> = match &args.underlying {
        Some(u) => vec![resolve(&dir, &known, u)?],
        None => known.clone(),
    };
    match action {
        Action::Kill => {
            if args.underlying.is_some() {
                bail!("kill is global (the kill switch); to stop one underlying use: hedgectl halt UNDERLYING");
            }
            cb.set_kill_switch(true);
            println!(
                "kill switch ON (generation {}): the hedger sends no new order; `hedgectl resume` clears it",
                cb.generation()
            );
        }
        Action::Halt | Action::ReduceOnly | Action::Resume => {
            let st = match action {
                Action::Halt => TradingState::Halted,
                Action::ReduceOnly => TradingState::ReduceOnly,
                _ => TradingState::Active,
            };
            if targets.is_empty() {
                bail!(
                    "no underlying known in {} (no instruments table): give the numeric id",
                    dir.display()
                );
            }
            for (id, sym) in &targets {
                if !cb.set_trading_state(*id, st) {
                    bail!("underlying id {id} is outside the control block's range");
                }
                println!("{sym} (id {id}): {}", cb.trading_state(*id).name());
            }
            if action == Action::Resume {
                if args.underlying.is_none() {
                    cb.set_kill_switch(false);
                    println!("kill switch off");
                } else if cb.kill_switch() {
                    println!("note: the kill switch is still ON; `hedgectl resume` without an underlying clears it");
                }
            }
        }
    }
    let snap = procs::snapshot(&dir).ok();
    let hedger_alive = snap
        .as_ref()
        .and_then(|s| procs::find_role(s, engine::hedger::ROLE))
        .is_some_and(|p| p.liveness == crate::metrics::Liveness::Alive);
    if !hedger_alive {
        eprintln!("warning: the hedger is not alive; it will read these words when it restarts and re-attaches");
    }
    Ok(0)
}
