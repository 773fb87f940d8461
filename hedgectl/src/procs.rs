//! Attaching to a namespace read-only and taking a [`Snapshot`] of it.
//!
//! Everything here is off the engine's hot path: counters are relaxed atomic loads from the
//! processes' `cnc-<role>` segments, ring positions are loads of the rings' position words, and
//! nothing is ever written (except by `control` commands, into the control block).

use std::path::{Path, PathBuf};
use std::time::Duration;

use shm_layout::counters::{
    CounterRecord, CounterValue, CountersReader, Liveness as ShmLiveness, KIND_COUNTER,
};
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

/// One record as a metric: label, unit and help as the process wrote them; a record of a kind
/// this build does not know is kept as [`Value::Untyped`].
pub fn metric(r: &CounterRecord) -> Metric {
    let value = match (r.kind, r.value) {
        (KIND_COUNTER, CounterValue::Counter(n)) => Value::Counter(n),
        (_, CounterValue::Gauge(g)) => Value::Gauge(g),
        (_, CounterValue::Counter(n)) => Value::Untyped(n),
    };
    Metric::new(&r.label, value).described(&r.unit, &r.help)
}

/// Reads one process's counters segment.
fn process(dir: &Path, role: &str, now: u64) -> Option<ProcessSnap> {
    let c = CountersReader::open(dir, role, OpenOptions::default()).ok()?;
    let metrics = c.records().iter().map(metric).collect();
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

/// The counters schemas end to end: written by the processes' own declarations into real
/// segments, read back by hedgectl's reader, rendered by `stat` and the Prometheus export.
#[cfg(test)]
mod schema_tests {
    use super::*;
    use crate::metrics::render_prometheus;
    use engine::hedger::counters::{HedgerCounter, Metrics};
    use feed_handler::counters::FeedCounter;
    use order_gateway::counters::GatewayCounter;
    use shm_layout::counter_schema::{CounterKind, CounterSchema, Scope};
    use shm_layout::{CountersWriter, StalePolicy};

    fn ns() -> tempfile::TempDir {
        testkit::shm::namespace_dir("hedgectl-schema-")
    }

    /// Every declared instance of `S` is in the snapshot with the schema's unit, help and
    /// kind, under its label (per-underlying ones once per underlying).
    fn assert_round_trip<S: CounterSchema>(p: &ProcessSnap, unds: &[&str]) {
        let mut expected = 0;
        for d in S::DEFS {
            let per: Vec<Option<&str>> = match d.scope {
                Scope::Global => vec![None],
                Scope::PerUnderlying => unds.iter().map(|u| Some(*u)).collect(),
            };
            let values: Vec<Option<&str>> =
                d.by.map_or(vec![None], |b| b.values.iter().map(|v| Some(*v)).collect());
            for u in &per {
                for v in &values {
                    let label = d.label(*u, *v);
                    let m = p.metrics.iter().find(|m| m.label == label);
                    let m = m.unwrap_or_else(|| panic!("{}: {label} missing", p.role));
                    assert_eq!((m.name.as_str(), m.unit.as_str()), (d.name, d.unit));
                    assert_eq!(m.help, d.help, "{label}");
                    let kind_ok = matches!(
                        (d.kind, m.value),
                        (CounterKind::Counter, Value::Counter(_))
                            | (CounterKind::Gauge, Value::Gauge(_))
                    );
                    assert!(kind_ok, "{label}: {:?}", m.value);
                    assert_eq!(m.label_value("underlying"), *u, "{label}");
                    expected += 1;
                }
            }
        }
        assert_eq!(p.metrics.len(), expected, "{}: extra records", p.role);
    }

    #[test]
    fn each_process_schema_round_trips_through_the_segment_with_units_and_help() {
        let d = ns();
        let mut h = CountersWriter::create(d.path(), "hedger", StalePolicy::Fail).unwrap();
        let m = Metrics::new(&mut h, &["BTC".to_string(), "ETH".to_string()]);
        m.0.set_at(HedgerCounter::LimitRejects, 1, 3, 5);
        let mut g = CountersWriter::create(d.path(), "gateway", StalePolicy::Fail).unwrap();
        let _g = g.register::<GatewayCounter>(&[]);
        let mut f = CountersWriter::create(d.path(), "feed-handler", StalePolicy::Fail).unwrap();
        let _f = f.register::<FeedCounter>(&[]);
        let snap = snapshot(d.path()).unwrap();
        let role = |r: &str| snap.processes.iter().find(|p| p.role == r).unwrap();
        assert_round_trip::<HedgerCounter>(role("hedger"), &["BTC", "ETH"]);
        assert_round_trip::<GatewayCounter>(role("gateway"), &[]);
        assert_round_trip::<FeedCounter>(role("feed-handler"), &[]);
        let eth = role("hedger").get("limit_rejects", Some(("underlying", "ETH")));
        assert_eq!(
            eth,
            Some(0.0),
            "first instance of ETH is max-qty... index 0"
        );
        let halted = role("hedger")
            .metrics
            .iter()
            .find(|m| m.label == r#"limit_rejects{underlying="ETH",limit="halted"}"#)
            .map(|m| m.value);
        assert_eq!(halted, Some(Value::Counter(5)));
    }

    /// Prometheus text format: one HELP (help and unit, from the segment) and one TYPE line
    /// per family before its samples, counters `_total`, per-underlying samples labelled.
    #[test]
    fn prometheus_export_has_help_type_and_underlying_labels_from_the_segment() {
        let d = ns();
        let mut h = CountersWriter::create(d.path(), "hedger", StalePolicy::Fail).unwrap();
        let m = Metrics::new(&mut h, &["BTC".to_string(), "ETH".to_string()]);
        m.0.set(HedgerCounter::OrdersSent, 7);
        m.0.set_at(HedgerCounter::Hedges, 0, 1, 2);
        m.0.set_f64_at(HedgerCounter::NetDelta, 1, 0, -0.25);
        let text = render_prometheus(&snapshot(d.path()).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        let at = |l: &str| {
            lines
                .iter()
                .position(|x| *x == l)
                .unwrap_or_else(|| panic!("{l}\n{text}"))
        };
        let help =
            at("# HELP hedge_orders_sent_total Hedge orders written to the orders ring (orders)");
        let ty = at("# TYPE hedge_orders_sent_total counter");
        let sample = at(r#"hedge_orders_sent_total{role="hedger"} 7"#);
        assert!(help + 1 == ty && ty + 1 == sample, "{text}");
        at("# TYPE hedge_net_delta gauge");
        at(r#"hedge_net_delta{role="hedger",underlying="ETH"} -0.25"#);
        at(r#"hedge_hedges_total{role="hedger",underlying="BTC",reason="safety"} 2"#);
        // The format: comments are HELP or TYPE, one of each per family; every sample is
        // `name{k="v",...} value` with a family declared above it.
        let mut declared = std::collections::HashSet::new();
        for l in &lines {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "untyped"].contains(&kind), "{l}");
                assert!(
                    declared.insert(name.to_string()),
                    "two TYPE lines for {name}"
                );
                continue;
            }
            if l.starts_with("# HELP ") {
                continue;
            }
            assert!(!l.starts_with('#'), "{l}");
            let (series, value) = l.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok() || value == "NaN", "{l}");
            let name = series.split('{').next().unwrap();
            assert!(declared.contains(name), "sample before its TYPE: {l}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{l}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                assert!(
                    labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                    "{l}"
                );
            }
        }
    }

    /// A record no schema here declares (a newer build's counter, or one of an unknown
    /// kind) is listed by `stat` and exported, not dropped.
    #[test]
    fn an_unknown_counter_in_a_segment_is_shown_and_exported() {
        let d = ns();
        let mut w = CountersWriter::create(d.path(), "hedger", StalePolicy::Fail).unwrap();
        w.record_meta(shm_layout::RecordMeta {
            label: r#"brand_new_thing{underlying="SOL"}"#,
            kind: shm_layout::counters::KIND_COUNTER,
            unit: "widgets",
            help: "Something a newer hedger counts",
        })
        .add(3);
        w.record_meta(shm_layout::RecordMeta {
            label: "future_kind",
            kind: 9,
            unit: "",
            help: "A kind this build does not know",
        })
        .set(12);
        let snap = snapshot(d.path()).unwrap();
        let text = crate::stat::render(&snap, None, false);
        assert!(text.contains("\nSOL\n"), "{text}");
        let row = text
            .lines()
            .find(|l| l.contains("brand_new_thing"))
            .unwrap();
        assert!(row.contains(" 3 ") && row.contains("widgets"), "{row}");
        assert!(
            text.lines()
                .any(|l| l.contains("future_kind") && l.contains("12")),
            "{text}"
        );
        let prom = render_prometheus(&snap);
        assert!(
            prom.contains(
                "# HELP hedge_brand_new_thing_total Something a newer hedger counts (widgets)\n"
            ),
            "{prom}"
        );
        assert!(
            prom.contains("hedge_brand_new_thing_total{role=\"hedger\",underlying=\"SOL\"} 3\n"),
            "{prom}"
        );
        assert!(
            prom.contains(
                "# TYPE hedge_future_kind untyped\nhedge_future_kind{role=\"hedger\"} 12\n"
            ),
            "{prom}"
        );
    }
}
