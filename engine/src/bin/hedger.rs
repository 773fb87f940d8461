//! `hedger`: the delta-hedging process. Thin main: parse, load config, run the library loop.
#![forbid(unsafe_code)]

use clap::Parser;
use engine::config::HedgerConfig;
use shm_layout::agent::stop_on_signals;
use shm_layout::process::IdleStrategy;
use shm_layout::StalePolicy;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps an options book delta-neutral: reads market data and executions from shared memory,
/// decides hedges with a per-underlying policy, checks risk limits and publishes hedge orders.
///
/// The TOML config (see engine/config/hedger.example.toml) holds everything; the flags below
/// override the keys they name. SIGTERM or SIGINT stop it cleanly (final state snapshot and
/// histogram flush). An invalid config prints one line naming the key and exits with 2.
#[derive(Debug, Parser)]
#[command(name = "hedger", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Shared-memory namespace: segments in /dev/shm/<NAMESPACE>/ (key shm.namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// Explicit segment directory, e.g. a hugetlbfs mount (key shm.dir; overrides namespace).
    #[arg(long, value_name = "DIR")]
    shm_dir: Option<PathBuf>,
    /// Market-data ring segment name (key shm.md).
    #[arg(long)]
    md: Option<String>,
    /// Last-value table segment name (key shm.lvt).
    #[arg(long)]
    lvt: Option<String>,
    /// Instruments segment name (key shm.instruments).
    #[arg(long)]
    instruments: Option<String>,
    /// Orders ring segment name, created by the hedger (key shm.orders).
    #[arg(long)]
    orders: Option<String>,
    /// Execs ring segment name (key shm.execs).
    #[arg(long)]
    execs: Option<String>,
    /// What to do with an orders/control segment left by a dead hedger (key shm.on_stale);
    /// recover keeps its unconsumed orders (a restart).
    #[arg(long, value_enum, value_name = "POLICY")]
    on_stale: Option<StalePolicy>,
    /// Core to pin the loop thread to; a missing core warns and runs unpinned (key runtime.core).
    #[arg(long)]
    core: Option<usize>,
    /// Idle strategy when an iteration found no work (key runtime.idle).
    #[arg(long, value_enum, value_name = "STRATEGY")]
    idle: Option<IdleStrategy>,
    /// State directory for the crash-safe snapshot (key runtime.state_dir).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// HdrHistogram interval log of stage latencies (key runtime.histogram_path).
    #[arg(long, value_name = "FILE")]
    histogram_path: Option<PathBuf>,
    /// Interval between histogram log entries, ms (key runtime.histogram_interval_ms).
    #[arg(long, value_name = "MS")]
    histogram_interval_ms: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match HedgerConfig::load(&cli.config) {
        Ok(mut c) => {
            cli.apply(&mut c);
            c
        }
        Err(e) => {
            eprintln!("hedger: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cfg.validate("<cli>") {
        eprintln!("hedger: {e}");
        return ExitCode::from(2);
    }
    // A second signal while the first is being handled terminates at once (exit code 1).
    let stop = match stop_on_signals(Some(|_| 1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hedger: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    match engine::hedger::live::run(&cfg, &stop) {
        Ok(s) if s.epoch == 0 => {
            eprintln!("hedger: stopped by a signal during startup");
            ExitCode::SUCCESS
        }
        Ok(s) => {
            eprintln!(
                "hedger: stopped cleanly (epoch {}, md events {}, execs {}, orders sent {}, positions {:?})",
                s.epoch, s.stats.md_events, s.stats.execs_processed, s.stats.orders_sent, s.positions
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hedger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    /// Overrides the config's keys with the flags given.
    fn apply(self, cfg: &mut HedgerConfig) {
        let s = &mut cfg.shm;
        if let Some(v) = self.namespace {
            s.namespace = v;
        }
        if let Some(v) = self.shm_dir {
            s.dir = Some(v);
        }
        for (dst, v) in [
            (&mut s.md, self.md),
            (&mut s.lvt, self.lvt),
            (&mut s.instruments, self.instruments),
            (&mut s.orders, self.orders),
            (&mut s.execs, self.execs),
        ] {
            if let Some(v) = v {
                *dst = v;
            }
        }
        if let Some(v) = self.on_stale {
            s.on_stale = v;
        }
        let r = &mut cfg.runtime;
        if self.core.is_some() {
            r.core = self.core;
        }
        if let Some(v) = self.idle {
            r.idle = v;
        }
        if let Some(v) = self.state_dir {
            r.state_dir = v;
        }
        if self.histogram_path.is_some() {
            r.histogram_path = self.histogram_path;
        }
        if let Some(v) = self.histogram_interval_ms {
            r.histogram_interval_ms = v;
        }
    }
}
