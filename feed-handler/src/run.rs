//! The feed-handler process: configuration, source construction, the publish loop with pacing
//! and idle strategies, pinning, stop flag, periodic counters and the end summary.
//!
//! The loop is single-threaded: `source.next` -> pace (replay clock x speed) -> `publish`.
//! Housekeeping (counters, heartbeat, duration check, stats line) runs every 1024 events and
//! whenever the loop waits for the pacing clock, never per event.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Deserialize;
use shm_layout::agent::{Agent, AgentRunner, RunnerConfig};
use shm_layout::clock::now_ns;
use shm_layout::process::{Backoff, IdleStrategy, Idler};
use shm_layout::{namespace_dir, SegmentError, StalePolicy};

use crate::instruments::{InstrumentsFileError, Registry};
use crate::lobster::{LobsterError, LobsterOptions, LobsterSource};
use crate::partial::Partials;
use crate::publish::{PublishStats, Publisher, PublisherOptions};
use crate::source::{Batched, Rejects, Source, SourceEvent};
use crate::synthetic::{SyntheticConfig, SyntheticSource};
use crate::tardis::{TardisError, TardisSource};

/// The idle phases while the loop waits for the pacing clock (`idle`): `spin-then-yield` spins
/// 1000 times, then yields; `backoff-park` spins 100 times, yields 100 times, then sleeps 1 ms
/// at a time, cut to the time until the next event is due (a fixed sleep, not a growing one:
/// the wake-up is a deadline, not new work that may come at any time).
pub const PACING_BACKOFF: Backoff = Backoff {
    spins_before_yield: 1_000,
    park_spins: 100,
    park_yields: 100,
    first_park: Duration::from_millis(1),
    max_park: Duration::from_millis(1),
};

/// Which source to run.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceSpec {
    /// The synthetic market (`[synthetic]` table).
    #[default]
    Synthetic,
    /// Tardis CSV files (plain or .gz), merged by time.
    Tardis {
        /// Files.
        files: Vec<PathBuf>,
    },
    /// LOBSTER message and orderbook files.
    Lobster {
        /// Message file.
        message: PathBuf,
        /// Orderbook file.
        orderbook: PathBuf,
        /// Seconds from New York time to UTC (default 4 h, EDT).
        #[serde(default)]
        utc_offset_s: Option<i64>,
    },
}

/// Full configuration (the TOML file; CLI flags override it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Namespace: segments live in `/dev/shm/<namespace>`.
    pub namespace: String,
    /// Segment directory instead of the namespace's (e.g. on hugetlbfs).
    pub shm_dir: Option<PathBuf>,
    /// The source.
    pub source: SourceSpec,
    /// Instruments file (fixes the instrument set of Tardis replays).
    pub instruments_file: Option<PathBuf>,
    /// Synthetic market parameters (seed, rate, ...).
    pub synthetic: SyntheticConfig,
    /// Replay speed factor for the recorded timestamps; `None` (or `"max"` on the command
    /// line) publishes as fast as possible. The synthetic source is paced at its `rate`
    /// unless the rate is `inf`/`max`.
    pub speed: Option<f64>,
    /// Stop after this many seconds.
    pub duration_s: Option<f64>,
    /// Stop after this many events.
    pub max_events: Option<u64>,
    /// Core to pin the loop to (warn and continue if it does not exist).
    pub pin_core: Option<usize>,
    /// Idle strategy while waiting for the pacing clock (phases: [`PACING_BACKOFF`]).
    pub idle: IdleStrategy,
    /// Segments of a dead feed handler: `recover` (the default) adopts them (the ring
    /// continues at its position, sequence numbers continue; the last-value table keeps its
    /// entries), `replace` deletes and recreates them, `fail` refuses to start.
    pub on_stale: StalePolicy,
    /// Slots in the market-data ring (power of two).
    pub ring_capacity: usize,
    /// Seconds between stats lines on stderr (0: none).
    pub stats_interval_s: f64,
    /// After the source ends, keep the process (and its heartbeat) alive until SIGINT/SIGTERM.
    pub hold: bool,
    /// Paced replay: longest wait for the next event, in wall-clock seconds. A longer gap in
    /// the recording (a day between two rows at `--speed 1`) is skipped: the next event is
    /// published at once and the pacing clock continues from it; each skip is counted and
    /// warned about on stderr (off the publish path). Default 60 s; must be > 0.
    pub max_gap_s: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: "hedge".into(),
            shm_dir: None,
            source: SourceSpec::Synthetic,
            instruments_file: None,
            synthetic: SyntheticConfig::default(),
            speed: Some(1.0),
            duration_s: None,
            max_events: None,
            pin_core: None,
            idle: IdleStrategy::default(),
            on_stale: StalePolicy::Recover,
            ring_capacity: 1 << 18,
            stats_interval_s: 5.0,
            hold: false,
            max_gap_s: 60.0,
        }
    }
}

impl Config {
    /// Reads a TOML config file.
    ///
    /// # Errors
    /// [`RunError::Config`] naming the file and the problem.
    pub fn load(path: &Path) -> Result<Config, RunError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RunError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The segment directory: `shm_dir`, else `/dev/shm/<namespace>`.
    ///
    /// # Errors
    /// [`RunError::Config`] for a namespace that is not `[A-Za-z0-9_-]{1,64}`.
    pub fn dir(&self) -> Result<PathBuf, RunError> {
        match &self.shm_dir {
            Some(d) => Ok(d.clone()),
            None => namespace_dir(&self.namespace).map_err(|e| RunError::Config(e.to_string())),
        }
    }

    /// Checks values that serde cannot.
    ///
    /// # Errors
    /// [`RunError::Config`].
    pub fn validate(&self) -> Result<(), RunError> {
        let bad = |m: String| Err(RunError::Config(m));
        if !self.ring_capacity.is_power_of_two() || self.ring_capacity < 2 {
            return bad(format!(
                "ring_capacity {} must be a power of two >= 2",
                self.ring_capacity
            ));
        }
        if let Some(s) = self.speed {
            if !(s.is_finite() && s > 0.0) {
                return bad(format!("speed {s} must be > 0 (or max)"));
            }
        }
        if self.synthetic.rate.is_nan() || self.synthetic.rate <= 0.0 {
            return bad(format!(
                "synthetic rate {} must be > 0 (or max)",
                self.synthetic.rate
            ));
        }
        if !(self.max_gap_s.is_finite() && self.max_gap_s > 0.0) {
            return bad(format!(
                "max_gap_s {} must be a finite number of seconds > 0",
                self.max_gap_s
            ));
        }
        if let Err(e) = shm_layout::validate_namespace(&self.namespace) {
            return bad(e.to_string());
        }
        for (k, v, hi) in [
            ("duration_s", self.duration_s, 1e9),
            ("speed", self.speed, 1e9),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0 && v <= hi)) {
                return bad(format!("{k} = {}: must be in (0, {hi}]", v.unwrap_or(0.0)));
            }
        }
        if !(self.stats_interval_s.is_finite() && (0.0..=1e6).contains(&self.stats_interval_s)) {
            return bad(format!(
                "stats_interval_s = {}: must be in 0..=1000000 s (0: none)",
                self.stats_interval_s
            ));
        }
        if self.ring_capacity > 1 << 30 {
            return bad(format!(
                "ring_capacity = {}: must be at most 2^30 slots",
                self.ring_capacity
            ));
        }
        self.synthetic.validate().map_err(RunError::Config)
    }

    /// Parses TOML `text`; `file` names it in errors. Every error is one line naming the file,
    /// the line and the key (toml's own message quotes the source in several lines).
    ///
    /// # Errors
    /// [`RunError::Config`].
    pub fn parse(text: &str, file: &str) -> Result<Config, RunError> {
        let one_line = |e: toml::de::Error| {
            // The key by the one rule the hedger and the gateway use: only plain names, never
            // a fragment of a malformed line (which may be a credential).
            let at = e.span().map_or(String::new(), |sp| {
                let (line, _) = shm_layout::toml_text::line_col(text, sp.start);
                match shm_layout::toml_text::key_at(text, sp.start) {
                    Some(key) => format!(" line {line}, key `{key}`:"),
                    None => format!(" line {line}:"),
                }
            });
            let msg = e.message().replace('\n', " ");
            RunError::Config(format!("{file}:{at} {}", msg.trim()))
        };
        let value: toml::Table = toml::from_str(text).map_err(one_line)?;
        check_source_keys(&value).map_err(|m| RunError::Config(format!("{file}: {m}")))?;
        let cfg: Config = toml::from_str(text).map_err(one_line)?;
        cfg.validate().map_err(|e| {
            RunError::Config(format!(
                "{file}: {}",
                e.to_string().trim_start_matches("config: ")
            ))
        })?;
        Ok(cfg)
    }
}

/// Keys each `[source] kind` accepts (serde ignores `deny_unknown_fields` on an internally
/// tagged enum, so a misspelt `[source]` key used to be dropped silently).
fn check_source_keys(t: &toml::Table) -> Result<(), String> {
    let Some(src) = t.get("source").and_then(|v| v.as_table()) else {
        return Ok(());
    };
    let kind = src
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or("synthetic");
    let allowed: &[&str] = match kind {
        "tardis" => &["kind", "files"],
        "lobster" => &["kind", "message", "orderbook", "utc_offset_s"],
        _ => &["kind"],
    };
    match src.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "source.{k}: unknown key for kind = {kind:?} (allowed: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// Why the feed handler could not run (one line each).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// A Tardis file is missing or unreadable.
    #[error(transparent)]
    Tardis(#[from] TardisError),
    /// A LOBSTER file is missing or unreadable.
    #[error(transparent)]
    Lobster(#[from] LobsterError),
    /// The instruments file is wrong.
    #[error(transparent)]
    Instruments(#[from] InstrumentsFileError),
    /// A segment could not be created.
    #[error(transparent)]
    Segment(#[from] SegmentError),
}

/// Builds the configured source.
///
/// # Errors
/// [`RunError`] for missing files, bad headers or a bad instruments file.
pub fn build_source(cfg: &Config) -> Result<Box<dyn Source>, RunError> {
    Ok(match build_any_source(cfg)? {
        AnySource::Synthetic(s) => Box::new(s),
        AnySource::Tardis(s) => Box::new(s),
        AnySource::Lobster(s) => Box::new(s),
    })
}

/// One of the sources, by value: the process dispatches once on it and runs a publish loop
/// compiled for the concrete source (no virtual call per event).
// Built once per process and used in place: the size difference between variants costs
// nothing, and boxing would add an indirection to every event.
#[allow(clippy::large_enum_variant)]
pub enum AnySource {
    /// The synthetic market.
    Synthetic(SyntheticSource),
    /// Tardis CSV replay.
    Tardis(TardisSource),
    /// LOBSTER replay.
    Lobster(LobsterSource),
}

impl AnySource {
    /// The source as a trait object.
    pub fn as_source(&self) -> &dyn Source {
        match self {
            AnySource::Synthetic(s) => s,
            AnySource::Tardis(s) => s,
            AnySource::Lobster(s) => s,
        }
    }
}

/// Builds the configured source by value.
///
/// # Errors
/// [`RunError`] for missing files, bad headers or a bad instruments file.
pub fn build_any_source(cfg: &Config) -> Result<AnySource, RunError> {
    let registry = match &cfg.instruments_file {
        Some(p) => Some(Registry::load_csv(p)?),
        None => None,
    };
    Ok(match &cfg.source {
        SourceSpec::Synthetic => AnySource::Synthetic(SyntheticSource::new(cfg.synthetic.clone())),
        SourceSpec::Tardis { files } => {
            if files.is_empty() {
                return Err(RunError::Config(
                    "tardis source needs at least one file".into(),
                ));
            }
            AnySource::Tardis(TardisSource::open(files, registry)?)
        }
        SourceSpec::Lobster {
            message,
            orderbook,
            utc_offset_s,
        } => {
            let mut o = LobsterOptions::default();
            if let Some(off) = utc_offset_s {
                o.utc_offset_s = *off;
            }
            AnySource::Lobster(LobsterSource::open(message, orderbook, o)?)
        }
    })
}

/// Pacing speed for a source: `None` = as fast as possible.
fn pace(cfg: &Config) -> Option<f64> {
    match cfg.source {
        SourceSpec::Synthetic => cfg.synthetic.rate.is_finite().then_some(1.0),
        _ => cfg.speed,
    }
}

/// What a run did (printed at the end).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Publisher counts.
    pub stats: PublishStats,
    /// Source rejects by reason.
    pub rejects: Rejects,
    /// Parts of used rows dropped or degraded, by reason ([`Source::partials`]).
    pub partials: Partials,
    /// Underlying renames (`SYN.X -> X`), each once: `old -> new`.
    pub renames: Vec<String>,
    /// Paced replay: gaps longer than `max_gap_s` skipped, and the longest, source ns.
    pub gaps_skipped: (u64, u64),
    /// Input rows (or synthetic events) read.
    pub rows: u64,
    /// Wall seconds of the publish loop.
    pub elapsed_s: f64,
    /// Largest lag behind the pacing schedule, ns (0 when unpaced).
    pub max_lag_ns: u64,
    /// Why the loop stopped.
    pub stopped_by: &'static str,
    /// Segment directory.
    pub dir: PathBuf,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        let rate = s.published as f64 / self.elapsed_s.max(1e-9);
        write!(
            f,
            "feed-handler: stopped ({}); published {} events (quote {}, option_mark {}, underlying_price {}, trade {}) \
             from {} rows in {:.3} s ({:.0} events/s) into {}; rows used {} ({} in part: {}); rejected {} ({}); \
             renames {} [{}]; gaps skipped {} (longest {:.0} s); refused at publish {}; max lag {:.1} us",
            self.stopped_by,
            s.published,
            s.by_kind[1],
            s.by_kind[2],
            s.by_kind[3],
            s.by_kind[4],
            self.rows,
            self.elapsed_s,
            rate,
            self.dir.display(),
            self.rows.saturating_sub(self.rejects.total()),
            self.partials.rows(),
            self.partials,
            self.rejects.total(),
            self.rejects,
            self.renames.len(),
            self.renames.join(", "),
            self.gaps_skipped.0,
            self.gaps_skipped.1 as f64 * 1e-9,
            s.refused,
            self.max_lag_ns as f64 / 1e3
        )
    }
}

/// Runs the feed handler until the source ends (then, with `hold`, until `stop`), the duration
/// or event budget is spent, or `stop` is set (SIGINT/SIGTERM). Prints stats lines to stderr
/// every `stats_interval_s`.
///
/// # Errors
/// [`RunError`] if the source or the segments cannot be set up. Bad input rows are not errors.
pub fn run(cfg: &Config, stop: &AtomicBool) -> Result<Summary, RunError> {
    cfg.validate()?;
    let mut src = build_any_source(cfg)?;
    let dir = cfg.dir()?;
    let opts = PublisherOptions {
        ring_capacity: cfg.ring_capacity,
        stale: cfg.on_stale,
    };
    let mut publ = Publisher::create(&dir, src.as_source().registry(), &opts)?;
    let mut summary = match &mut src {
        AnySource::Synthetic(s) => publish_loop(cfg, s, &mut publ, stop, &dir),
        // File sources deliver snapshots as rows sharing a timestamp: marked as batches so
        // the hedger decides on whole snapshots (the synthetic market stamps every event
        // apart and is published as it comes).
        AnySource::Tardis(s) => publish_loop(cfg, &mut Batched::new(s), &mut publ, stop, &dir),
        AnySource::Lobster(s) => publish_loop(cfg, &mut Batched::new(s), &mut publ, stop, &dir),
    };
    if let AnySource::Tardis(s) = &src {
        summary.renames = s
            .renames()
            .into_iter()
            .map(|(old, new, _)| format!("{old} -> {new}"))
            .collect();
    }
    // Files out of step: what was published before the mismatch stands, but the run failed.
    if let AnySource::Lobster(s) = &mut src {
        if let Some(e) = s.take_pairing_error() {
            return Err(RunError::Lobster(e));
        }
    }
    Ok(summary)
}

/// Unpaced (`max`) runs read the monotonic clock once per this many events and stamp the
/// batch's events with it (a cached clock updated per duty cycle, as Aeron's
/// `CachedNanoClock`): a clock read costs about as much as generating and publishing an event.
/// Paced runs read the clock for every event (they need it to pace).
pub const CLOCK_BATCH: u64 = 16;

/// Paced replay's skipping of long gaps in the recording.
struct GapSkip {
    /// Longest wait for one event, wall ns.
    max_gap_ns: u64,
    /// Source time skipped so far, source ns.
    skipped_src_ns: u64,
    /// Previous event's source time, ns (0: none yet).
    prev_src_ns: u64,
    /// (gaps skipped, longest skipped gap in source ns).
    gaps: (u64, u64),
}

impl GapSkip {
    fn new(max_gap_s: f64) -> Self {
        GapSkip {
            max_gap_ns: (max_gap_s * 1e9) as u64,
            skipped_src_ns: 0,
            prev_src_ns: 0,
            gaps: (0, 0),
        }
    }

    /// When the event at `src_ns` is due, wall ns after the start (`first_ns`: the first
    /// event's source time) at `speed`, with every gap whose wait would exceed the limit cut
    /// out: such an event is due at once after its predecessor.
    #[inline]
    fn offset_ns(&mut self, src_ns: u64, first_ns: u64, speed: f64) -> u64 {
        let gap = src_ns.saturating_sub(self.prev_src_ns.max(first_ns));
        if (gap as f64 / speed) as u64 > self.max_gap_ns {
            self.skipped_src_ns += gap;
            self.gaps = (self.gaps.0 + 1, self.gaps.1.max(gap));
        }
        self.prev_src_ns = src_ns;
        let since = src_ns.saturating_sub(first_ns);
        (since.saturating_sub(self.skipped_src_ns) as f64 / speed) as u64
    }
}

/// The warning for gaps skipped in paced replay (stderr, off the publish path: from the
/// housekeeping between events and at the end).
fn warn_gaps(cfg: &Config, (n, longest_ns): (u64, u64)) {
    eprintln!(
        "feed-handler: warning: {n} gap(s) in the recording longer than max_gap_s {} s skipped so far (longest {:.0} s of source time)",
        cfg.max_gap_s,
        longest_ns as f64 * 1e-9
    );
}

/// The publish loop over any source and publisher (also used by benchmarks and tests):
/// [`FeedAgent`] on the [`AgentRunner`], pinned to `pin_core`, idling as `idle`
/// ([`PACING_BACKOFF`]), counters and heartbeat every millisecond, the stats line every
/// `stats_interval_s`.
pub fn publish_loop<S: Source + ?Sized>(
    cfg: &Config,
    src: &mut S,
    publ: &mut Publisher,
    stop: &AtomicBool,
    dir: &Path,
) -> Summary {
    let runner = AgentRunner::new(RunnerConfig {
        core: cfg.pin_core,
        idle: cfg.idle,
        backoff: PACING_BACKOFF,
        heartbeat_interval_ns: 1_000_000,
        status_interval_ns: if cfg.stats_interval_s > 0.0 {
            (cfg.stats_interval_s * 1e9) as u64
        } else {
            0
        },
        drain_timeout_ns: 0,
        duty_every_cycles: 1024,
    });
    let mut agent = FeedAgent::new(cfg, src, publ);
    match runner.run(&mut agent, stop) {
        Ok(()) => {}
        Err(never) => match never {},
    }
    agent.summary(dir)
}

/// The feed handler as an [`Agent`]: each duty cycle reads one event from the source and
/// publishes it when it is due (paced replay: the recorded time x speed; unpaced: at once).
/// A paced event that is not yet due is held and the cycle reports no work, so the runner
/// idles, at most until the event is due ([`Idler::idle_at_most`]). Duties check the duration,
/// warn about skipped gaps and (through the runner) flush the counters and print the stats
/// line.
pub struct FeedAgent<'a, S: Source + ?Sized> {
    cfg: &'a Config,
    src: &'a mut S,
    publ: &'a mut Publisher,
    speed: Option<f64>,
    max_events: u64,
    start: u64,
    deadline: u64,
    ev: SourceEvent,
    /// `ev` is read and waits for `due_ns` (paced replay).
    pending: bool,
    due_ns: u64,
    cached_now: u64,
    first_src: Option<u64>,
    published: u64,
    lag_ns: u64,
    max_lag_ns: u64,
    /// The last stats line: (time ns, events published then).
    last_stats: (u64, u64),
    gap_skip: GapSkip,
    gaps_warned: u64,
    /// The source ended and `hold` keeps the process alive until stop.
    holding: bool,
    /// Why the run ends (None: still running).
    stopped_by: Option<&'static str>,
}

impl<'a, S: Source + ?Sized> FeedAgent<'a, S> {
    /// An agent publishing `src` through `publ` as `cfg` says, starting now.
    pub fn new(cfg: &'a Config, src: &'a mut S, publ: &'a mut Publisher) -> Self {
        let start = now_ns();
        FeedAgent {
            speed: pace(cfg),
            max_events: cfg.max_events.unwrap_or(u64::MAX),
            start,
            deadline: cfg
                .duration_s
                .map_or(u64::MAX, |d| start.saturating_add((d * 1e9) as u64)),
            ev: SourceEvent::default(),
            pending: false,
            due_ns: 0,
            cached_now: start,
            first_src: None,
            published: 0,
            lag_ns: 0,
            max_lag_ns: 0,
            last_stats: (start, 0),
            gap_skip: GapSkip::new(cfg.max_gap_s),
            gaps_warned: 0,
            holding: false,
            stopped_by: None,
            cfg,
            src,
            publ,
        }
    }

    /// Reads the next event: publishes it if unpaced, else computes when it is due. Returns
    /// the work done.
    #[inline]
    fn read_next(&mut self) -> usize {
        if self.published >= self.max_events {
            self.stopped_by = Some("max events");
            return 0;
        }
        if !self.src.next(&mut self.ev) {
            if self.cfg.hold {
                self.holding = true; // keep heartbeating until told to stop
            } else {
                self.stopped_by = Some("end of source");
            }
            return 0;
        }
        let Some(speed) = self.speed else {
            if self.published & (CLOCK_BATCH - 1) == 0 {
                self.cached_now = now_ns();
            }
            self.publ.publish_at(&self.ev, self.cached_now);
            self.published += 1;
            return 1;
        };
        let first = *self.first_src.get_or_insert(self.ev.source_ts_ns);
        let offset = self.gap_skip.offset_ns(self.ev.source_ts_ns, first, speed);
        self.due_ns = self.start.saturating_add(offset);
        self.pending = true;
        // While the event waits for its time, its last-value entry comes into the cache.
        self.publ.prefetch(&self.ev);
        self.publish_if_due(now_ns())
    }

    /// Publishes the held event if it is due at `now`.
    #[inline]
    fn publish_if_due(&mut self, now: u64) -> usize {
        if now < self.due_ns {
            return 0;
        }
        self.lag_ns = now - self.due_ns;
        self.max_lag_ns = self.max_lag_ns.max(self.lag_ns);
        self.publ.publish_at(&self.ev, now);
        self.published += 1;
        self.pending = false;
        1
    }

    /// Events per second since the last stats line (since the start before the first).
    fn rate_per_s(&self, now: u64) -> f64 {
        (self.published - self.last_stats.1) as f64 * 1e9
            / now.saturating_sub(self.last_stats.0).max(1) as f64
    }

    fn warn_new_gaps(&mut self) {
        let gaps = self.gap_skip.gaps;
        if gaps.0 != self.gaps_warned {
            warn_gaps(self.cfg, gaps);
            self.gaps_warned = gaps.0;
        }
    }

    /// What the run did.
    pub fn summary(&self, dir: &Path) -> Summary {
        Summary {
            stats: self.publ.stats(),
            rejects: self.src.rejects(),
            partials: self.src.partials(),
            renames: Vec::new(),
            gaps_skipped: self.gap_skip.gaps,
            rows: self.src.rows_read(),
            elapsed_s: now_ns().saturating_sub(self.start) as f64 * 1e-9,
            max_lag_ns: self.max_lag_ns,
            stopped_by: self.stopped_by.unwrap_or("end of source"),
            dir: dir.to_path_buf(),
        }
    }
}

impl<S: Source + ?Sized> Agent for FeedAgent<'_, S> {
    type Error = std::convert::Infallible;

    fn name(&self) -> &str {
        "feed-handler"
    }

    fn counters(&self) -> Option<&shm_layout::CountersWriter> {
        self.publ.counters_writer()
    }

    #[inline]
    fn do_work(&mut self) -> Result<usize, Self::Error> {
        if self.stopped_by.is_some() || self.holding {
            return Ok(0);
        }
        if self.pending {
            return Ok(self.publish_if_due(now_ns()));
        }
        Ok(self.read_next())
    }

    #[inline]
    fn is_done(&self) -> bool {
        self.stopped_by.is_some()
    }

    fn on_duty(&mut self, now: u64) -> Result<(), Self::Error> {
        self.warn_new_gaps();
        if now >= self.deadline && self.stopped_by.is_none() {
            self.stopped_by = Some(if self.holding {
                "end of source, then stop"
            } else {
                "duration"
            });
        }
        Ok(())
    }

    fn publish_counters(&mut self, now: u64) {
        let lag = if self.pending || self.holding {
            0 // waiting: no event is late
        } else {
            self.lag_ns
        };
        let gaps = self.gap_skip.gaps.0;
        let rate = self.rate_per_s(now);
        let publ = &self.publ;
        publ.flush_counters(&self.src.rejects(), self.src.rows_read(), rate, lag as f64);
        publ.flush_partials(&self.src.partials(), gaps);
    }

    fn status_line(&mut self, now: u64) -> Option<String> {
        let line = format!(
            "{} events, {:.0}/s, rejects {}, lag {:.1} us",
            self.published,
            self.rate_per_s(now),
            self.src.rejects().total(),
            self.lag_ns as f64 / 1e3
        );
        self.last_stats = (now, self.published);
        Some(line)
    }

    fn idle(&mut self, idler: &mut Idler) {
        if self.holding {
            std::thread::sleep(Duration::from_millis(1));
        } else if self.pending {
            idler.idle_at_most(self.due_ns.saturating_sub(now_ns()).max(1));
        } else {
            idler.idle();
        }
    }

    fn on_stop(&mut self, _now: u64, by_signal: bool) {
        if by_signal && self.stopped_by.is_none() {
            self.stopped_by = Some(if self.holding {
                "end of source, then stop"
            } else {
                "signal"
            });
        }
    }

    fn on_close(&mut self, _now: u64) -> Result<(), Self::Error> {
        self.warn_new_gaps();
        let publ = &self.publ;
        publ.flush_counters(&self.src.rejects(), self.src.rows_read(), 0.0, 0.0);
        publ.flush_partials(&self.src.partials(), self.gap_skip.gaps.0);
        publ.flush_renames(self.src.renames_seen());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_are_one_line_naming_file_key_value_and_range() {
        let err = |text: &str| Config::parse(text, "f.toml").unwrap_err().to_string();
        let e = err("[source]\nkind = \"synthetic\"\nfiles = [\"a.csv\"]\n");
        assert_eq!(
            e,
            "config: f.toml: source.files: unknown key for kind = \"synthetic\" (allowed: kind)"
        );
        let e = err(
            "[source]\nkind = \"lobster\"\nmessage = \"m\"\norderbook = \"o\"\nutc_ofset_s = 1\n",
        );
        assert!(
            e.contains("source.utc_ofset_s: unknown key for kind = \"lobster\""),
            "{e}"
        );
        for (text, want) in [
            (
                "[synthetic]\nhalf_spread_bps = nan\n",
                "synthetic.half_spread_bps = NaN: must be in",
            ),
            (
                "[synthetic]\nlevel_size = -inf\n",
                "synthetic.level_size = -inf: must be in",
            ),
            (
                "[synthetic]\nstress_every_s = 1e11\n",
                "synthetic.stress_every_s = 100000000000",
            ),
            (
                "ring_capcity = 3\n",
                "f.toml: line 1, key `ring_capcity`: unknown field",
            ),
            (
                "[synthetic]\nrate = \"fast\"\n",
                "f.toml: line 2, key `synthetic.rate`: invalid type",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want) && !e.contains('\n'), "{text:?}: {e}");
        }
        // A malformed line is never quoted, even as a key: it may be a credential.
        let e = err("[synthetic]\npassword hunter2 = 1\n");
        assert!(
            e.starts_with("config: f.toml: line 2") && !e.contains("hunter2"),
            "{e}"
        );
        assert!(Config::parse("[source]\nkind = \"tardis\"\nfiles = [\"a.csv\"]\n", "f").is_ok());
    }

    #[test]
    fn namespaces_outside_dev_shm_are_refused() {
        for bad in [".", "..", "", "../../tmp/X"] {
            let c = Config {
                namespace: bad.into(),
                ..Config::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("is not allowed"), "{bad:?}: {e}");
            assert!(c.dir().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn example_config_and_instruments_file_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let c = Config::load(&dir.join("feed-handler.example.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.source, SourceSpec::Synthetic);
        assert_eq!(c.synthetic, SyntheticConfig::default());
        let r = Registry::load_csv(&dir.join("instruments.example.csv")).unwrap();
        assert!(r.is_fixed());
        let put = r.get(r.id_of("BTC-22MAY20-9250-P").unwrap()).unwrap();
        assert_eq!(r.get(put.forward_id).unwrap().symbol(), "SYN.BTC-22MAY20");
        assert!(r.id_of("BTC-22MAY20-12000-C").is_some());
    }

    #[test]
    fn backoff_park_sleeps_until_the_next_event_is_due_at_most_1_ms_at_a_time() {
        use shm_layout::process::IdleAction;
        let mut idler = Idler::new(IdleStrategy::BackoffPark, PACING_BACKOFF);
        for _ in 0..200 {
            assert!(matches!(
                idler.idle_at_most(5_000),
                IdleAction::Spin | IdleAction::Yield
            ));
        }
        assert_eq!(
            idler.idle_at_most(5_000),
            IdleAction::Park(Duration::from_micros(5))
        );
        assert_eq!(
            idler.idle_at_most(u64::MAX),
            IdleAction::Park(Duration::from_millis(1))
        );
    }

    #[test]
    fn config_errors_name_the_problem() {
        let e = toml::from_str::<Config>("ring_capcity = 3").unwrap_err();
        assert!(e.to_string().contains("ring_capcity"), "{e}");
        let c = Config {
            ring_capacity: 1000,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("power of two"));
        let e = toml::from_str::<Config>("idle = \"spin\"").unwrap_err();
        assert!(
            e.to_string().contains(r#"unknown idle strategy "spin""#),
            "{e}"
        );
        let c: Config = toml::from_str("idle = \"backoff-park\"\non_stale = \"replace\"").unwrap();
        assert_eq!(
            (c.idle, c.on_stale),
            (IdleStrategy::BackoffPark, StalePolicy::Replace)
        );
        let t: Config = toml::from_str("[source]\nkind = \"tardis\"\nfiles = [\"a.csv\"]").unwrap();
        assert_eq!(
            t.source,
            SourceSpec::Tardis {
                files: vec![PathBuf::from("a.csv")]
            }
        );
    }
}
