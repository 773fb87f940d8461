//! One process skeleton for the feed handler, the hedger and the order gateway: each is an
//! [`Agent`] (its duty cycle and its hooks) run by one [`AgentRunner`] that owns what every
//! process does the same way: pinning to a core (a missing core is a warning), SIGINT/SIGTERM
//! ([`stop_on_signals`]), the heartbeat and process state in the counters segment, the idle
//! strategy between empty duty cycles, drain on stop, and the periodic status line.
//!
//! The model is Agrona's `Agent`/`AgentRunner`/`IdleStrategy` (no code taken from it): an agent
//! never loops and never sleeps; [`Agent::do_work`] does one bounded piece of work and returns
//! how much it did (0: nothing to do), and the runner decides whether to idle.
//!
//! What runs where:
//! - every cycle: the stop flag (one relaxed load), [`Agent::do_work`], [`Agent::is_done`];
//! - duties (off the hot path, when a cycle found no work and every
//!   [`RunnerConfig::duty_every_cycles`] cycles): one clock read, [`Agent::on_duty`], and at
//!   the heartbeat cadence the heartbeat and [`Agent::publish_counters`] - the one place where
//!   an agent copies its statistics into the counters segment - and at the status cadence
//!   [`Agent::status_line`] on stderr;
//! - stop (signal, or the agent is done): state `Stopping`, [`Agent::on_stop`], then duty cycles
//!   while not [`Agent::is_drained`] (checked before each) and within
//!   [`RunnerConfig::drain_timeout_ns`] (an agent not drained gets at least one), then counters once more, [`Agent::on_close`] and state
//!   `Stopped`. An agent with nothing to drain (the default) gets no cycle after stop.
//!
//! Who runs on it: the feed handler (`FeedAgent`), the hedger (`HedgerAgent`), the order
//! gateway (`GatewayAgent`) and `hedgectl demo`'s watch over its children. Not the replay
//! (`hedgectl replay`): its world is a discrete-event simulation whose clock jumps to the next
//! event, so there is nothing to idle, pin, heartbeat or drain, and a stop flag would make a
//! backtest non-deterministic; it shares the hedger's core and its construction
//! (`build_core`) instead of the loop.
//!
//! ```
//! use shm_layout::agent::{Agent, AgentRunner, RunnerConfig};
//! use shm_layout::CountersWriter;
//! use std::sync::atomic::AtomicBool;
//!
//! /// Counts to 3, one per duty cycle.
//! struct Count(u32);
//! impl Agent for Count {
//!     type Error = std::convert::Infallible;
//!     fn name(&self) -> &str { "count" }
//!     fn counters(&self) -> Option<&CountersWriter> { None }
//!     fn do_work(&mut self) -> Result<usize, Self::Error> { self.0 += 1; Ok(1) }
//!     fn is_done(&self) -> bool { self.0 == 3 }
//! }
//!
//! let stop = AtomicBool::new(false);
//! let mut agent = Count(0);
//! AgentRunner::new(RunnerConfig::default()).run(&mut agent, &stop).unwrap();
//! assert_eq!(agent.0, 3);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::clock::now_ns;
use crate::counters::{CountersWriter, ProcessState};
use crate::process::{pin_current_thread, Backoff, IdleStrategy, Idler, PinOutcome};

/// A process's duty cycle and hooks, run by an [`AgentRunner`]. Only [`Agent::name`],
/// [`Agent::counters`] and [`Agent::do_work`] are required.
pub trait Agent {
    /// What ends a run early (segments gone, state unwritable); bad input is never one.
    type Error;

    /// The role, the prefix of every line the runner prints (`hedger`, `order-gateway`).
    fn name(&self) -> &str;

    /// The counters segment whose heartbeat and process state the runner keeps (None: a
    /// process without one, e.g. a test).
    fn counters(&self) -> Option<&CountersWriter>;

    /// Called once on the runner's (pinned) thread before the first duty cycle.
    ///
    /// # Errors
    /// The agent cannot start; the runner returns the error at once.
    fn on_start(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// One bounded piece of work; returns how much it did (0: nothing, the runner idles). The
    /// hot path: no allocation, system call, lock or formatting unless the work needs it.
    ///
    /// # Errors
    /// A fatal error; the runner returns it at once, without [`Agent::on_close`] (a restart
    /// recovers from what the agent persisted).
    fn do_work(&mut self) -> Result<usize, Self::Error>;

    /// Whether the agent has finished by itself (its source ended, its budget is spent): the
    /// runner stops as on a signal. Checked after every [`Agent::do_work`].
    fn is_done(&self) -> bool {
        false
    }

    /// Whether the agent is ready for work (state `Running`); until then the state stays
    /// `Starting` while duty cycles run (the gateway waits for its venue this way). Checked
    /// every cycle until it first says yes.
    fn is_ready(&self) -> bool {
        true
    }

    /// Off-hot-path duties (timers, liveness checks, housekeeping), at `now_ns`
    /// ([`crate::clock::now_ns`]).
    ///
    /// # Errors
    /// As [`Agent::do_work`].
    fn on_duty(&mut self, now_ns: u64) -> Result<(), Self::Error> {
        let _ = now_ns;
        Ok(())
    }

    /// Copies the agent's statistics into its counters segment, at the heartbeat cadence and
    /// once more at the end: the one publication site of each process.
    fn publish_counters(&mut self, now_ns: u64) {
        let _ = now_ns;
    }

    /// The periodic status line (without the `name: ` prefix), at
    /// [`RunnerConfig::status_interval_ns`]; None prints nothing.
    fn status_line(&mut self, now_ns: u64) -> Option<String> {
        let _ = now_ns;
        None
    }

    /// Idles after a cycle that found no work. The default is the runner's idle strategy; an
    /// agent waiting for a deadline caps the park at the time left
    /// ([`Idler::idle_at_most`]).
    fn idle(&mut self, idler: &mut Idler) {
        idler.idle();
    }

    /// Stop was asked (signal) or the agent is done: stop taking new work, finish what is in
    /// flight. Called once.
    fn on_stop(&mut self, now_ns: u64, by_signal: bool) {
        let _ = (now_ns, by_signal);
    }

    /// After [`Agent::on_stop`], before each further cycle: whether nothing is left in flight
    /// (the runner then closes; it closes anyway at the drain timeout).
    fn is_drained(&mut self) -> bool {
        true
    }

    /// Called once after the last duty cycle and the last counters publication: final
    /// snapshots, flushes, summaries.
    ///
    /// # Errors
    /// What could not be saved; the state stays `Stopping`.
    fn on_close(&mut self, now_ns: u64) -> Result<(), Self::Error> {
        let _ = now_ns;
        Ok(())
    }
}

/// How an [`AgentRunner`] runs its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Core to pin the runner's thread to (None: not pinned; a missing core is a warning).
    pub core: Option<usize>,
    /// What an empty duty cycle does.
    pub idle: IdleStrategy,
    /// The idle strategy's phases.
    pub backoff: Backoff,
    /// Heartbeat and counters publication interval, ns.
    pub heartbeat_interval_ns: u64,
    /// Status line interval, ns (0: no status line).
    pub status_interval_ns: u64,
    /// Longest drain after stop, ns.
    pub drain_timeout_ns: u64,
    /// Duties run at least every this many cycles even when every cycle finds work (a power
    /// of two); always after an empty cycle.
    pub duty_every_cycles: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            core: None,
            idle: IdleStrategy::default(),
            backoff: Backoff::DEFAULT,
            heartbeat_interval_ns: 100_000_000,
            status_interval_ns: 0,
            drain_timeout_ns: 0,
            duty_every_cycles: 256,
        }
    }
}

/// Runs one [`Agent`] on the calling thread until it is done or the stop flag is set.
#[derive(Debug)]
pub struct AgentRunner {
    cfg: RunnerConfig,
}

/// Next due times of the runner's timers, ns.
struct Due {
    heartbeat: u64,
    status: u64,
}

impl AgentRunner {
    /// A runner with this configuration.
    pub fn new(cfg: RunnerConfig) -> Self {
        AgentRunner { cfg }
    }

    /// Pins, starts the agent, runs duty cycles until [`Agent::is_done`] or `stop`, drains and
    /// closes it. Prints the pinning outcome when a core was asked for.
    ///
    /// # Errors
    /// The first error of a hook; the run ends there.
    pub fn run<A: Agent + ?Sized>(&self, agent: &mut A, stop: &AtomicBool) -> Result<(), A::Error> {
        self.pin(agent.name());
        agent.on_start()?;
        if let Some(n) = agent
            .counters()
            .map(CountersWriter::not_shown)
            .filter(|&n| n > 0)
        {
            eprintln!(
                "{}: warning: {n} counters were registered after the counters segment's {} \
                 records were used: they count, but hedgectl stat and the Prometheus export \
                 cannot see them",
                agent.name(),
                crate::counters::CAPACITY
            );
        }
        let mut idler = Idler::new(self.cfg.idle, self.cfg.backoff);
        let mut due = Due {
            heartbeat: 0,
            status: now_ns().saturating_add(self.cfg.status_interval_ns),
        };
        let mut ready = false;
        let mut cycles = 0u64;
        let duty_mask = self.cfg.duty_every_cycles.max(1).next_power_of_two() - 1;
        let mut drain_until: Option<u64> = None;
        let mut cycles_at_stop = 0u64;
        loop {
            if drain_until.is_none() {
                let by_signal = stop.load(Ordering::Relaxed);
                if by_signal || agent.is_done() {
                    drain_until = Some(self.begin_stop(agent, by_signal));
                    cycles_at_stop = cycles;
                }
            }
            if let Some(until) = drain_until {
                // An agent not drained gets at least one cycle, even with no drain time.
                if agent.is_drained() || (cycles != cycles_at_stop && now_ns() >= until) {
                    break;
                }
            } else if !ready && agent.is_ready() {
                ready = true;
                set_state(agent, ProcessState::Running);
            }
            let work = agent.do_work()?;
            cycles = cycles.wrapping_add(1);
            if work == 0 || cycles & duty_mask == 0 {
                let now = now_ns();
                agent.on_duty(now)?;
                self.timers(agent, &mut due, now);
            }
            if work > 0 {
                idler.reset();
            } else {
                agent.idle(&mut idler);
            }
        }
        self.close(agent)
    }

    fn pin(&self, name: &str) {
        match pin_current_thread(self.cfg.core) {
            o @ PinOutcome::Pinned(_) => eprintln!("{name}: {o}"),
            o if o.is_warning() => eprintln!("{name}: warning: {o}"),
            _ => {}
        }
    }

    /// State `Stopping` and the agent's stop hook; returns the drain deadline.
    fn begin_stop<A: Agent + ?Sized>(&self, agent: &mut A, by_signal: bool) -> u64 {
        set_state(agent, ProcessState::Stopping);
        let now = now_ns();
        agent.on_stop(now, by_signal);
        now.saturating_add(self.cfg.drain_timeout_ns)
    }

    /// Heartbeat with counters, and the status line, when due.
    fn timers<A: Agent + ?Sized>(&self, agent: &mut A, due: &mut Due, now: u64) {
        if now >= due.heartbeat {
            due.heartbeat = now.saturating_add(self.cfg.heartbeat_interval_ns.max(1));
            agent.publish_counters(now);
            if let Some(c) = agent.counters() {
                c.heartbeat();
            }
        }
        if self.cfg.status_interval_ns > 0 && now >= due.status {
            due.status = now.saturating_add(self.cfg.status_interval_ns);
            if let Some(line) = agent.status_line(now) {
                eprintln!("{}: {line}", agent.name());
            }
        }
    }

    /// The last counters, the close hook and state `Stopped`.
    fn close<A: Agent + ?Sized>(&self, agent: &mut A) -> Result<(), A::Error> {
        let now = now_ns();
        agent.publish_counters(now);
        agent.on_close(now)?;
        if let Some(c) = agent.counters() {
            c.heartbeat();
        }
        set_state(agent, ProcessState::Stopped);
        Ok(())
    }
}

fn set_state<A: Agent + ?Sized>(agent: &A, state: ProcessState) {
    if let Some(c) = agent.counters() {
        c.set_state(state);
    }
}

/// A stop flag set by SIGINT and SIGTERM, for [`AgentRunner::run`]. With
/// `second_signal_exit`, a second signal while the flag is set (a stop that hangs) exits the
/// process at once with the code it gives for the signal number.
///
/// # Errors
/// A handler cannot be installed.
pub fn stop_on_signals(
    second_signal_exit: Option<fn(i32) -> i32>,
) -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Some(code) = second_signal_exit {
            // Registered first: it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(sig, code(sig), Arc::clone(&stop))?;
        }
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StalePolicy;

    /// Records the hook order; has `inflight` items to drain after stop, one per cycle.
    #[derive(Default)]
    struct Probe {
        calls: Vec<&'static str>,
        work_left: u32,
        inflight: u32,
        stopping: bool,
        counters: Option<CountersWriter>,
        dir: Option<std::path::PathBuf>,
        states_seen: Vec<ProcessState>,
    }

    impl Agent for Probe {
        type Error = String;
        fn name(&self) -> &str {
            "probe"
        }
        fn counters(&self) -> Option<&CountersWriter> {
            self.counters.as_ref()
        }
        fn on_start(&mut self) -> Result<(), String> {
            self.calls.push("start");
            Ok(())
        }
        fn do_work(&mut self) -> Result<usize, String> {
            if self.stopping && self.inflight > 0 {
                self.inflight -= 1;
                return Ok(1);
            }
            if self.work_left > 0 {
                self.work_left -= 1;
                return Ok(1);
            }
            Ok(0)
        }
        fn is_done(&self) -> bool {
            self.work_left == 0
        }
        fn publish_counters(&mut self, _: u64) {
            if self.calls.last() != Some(&"counters") {
                self.calls.push("counters");
            }
        }
        fn on_stop(&mut self, _: u64, by_signal: bool) {
            self.calls.push(if by_signal {
                "stop-signal"
            } else {
                "stop-done"
            });
            self.stopping = true;
        }
        fn is_drained(&mut self) -> bool {
            self.inflight == 0
        }
        fn on_close(&mut self, _: u64) -> Result<(), String> {
            self.calls.push("close");
            if let Some(s) = self.counters_state() {
                self.states_seen.push(s);
            }
            Ok(())
        }
    }

    impl Probe {
        fn counters_state(&self) -> Option<ProcessState> {
            let dir = self.dir.as_ref()?;
            crate::CountersReader::open(dir, "probe", crate::OpenOptions::default())
                .ok()?
                .state()
        }
    }

    #[test]
    fn a_done_agent_drains_what_is_in_flight_then_closes_once() {
        let mut a = Probe {
            work_left: 5,
            inflight: 3,
            ..Probe::default()
        };
        let stop = AtomicBool::new(false);
        AgentRunner::new(RunnerConfig {
            drain_timeout_ns: u64::MAX,
            ..RunnerConfig::default()
        })
        .run(&mut a, &stop)
        .unwrap();
        assert_eq!(a.inflight, 0, "drained before closing");
        assert_eq!(a.calls.first(), Some(&"start"));
        assert_eq!(a.calls.iter().filter(|c| **c == "close").count(), 1);
        let stop_at = a.calls.iter().position(|c| *c == "stop-done").unwrap();
        let close_at = a.calls.iter().position(|c| *c == "close").unwrap();
        assert!(stop_at < close_at);
        assert_eq!(
            a.calls[close_at - 1],
            "counters",
            "last counters before close"
        );
    }

    #[test]
    fn a_signal_stops_the_agent_and_the_drain_timeout_bounds_the_drain() {
        let mut a = Probe {
            work_left: u32::MAX,
            inflight: u32::MAX, // never drains by itself
            ..Probe::default()
        };
        let stop = AtomicBool::new(true);
        AgentRunner::new(RunnerConfig::default())
            .run(&mut a, &stop)
            .unwrap();
        assert!(a.calls.contains(&"stop-signal"));
        assert_eq!(a.calls.last(), Some(&"close"));
        assert_eq!(a.work_left, u32::MAX, "no new work after the stop");
        assert_eq!(
            a.inflight,
            u32::MAX - 1,
            "an agent not drained gets one cycle even with no drain time"
        );
    }

    #[test]
    fn the_runner_keeps_the_process_state_and_heartbeat_in_the_counters_segment() {
        let dir = tempfile::Builder::new()
            .prefix("agent-runner-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let w = CountersWriter::create(dir.path(), "probe", StalePolicy::Replace).unwrap();
        let mut a = Probe {
            work_left: 3,
            counters: Some(w),
            dir: Some(dir.path().to_path_buf()),
            ..Probe::default()
        };
        AgentRunner::new(RunnerConfig::default())
            .run(&mut a, &AtomicBool::new(false))
            .unwrap();
        assert_eq!(
            a.states_seen,
            [ProcessState::Stopping],
            "state during on_close"
        );
        let r = crate::CountersReader::open(dir.path(), "probe", crate::OpenOptions::default())
            .unwrap();
        assert_eq!(r.state(), Some(ProcessState::Stopped));
        assert!(r.heartbeat_ns() > 0);
    }

    /// Fails at its second cycle.
    struct Failing(u32);
    impl Agent for Failing {
        type Error = &'static str;
        fn name(&self) -> &str {
            "failing"
        }
        fn counters(&self) -> Option<&CountersWriter> {
            None
        }
        fn do_work(&mut self) -> Result<usize, &'static str> {
            self.0 += 1;
            if self.0 == 2 {
                Err("segment gone")
            } else {
                Ok(1)
            }
        }
        fn on_close(&mut self, _: u64) -> Result<(), &'static str> {
            panic!("on_close after an error");
        }
    }

    #[test]
    fn an_error_ends_the_run_at_once_without_close() {
        let e = AgentRunner::new(RunnerConfig::default())
            .run(&mut Failing(0), &AtomicBool::new(false))
            .unwrap_err();
        assert_eq!(e, "segment gone");
    }
}
