//! `hedgectl demo`: the whole system on one machine, in one command.
//!
//! Starts `feed-handler` (synthetic market), `hedger` and `order-gateway` (simulated venue and
//! client option flow) as three child processes over shared memory in a fresh namespace, with
//! cores and idle strategies chosen for the machine; prints a status line each second; at the
//! end (after `--duration` seconds, Ctrl-C or SIGTERM) stops the children, prints a summary
//! table, writes the HdrHistogram files, a `.hgrm` percentile distribution and an SVG percentile
//! plot, and removes the namespace.
//!
//! One instance per namespace: `hedgectl demo` takes an exclusive `flock` on
//! `<namespace dir>/.hedgectl.lock` and refuses (naming the holder's pid) when it is taken, or
//! when a live process already owns segments in the namespace.

use std::fs::{self, File};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use shm_layout::agent::{stop_on_signals, Agent, AgentRunner, RunnerConfig};
use shm_layout::process::{Backoff, IdleStrategy};

use engine::hdr::plot;
use engine::hedger::counters::HedgerCounter as H;
use feed_handler::counters::FeedCounter as F;
use feed_handler::publish::ROLE as FEED_ROLE;
use order_gateway::counters::GatewayCounter as G;
use shm_layout::{private, CounterSchema};

use crate::hist;
use crate::metrics::{fmt_num, fmt_opt, Liveness, RiskRow, Snapshot};
use crate::procs;

/// Options of `hedgectl demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long to run, in seconds (0: until Ctrl-C).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Namespace for the segments (a fresh `hedge-demo-<pid>` by default).
    #[arg(long, env = "HEDGE_DEMO_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where to write the summary, histograms, plot and process logs
    /// (default: `<target>/demo/<namespace>/`, beside the binaries).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory holding the feed-handler, hedger and order-gateway binaries (default: the
    /// directory of this hedgectl, or its parent when run from target/*/deps).
    #[arg(long, env = "HEDGE_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Seed of the synthetic market and the client flow (deterministic runs).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Synthetic market events per second published by the feed handler, on average over the
    /// market's 10 s burst period (bursts included; the status line shows the last second and
    /// the run so far).
    #[arg(long, default_value_t = 20_000)]
    pub md_rate: u64,
    /// Idle strategy for all three processes, overriding the choice made from the core count:
    /// busy-spin, spin-then-yield or backoff-park.
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub idle: Option<IdleStrategy>,
    /// Do not pin the processes to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Keep the namespace's segments after the demo (for `hedgectl stat` post mortem).
    #[arg(long)]
    pub keep: bool,
    /// Feed handler configuration file (default: the demo's own, written to the output
    /// directory as feed-handler.toml: the synthetic market with its clock starting now).
    #[arg(long)]
    pub feed_config: Option<PathBuf>,
    /// Hedger configuration file (default: the demo's own, written to the output directory as
    /// hedger.toml: BTC hedged with BTC-PERPETUAL, cost-aware band).
    #[arg(long)]
    pub hedger_config: Option<PathBuf>,
    /// Extra argument for the feed handler (repeatable), e.g. `--feed-arg=--ring-capacity=1048576`.
    #[arg(long = "feed-arg", allow_hyphen_values = true)]
    pub feed_args: Vec<String>,
    /// Extra argument for the hedger (repeatable).
    #[arg(long = "hedger-arg", allow_hyphen_values = true)]
    pub hedger_args: Vec<String>,
    /// Extra argument for the order gateway (repeatable).
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    pub gateway_args: Vec<String>,
}

/// Roles of the three processes, in start order.
pub const ROLES: [&str; 3] = ["feed-handler", "hedger", "order-gateway"];

/// Where each process runs and how it idles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Role.
    pub role: &'static str,
    /// Core to pin to, if any.
    pub core: Option<usize>,
    /// Idle strategy.
    pub idle: IdleStrategy,
}

/// The hedger configuration the demo uses unless `--hedger-config` is given. It matches the
/// feed handler's synthetic market (index `BTC`, hedge instrument `BTC-PERPETUAL`, an options
/// chain); option inventory comes from the gateway's client flow. Namespace, core, idle
/// strategy, state directory and histogram log are given on the command line.
pub const DEMO_HEDGER_CONFIG: &str = include_str!("demo_hedger.toml");

/// The feed handler configuration the demo uses unless `--feed-config` is given: the
/// synthetic market (the feed's default source) with its clock starting now, so that option
/// expiries (days after the start) lie in the future for every process.
pub fn demo_feed_config() -> String {
    let now_ns = shm_layout::clock::wall_ns();
    format!(
        "# Written by `hedgectl demo`: the synthetic market, its clock starting now.\n\
         [synthetic]\nstart_ns = {now_ns}\n"
    )
}

/// Chooses cores and idle strategies for `ncpu` cores.
///
/// - 4 or more: core 0 is left to the OS and hedgectl; feed, hedger and gateway get cores 1, 2
///   and 3 and busy-spin (lowest latency).
/// - 3: one core each; the hedger busy-spins, the feed and the gateway spin then yield, so
///   hedgectl and the OS still run.
/// - 2: the hedger gets core 1 and spins then yields; the feed and the gateway share core 0 and
///   back off (spin, yield, then park briefly) so that three processes share two cores.
/// - 1: everything on core 0, backing off.
pub fn plan(ncpu: usize) -> [Placement; 3] {
    use IdleStrategy::{BackoffPark, BusySpin, SpinThenYield};
    let p = |role, core, idle| Placement {
        role,
        core: Some(core),
        idle,
    };
    match ncpu {
        0 | 1 => [
            p(ROLES[0], 0, BackoffPark),
            p(ROLES[1], 0, BackoffPark),
            p(ROLES[2], 0, BackoffPark),
        ],
        2 => [
            p(ROLES[0], 0, BackoffPark),
            p(ROLES[1], 1, SpinThenYield),
            p(ROLES[2], 0, BackoffPark),
        ],
        3 => [
            p(ROLES[0], 0, SpinThenYield),
            p(ROLES[1], 1, BusySpin),
            p(ROLES[2], 2, SpinThenYield),
        ],
        _ => [
            p(ROLES[0], 1, BusySpin),
            p(ROLES[1], 2, BusySpin),
            p(ROLES[2], 3, BusySpin),
        ],
    }
}

/// The directory holding the engine's binaries: `HEDGE_BIN_DIR`/`--bin-dir`, else the
/// directory of this executable, or its parent when this executable is a test harness in
/// `target/<profile>/deps`.
pub fn bin_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d.to_path_buf());
    }
    let exe = std::env::current_exe().context("cannot locate the hedgectl executable")?;
    let dir = exe
        .parent()
        .context("hedgectl executable has no parent directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(parent) = dir.parent() {
            return Ok(parent.to_path_buf());
        }
    }
    Ok(dir)
}

/// An exclusive claim on a namespace directory: the lock file stays locked while this lives.
#[derive(Debug)]
pub struct NamespaceLock {
    _file: File,
    path: PathBuf,
}

impl NamespaceLock {
    /// Creates `dir` (mode 0700) if needed and takes the lock, or explains who holds it.
    ///
    /// # Errors
    /// Another live instance holds the lock, or live processes own segments in `dir`.
    pub fn acquire(dir: &Path) -> anyhow::Result<NamespaceLock> {
        let path = dir.join(".hedgectl.lock");
        // The demo deletes stale segments of its namespace before it starts. Only ever do that
        // in a namespace a demo made (it has the lock file): a production namespace whose
        // processes are down still holds unconsumed orders and execs.
        if dir.is_dir() && !path.exists() {
            let foreign = fs::read_dir(dir)
                .map(|rd| rd.flatten().count())
                .unwrap_or(0);
            if foreign > 0 {
                bail!(
                    "namespace {} holds segments that no hedgectl demo created (a production \
                     namespace?); the demo would delete them, so it refuses: pick another \
                     namespace with --namespace",
                    dir.display()
                );
            }
        }
        private::create_dir_all(dir)
            .with_context(|| format!("cannot create namespace directory {}", dir.display()))?;
        // Owner-only from creation (0600), like every file the engine makes.
        let mut file = private::file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        if file.try_lock().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "namespace {} is in use by another hedgectl demo (pid {}); stop it first, or pick another \
                 namespace with --namespace",
                dir.display(),
                holder.trim().if_empty("unknown")
            );
        }
        // Live processes from an earlier run (not started by a demo) also hold the namespace.
        if let Some(p) = procs::live_owners(dir).first() {
            bail!(
                "namespace {} is in use: process {} (pid {}) is alive and owns its segments; stop it \
                 (hedgectl kill, then SIGTERM) or pick another namespace with --namespace",
                dir.display(),
                p.0,
                p.1
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(NamespaceLock { _file: file, path })
    }

    /// Lock file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

trait IfEmpty {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str;
}
impl IfEmpty for str {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str {
        if self.is_empty() {
            other
        } else {
            self
        }
    }
}

/// Children of the demo; stopped (SIGTERM, then SIGKILL) when dropped.
struct Children {
    procs: Vec<(&'static str, Child)>,
}

impl Children {
    /// Stops the children in the order given (feed first so the pipeline drains), each with
    /// SIGTERM and up to `grace` to exit, then SIGKILL.
    fn stop_all(&mut self, grace: Duration) -> Vec<(&'static str, String)> {
        let mut exits = Vec::new();
        for (role, child) in self.procs.iter_mut() {
            let status = match child.try_wait() {
                Ok(Some(st)) => Some(st),
                _ => {
                    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                    let t0 = Instant::now();
                    loop {
                        match child.try_wait() {
                            Ok(Some(st)) => break Some(st),
                            Ok(None) if t0.elapsed() < grace => {
                                std::thread::sleep(Duration::from_millis(10))
                            }
                            _ => {
                                let _ = child.kill();
                                break child.wait().ok();
                            }
                        }
                    }
                }
            };
            let text = match status {
                Some(st) => describe_exit(st),
                None => "unknown".to_string(),
            };
            exits.push((*role, text));
            // Give the next stage a moment to drain what this one sent.
            std::thread::sleep(Duration::from_millis(50));
        }
        self.procs.clear();
        exits
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if !self.procs.is_empty() {
            self.stop_all(Duration::from_secs(2));
        }
    }
}

fn describe_exit(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (st.code(), st.signal()) {
        (Some(0), _) => "exit 0".to_string(),
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown".to_string(),
    }
}

/// Removes the namespace directory when dropped (unless disarmed with `--keep`).
struct NamespaceCleanup {
    dir: PathBuf,
    armed: bool,
}

impl Drop for NamespaceCleanup {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where util-linux's `setpriv` may be.
const SETPRIV: [&str; 2] = ["/usr/bin/setpriv", "/bin/setpriv"];

/// Command-line of one child process.
fn child_command(
    bin: &Path,
    role: &str,
    namespace: &str,
    place: &Placement,
    args: &DemoArgs,
    out: &Path,
) -> Command {
    // If hedgectl itself is SIGKILLed, its children must not spin on for ever: where util-linux's
    // setpriv is installed, it sets the parent-death signal (SIGTERM) and execs the binary (same
    // pid). Without it, a killed demo leaves its children to be stopped by hand.
    let mut c = match SETPRIV.iter().find(|p| Path::new(p).is_file()) {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "TERM", "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    c.arg("--namespace").arg(namespace);
    let core = place.core.filter(|_| !args.no_pin).map(|c| c.to_string());
    let idle = args.idle.unwrap_or(place.idle).as_str();
    match role {
        "feed-handler" => {
            // feed-handler --help: --pin-core, --idle, --seed, --rate (events/s), synthetic
            // source by default.
            if let Some(core) = core {
                c.arg("--pin-core").arg(core);
            }
            c.arg("--idle").arg(idle);
            c.arg("--seed").arg(args.seed.to_string());
            c.arg("--rate").arg(args.md_rate.to_string());
            c.arg("--stats-interval").arg("0");
            let config = args
                .feed_config
                .clone()
                .unwrap_or_else(|| out.join("feed-handler.toml"));
            c.arg("--config").arg(config);
            c.args(&args.feed_args);
        }
        "hedger" => {
            if let Some(core) = core {
                c.arg("--core").arg(core);
            }
            c.arg("--idle").arg(idle);
            // hedger --help: --config (required), --core, --idle, --state-dir,
            // --histogram-path, --histogram-interval-ms.
            let config = args
                .hedger_config
                .clone()
                .unwrap_or_else(|| out.join("hedger.toml"));
            c.arg("--config").arg(config);
            c.arg("--state-dir").arg(out.join("hedger-state"));
            c.arg("--histogram-path").arg(out.join("hedger.hlog"));
            c.arg("--histogram-interval-ms").arg("1000");
            c.args(&args.hedger_args);
        }
        _ => {
            // order-gateway --help: --core, --idle, --seed, --state-dir (journal); simulated
            // venue and client option flow by default.
            if let Some(core) = core {
                c.arg("--core").arg(core);
            }
            c.arg("--idle").arg(idle);
            c.arg("--seed").arg(args.seed.to_string());
            c.arg("--state-dir").arg(out.join("gateway-state"));
            c.args(&args.gateway_args);
        }
    }
    c
}

/// Runs the demo; returns the process exit code.
///
/// # Errors
/// Missing binaries, a namespace in use, a child failing to start or dying early.
pub fn run(args: &DemoArgs) -> anyhow::Result<i32> {
    let bins = bin_dir(args.bin_dir.as_deref())?;
    check_bins(&bins)?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| format!("hedge-demo-{}", std::process::id()));
    let dir = shm_layout::namespace_dir(&namespace)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| bins.parent().unwrap_or(&bins).join("demo").join(&namespace));
    private::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let lock = NamespaceLock::acquire(&dir)?;
    // Segments of a dead earlier run in this namespace are stale: a demo starts fresh.
    procs::remove_segments(&dir, lock.path())?;
    let mut cleanup = NamespaceCleanup {
        dir: dir.clone(),
        armed: !args.keep,
    };

    let stop = stop_on_signals(None).context("cannot install the Ctrl-C handler")?;

    let placement = place(args, &namespace, &dir, &out);
    prepare_out(args, &out)?;
    let children = start_children(args, &bins, &namespace, &placement, &dir, &out, &stop)?;
    let mut sup = Supervisor::new(&dir, &out, children, Arc::clone(&stop), args.duration);
    AgentRunner::new(Supervisor::RUNNER).run(&mut sup, &stop)?;
    let Supervisor {
        mut children,
        t0,
        events_at_start,
        early_exit,
        ..
    } = sup;
    let interrupted = stop.load(Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let exits = children.stop_all(Duration::from_secs(5));
    let final_snap = procs::snapshot(&dir).ok();

    let report = summary(
        final_snap.as_ref(),
        elapsed,
        events_at_start,
        &exits,
        &out,
        interrupted,
        early_exit.as_deref(),
    );
    print!("{report}");
    private::write(&out.join("summary.txt"), &report)?;
    if args.keep {
        cleanup.armed = false;
        println!("segments kept in {} (--keep)", dir.display());
    }
    drop(lock);
    drop(cleanup);
    Ok(if early_exit.is_some() { 1 } else { 0 })
}

/// Refuses to start when a process binary is missing from `bins`.
fn check_bins(bins: &Path) -> anyhow::Result<()> {
    let missing: Vec<String> = ROLES
        .iter()
        .filter(|r| !bins.join(r).is_file())
        .map(|r| r.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "binaries not found in {}: {} (build them with `cargo build --release --bins`, or set \
             HEDGE_BIN_DIR / --bin-dir)",
            bins.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// Where each process runs (the plan for the cores this process may use), printed.
fn place(args: &DemoArgs, namespace: &str, dir: &Path, out: &Path) -> [Placement; 3] {
    // The cores this process may run on (affinity mask, cpuset): the plan's core indices map
    // onto them, so that a demo started under `taskset -c 4-7` pins to cores 4..7.
    let allowed = shm_layout::process::allowed_cores();
    let ncpu = if allowed.is_empty() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        allowed.len()
    };
    let mut placement = plan(ncpu);
    for p in placement.iter_mut() {
        p.core = p.core.map(|i| allowed.get(i).copied().unwrap_or(i));
    }
    println!(
        "hedgectl demo: namespace {namespace} ({}), {ncpu} cores, {}s, output in {}",
        dir.display(),
        if args.duration == 0 {
            "until Ctrl-C".to_string()
        } else {
            args.duration.to_string()
        },
        out.display()
    );
    for p in &placement {
        println!(
            "  {:<14} core {:<5} idle {}",
            p.role,
            match (p.core, args.no_pin) {
                (Some(c), false) => c.to_string(),
                _ => "-".to_string(),
            },
            args.idle.unwrap_or(p.idle)
        );
    }

    placement
}

/// Writes the demo configs (unless given) and empties the state directories and the
/// histogram log of an earlier run.
fn prepare_out(args: &DemoArgs, out: &Path) -> anyhow::Result<()> {
    if args.hedger_config.is_none() {
        private::write(&out.join("hedger.toml"), DEMO_HEDGER_CONFIG)?;
    }
    if args.feed_config.is_none() {
        private::write(&out.join("feed-handler.toml"), demo_feed_config())?;
    }
    for d in ["hedger-state", "gateway-state"] {
        let _ = fs::remove_dir_all(out.join(d));
        private::create_dir_all(&out.join(d))?;
    }
    let _ = fs::remove_file(out.join("hedger.hlog"));

    Ok(())
}

/// Starts the three processes, each logging to `<out>/<role>.log`, and waits until each
/// reports running.
fn start_children(
    args: &DemoArgs,
    bins: &Path,
    namespace: &str,
    placement: &[Placement; 3],
    dir: &Path,
    out: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<Children> {
    // The feed handler first (it creates the market-data segments); then the hedger and the
    // gateway together, since each waits (bounded) for the other's ring.
    let mut children = Children { procs: Vec::new() };
    for place in placement {
        let log = private::create_file(&out.join(format!("{}.log", place.role)))?;
        let mut cmd = child_command(
            &bins.join(place.role),
            place.role,
            namespace,
            place,
            args,
            out,
        );
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bins.join(place.role).display()))?;
        children.procs.push((place.role, child));
        if place.role == "feed-handler" {
            wait_ready(dir, place.role, &mut children, out, stop)?;
        }
    }
    for role in ["hedger", "order-gateway"] {
        wait_ready(dir, role, &mut children, out, stop)?;
    }
    println!("  all three processes running; Ctrl-C stops the demo");
    Ok(children)
}

/// The demo's watch over its children as an [`Agent`] on the same runner as the processes:
/// each duty cycle checks that the children still run (one that stopped early ends the demo
/// with its log's tail) and, once a second, prints the status line; the runner parks 20 ms
/// between cycles and stops on Ctrl-C/SIGTERM; the duration makes the agent done.
struct Supervisor<'a> {
    dir: &'a Path,
    out: &'a Path,
    children: Children,
    stop: Arc<AtomicBool>,
    duration_s: u64,
    t0: Instant,
    next_status: Instant,
    /// Market events published before all three ran (the feed starts first): not part of
    /// the run's rate.
    start_snap: Option<Snapshot>,
    events_at_start: f64,
    prev: Option<Snapshot>,
    early_exit: Option<String>,
    done: bool,
}

impl<'a> Supervisor<'a> {
    /// Sleeps 20 ms between checks, no pinning, no counters segment.
    const RUNNER: RunnerConfig = RunnerConfig {
        core: None,
        idle: IdleStrategy::BackoffPark,
        backoff: Backoff {
            spins_before_yield: 0,
            park_spins: 0,
            park_yields: 0,
            first_park: Duration::from_millis(20),
            max_park: Duration::from_millis(20),
        },
        heartbeat_interval_ns: u64::MAX,
        status_interval_ns: 0,
        drain_timeout_ns: 0,
        duty_every_cycles: 1,
    };

    fn new(
        dir: &'a Path,
        out: &'a Path,
        children: Children,
        stop: Arc<AtomicBool>,
        duration_s: u64,
    ) -> Self {
        let t0 = Instant::now();
        let start_snap = procs::snapshot(dir).ok();
        let events_at_start = start_snap
            .as_ref()
            .and_then(|s| totals(s).events)
            .unwrap_or(0.0);
        Supervisor {
            dir,
            out,
            children,
            stop,
            duration_s,
            t0,
            next_status: t0 + Duration::from_secs(1),
            start_snap,
            events_at_start,
            prev: None,
            early_exit: None,
            done: false,
        }
    }
}

impl Agent for Supervisor<'_> {
    type Error = anyhow::Error;

    fn name(&self) -> &str {
        "hedgectl demo"
    }

    fn counters(&self) -> Option<&shm_layout::CountersWriter> {
        None
    }

    fn do_work(&mut self) -> anyhow::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.duration_s > 0 && self.t0.elapsed() >= Duration::from_secs(self.duration_s) {
            self.done = true;
        } else if let Some(msg) = check_children(&mut self.children, self.out) {
            // A Ctrl-C in a terminal reaches the children too (same process group): they
            // stopping then is not a failure.
            if !self.stop.load(Ordering::Relaxed) {
                self.early_exit = Some(msg);
            }
            self.done = true;
        }
        Ok(0)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn on_duty(&mut self, _now_ns: u64) -> anyhow::Result<()> {
        if self.done || Instant::now() < self.next_status {
            return Ok(());
        }
        self.next_status += Duration::from_secs(1);
        if let Ok(snap) = procs::snapshot(self.dir) {
            let lat = latency_now(&snap, self.out);
            println!(
                "{}",
                status_line(
                    self.t0.elapsed().as_secs(),
                    &snap,
                    self.prev.as_ref(),
                    self.start_snap.as_ref(),
                    lat
                )
            );
            self.prev = Some(snap);
        }
        Ok(())
    }
}

fn wait_ready(
    dir: &Path,
    role: &'static str,
    children: &mut Children,
    out: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        if procs::role_running(dir, role) {
            return Ok(());
        }
        if let Some(msg) = check_children(children, out) {
            bail!("{msg}");
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted while starting {role}");
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!(
                "{role} did not report running within 30 s; see {}",
                out.join(format!("{role}.log")).display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// If a child has exited, a message with its exit status and the end of its log.
fn check_children(children: &mut Children, out: &Path) -> Option<String> {
    for (role, child) in children.procs.iter_mut() {
        if let Ok(Some(st)) = child.try_wait() {
            let log = out.join(format!("{role}.log"));
            let tail = fs::read_to_string(&log)
                .map(|s| {
                    let lines: Vec<&str> = s.lines().collect();
                    lines[lines.len().saturating_sub(10)..].join("\n")
                })
                .unwrap_or_default();
            return Some(format!(
                "{role} stopped early ({}); last lines of {}:\n{tail}",
                describe_exit(st),
                log.display()
            ));
        }
    }
    None
}

/// Tick-to-order percentiles in ns `(p50, p99, p99.9)`: the hedger's gauges if it publishes
/// them, else its histogram log so far.
fn latency_now(snap: &Snapshot, out: &Path) -> Option<(f64, f64, f64)> {
    if let Some(h) = procs::find_role(snap, engine::hedger::ROLE) {
        let g = |id: H| h.get(id.def().name, None).filter(|v| *v > 0.0);
        if let (Some(a), Some(b), Some(c)) = (
            g(H::TickToOrderP50),
            g(H::TickToOrderP99),
            g(H::TickToOrderP999),
        ) {
            return Some((a, b, c));
        }
    }
    let merged = hist::read_interval_log(&out.join("hedger.hlog")).ok()?;
    let h = pick_tick_to_order(&merged)?;
    Some((
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
        h.value_at_quantile(0.999) as f64,
    ))
}

/// The end-to-end (feed receive to order publish) histogram of a log: the tag
/// `recv_to_publish` (the hedger's) or one naming tick-to-order, else a log's only histogram.
fn pick_tick_to_order(m: &hist::MergedLog) -> Option<&hdrhistogram::Histogram<u64>> {
    let found = m.by_tag.iter().find(|(t, _)| {
        t.contains("tick_to_order") || t.contains("tick-to-order") || *t == "recv_to_publish"
    });
    let found = found.or_else(|| {
        (m.by_tag.len() == 1)
            .then(|| m.by_tag.iter().next())
            .flatten()
    });
    found.map(|(_, h)| h).filter(|h| !h.is_empty())
}

fn fmt_us(ns: f64) -> String {
    let us = ns / 1000.0;
    if us >= 100.0 {
        format!("{us:.0}us")
    } else if us >= 10.0 {
        format!("{us:.1}us")
    } else {
        format!("{us:.2}us")
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// Order rejects by reason over the hedger and the gateway: `(reason, count)` for non-zero
/// instances of the gateway's `rejects{reason}` and the hedger's `limit_rejects{limit}`
/// (shown as `limit:<name>`, summed over underlyings), names from their schemas.
fn rejects_by_reason(snap: &Snapshot) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let sources = [
        ("gateway", G::Rejects.def(), ""),
        ("hedger", H::LimitRejects.def(), "limit:"),
    ];
    for (role, def, prefix) in sources {
        let (Some(p), Some(by)) = (procs::find_role(snap, role), def.by) else {
            continue;
        };
        for m in p.metrics.iter().filter(|m| m.name == def.name) {
            let Some(r) = m.label_value(by.key) else {
                continue;
            };
            let reason = format!("{prefix}{r}");
            let v = m.value.as_f64();
            if v > 0.0 {
                match out.iter_mut().find(|(r, _)| *r == reason) {
                    Some(e) => e.1 += v,
                    None => out.push((reason, v)),
                }
            }
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Well-known totals of the pipeline, from whichever process publishes them.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    events: Option<f64>,
    orders: Option<f64>,
    fills: Option<f64>,
    rejects: Option<f64>,
    option_trades: Option<f64>,
}

/// The total of counter `id` of process family `role` (its unlabelled value, or the sum over
/// its instances), as declared by that process's schema.
fn total<S: CounterSchema>(snap: &Snapshot, role: &str, id: S) -> Option<f64> {
    procs::find_role(snap, role)?.sum(id.def().name)
}

fn totals(snap: &Snapshot) -> Totals {
    Totals {
        events: total(snap, FEED_ROLE, F::EventsPublished),
        orders: total(snap, "hedger", H::OrdersSent),
        fills: total(snap, "gateway", G::Fills),
        rejects: total(snap, "gateway", G::Rejects),
        option_trades: total(snap, "gateway", G::OptionTrades),
    }
}

/// Market events published per second between two snapshots, from the feed's counter.
fn events_rate(from: Option<&Snapshot>, to: &Snapshot) -> Option<f64> {
    let from = from?;
    let dt = to.taken_ns.saturating_sub(from.taken_ns) as f64 / 1e9;
    let (before, now) = (totals(from).events?, totals(to).events?);
    (dt > 0.0).then(|| (now - before).max(0.0) / dt)
}

/// The status line printed each second: the market events published in the last second and
/// since `start` (the run's average, what `--md-rate` asks for: single seconds swing with the
/// synthetic market's bursts), then risk, orders and latency.
pub fn status_line(
    secs: u64,
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    start: Option<&Snapshot>,
    lat: Option<(f64, f64, f64)>,
) -> String {
    let t = totals(snap);
    let rate = |r: Option<f64>| r.map_or("-".to_string(), fmt_rate);
    let mut s = format!(
        "[{secs:>3}s] md {}/s (run {}/s)",
        rate(events_rate(prev, snap)),
        rate(events_rate(start, snap))
    );
    for r in snap.risk() {
        let d = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:+.2}"));
        s.push_str(&format!(
            " | {} net delta {} before hedge, {} after",
            r.underlying,
            d(r.option_delta),
            d(r.net_delta)
        ));
        if let Some(b) = r.band {
            s.push_str(&format!(" (band {b:.2})"));
        }
        if let Some(st) = r.state.as_deref().filter(|s| *s != "active") {
            s.push_str(&format!(" [{st}]"));
        }
    }
    s.push_str(&format!(
        " | orders {} fills {} rejects {}",
        fmt_opt(t.orders),
        fmt_opt(t.fills),
        fmt_opt(t.rejects)
    ));
    let rej = rejects_by_reason(snap);
    if !rej.is_empty() {
        let parts: Vec<String> = rej
            .iter()
            .take(3)
            .map(|(r, n)| format!("{r} {}", fmt_num(*n)))
            .collect();
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    match lat {
        Some((a, b, c)) => s.push_str(&format!(
            " | tick-to-order p50 {} p99 {} p99.9 {}",
            fmt_us(a),
            fmt_us(b),
            fmt_us(c)
        )),
        None => s.push_str(" | tick-to-order -"),
    }
    for p in &snap.processes {
        if p.liveness != Liveness::Alive {
            s.push_str(&format!(" | {} {}", p.role, p.liveness.name()));
        }
    }
    s
}

/// The end-of-run report; also writes the histogram artifacts into `out`.
fn summary(
    snap: Option<&Snapshot>,
    elapsed: Duration,
    events_at_start: f64,
    exits: &[(&'static str, String)],
    out: &Path,
    interrupted: bool,
    early_exit: Option<&str>,
) -> String {
    let mut s = String::new();
    let line = "-".repeat(72);
    s.push_str(&format!(
        "\n{line}\nhedgectl demo summary: ran {:.1}s{}\n{line}\n",
        elapsed.as_secs_f64(),
        if interrupted {
            " (stopped by signal)"
        } else {
            ""
        }
    ));
    if let Some(msg) = early_exit {
        s.push_str(&format!("FAILED: {msg}\n{line}\n"));
    }
    match snap {
        Some(snap) => counters_summary(&mut s, snap, elapsed, events_at_start),
        None => s.push_str("(no counters could be read from the namespace)\n"),
    }
    s.push_str("\nprocess exits: ");
    let ex: Vec<String> = exits.iter().map(|(r, e)| format!("{r} {e}")).collect();
    s.push_str(&ex.join(", "));
    s.push('\n');

    latency_summary(&mut s, out);
    s.push_str(&format!("logs: {}/*.log\n{line}\n", out.display()));
    s
}

/// The summary's counters: totals, rejects by reason, the risk table and every process's
/// non-zero counters.
fn counters_summary(s: &mut String, snap: &Snapshot, elapsed: Duration, events_at_start: f64) {
    let t = totals(snap);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let row = |s: &mut String, k: &str, v: Option<f64>| {
        s.push_str(&format!("{k:<32} {:>14}\n", fmt_opt(v)));
    };
    row(s, "market events published", t.events);
    row(
        s,
        "market events per second",
        t.events
            .map(|e| ((e - events_at_start).max(0.0) / secs).round()),
    );
    row(s, "client option trades", t.option_trades);
    row(s, "hedge orders sent", t.orders);
    row(s, "hedge orders filled", t.fills);
    row(s, "hedge orders rejected", t.rejects);
    for (reason, n) in rejects_by_reason(snap) {
        row(s, &format!("  rejected: {reason}"), Some(n));
    }
    let risk = snap.risk();
    if !risk.is_empty() {
        s.push_str(&format!("\n{}\n", RiskRow::table_header()));
        for r in risk {
            s.push_str(&format!("{}\n", r.table_line()));
        }
    }
    s.push_str("\nprocess counters:\n");
    for p in &snap.processes {
        s.push_str(&format!("  {} (pid {}), non-zero:\n", p.role, p.pid));
        let items: Vec<String> = p
            .metrics
            .iter()
            .filter(|m| m.value.as_f64() != 0.0)
            .map(|m| format!("{} = {}", m.label, m.value.display()))
            .collect();
        for pair in items.chunks(2) {
            match pair {
                [a, b] => s.push_str(&format!("    {a:<50} {b}\n")),
                [a] => s.push_str(&format!("    {a}\n")),
                _ => {}
            }
        }
    }
}

/// The summary's latency table from the hedger's histogram log in `out`; writes one `.hgrm`
/// per stage and the percentile plot beside it.
fn latency_summary(s: &mut String, out: &Path) {
    let log = out.join("hedger.hlog");
    match hist::read_interval_log(&log) {
        Ok(m) if !m.by_tag.is_empty() => {
            s.push_str(&format!(
                "\nlatency (us), {} intervals from {}:\n{:<26}",
                m.intervals,
                log.display(),
                "stage"
            ));
            for p in hist::SUMMARY_PERCENTILES {
                s.push_str(&format!(
                    "{:>10}",
                    if p == 100.0 {
                        "max".to_string()
                    } else {
                        format!("p{p}")
                    }
                ));
            }
            s.push_str(&format!("{:>10}\n", "count"));
            let mut series = Vec::new();
            for (tag, h) in &m.by_tag {
                if h.is_empty() {
                    continue;
                }
                let name = if tag.is_empty() { "(untagged)" } else { tag };
                s.push_str(&format!("{name:<26}"));
                for (_, v) in hist::summary(h) {
                    s.push_str(&format!("{:>10.2}", v as f64 / 1000.0));
                }
                s.push_str(&format!("{:>10}\n", h.len()));
                let file = out.join(format!("{}.hgrm", safe_file(name)));
                let _ = private::write(&file, hist::hgrm(h, 1000.0));
                series.push(plot::Series {
                    name: name.to_string(),
                    points: plot::points_from_histogram(h),
                });
            }
            let plot = out.join("latency.svg");
            if private::write(
                &plot,
                plot::percentile_plot("hedger latency by stage (HdrHistogram)", &series),
            )
            .is_ok()
            {
                s.push_str(&format!(
                    "files: {} (HdrHistogram interval log), *.hgrm (percentile distributions, us), {}\n",
                    log.display(),
                    plot.display()
                ));
            }
        }
        Ok(_) => s.push_str(&format!(
            "\nlatency: {} holds no interval yet\n",
            log.display()
        )),
        Err(e) => s.push_str(&format!("\nlatency: no histogram log ({e})\n")),
    }
}

fn safe_file(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cores_share_one_core_between_feed_and_gateway_with_backoff() {
        let p = plan(2);
        assert_eq!(p[1].core, Some(1));
        assert_eq!(p[0].core, p[2].core);
        assert!(p.iter().all(|x| x.idle != IdleStrategy::BusySpin));
        assert!(plan(8)
            .iter()
            .all(|x| x.idle == IdleStrategy::BusySpin && x.core != Some(0)));
    }

    #[test]
    fn namespace_with_segments_not_made_by_a_demo_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let ns = dir.path().join("prod");
        fs::create_dir(&ns).unwrap();
        fs::write(ns.join("orders"), b"x").unwrap();
        let err = NamespaceLock::acquire(&ns).unwrap_err().to_string();
        assert!(err.contains("no hedgectl demo created"), "{err}");
        assert!(ns.join("orders").exists());
    }

    #[test]
    fn the_lock_file_is_created_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::TempDir::new().unwrap();
        let ns = dir.path().join("ns");
        let lock = NamespaceLock::acquire(&ns).unwrap();
        let mode = fs::metadata(lock.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:o}", mode);
    }

    fn feed_snapshot(taken_ns: u64, events_published: u64) -> Snapshot {
        use crate::metrics::{Metric, ProcessSnap, Value};
        let metric = |label: &str, v| Metric::new(label, Value::Counter(v));
        Snapshot {
            taken_ns,
            dir: String::new(),
            processes: vec![ProcessSnap {
                role: "feed-handler".into(),
                pid: 1,
                liveness: Liveness::Alive,
                state: "running".into(),
                heartbeat_age_ns: 0,
                metrics: vec![
                    metric("events_published", events_published),
                    metric("events_by_kind{kind=\"quote\"}", events_published),
                ],
            }],
            rings: Vec::new(),
            control: None,
        }
    }

    /// `demo --md-rate 20000` published 38.5k events/s while each status line showed the
    /// calm seconds' 20k/s: the line also shows the run's rate, counted from the feed's
    /// `events_published` since the start.
    #[test]
    fn status_line_shows_the_last_second_and_the_whole_run_published_rates() {
        let start = feed_snapshot(1_000_000_000, 5_000);
        let prev = feed_snapshot(10_000_000_000, 185_000);
        let now = feed_snapshot(11_000_000_000, 195_000);
        let line = status_line(10, &now, Some(&prev), Some(&start), None);
        assert!(
            line.starts_with("[ 10s] md 10.0k/s (run 19.0k/s)"),
            "{line}"
        );
        let first = status_line(1, &start, None, Some(&start), None);
        assert!(first.starts_with("[  1s] md -/s (run -/s)"), "{first}");
    }

    #[test]
    fn second_lock_on_a_namespace_is_refused_with_the_holders_pid() {
        let dir = tempfile::TempDir::new().unwrap();
        let ns = dir.path().join("ns");
        let _a = NamespaceLock::acquire(&ns).unwrap();
        let err = NamespaceLock::acquire(&ns).unwrap_err().to_string();
        assert!(err.contains("in use by another hedgectl demo"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
    }
}
