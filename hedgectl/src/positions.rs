//! `hedgectl positions`: per-underlying risk and positions from the hedger's gauges.

use crate::metrics::RiskRow;
use crate::procs::{self, NsArgs};

/// Runs `positions`.
///
/// # Errors
/// The namespace does not exist or no hedger ever ran in it.
pub fn run(ns: &NsArgs) -> anyhow::Result<i32> {
    let dir = ns.existing_dir()?;
    let snap = procs::snapshot(&dir).map_err(anyhow::Error::msg)?;
    let Some(h) = procs::find_role(&snap, engine::hedger::ROLE) else {
        anyhow::bail!(
            "no hedger counters in {} (has the hedger started?)",
            dir.display()
        );
    };
    println!(
        "hedger pid {} ({}, {}); kill switch {}",
        h.pid,
        h.liveness.name(),
        h.state,
        match &snap.control {
            Some(c) if c.kill_switch => "ON",
            Some(_) => "off",
            None => "-",
        }
    );
    let risk = snap.risk();
    if risk.is_empty() {
        println!("(the hedger publishes no per-underlying gauges yet)");
        return Ok(0);
    }
    println!("{}", RiskRow::table_header());
    for r in &risk {
        println!("{}", r.table_line());
        let other: Vec<String> = r
            .other
            .iter()
            .filter(|(_, v)| *v != 0.0)
            .map(|(name, v)| format!("{name} = {}", crate::metrics::fmt_num(*v)))
            .collect();
        if !other.is_empty() {
            println!("{:<12} {}", "", other.join(", "));
        }
    }
    Ok(0)
}
