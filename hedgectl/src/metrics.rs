//! The operator's model of a running namespace: processes, their counters and gauges, rings,
//! control words and per-underlying risk, as plain data.
//!
//! [`crate::procs::snapshot`] fills a [`Snapshot`] from shared memory (read-only atomics); the
//! rest of `hedgectl` (stat, positions, export, the demo's status line) only formats snapshots,
//! so it is tested without any process running.
//!
//! Counter labels follow Prometheus syntax, `name` or `name{key="value",...}` (what every
//! process's counter schema writes, `shm_layout::counter_schema`); any other label is kept,
//! sanitized, as a plain name. Units and help texts come from the segment too: nothing here
//! knows a process's counters by heart, so a counter of a newer build is shown like any other.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A counter's or gauge's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Monotonic count.
    Counter(u64),
    /// Instantaneous value.
    Gauge(f64),
    /// A record of a kind this build does not know (its raw word): shown, never dropped.
    Untyped(u64),
}

impl Value {
    /// The value for tables: counters exactly (u64 ids exceed f64 precision), gauges compact.
    pub fn display(self) -> String {
        match self {
            Value::Counter(c) | Value::Untyped(c) => c.to_string(),
            Value::Gauge(g) => fmt_num(g),
        }
    }

    /// The value as f64 (counters converted).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Counter(c) | Value::Untyped(c) => c as f64,
            Value::Gauge(g) => g,
        }
    }
}

/// One counter or gauge of one process, its label parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The label as the process wrote it.
    pub label: String,
    /// Metric name (snake_case, Prometheus-safe).
    pub name: String,
    /// `key = value` pairs from `{...}`, in order.
    pub labels: Vec<(String, String)>,
    /// Current value.
    pub value: Value,
    /// Unit as the process declared it (empty if none).
    pub unit: String,
    /// Help text as the process declared it (empty if none).
    pub help: String,
}

impl Metric {
    /// Parses `label` (`name` or `name{k="v",...}`) into a metric without unit or help.
    pub fn new(label: &str, value: Value) -> Metric {
        let (name, labels) = parse_label(label);
        Metric {
            label: label.to_string(),
            name,
            labels,
            value,
            unit: String::new(),
            help: String::new(),
        }
    }

    /// The same, with the unit and help text its segment record carries.
    pub fn described(mut self, unit: &str, help: &str) -> Metric {
        self.unit = unit.to_string();
        self.help = help.to_string();
        self
    }

    /// The label without its `underlying` pair (`hedges{reason="band"}` for
    /// `hedges{underlying="BTC",reason="band"}`), for tables grouped by underlying.
    pub fn label_without_underlying(&self) -> String {
        let rest: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| k != "underlying")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        if rest.is_empty() {
            self.name.clone()
        } else {
            format!("{}{{{}}}", self.name, rest.join(","))
        }
    }

    /// The value of label key `key`, if present.
    pub fn label_value(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Makes `s` a valid Prometheus metric or label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, '_');
    }
    out
}

/// Splits a counter's label (`name` or `name{k="v",...}`, as the processes' counter schema
/// writes it) into a Prometheus-safe name and its label pairs, with the schema's own reader
/// ([`shm_layout::counter_schema::parse_label`]). A label not of that form (a foreign name,
/// or one cut at the segment's label length) becomes one sanitized name with no pairs.
pub fn parse_label(label: &str) -> (String, Vec<(String, String)>) {
    let label = label.trim();
    match shm_layout::counter_schema::parse_label(label) {
        Some((name, pairs)) => (
            sanitize_name(name),
            pairs
                .into_iter()
                .map(|(k, v)| (sanitize_name(k), v))
                .collect(),
        ),
        None => (sanitize_name(label), Vec::new()),
    }
}

/// A process's liveness as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Pid exists and the heartbeat is recent.
    Alive,
    /// Pid exists but the heartbeat is older than the threshold.
    Stale,
    /// The pid no longer exists.
    Dead,
}

impl Liveness {
    /// Lower-case word for tables.
    pub fn name(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Stale => "stale",
            Liveness::Dead => "dead",
        }
    }
    /// Prometheus value: 1 alive, 0.5 stale, 0 dead.
    pub fn as_gauge(self) -> f64 {
        match self {
            Liveness::Alive => 1.0,
            Liveness::Stale => 0.5,
            Liveness::Dead => 0.0,
        }
    }
}

/// One process of the namespace (one `cnc-<role>` segment).
#[derive(Debug, Clone)]
pub struct ProcessSnap {
    /// Role, e.g. `hedger`.
    pub role: String,
    /// Pid written by the process.
    pub pid: u32,
    /// Liveness at snapshot time.
    pub liveness: Liveness,
    /// Process state word (starting, running, stopping, stopped).
    pub state: String,
    /// Age of the heartbeat in ns at snapshot time.
    pub heartbeat_age_ns: u64,
    /// Counters and gauges.
    pub metrics: Vec<Metric>,
}

impl ProcessSnap {
    /// The total of metric `name`: its unlabeled value if the process publishes one (a
    /// total beside per-label breakdowns), else the sum over its labels.
    pub fn sum(&self, name: &str) -> Option<f64> {
        if let Some(total) = self.get(name, None) {
            return Some(total);
        }
        let mut found = false;
        let mut total = 0.0;
        for m in self.metrics.iter().filter(|m| m.name == name) {
            found = true;
            total += m.value.as_f64();
        }
        found.then_some(total)
    }
    /// The value of the metric `name` with no labels, or `name{key="value"}`.
    pub fn get(&self, name: &str, key_value: Option<(&str, &str)>) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| {
                m.name == name
                    && match key_value {
                        None => m.labels.is_empty(),
                        Some((k, v)) => m.label_value(k) == Some(v),
                    }
            })
            .map(|m| m.value.as_f64())
    }
}

/// Fill of one ring.
#[derive(Debug, Clone, PartialEq)]
pub struct RingSnap {
    /// Segment name (`md`, `orders`, `execs`).
    pub name: String,
    /// `broadcast` or `spsc`.
    pub kind: &'static str,
    /// Messages ever written.
    pub producer_position: u64,
    /// Messages consumed (SPSC only).
    pub consumer_position: Option<u64>,
    /// Slots.
    pub capacity: u64,
}

impl RingSnap {
    /// Messages waiting (SPSC), or `None` for broadcast rings.
    pub fn queued(&self) -> Option<u64> {
        self.consumer_position
            .map(|c| self.producer_position.saturating_sub(c))
    }
    /// Fill fraction of an SPSC ring.
    pub fn fill(&self) -> Option<f64> {
        self.queued()
            .map(|l| l as f64 / (self.capacity.max(1)) as f64)
    }
}

/// Trading state of one underlying from the control block.
#[derive(Debug, Clone, PartialEq)]
pub struct UnderlyingControl {
    /// Underlying instrument id.
    pub id: u32,
    /// Symbol from the instruments table (or the id as text).
    pub symbol: String,
    /// `active`, `reduce-only` or `halted`.
    pub state: &'static str,
    /// Numeric state (0, 1, 2).
    pub state_code: u8,
}

/// The control block's words.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSnap {
    /// Kill switch.
    pub kill_switch: bool,
    /// Bumps on every write.
    pub generation: u64,
    /// Known underlyings and their trading state.
    pub underlyings: Vec<UnderlyingControl>,
}

/// Everything `stat` shows, at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Monotonic ns when taken.
    pub taken_ns: u64,
    /// Namespace directory.
    pub dir: String,
    /// One entry per `cnc-*` segment.
    pub processes: Vec<ProcessSnap>,
    /// Rings found.
    pub rings: Vec<RingSnap>,
    /// Control block, if the hedger created it.
    pub control: Option<ControlSnap>,
}

impl Snapshot {
    /// Per-underlying risk gathered from metrics carrying an `underlying` label (any process,
    /// normally the hedger) and the control block's trading states.
    pub fn risk(&self) -> Vec<RiskRow> {
        let mut rows: BTreeMap<String, RiskRow> = BTreeMap::new();
        for p in &self.processes {
            for m in &p.metrics {
                let Some(u) = m.label_value("underlying") else {
                    continue;
                };
                if m.labels.len() != 1 {
                    continue;
                }
                let row = rows.entry(u.to_string()).or_insert_with(|| RiskRow {
                    underlying: u.to_string(),
                    ..RiskRow::default()
                });
                let v = m.value.as_f64();
                if m.name == H::TradingState.def().name {
                    row.state = Some(state_name(v as u8).to_string());
                    continue;
                }
                let field = match RISK_GAUGES.iter().find(|(id, _)| id.def().name == m.name) {
                    Some((_, f)) => f(row),
                    None => {
                        row.other.push((m.name.clone(), v));
                        continue;
                    }
                };
                *field = Some(v);
            }
        }
        if let Some(c) = &self.control {
            for u in &c.underlyings {
                let row = rows.entry(u.symbol.clone()).or_insert_with(|| RiskRow {
                    underlying: u.symbol.clone(),
                    ..RiskRow::default()
                });
                // The control block says what the operator asked for; the hedger's gauge what
                // it does (it may have halted by itself, e.g. when the gateway's heartbeat
                // stopped or rejects exceeded their rate).
                let own = row.state.take();
                row.state = Some(match own {
                    Some(g) if g != u.state && g != "unknown" => format!("{g} (auto)"),
                    _ => u.state.to_string(),
                });
            }
        }
        rows.into_values().collect()
    }
}

use engine::hedger::counters::HedgerCounter as H;
use shm_layout::CounterSchema as _;

/// The hedger's per-underlying gauges that make a [`RiskRow`] (names from its schema).
type RiskField = fn(&mut RiskRow) -> &mut Option<f64>;
const RISK_GAUGES: [(H, RiskField); 6] = [
    (H::NetDelta, |r| &mut r.net_delta),
    (H::OptionDelta, |r| &mut r.option_delta),
    (H::HedgePosition, |r| &mut r.hedge_position),
    (H::Gamma, |r| &mut r.gamma),
    (H::Vega, |r| &mut r.vega),
    (H::Band, |r| &mut r.band),
];

/// Name of a trading-state code.
pub fn state_name(code: u8) -> &'static str {
    match code {
        0 => "active",
        1 => "reduce-only",
        2 => "halted",
        _ => "unknown",
    }
}

/// Risk of one underlying.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskRow {
    /// Underlying symbol.
    pub underlying: String,
    /// Net delta after hedging (options + hedge + in flight).
    pub net_delta: Option<f64>,
    /// Delta of the options alone, before hedging.
    pub option_delta: Option<f64>,
    /// Hedge position.
    pub hedge_position: Option<f64>,
    /// Portfolio gamma.
    pub gamma: Option<f64>,
    /// Portfolio vega.
    pub vega: Option<f64>,
    /// Current band half-width.
    pub band: Option<f64>,
    /// Trading state.
    pub state: Option<String>,
    /// Other per-underlying metrics.
    pub other: Vec<(String, f64)>,
}

impl RiskRow {
    /// The header of the per-underlying risk table, in the columns of [`RiskRow::table_line`]:
    /// one table for `hedgectl stat`, `hedgectl positions` and the demo summary.
    pub fn table_header() -> String {
        risk_line([
            "UNDERLYING",
            "OPTION DELTA",
            "HEDGE POS",
            "NET DELTA",
            "GAMMA",
            "VEGA",
            "BAND",
            "STATE",
        ])
    }

    /// This row as a line of the risk table (no newline): options' delta, hedge position and
    /// net delta in that order (the net delta is the sum of what precedes it, plus in flight).
    pub fn table_line(&self) -> String {
        risk_line([
            self.underlying.as_str(),
            &fmt_opt(self.option_delta),
            &fmt_opt(self.hedge_position),
            &fmt_opt(self.net_delta),
            &fmt_opt(self.gamma),
            &fmt_opt(self.vega),
            &fmt_opt(self.band),
            self.state.as_deref().unwrap_or("-"),
        ])
    }
}

fn risk_line(c: [&str; 8]) -> String {
    format!(
        "{:<12} {:>14} {:>14} {:>14} {:>12} {:>12} {:>10} {:<12}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    )
}

/// Formats an optional number compactly for tables.
pub fn fmt_opt(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(x) => fmt_num(x),
    }
}

/// Formats a number compactly: integers as integers, others with 4 significant-ish digits.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

/// Samples of one Prometheus metric family.
struct Family {
    kind: &'static str,
    help: String,
    lines: Vec<String>,
}

/// Families by name (the format wants one HELP and one TYPE line per name).
#[derive(Default)]
struct Families(BTreeMap<String, Family>);

impl Families {
    /// Adds one sample; the family's help is the first non-empty one given.
    fn add(
        &mut self,
        name: String,
        kind: &'static str,
        help: &str,
        labels: &[(String, String)],
        v: Sample,
    ) {
        let mut line = name.clone();
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape_label_value(val));
            }
            line.push('}');
        }
        let _ = match v {
            Sample::Exact(n) => write!(line, " {n}"),
            Sample::Float(f) => write!(line, " {}", prom_float(f)),
        };
        let f = self.0.entry(name).or_insert_with(|| Family {
            kind,
            help: String::new(),
            lines: Vec::new(),
        });
        if f.help.is_empty() {
            f.help = help.to_string();
        }
        f.lines.push(line);
    }

    fn render(self) -> String {
        let mut out = String::new();
        for (name, f) in self.0 {
            if !f.help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            }
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for l in f.lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

/// A process metric's family name, type, help and sample. Counters are `hedge_<name>_total`,
/// gauges `hedge_<name>`, records of an unknown kind `hedge_<name>` typed `untyped`. The help
/// is the process's own, with its unit.
fn family_of(m: &Metric) -> (String, &'static str, String, Sample) {
    let (name, kind, sample) = match m.value {
        Value::Counter(n) => (
            format!("hedge_{}_total", m.name),
            "counter",
            Sample::Exact(n),
        ),
        Value::Gauge(g) => (format!("hedge_{}", m.name), "gauge", Sample::Float(g)),
        Value::Untyped(n) => (format!("hedge_{}", m.name), "untyped", Sample::Exact(n)),
    };
    let help = match (m.help.is_empty(), m.unit.is_empty()) {
        (_, true) => m.help.clone(),
        (true, false) => format!("({})", m.unit),
        (false, false) => format!("{} ({})", m.help, m.unit),
    };
    (name.replace("_total_total", "_total"), kind, help, sample)
}

/// Renders the snapshot in the Prometheus text exposition format (version 0.0.4).
///
/// Every process metric becomes `hedge_<name>{role="<role>",<labels>}` (per-underlying ones
/// carry `underlying="<symbol>"`), with the `# HELP` (help and unit) and `# TYPE` its process
/// wrote into its counters segment: counters `counter`, gauges `gauge`, kinds this build does
/// not know `untyped`. Liveness, heartbeat age, ring positions, the kill switch and trading
/// states are added as `hedge_process_up`, `hedge_heartbeat_age_seconds`, `hedge_ring_*`,
/// `hedge_kill_switch`, `hedge_trading_state`.
pub fn render_prometheus(s: &Snapshot) -> String {
    let mut fams = Families::default();
    let role_label = |role: &str| vec![("role".to_string(), role.to_string())];
    for p in &s.processes {
        let role = role_label(&p.role);
        let up = "1 alive, 0.5 heartbeat stale, 0 dead";
        fams.add(
            "hedge_process_up".into(),
            "gauge",
            up,
            &role,
            Sample::Float(p.liveness.as_gauge()),
        );
        let age = "Age of the process's heartbeat (seconds)";
        let secs = Sample::Float(p.heartbeat_age_ns as f64 / 1e9);
        fams.add(
            "hedge_heartbeat_age_seconds".into(),
            "gauge",
            age,
            &role,
            secs,
        );
        for m in &p.metrics {
            let mut labels = role.clone();
            labels.extend(m.labels.iter().cloned());
            let (name, kind, help, v) = family_of(m);
            fams.add(name, kind, &help, &labels, v);
        }
    }
    for r in &s.rings {
        let l = vec![("ring".to_string(), r.name.clone())];
        let pos = Sample::Exact(r.producer_position);
        fams.add(
            "hedge_ring_producer_position".into(),
            "gauge",
            "Messages ever written (messages)",
            &l,
            pos,
        );
        let cap = Sample::Exact(r.capacity);
        fams.add(
            "hedge_ring_capacity".into(),
            "gauge",
            "Slots (messages)",
            &l,
            cap,
        );
        if let Some(len) = r.queued() {
            let help = "Messages written and not yet consumed (messages)";
            fams.add(
                "hedge_ring_len".into(),
                "gauge",
                help,
                &l,
                Sample::Exact(len),
            );
        }
    }
    if let Some(c) = &s.control {
        let on = Sample::Exact(u64::from(c.kill_switch));
        fams.add(
            "hedge_kill_switch".into(),
            "gauge",
            "1 while the kill switch is on",
            &[],
            on,
        );
        for u in &c.underlyings {
            let l = [("underlying".to_string(), u.symbol.clone())];
            let help = "Asked trading state: 0 active, 1 reduce-only, 2 halted";
            let v = Sample::Exact(u64::from(u.state_code));
            fams.add("hedge_trading_state".into(), "gauge", help, &l, v);
        }
    }
    fams.render()
}

/// `# HELP` text escaping (backslash and newline).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// One sample's value: exact integers for counters and positions, floats for gauges.
enum Sample {
    Exact(u64),
    Float(f64),
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_prometheus_syntax_are_parsed() {
        let (n, l) = parse_label(r#"rejects{reason="bad_tick",venue="sim"}"#);
        assert_eq!(n, "rejects");
        assert_eq!(
            l,
            vec![
                ("reason".to_string(), "bad_tick".to_string()),
                ("venue".to_string(), "sim".to_string())
            ]
        );
        // The schema's escaping is undone.
        let (_, l) = parse_label(r#"x{k="a\"b"}"#);
        assert_eq!(l[0].1, r#"a"b"#);
    }

    #[test]
    fn free_form_labels_become_safe_names() {
        assert_eq!(parse_label("Orders sent").0, "orders_sent");
        assert_eq!(parse_label("md.lapped").0, "md_lapped");
        assert_eq!(parse_label("9lives").0, "_9lives");
        // Not the schema's form (unquoted, or cut at the segment's label length): one name,
        // no pairs, so that it is not mistaken for a labelled series.
        assert_eq!(
            parse_label("net_delta{underlying=BTC}"),
            ("net_delta_underlying_btc_".to_string(), vec![])
        );
        let (n, l) = parse_label(r#"policy_holds{underlying="BTC",reason="inside_ban"#);
        assert_eq!(n, "policy_holds_underlying__btc__reason__inside_ban");
        assert!(l.is_empty());
        assert_eq!(parse_label("broken{x").0, "broken_x");
    }

    fn sample() -> Snapshot {
        Snapshot {
            taken_ns: 0,
            dir: "/dev/shm/t".into(),
            processes: vec![ProcessSnap {
                role: "hedger".into(),
                pid: 42,
                liveness: Liveness::Alive,
                state: "running".into(),
                heartbeat_age_ns: 1_000_000,
                metrics: vec![
                    Metric::new("orders_sent", Value::Counter(7)),
                    Metric::new(r#"net_delta{underlying="BTC"}"#, Value::Gauge(-0.25)),
                    Metric::new(r#"band{underlying="BTC"}"#, Value::Gauge(1.5)),
                ],
            }],
            rings: vec![RingSnap {
                name: "orders".into(),
                kind: "spsc",
                producer_position: 10,
                consumer_position: Some(8),
                capacity: 1024,
            }],
            control: Some(ControlSnap {
                kill_switch: true,
                generation: 3,
                underlyings: vec![UnderlyingControl {
                    id: 0,
                    symbol: "BTC".into(),
                    state: "halted",
                    state_code: 2,
                }],
            }),
        }
    }

    #[test]
    fn prometheus_text_has_types_roles_and_control_words() {
        let text = render_prometheus(&sample());
        assert!(text.contains("# TYPE hedge_orders_sent_total counter\n"));
        assert!(text.contains("hedge_orders_sent_total{role=\"hedger\"} 7\n"));
        assert!(text.contains("hedge_net_delta{role=\"hedger\",underlying=\"BTC\"} -0.25\n"));
        assert!(text.contains("hedge_process_up{role=\"hedger\"} 1\n"));
        assert!(text.contains("hedge_kill_switch 1\n"));
        assert!(text.contains("hedge_trading_state{underlying=\"BTC\"} 2\n"));
        assert!(text.contains("hedge_ring_len{ring=\"orders\"} 2\n"));
        // One TYPE line per family.
        assert_eq!(text.matches("# TYPE hedge_process_up ").count(), 1);
    }

    #[test]
    fn risk_rows_join_gauges_and_control_states() {
        let rows = sample().risk();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].net_delta, Some(-0.25));
        assert_eq!(rows[0].band, Some(1.5));
        assert_eq!(rows[0].state.as_deref(), Some("halted"));
    }
}
