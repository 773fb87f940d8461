//! The product: the three processes (`feed-handler`, `hedger`, `order-gateway`) on shared
//! memory, pinned to the cores given, in a fresh namespace per run.
//!
//! Sequence of one run:
//! 1. `feed-handler --max-events 0` creates the segments (instruments, last-value table,
//!    market-data ring) and exits, so that the hedger and the gateway can attach before a
//!    single event is published (the hedger's reader starts at the writer's position).
//! 2. `order-gateway` and `hedger` start; the benchmark waits until both report `Running`
//!    in their counters segments.
//! 3. `feed-handler --on-stale recover --rate R --max-events N` adopts the ring and the table
//!    and publishes the N events, paced at R (or as fast as it can).
//! 4. When the hedger has consumed them (or lost them, lapped), SIGTERM the hedger, then the
//!    gateway; the hedger writes its stage histograms (interval log), the gateway its
//!    tick-to-order histogram (`--latency-log`).
//!
//! Timestamps: `recv_ts_ns` (feed publish) -> `hedger_read` -> `decision` -> `publish`
//! (the hedger) -> gateway read (the gateway's loop clock when it peeks the order), all
//! `CLOCK_MONOTONIC`, shared by the processes of the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use shm_layout::{CounterValue, CountersReader, OpenOptions, ProcessState};

use super::market;
use super::report::{new_hist, read_interval_log};

/// Placement of the three processes.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Cores of feed, hedger, gateway.
    pub cores: [usize; 3],
    /// Idle strategies of feed, hedger, gateway.
    pub idle: [String; 3],
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Directory of the release binaries.
    pub bin_dir: PathBuf,
    /// Output directory of this run (configs, logs, histograms).
    pub out: PathBuf,
    /// Offered rate, events/s (`inf` = as fast as possible).
    pub rate: f64,
    /// Events to publish.
    pub events: u64,
    /// Options in the book.
    pub options: usize,
    /// Hedge band, BTC.
    pub band: f64,
    /// The hedger's `runtime.housekeeping_core`.
    pub housekeeping_core: Option<usize>,
    /// Placement.
    pub placement: Placement,
    /// Give up waiting for the hedger after this long once the feed is done.
    pub drain_timeout: Duration,
}

/// What one run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Histograms by stage: `recv_to_read`, `read_to_decision`, `decision_to_publish`,
    /// `recv_to_publish` (hedger), `publish_to_gateway`, `recv_to_gateway` (gateway: the
    /// tick-to-order path).
    pub stages: BTreeMap<String, Histogram<u64>>,
    /// Events published by the feed.
    pub published: u64,
    /// Seconds the feed took to publish them (first to last, from its counters).
    pub publish_s: f64,
    /// Events the hedger read.
    pub md_events: u64,
    /// Times the hedger was lapped.
    pub md_lapped: u64,
    /// Events the hedger lost to lapping.
    pub md_lost: u64,
    /// Seconds from the hedger's first to its last event read (from its counters).
    pub consume_s: f64,
    /// Orders the hedger sent.
    pub orders_sent: u64,
    /// Orders the gateway received.
    pub orders_received: u64,
    /// Orders filled (hedger's count).
    pub orders_filled: u64,
    /// Orders the hedger could not push (ring full).
    pub orders_ring_full: u64,
    /// Feed rejects (events the synthetic source generated that failed validation).
    pub feed_rejects: u64,
    /// Hedger market-data rejects.
    pub md_rejected: u64,
    /// On-CPU seconds of the hedger while the feed ran (from its start to the end of the drain),
    /// all its threads (`schedstat`, see [`CpuNs`]). An upper bound of its work: the loop
    /// busy-spins while no event flows (the feed's start, the drain, the wait for the gateway).
    pub hedger_cpu_s: f64,
    /// The part of `hedger_cpu_s` on the hedger's main thread (its loop), without the session
    /// journal writer and state threads.
    pub hedger_loop_cpu_s: f64,
    /// On-CPU seconds of the hedger's loop thread while events flowed: from the last sample
    /// before its first event was read to the first sample after its last
    /// (`/proc/<pid>/task/<tid>/schedstat`, nanoseconds; samples every 5 ms).
    pub hedger_flow_loop_cpu_s: f64,
    /// On-CPU seconds of the hedger's other threads (session journal writer, state writer,
    /// histogram log) over the whole span: they sleep when idle, so all of it is the events'
    /// (the journal's writes after the last event included).
    pub hedger_side_cpu_s: f64,
    /// Bytes of session journal the hedger wrote in this run (its files are removed after the
    /// run: about 100 bytes per event read, hundreds of MB at saturation).
    pub journal_bytes: u64,
    /// Wall seconds of the same span.
    pub hedger_wall_s: f64,
    /// Lines of the process logs saying a process could not be pinned.
    pub pin_warnings: Vec<String>,
}

impl RunResult {
    /// `cpu_s` seconds of CPU per market event the hedger read, ns.
    pub fn ns_per_event(&self, cpu_s: f64) -> f64 {
        cpu_s * 1e9 / self.md_events.max(1) as f64
    }

    /// The hedger's CPU per event read: its loop while events flowed plus its side threads.
    pub fn hedger_cpu_ns_per_event(&self) -> f64 {
        self.ns_per_event(self.hedger_flow_loop_cpu_s + self.hedger_side_cpu_s)
    }
}

struct Procs(Vec<(&'static str, Child)>);

/// On-CPU nanoseconds of a process's threads (all, and the main thread alone).
#[derive(Debug, Clone, Copy, Default)]
struct CpuNs {
    all: u64,
    main: u64,
}

impl CpuNs {
    /// From `/proc/<pid>/task/*/schedstat` (its first field: nanoseconds on a CPU), which,
    /// unlike `stat`'s 10 ms ticks, resolves a 5 ms sampling interval. A thread that ends
    /// between the listing and its read is left out.
    fn of(pid: u32) -> Option<CpuNs> {
        let mut c = CpuNs::default();
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let Some(ns) = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            else {
                continue;
            };
            c.all += ns;
            if t.file_name().to_str() == Some(pid.to_string().as_str()) {
                c.main = ns;
            }
        }
        Some(c)
    }

    fn side(&self) -> u64 {
        self.all - self.main
    }
}

/// The hedger's CPU samples around the span in which events flowed.
#[derive(Debug, Default)]
struct FlowCpu {
    /// The sample taken before the previous counter read (events not yet flowing then).
    prev_pre: Option<CpuNs>,
    start: Option<CpuNs>,
    end: Option<CpuNs>,
}

impl FlowCpu {
    /// One poll: `pre` sampled before the counters were read, `post` after; `first` when this
    /// read saw the first event, `moved` when it saw more events than the previous one.
    fn poll(&mut self, pre: Option<CpuNs>, post: Option<CpuNs>, first: bool, moved: bool) {
        if first {
            self.start = self.prev_pre;
        }
        if moved {
            self.end = post;
        }
        self.prev_pre = pre;
    }

    /// The loop thread's CPU between the samples, seconds.
    fn loop_s(&self) -> f64 {
        match (self.start, self.end) {
            (Some(a), Some(b)) => b.main.saturating_sub(a.main) as f64 / 1e9,
            _ => 0.0,
        }
    }
}

impl Procs {
    fn pid(&self, name: &str) -> Option<u32> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, c)| c.id())
    }

    fn term(&mut self, name: &str, wait: Duration) -> anyhow::Result<()> {
        let Some(i) = self.0.iter().position(|(n, _)| *n == name) else {
            return Ok(());
        };
        let (_, mut c) = self.0.remove(i);
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < wait {
            if c.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        bail!("{name} did not stop within {wait:?} after SIGTERM (killed)")
    }

    fn check(&mut self) -> anyhow::Result<()> {
        for (n, c) in &mut self.0 {
            if let Some(st) = c.try_wait()? {
                bail!("{n} exited early ({st}); see its log in the run directory");
            }
        }
        Ok(())
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes the namespace directory when dropped.
struct NsGuard(PathBuf);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn counters(dir: &Path, role: &str) -> BTreeMap<String, f64> {
    let Ok(r) = CountersReader::open(dir, role, OpenOptions::default()) else {
        return BTreeMap::new();
    };
    r.snapshot()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                CounterValue::Counter(c) => c as f64,
                CounterValue::Gauge(g) => g,
            };
            (k, v)
        })
        .collect()
}

fn sum_prefix(m: &BTreeMap<String, f64>, prefix: &str) -> u64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v as u64)
        .sum()
}

fn get(m: &BTreeMap<String, f64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0.0) as u64
}

fn state(dir: &Path, role: &str) -> Option<ProcessState> {
    CountersReader::open(dir, role, OpenOptions::default())
        .ok()
        .and_then(|r| r.state())
}

fn spawn(
    name: &'static str,
    bin: &Path,
    args: &[String],
    log: &Path,
) -> anyhow::Result<(&'static str, Child)> {
    let f = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
    let f2 = f.try_clone()?;
    let c = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok((name, c))
}

fn s<T: ToString>(v: T) -> String {
    v.to_string()
}

/// Runs the three processes once.
///
/// # Errors
/// A binary is missing, a process fails to start or exits early, or a histogram log cannot
/// be read.
pub fn run(spec: &RunSpec) -> anyhow::Result<RunResult> {
    let out = &spec.out;
    std::fs::create_dir_all(out)?;
    let ns = format!(
        "e2e-{}-{}",
        std::process::id(),
        out.file_name()
            .map_or_else(|| "run".into(), |f| f.to_string_lossy().into_owned())
    );
    let dir = shm_layout::namespace_dir(&ns)?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ns_guard = NsGuard(dir.clone());
    let bin = |n: &str| spec.bin_dir.join(n);
    for n in ["feed-handler", "hedger", "order-gateway"] {
        if !bin(n).exists() {
            bail!(
                "{} not found (build with `cargo build --release -p feed-handler -p engine -p order-gateway`)",
                bin(n).display()
            );
        }
    }

    let start_ns = shm_layout::clock::wall_ns();
    let syn = market::synthetic_config(spec.options, spec.rate, start_ns, 1);
    let (defs, spot) = market::instruments(&syn);
    let feed_cfg = out.join("feed-handler.toml");
    std::fs::write(&feed_cfg, market::feed_toml(&syn))?;
    let hedger_cfg = out.join("hedger.toml");
    std::fs::write(
        &hedger_cfg,
        market::hedger_toml(
            &defs,
            spot,
            start_ns,
            market::BenchPolicy::Fixed { band: spec.band },
            spec.housekeeping_core,
        ),
    )?;
    let hlog = out.join("hedger.hlog");
    let glog = out.join("gateway.hlog");
    let _ = std::fs::remove_file(&hlog);
    let _ = std::fs::remove_file(&glog);
    let state_dir = out.join("hedger-state");
    let gw_state = out.join("gateway-state");
    let _ = std::fs::remove_dir_all(&state_dir);
    let _ = std::fs::remove_dir_all(&gw_state);
    std::fs::create_dir_all(&gw_state)?;
    let [fc, hc, gc] = spec.placement.cores;
    let [fi, hi, gi] = spec.placement.idle.clone();
    let rate_arg = if spec.rate.is_finite() {
        s(spec.rate)
    } else {
        "max".into()
    };
    let feed_args = |events: u64, on_stale: &str| -> Vec<String> {
        vec![
            "--namespace".into(),
            ns.clone(),
            "--config".into(),
            feed_cfg.display().to_string(),
            "--rate".into(),
            rate_arg.clone(),
            "--max-events".into(),
            s(events),
            "--pin-core".into(),
            s(fc),
            "--idle".into(),
            fi.clone(),
            "--on-stale".into(),
            on_stale.into(),
            "--stats-interval".into(),
            "0".into(),
            "synthetic".into(),
        ]
    };

    // 1. Segments.
    let st = Command::new(bin("feed-handler"))
        .args(feed_args(0, "replace"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(out.join("feed-setup.log"))?)
        .status()?;
    if !st.success() {
        bail!(
            "feed-handler (segment set-up) failed: {st}; see {}",
            out.join("feed-setup.log").display()
        );
    }
    // 2. Gateway and hedger.
    let mut procs = Procs(Vec::new());
    procs.0.push(spawn(
        "order-gateway",
        &bin("order-gateway"),
        &[
            "--namespace".into(),
            ns.clone(),
            "--state-dir".into(),
            gw_state.display().to_string(),
            "--core".into(),
            s(gc),
            "--idle".into(),
            gi.clone(),
            "--on-stale".into(),
            "replace".into(),
            "--no-flow".into(),
            "--latency-us".into(),
            "0".into(),
            "--jitter-us".into(),
            "0".into(),
            "--rate-limit-per-s".into(),
            "0".into(),
            "--open-wait-ms".into(),
            "60000".into(),
            "--latency-log".into(),
            glog.display().to_string(),
        ],
        &out.join("order-gateway.log"),
    )?);
    procs.0.push(spawn(
        "hedger",
        &bin("hedger"),
        &[
            "--config".into(),
            hedger_cfg.display().to_string(),
            "--namespace".into(),
            ns.clone(),
            "--core".into(),
            s(hc),
            "--idle".into(),
            hi.clone(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--histogram-path".into(),
            hlog.display().to_string(),
        ],
        &out.join("hedger.log"),
    )?);
    let t = Instant::now();
    loop {
        procs.check()?;
        if state(&dir, "hedger") == Some(ProcessState::Running)
            && state(&dir, "gateway") == Some(ProcessState::Running)
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!(
                "hedger and gateway not running after 120 s; see their logs in {}",
                out.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the hedger's gateway-heartbeat check see the gateway alive.
    std::thread::sleep(Duration::from_millis(300));

    // 3. Publish.
    let mut feed = spawn(
        "feed-handler",
        &bin("feed-handler"),
        &feed_args(spec.events, "recover"),
        &out.join("feed-handler.log"),
    )?;
    let mut first_pub: Option<Instant> = None;
    let mut last_pub = (Instant::now(), 0u64);
    let mut first_md: Option<Instant> = None;
    let mut last_md = (Instant::now(), 0u64);
    let mut feed_done: Option<Instant> = None;
    let base_md = get(&counters(&dir, "hedger"), "md_events");
    let hpid = procs.pid("hedger");
    let sample = || hpid.and_then(CpuNs::of);
    let cpu0 = sample();
    let mut flow = FlowCpu {
        prev_pre: cpu0,
        ..FlowCpu::default()
    };
    let wall0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = Instant::now();
        let pre = sample();
        let f = counters(&dir, "feed-handler");
        let h = counters(&dir, "hedger");
        let post = sample();
        let published = get(&f, "events_published");
        let md = get(&h, "md_events").saturating_sub(base_md) + get(&h, "md_lost");
        if published > 0 && first_pub.is_none() {
            first_pub = Some(now);
        }
        if published != last_pub.1 {
            last_pub = (now, published);
        }
        let first = md > 0 && first_md.is_none();
        if first {
            first_md = Some(now);
        }
        let moved = md != last_md.1;
        if moved {
            last_md = (now, md);
        }
        flow.poll(pre, post, first, moved);
        if feed_done.is_none() {
            if let Some(st) = feed.1.try_wait()? {
                if !st.success() {
                    bail!(
                        "feed-handler failed: {st}; see {}",
                        out.join("feed-handler.log").display()
                    );
                }
                feed_done = Some(now);
            }
        }
        procs.check()?;
        if let Some(done) = feed_done {
            let caught_up = md >= published && published > 0;
            let stalled = now.duration_since(last_md.0) > Duration::from_secs(5);
            if caught_up || stalled || now.duration_since(done) > spec.drain_timeout {
                break;
            }
        }
    }
    // Orders published but not yet seen by the gateway: give it a moment.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        let h = counters(&dir, "hedger");
        let g = counters(&dir, "gateway");
        if get(&g, "orders_received") >= get(&h, "orders_sent") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let f = counters(&dir, "feed-handler");
    let h = counters(&dir, "hedger");
    let g = counters(&dir, "gateway");
    for (role, m) in [("feed-handler", &f), ("hedger", &h), ("gateway", &g)] {
        let _ = std::fs::write(
            out.join(format!("counters-{role}.json")),
            serde_json::to_string_pretty(m).unwrap_or_default(),
        );
    }

    // 4. Stop and collect.
    // The whole window, all threads / the loop thread / the side threads, seconds.
    let (hedger_cpu_s, hedger_loop_cpu_s, hedger_side_cpu_s) = match (cpu0, sample()) {
        (Some(a), Some(b)) => (
            b.all.saturating_sub(a.all) as f64 / 1e9,
            b.main.saturating_sub(a.main) as f64 / 1e9,
            b.side().saturating_sub(a.side()) as f64 / 1e9,
        ),
        _ => (0.0, 0.0, 0.0),
    };
    let hedger_wall_s = wall0.elapsed().as_secs_f64();
    procs.term("hedger", Duration::from_secs(30))?;
    procs.term("order-gateway", Duration::from_secs(30))?;
    let journal_bytes = remove_session_journal(&state_dir.join("session"));
    let mut stages = read_interval_log(&hlog).map_err(anyhow::Error::msg)?;
    for (k, v) in read_interval_log(&glog).map_err(anyhow::Error::msg)? {
        stages.insert(k, v);
    }
    for k in [
        "recv_to_read",
        "read_to_decision",
        "decision_to_publish",
        "recv_to_publish",
        "publish_to_gateway",
        "recv_to_gateway",
    ] {
        stages.entry(k.into()).or_insert_with(new_hist);
    }
    let mut pin_warnings = Vec::new();
    for log in ["feed-handler.log", "hedger.log", "order-gateway.log"] {
        let text = std::fs::read_to_string(out.join(log)).unwrap_or_default();
        pin_warnings.extend(
            text.lines()
                .filter(|l| l.contains("pin") && !l.contains("pinned to"))
                .map(str::to_string),
        );
    }
    let span =
        |a: Option<Instant>, b: Instant| a.map_or(0.0, |a| b.duration_since(a).as_secs_f64());
    Ok(RunResult {
        stages,
        published: get(&f, "events_published"),
        publish_s: span(first_pub, last_pub.0),
        md_events: get(&h, "md_events").saturating_sub(base_md),
        md_lapped: get(&h, "md_lapped"),
        md_lost: get(&h, "md_lost"),
        consume_s: span(first_md, last_md.0),
        orders_sent: get(&h, "orders_sent"),
        orders_received: get(&g, "orders_received"),
        orders_filled: get(&h, "orders_filled"),
        orders_ring_full: get(&h, "orders_ring_full"),
        feed_rejects: sum_prefix(&f, "events_rejected"),
        md_rejected: sum_prefix(&h, "md_rejected"),
        hedger_cpu_s,
        hedger_loop_cpu_s,
        hedger_flow_loop_cpu_s: flow.loop_s(),
        hedger_side_cpu_s,
        journal_bytes,
        hedger_wall_s,
        pin_warnings,
    })
}

/// Removes the hedger's session journal directory after a run; returns the bytes it held.
fn remove_session_journal(dir: &Path) -> u64 {
    let bytes = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let _ = std::fs::remove_dir_all(dir);
    bytes
}
