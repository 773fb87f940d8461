//! Process plumbing shared by the feed handler, the hedger and the order gateway: what a
//! polling loop does when it has nothing to do ([`IdleStrategy`], [`Idler`]), how configs and
//! command lines name a [`StalePolicy`], and pinning to a core that degrades to a warning
//! ([`pin_current_thread`]).
//!
//! Every process accepts the same spellings (`busy-spin`, `spin-then-yield`, `backoff-park`;
//! `fail`, `recover`, `replace`) in its TOML file and on its command line, parsed here once:
//! [`FromStr`] for flags, serde through the same [`FromStr`] for config files, and (feature
//! `clap`) `clap::ValueEnum` so that `--help` lists and explains the values.
//!
//! ```
//! use shm_layout::process::{pin_current_thread, Backoff, IdleAction, IdleStrategy, Idler};
//! use shm_layout::StalePolicy;
//!
//! let strategy: IdleStrategy = "backoff-park".parse().unwrap();
//! assert_eq!("replace".parse::<StalePolicy>().unwrap(), StalePolicy::Replace);
//! let err = "spin-forever".parse::<IdleStrategy>().unwrap_err();
//! assert!(err.to_string().contains("\"spin-forever\""));
//!
//! let outcome = pin_current_thread(None); // no core configured: nothing to do
//! assert!(!outcome.is_warning());
//!
//! // In the loop: `if found_work { idler.reset() } else { idler.idle(); }`.
//! let mut idler = Idler::new(strategy, Backoff::DEFAULT);
//! assert_eq!(idler.idle(), IdleAction::Spin); // the first idle calls spin
//! idler.reset();
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::segment::StalePolicy;

/// A name that a config file or the command line gave for one of this module's enums and that
/// is none of its spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected {})", expected_list(.expected))]
pub struct UnknownName {
    /// What was being named, e.g. `idle strategy`.
    pub what: &'static str,
    /// The rejected value, as given.
    pub value: String,
    /// Every accepted spelling.
    pub expected: &'static [&'static str],
}

/// `a, b or c`.
fn expected_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => String::new(),
    }
}

/// The names of a fieldless enum, once: `ALL`, `NAMES`, `as_str`, `help`, [`FromStr`],
/// [`fmt::Display`], serde (through `FromStr`, so a config file and a flag accept the same
/// spellings and reject with the same message) and, with feature `clap`, `clap::ValueEnum`.
macro_rules! named_values {
    ($ty:ident, $what:literal, $expecting:literal, [$($variant:ident => $name:literal: $help:literal),+ $(,)?]) => {
        impl $ty {
            /// Every value, in the order `--help` lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// Every spelling, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The spelling in config files and on command lines.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// One line for `--help`.
            pub const fn help(self) -> &'static str {
                match self {
                    $($ty::$variant => $help),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        value: s.to_owned(),
                        expected: $ty::NAMES,
                    }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(ByName::<$ty>($expecting, std::marker::PhantomData))
            }
        }

        #[cfg(feature = "clap")]
        impl clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.as_str()).help(self.help()))
            }
        }
    };
}

/// Serde visitor parsing a string with [`FromStr`].
struct ByName<T>(&'static str, std::marker::PhantomData<T>);

impl<T: FromStr<Err = UnknownName>> serde::de::Visitor<'_> for ByName<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
}

/// What a polling loop does when an iteration found no work. On a dedicated isolated core,
/// `busy-spin`; when processes share cores (the 2-core demo), `spin-then-yield` or
/// `backoff-park`. How long each phase lasts is the process's [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdleStrategy {
    /// Spin with `spin_loop` hints and never give the core up: lowest latency, the core is
    /// 100% busy. For a pinned, isolated core.
    BusySpin,
    /// Spin [`Backoff::spins_before_yield`] times, then `sched_yield` between checks.
    #[default]
    SpinThenYield,
    /// Spin [`Backoff::park_spins`] times, yield [`Backoff::park_yields`] times, then sleep
    /// between checks, from [`Backoff::first_park`] doubling up to [`Backoff::max_park`].
    BackoffPark,
}

named_values!(IdleStrategy, "idle strategy", "an idle strategy", [
    BusySpin => "busy-spin":
        "Spin without ever giving up the core: lowest latency, the core is 100% busy (a pinned, isolated core)",
    SpinThenYield => "spin-then-yield":
        "Spin a while, then sched_yield between checks (shares a core politely)",
    BackoffPark => "backoff-park":
        "Spin, yield, then sleep up to 1 ms between checks (shared cores, laptops, CI)",
]);

named_values!(StalePolicy, "stale policy", "a stale policy", [
    Fail => "fail": "Refuse to start",
    Recover => "recover": "Adopt them: a restarted process continues with their contents",
    Replace => "replace": "Delete them and create fresh ones",
]);

/// How long each phase of an [`Idler`] lasts. Counts are idle calls since the last
/// [`Idler::reset`] (the last time the loop found work).
///
/// The shape is Agrona's `BackoffIdleStrategy`: spin (the next message usually arrives within
/// microseconds), then yield (let another thread on a shared core run), then park with
/// exponentially growing sleeps (give the core up, bounded wake-up delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// `spin-then-yield`: idle calls that spin before the loop starts yielding.
    pub spins_before_yield: u32,
    /// `backoff-park`: idle calls that spin first.
    pub park_spins: u32,
    /// `backoff-park`: idle calls that yield after the spins, before the first park.
    pub park_yields: u32,
    /// `backoff-park`: the first sleep; each further one doubles, up to `max_park`. Equal to
    /// `max_park` for a fixed sleep.
    pub first_park: Duration,
    /// `backoff-park`: the longest sleep, which bounds how late the loop notices new work.
    pub max_park: Duration,
}

impl Backoff {
    /// The order gateway's (and the default) phases: 1000 spins before yielding; for
    /// `backoff-park` 100 spins, 100 yields, then sleeps of 1, 2, 4, ... 512 us, then 1 ms.
    pub const DEFAULT: Backoff = Backoff {
        spins_before_yield: 1_000,
        park_spins: 100,
        park_yields: 100,
        first_park: Duration::from_micros(1),
        max_park: Duration::from_millis(1),
    };
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// What one [`Idler::idle`] call did (for tests and diagnostics; loops ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    /// One `spin_loop` hint.
    Spin,
    /// One `sched_yield`.
    Yield,
    /// Slept (asked the kernel for) this long.
    Park(Duration),
}

/// An [`IdleStrategy`] with its [`Backoff`] and its state: the loop calls [`Idler::idle`] when
/// an iteration found nothing to do and [`Idler::reset`] when it found work.
///
/// Spinning and resetting touch only this struct (no allocation, no system call, no lock);
/// yielding and parking are system calls, by design, and happen only after the spins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idler {
    strategy: IdleStrategy,
    backoff: Backoff,
    /// Idle calls before the first park (`park_spins + park_yields`).
    park_from: u32,
    first_park_ns: u64,
    max_park_ns: u64,
    /// Idle calls since the last reset.
    idle_calls: u32,
    /// The next park's length.
    park_ns: u64,
}

impl Idler {
    /// An idler in its reset state.
    pub fn new(strategy: IdleStrategy, backoff: Backoff) -> Self {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let first_park_ns = ns(backoff.first_park).max(1);
        let max_park_ns = ns(backoff.max_park).max(first_park_ns);
        Idler {
            strategy,
            backoff,
            park_from: backoff.park_spins.saturating_add(backoff.park_yields),
            first_park_ns,
            max_park_ns,
            idle_calls: 0,
            park_ns: first_park_ns,
        }
    }

    /// The loop found work: start again from spinning and the shortest park.
    #[inline]
    pub fn reset(&mut self) {
        self.idle_calls = 0;
        self.park_ns = self.first_park_ns;
    }

    /// The loop found nothing to do: spin, yield or park according to the strategy and the
    /// idle calls since the last [`Idler::reset`].
    #[inline]
    pub fn idle(&mut self) -> IdleAction {
        self.idle_at_most(u64::MAX)
    }

    /// As [`Idler::idle`], but a park sleeps at most `max_park_ns`: the time until something
    /// is due (the feed handler's pacing clock), so that parking does not make it late.
    #[inline]
    pub fn idle_at_most(&mut self, max_park_ns: u64) -> IdleAction {
        let n = self.idle_calls;
        self.idle_calls = n.saturating_add(1);
        match self.strategy {
            IdleStrategy::BusySpin => spin(),
            IdleStrategy::SpinThenYield => {
                if n < self.backoff.spins_before_yield {
                    spin()
                } else {
                    yield_now()
                }
            }
            IdleStrategy::BackoffPark => {
                if n < self.backoff.park_spins {
                    spin()
                } else if n < self.park_from {
                    yield_now()
                } else {
                    self.park(max_park_ns)
                }
            }
        }
    }

    /// Sleeps the current park length (at most `max_park_ns`) and doubles it for the next park.
    fn park(&mut self, max_park_ns: u64) -> IdleAction {
        let d = Duration::from_nanos(self.park_ns.min(max_park_ns));
        std::thread::sleep(d);
        self.park_ns = self.park_ns.saturating_mul(2).min(self.max_park_ns);
        IdleAction::Park(d)
    }
}

#[inline]
fn spin() -> IdleAction {
    std::hint::spin_loop();
    IdleAction::Spin
}

#[inline]
fn yield_now() -> IdleAction {
    std::thread::yield_now();
    IdleAction::Yield
}

/// What [`pin_current_thread`] did. Its `Display` is the line to log (prefix it with the
/// process name, and with `warning: ` when [`PinOutcome::is_warning`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// No core was configured; the thread runs where the scheduler puts it.
    NotRequested,
    /// The thread now runs only on this core.
    Pinned(usize),
    /// The core does not exist or is outside this process's affinity mask (`taskset`,
    /// cpuset, systemd `CPUAffinity=`); the thread runs unpinned.
    Unavailable {
        /// The configured core.
        core: usize,
        /// The cores this process may run on (empty if they could not be read).
        allowed: Vec<usize>,
    },
    /// The core is allowed but the kernel refused the affinity change; the thread runs
    /// unpinned.
    Refused {
        /// The configured core.
        core: usize,
    },
}

impl PinOutcome {
    /// Whether the process asked for a core and did not get it (worth a warning line: the
    /// process runs, with worse latency).
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            PinOutcome::Unavailable { .. } | PinOutcome::Refused { .. }
        )
    }
}

impl fmt::Display for PinOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinOutcome::NotRequested => f.write_str("not pinned (no core configured)"),
            PinOutcome::Pinned(core) => write!(f, "pinned to core {core}"),
            PinOutcome::Unavailable { core, allowed } if allowed.is_empty() => write!(
                f,
                "cannot pin to core {core}: the cores of this process could not be read; running unpinned"
            ),
            PinOutcome::Unavailable { core, allowed } => write!(
                f,
                "cannot pin to core {core}: not available to this process (allowed cores: {}); running unpinned",
                core_ranges(allowed)
            ),
            PinOutcome::Refused { core } => write!(
                f,
                "cannot pin to core {core}: the kernel refused; running unpinned"
            ),
        }
    }
}

/// `0-3,6,8-9` for `[0, 1, 2, 3, 6, 8, 9]` (sorted input; the form `taskset -c` takes).
fn core_ranges(cores: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cores.len() {
        let start = cores[i];
        let mut end = start;
        while i + 1 < cores.len() && cores[i + 1] == end + 1 {
            i += 1;
            end = cores[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            out += &start.to_string();
        } else {
            out += &format!("{start}-{end}");
        }
        i += 1;
    }
    out
}

/// The cores the calling thread may run on (its affinity mask, so `taskset` and cpusets
/// narrow it), ascending; empty if they cannot be read. A thread starts with its creator's
/// mask: once a thread is pinned, the threads it creates see only its core here, though the
/// process may still give them another ([`pin_current_thread`] asks the kernel, not this list).
pub fn allowed_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Pins the calling thread to `core`. A core that is missing, outside the affinity mask or
/// refused by the kernel is not an error: the thread runs unpinned and the outcome says why
/// (log it as a warning). `None` does nothing. Never panics.
pub fn pin_current_thread(core: Option<usize>) -> PinOutcome {
    let Some(core) = core else {
        return PinOutcome::NotRequested;
    };
    // The kernel decides (any core of the process's cpuset, even one outside the calling
    // thread's inherited mask); the mask only explains a refusal. Cores past the affinity
    // set's size are not asked for (the set cannot hold them).
    if core < CPU_SET_SIZE && core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        return PinOutcome::Pinned(core);
    }
    let allowed = allowed_cores();
    if allowed.contains(&core) {
        PinOutcome::Refused { core }
    } else {
        PinOutcome::Unavailable { core, allowed }
    }
}

/// Cores a Linux affinity set (`cpu_set_t`) can name.
const CPU_SET_SIZE: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `(spelling, value)`: the spelling parses to the value, prints back, and is its
    /// serde (JSON string) form both ways.
    fn assert_spellings<T>(pairs: &[(&str, T)])
    where
        T: std::str::FromStr + std::fmt::Display + serde::Serialize + serde::de::DeserializeOwned,
        T: PartialEq + std::fmt::Debug,
        T::Err: std::fmt::Debug,
    {
        for (s, v) in pairs {
            assert_eq!(&s.parse::<T>().unwrap(), v);
            assert_eq!(&v.to_string(), s);
            assert_eq!(&serde_json::from_str::<T>(&format!("{s:?}")).unwrap(), v);
            assert_eq!(serde_json::to_string(v).unwrap(), format!("{s:?}"));
        }
    }

    #[test]
    fn every_spelling_parses_and_prints_back() {
        assert_spellings(&[
            ("busy-spin", IdleStrategy::BusySpin),
            ("spin-then-yield", IdleStrategy::SpinThenYield),
            ("backoff-park", IdleStrategy::BackoffPark),
        ]);
        assert_spellings(&[
            ("fail", StalePolicy::Fail),
            ("recover", StalePolicy::Recover),
            ("replace", StalePolicy::Replace),
        ]);
        assert_eq!(IdleStrategy::NAMES.len(), IdleStrategy::ALL.len());
        assert_eq!(StalePolicy::NAMES.len(), StalePolicy::ALL.len());
        assert_eq!(IdleStrategy::default(), IdleStrategy::SpinThenYield);
    }

    #[test]
    fn unknown_names_are_rejected_naming_the_value_and_the_choices() {
        let e = "spin-forever".parse::<IdleStrategy>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown idle strategy "spin-forever" (expected busy-spin, spin-then-yield or backoff-park)"#
        );
        let e = "Recover".parse::<StalePolicy>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown stale policy "Recover" (expected fail, recover or replace)"#
        );
        // Through serde the message is the same; a wrong type says what was expected.
        let e = serde_json::from_str::<IdleStrategy>(r#""busyspin""#).unwrap_err();
        assert!(
            e.to_string()
                .contains(r#"unknown idle strategy "busyspin""#),
            "{e}"
        );
        let e = serde_json::from_str::<StalePolicy>("3").unwrap_err();
        assert!(e.to_string().contains("expected a stale policy"), "{e}");
        assert!(" busy-spin".parse::<IdleStrategy>().is_err());
        assert!("".parse::<StalePolicy>().is_err());
    }

    fn phases(idler: &mut Idler, calls: usize) -> Vec<IdleAction> {
        (0..calls).map(|_| idler.idle()).collect()
    }

    const SMALL: Backoff = Backoff {
        spins_before_yield: 3,
        park_spins: 2,
        park_yields: 2,
        first_park: Duration::from_micros(1),
        max_park: Duration::from_micros(5),
    };

    #[test]
    fn backoff_park_spins_then_yields_then_parks_doubling_up_to_the_cap() {
        use IdleAction::*;
        let us = Duration::from_micros;
        let mut i = Idler::new(IdleStrategy::BackoffPark, SMALL);
        assert_eq!(
            phases(&mut i, 9),
            [
                Spin,
                Spin,
                Yield,
                Yield,
                Park(us(1)),
                Park(us(2)),
                Park(us(4)),
                Park(us(5)),
                Park(us(5))
            ]
        );
        i.reset();
        assert_eq!(phases(&mut i, 5), [Spin, Spin, Yield, Yield, Park(us(1))]);
    }

    #[test]
    fn spin_then_yield_never_parks_and_busy_spin_only_spins() {
        use IdleAction::*;
        let mut i = Idler::new(IdleStrategy::SpinThenYield, SMALL);
        assert_eq!(phases(&mut i, 6), [Spin, Spin, Spin, Yield, Yield, Yield]);
        i.reset();
        assert_eq!(i.idle(), Spin);
        let mut i = Idler::new(IdleStrategy::BusySpin, SMALL);
        assert!(phases(&mut i, 1000).iter().all(|a| *a == Spin));
    }

    #[test]
    fn a_park_never_sleeps_past_the_given_limit() {
        // The feed handler's pacing: a fixed 1 ms park, cut to the time until the next event.
        let fixed = Backoff {
            park_spins: 0,
            park_yields: 0,
            first_park: Duration::from_millis(1),
            ..Backoff::DEFAULT
        };
        let mut i = Idler::new(IdleStrategy::BackoffPark, fixed);
        assert_eq!(
            i.idle_at_most(3_000),
            IdleAction::Park(Duration::from_nanos(3_000))
        );
        assert_eq!(
            i.idle_at_most(u64::MAX),
            IdleAction::Park(Duration::from_millis(1))
        );
    }

    #[test]
    fn default_backoff_parks_1_2_4_to_512_us_then_1_ms() {
        let mut i = Idler::new(IdleStrategy::BackoffPark, Backoff::DEFAULT);
        let actions = phases(&mut i, 200 + 12);
        assert!(actions[..100].iter().all(|a| *a == IdleAction::Spin));
        assert!(actions[100..200].iter().all(|a| *a == IdleAction::Yield));
        let parks: Vec<u128> = actions[200..]
            .iter()
            .map(|a| match a {
                IdleAction::Park(d) => d.as_micros(),
                other => panic!("expected a park, got {other:?}"),
            })
            .collect();
        assert_eq!(parks, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000]);
    }

    #[test]
    fn pinning_to_a_missing_core_warns_and_does_not_panic() {
        let o = pin_current_thread(Some(usize::MAX));
        assert!(o.is_warning(), "{o:?}");
        assert!(matches!(
            o,
            PinOutcome::Unavailable {
                core: usize::MAX,
                ..
            }
        ));
        let msg = o.to_string();
        assert!(msg.contains(&usize::MAX.to_string()), "{msg}");
        assert!(msg.ends_with("running unpinned"), "{msg}");
        assert_eq!(pin_current_thread(None), PinOutcome::NotRequested);
        assert!(!PinOutcome::NotRequested.is_warning());
    }

    #[test]
    fn pinning_to_an_allowed_core_pins() {
        let allowed = allowed_cores();
        let Some(&core) = allowed.first() else {
            return; // affinity unreadable here: nothing to pin to
        };
        // In a thread of its own: pinning the test harness's thread would outlive the test.
        let o = std::thread::spawn(move || pin_current_thread(Some(core)))
            .join()
            .unwrap();
        assert_eq!(o, PinOutcome::Pinned(core));
        assert!(!o.is_warning());
        assert_eq!(o.to_string(), format!("pinned to core {core}"));
    }

    #[test]
    fn a_thread_created_by_a_pinned_thread_can_still_be_pinned_elsewhere() {
        let allowed = allowed_cores();
        let (Some(&first), Some(&last)) = (allowed.first(), allowed.last()) else {
            return;
        };
        if first == last {
            return; // one core: nowhere else to go
        }
        let o = std::thread::spawn(move || {
            assert_eq!(pin_current_thread(Some(first)), PinOutcome::Pinned(first));
            // Inherits the mask {first}; the process still allows `last`.
            std::thread::spawn(move || pin_current_thread(Some(last)))
                .join()
                .unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(o, PinOutcome::Pinned(last));
    }

    #[test]
    fn allowed_cores_print_as_taskset_ranges() {
        assert_eq!(core_ranges(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(core_ranges(&[5]), "5");
        assert_eq!(core_ranges(&[]), "");
        let o = PinOutcome::Unavailable {
            core: 1,
            allowed: vec![4, 5, 6, 7],
        };
        assert_eq!(
            o.to_string(),
            "cannot pin to core 1: not available to this process (allowed cores: 4-7); running unpinned"
        );
    }
}
