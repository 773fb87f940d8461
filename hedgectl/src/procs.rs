//! Attaching to a namespace read-only and taking a [`Snapshot`] of it.
//!
//! Everything here is off the engine's hot path: counters are relaxed atomic loads from the
//! processes' `cnc-<role>` segments, ring positions are loads of the rings' position words, and
//! nothing is ever written (except by `control` commands, into the control block).

use std::path::{Path, PathBuf};
use std::time::Duration;

use shm_layout::counters::{CounterValue, CountersReader, Liveness as ShmLiveness};
use shm_layout::segment::{names, OpenOptions};

use crate::metrics::{
    ControlSnap, Liveness, Metric, ProcessSnap, RingSnap, Snapshot, UnderlyingControl, Value,
};

/// Heartbeat age after which a live process is reported `stale`.
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// Which namespace to attach to (shared by every operator subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct NsArgs {
    /// Namespace: segments live in /dev/shm/<NAMESPACE>.
    #[arg(long, env = "HEDGE_NAMESPACE", default_value = "hedge")]
    pub namespace: String,
    /// Segment directory, overriding --namespace (e.g. a hugetlbfs mount).
    #[arg(long, env = "HEDGE_SHM_DIR")]
    pub shm_dir: Option<PathBuf>,
}

impl NsArgs {
    /// The namespace directory.
    ///
    /// # Errors
    /// A namespace that is not `[A-Za-z0-9_-]{1,64}`.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        match &self.shm_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(shm_layout::namespace_dir(&self.namespace)?),
        }
    }

    /// The directory, or an error saying that nothing runs there.
    ///
    /// # Errors
    /// The directory does not exist.
    pub fn existing_dir(&self) -> anyhow::Result<PathBuf> {
        let d = self.dir()?;
        if !d.is_dir() {
            anyhow::bail!(
                "namespace directory {} does not exist: nothing runs in this namespace (start the \
                 engine, or pass --namespace / --shm-dir)",
                d.display()
            );
        }
        Ok(d)
    }
}

/// Whether a `cnc-*` role belongs to the process family `key` (`feed`, `hedger`, `gateway`):
/// exact match, or the role contains the key (`feed-handler`, `order-gateway`).
pub fn role_matches(role: &str, key: &str) -> bool {
    let key = match key {
        "feed-handler" => "feed",
        "order-gateway" => "gateway",
        k => k,
    };
    role == key || role.contains(key)
}

/// The process of family `key` in a snapshot.
pub fn find_role<'a>(snap: &'a Snapshot, key: &str) -> Option<&'a ProcessSnap> {
    snap.processes.iter().find(|p| role_matches(&p.role, key))
}

/// Whether a process of family `key` has its counters segment up and says `running`.
pub fn role_running(dir: &Path, key: &str) -> bool {
    shm_layout::counters::list_roles(dir)
        .iter()
        .filter(|r| role_matches(r, key))
        .any(|r| {
            CountersReader::open(dir, r, OpenOptions::default()).is_ok_and(|c| {
                c.state() == Some(shm_layout::counters::ProcessState::Running)
                    && c.liveness(shm_layout::clock::now_ns(), Duration::from_secs(5))
                        != ShmLiveness::Dead
            })
        })
}

/// `(role, pid)` of every process whose counters segment in `dir` says it is alive.
pub fn live_owners(dir: &Path) -> Vec<(String, u32)> {
    let now = shm_layout::clock::now_ns();
    shm_layout::counters::list_roles(dir)
        .into_iter()
        .filter_map(|r| {
            let c = CountersReader::open(dir, &r, OpenOptions::default()).ok()?;
            (c.liveness(now, Duration::from_secs(3600)) != ShmLiveness::Dead).then(|| (r, c.pid()))
        })
        .collect()
}

/// Removes every file of the namespace directory except `keep`.
///
/// # Errors
/// A file cannot be removed.
pub fn remove_segments(dir: &Path, keep: &Path) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p != keep && p.is_file() {
            std::fs::remove_file(&p).map_err(|err| {
                anyhow::anyhow!("cannot remove stale segment {}: {err}", p.display())
            })?;
        }
    }
    Ok(())
}

fn liveness(l: ShmLiveness) -> Liveness {
    match l {
        ShmLiveness::Alive => Liveness::Alive,
        ShmLiveness::StaleHeartbeat => Liveness::Stale,
        ShmLiveness::Dead => Liveness::Dead,
    }
}

/// Reads one process's counters segment.
fn process(dir: &Path, role: &str, now: u64) -> Option<ProcessSnap> {
    let c = CountersReader::open(dir, role, OpenOptions::default()).ok()?;
    let metrics = c
        .snapshot()
        .into_iter()
        .map(|(label, v)| {
            let value = match v {
                CounterValue::Counter(n) => Value::Counter(n),
                CounterValue::Gauge(g) => Value::Gauge(g),
            };
            Metric::new(&label, value)
        })
        .collect();
    Some(ProcessSnap {
        role: role.to_string(),
        pid: c.pid(),
        liveness: liveness(c.liveness(now, STALE_AFTER)),
        state: c.state().map_or("unknown", |s| s.name()).to_string(),
        heartbeat_age_ns: now.saturating_sub(c.heartbeat_ns()),
        metrics,
    })
}

/// Symbols of the underlyings (index instruments) in the instruments table: `(id, symbol)`.
pub fn underlyings(dir: &Path) -> Vec<(u32, String)> {
    shm_layout::instruments::InstrumentTable::open(dir, names::INSTRUMENTS, OpenOptions::default())
        .map(|t| t.underlyings())
        .unwrap_or_default()
}

/// The control block's words for the known underlyings.
pub fn control(dir: &Path) -> Option<ControlSnap> {
    let cb = shm_layout::control::ControlBlock::open(dir, OpenOptions::default()).ok()?;
    let underlyings = underlyings(dir)
        .into_iter()
        .map(|(id, symbol)| {
            let st = cb.trading_state(id);
            UnderlyingControl {
                id,
                symbol,
                state: st.name(),
                state_code: st as u8,
            }
        })
        .collect();
    Some(ControlSnap {
        kill_switch: cb.kill_switch(),
        generation: cb.generation(),
        underlyings,
    })
}

/// Positions of the rings, read without consuming anything.
pub fn rings(dir: &Path) -> Vec<RingSnap> {
    let mut out = Vec::new();
    if let Ok(r) = shm_layout::broadcast::BroadcastReader::<shm_layout::MarketEvent>::open(
        dir,
        names::MD,
        OpenOptions::default(),
    ) {
        out.push(RingSnap {
            name: names::MD.to_string(),
            kind: "broadcast",
            producer_position: r.position() + r.lag(),
            consumer_position: None,
            capacity: r.capacity() as u64,
        });
    }
    out.extend(crate::tail::spsc_ring::<shm_layout::HedgeOrder>(
        dir,
        names::ORDERS,
    ));
    out.extend(crate::tail::spsc_ring::<shm_layout::ExecEvent>(
        dir,
        names::EXECS,
    ));
    out
}

/// A snapshot of the whole namespace.
///
/// # Errors
/// The namespace directory does not exist.
pub fn snapshot(dir: &Path) -> Result<Snapshot, String> {
    if !dir.is_dir() {
        return Err(format!("{} does not exist", dir.display()));
    }
    let now = shm_layout::clock::now_ns();
    let processes = shm_layout::counters::list_roles(dir)
        .iter()
        .filter_map(|r| process(dir, r, now))
        .collect();
    Ok(Snapshot {
        taken_ns: now,
        dir: dir.display().to_string(),
        processes,
        rings: rings(dir),
        control: control(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_outside_dev_shm_are_refused() {
        for bad in ["..", ".", "", "../../tmp/X"] {
            let ns = NsArgs {
                namespace: bad.into(),
                shm_dir: None,
            };
            let e = ns.existing_dir().unwrap_err().to_string();
            assert!(e.contains("is not allowed"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn roles_match_binary_names_and_short_names() {
        assert!(role_matches("feed-handler", "feed"));
        assert!(role_matches("feed", "feed-handler"));
        assert!(role_matches("order-gateway", "gateway"));
        assert!(role_matches("gateway", "order-gateway"));
        assert!(role_matches("hedger", "hedger"));
        assert!(!role_matches("hedger", "gateway"));
    }
}
