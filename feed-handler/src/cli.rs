//! Command line of the `feed-handler` binary: a TOML config file (`--config`) with flags that
//! override it, and the source as a subcommand.
//!
//! ```text
//! feed-handler synthetic --seed 7 --rate 5000 --duration 30
//! feed-handler --namespace demo synthetic --rate max --max-events 10000000
//! feed-handler tardis ../shared/data/deribit/options_chain_2020-05-14.csv quotes.csv.gz --speed 10
//! feed-handler lobster AMZN_..._message_1.csv AMZN_..._orderbook_1.csv --speed max
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use shm_layout::process::IdleStrategy;
use shm_layout::StalePolicy;

use crate::run::{run, Config, RunError, SourceSpec};

fn parse_rate(s: &str) -> Result<f64, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(f64::INFINITY);
    }
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number or `max`")),
    }
}

/// Normalized market data into shared memory: a synthetic market, Tardis.dev CSV or LOBSTER.
#[derive(Debug, Parser)]
#[command(name = "feed-handler", version, about)]
pub struct Cli {
    /// TOML config file; the flags below override its values.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Namespace: segments in /dev/shm/NAMESPACE [default: hedge].
    #[arg(long, env = "HEDGE_NAMESPACE", global = true)]
    pub namespace: Option<String>,
    /// Segment directory instead of the namespace's (e.g. a hugetlbfs mount).
    #[arg(long, global = true)]
    pub shm_dir: Option<PathBuf>,
    /// Seed of the synthetic market.
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// Synthetic events per second, or `max` (as fast as possible).
    #[arg(long, global = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Replay speed factor over the recorded timestamps, or `max` [default: 1].
    #[arg(long, global = true, value_parser = parse_rate)]
    pub speed: Option<f64>,
    /// Paced replay: a gap in the recording that would make the replay wait longer than this
    /// many wall-clock seconds is skipped with a warning [default: 60].
    #[arg(long, global = true)]
    pub max_gap: Option<f64>,
    /// Stop after this many seconds.
    #[arg(long, global = true)]
    pub duration: Option<f64>,
    /// Stop after this many events.
    #[arg(long, global = true)]
    pub max_events: Option<u64>,
    /// Pin the publishing thread to this core (warns and continues if it does not exist).
    /// `--core` is accepted too, as for the hedger and the order gateway.
    #[arg(long, global = true, visible_alias = "core")]
    pub pin_core: Option<usize>,
    /// Idle strategy while waiting for the pacing clock [default: spin-then-yield].
    #[arg(long, global = true, value_enum, value_name = "STRATEGY")]
    pub idle: Option<IdleStrategy>,
    /// Segments of a dead feed handler [default: recover].
    #[arg(long, global = true, value_enum, value_name = "POLICY")]
    pub on_stale: Option<StalePolicy>,
    /// Market-data ring slots (power of two).
    #[arg(long, global = true)]
    pub ring_capacity: Option<usize>,
    /// Instruments file (CSV) fixing the instrument set of a Tardis replay.
    #[arg(long, global = true)]
    pub instruments: Option<PathBuf>,
    /// Seconds between stats lines on stderr (0: none).
    #[arg(long, global = true)]
    pub stats_interval: Option<f64>,
    /// After the source ends, keep running (heartbeat) until SIGINT/SIGTERM.
    #[arg(long, global = true)]
    pub hold: bool,
    /// The source [default: the config's, else synthetic].
    #[command(subcommand)]
    pub source: Option<SourceCmd>,
}

/// The source subcommand.
#[derive(Debug, Subcommand)]
pub enum SourceCmd {
    /// The deterministic synthetic market (jump-diffusion, hedge book, options chain).
    Synthetic,
    /// Replay Tardis.dev CSV files (options_chain, quotes, book_snapshot_N,
    /// incremental_book_L2; plain or .gz), merged by local timestamp.
    Tardis {
        /// Files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replay a LOBSTER message file and its orderbook file.
    Lobster {
        /// Message file.
        message: PathBuf,
        /// Orderbook file.
        orderbook: PathBuf,
        /// Seconds from New York time to UTC (4 h EDT, 5 h EST).
        #[arg(long)]
        utc_offset_s: Option<i64>,
    },
}

impl Cli {
    /// The configuration: the config file (or defaults) with the flags applied.
    ///
    /// # Errors
    /// [`RunError::Config`] for an unreadable or invalid config file.
    pub fn to_config(&self) -> Result<Config, RunError> {
        let mut c = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(v) = &self.namespace {
            c.namespace = v.clone();
        }
        if let Some(v) = &self.shm_dir {
            c.shm_dir = Some(v.clone());
        }
        if let Some(v) = self.seed {
            c.synthetic.seed = v;
        }
        if let Some(v) = self.rate {
            c.synthetic.rate = v;
        }
        if let Some(v) = self.speed {
            c.speed = v.is_finite().then_some(v);
        }
        if let Some(v) = self.max_gap {
            c.max_gap_s = v;
        }
        if self.duration.is_some() {
            c.duration_s = self.duration;
        }
        if self.max_events.is_some() {
            c.max_events = self.max_events;
        }
        if self.pin_core.is_some() {
            c.pin_core = self.pin_core;
        }
        if let Some(v) = self.idle {
            c.idle = v;
        }
        if let Some(v) = self.on_stale {
            c.on_stale = v;
        }
        if let Some(v) = self.ring_capacity {
            c.ring_capacity = v;
        }
        if let Some(v) = &self.instruments {
            c.instruments_file = Some(v.clone());
        }
        if let Some(v) = self.stats_interval {
            c.stats_interval_s = v;
        }
        c.hold |= self.hold;
        match &self.source {
            None => {}
            Some(SourceCmd::Synthetic) => c.source = SourceSpec::Synthetic,
            Some(SourceCmd::Tardis { files }) => {
                c.source = SourceSpec::Tardis {
                    files: files.clone(),
                }
            }
            Some(SourceCmd::Lobster {
                message,
                orderbook,
                utc_offset_s,
            }) => {
                c.source = SourceSpec::Lobster {
                    message: message.clone(),
                    orderbook: orderbook.clone(),
                    utc_offset_s: *utc_offset_s,
                }
            }
        }
        c.validate()?;
        Ok(c)
    }
}

/// Entry point of the binary: parse, install SIGINT/SIGTERM flags, run, print the summary.
/// Exit code 0 after a clean stop (end of source, duration, first signal), 1 on a setup error
/// (printed as one line on stderr), 2 on a usage error, 128 + signal on a second signal.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("feed-handler: error: {e}");
            return ExitCode::from(1);
        }
    };
    // First signal: set the flag (clean stop with the summary). A second one while the flag
    // is still set (e.g. stuck opening a huge file): exit at once with 128 + signal.
    let stop = match shm_layout::agent::stop_on_signals(Some(|sig| 128 + sig)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("feed-handler: error: cannot install signal handler: {e}");
            return ExitCode::from(1);
        }
    };
    match run(&cfg, &stop) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("feed-handler: error: {e}");
            ExitCode::from(1)
        }
    }
}
