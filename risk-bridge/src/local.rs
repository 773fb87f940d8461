//! The host side: the hedger's risk gauges and the control block in shared memory, and the
//! validation and application of firm control commands to that control block.
//!
//! Reads go through shm-layout's readers ([`CountersReader`], [`InstrumentTable`],
//! [`ControlBlock`]); nothing here touches the hedger's hot path: the control block is the
//! same set of words `hedgectl kill/halt/resume` writes, checked by the hedger once per loop.

use std::collections::BTreeMap;
use std::path::Path;

use engine::hedger::counters::HedgerCounter as H;
use shm_layout::control::{ControlBlock, TradingState};
use shm_layout::counter_schema::{parse_label, CounterSchema as _};
use shm_layout::counters::{CounterValue, CountersReader};
use shm_layout::instruments::InstrumentTable;
use shm_layout::segment::{names, OpenOptions};

use crate::schema::{ControlAction, ControlMsg, ALL_HOSTS};

/// Risk of one underlying as the hedger publishes it in its gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnderlyingRisk {
    /// Net delta, underlying units.
    pub net_delta: f64,
    /// Option delta, underlying units.
    pub option_delta: f64,
    /// Hedge position, underlying units.
    pub hedge_position: f64,
}

/// The hedger's per-underlying gauges (by symbol) and its in-flight order count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostRisk {
    /// By underlying symbol.
    pub underlyings: BTreeMap<String, UnderlyingRisk>,
    /// Hedge orders in flight.
    pub orders_inflight: f64,
}

/// Splits the hedger's `name{underlying="SYM"}` gauge label; `None` for other labels.
fn underlying_label(label: &str) -> Option<(&str, String)> {
    match parse_label(label)? {
        (name, mut pairs) if pairs.len() == 1 && pairs[0].0 == "underlying" => {
            Some((name, pairs.pop()?.1))
        }
        _ => None,
    }
}

/// Reads the hedger's risk gauges in `dir`; `None` when no hedger counters segment exists.
pub fn read_risk(dir: &Path) -> Option<HostRisk> {
    let c = CountersReader::open(dir, engine::hedger::ROLE, OpenOptions::default()).ok()?;
    let mut out = HostRisk::default();
    for (label, v) in c.snapshot() {
        let x = match v {
            CounterValue::Gauge(g) => g,
            CounterValue::Counter(n) => n as f64,
        };
        if label == H::OrdersInflight.def().name {
            out.orders_inflight = x;
        }
        let Some((name, sym)) = underlying_label(&label) else {
            continue;
        };
        let row = out.underlyings.entry(sym).or_default();
        if name == H::NetDelta.def().name {
            row.net_delta = x;
        } else if name == H::OptionDelta.def().name {
            row.option_delta = x;
        } else if name == H::HedgePosition.def().name {
            row.hedge_position = x;
        }
    }
    Some(out)
}

/// The underlyings of the host, `(id, symbol)`, from its instruments table.
pub fn underlyings(dir: &Path) -> Vec<(u32, String)> {
    InstrumentTable::open(dir, names::INSTRUMENTS, OpenOptions::default())
        .map(|t| t.underlyings())
        .unwrap_or_default()
}

/// The symbol of each instrument id (its underlying's symbol), for exec subjects.
pub fn underlying_of_instruments(dir: &Path) -> Vec<String> {
    let Ok(t) = InstrumentTable::open(dir, names::INSTRUMENTS, OpenOptions::default()) else {
        return Vec::new();
    };
    t.defs()
        .iter()
        .map(|d| {
            t.get(d.underlying_id)
                .map_or(d.underlying_id.to_string(), |u| u.symbol().to_string())
        })
        .collect()
}

/// A validated command: every field checked and every underlying resolved, so applying it
/// cannot fail half-way.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The action.
    pub action: ControlAction,
    /// Resolved `(id, symbol)` targets; empty with `all_underlyings`.
    pub targets: Vec<(u32, String)>,
    /// No underlying named: the whole host.
    pub all_underlyings: bool,
    /// For `limits`: the budget to set (`None` clears).
    pub net_delta_budget: Option<f64>,
}

/// Checks a control message stored under `key` for host `host` against the host's
/// underlyings. The error is one line naming the bad field.
///
/// # Errors
/// Host field not matching the key, unknown underlying, `kill` with underlyings, a budget
/// on another action, a budget not finite and > 0.
pub fn validate(
    msg: &ControlMsg,
    key: &str,
    host: &str,
    known: &[(u32, String)],
) -> Result<Plan, String> {
    if msg.host != key {
        return Err(format!(
            "field host '{}' does not match key '{key}'",
            msg.host
        ));
    }
    if key != ALL_HOSTS && key != host {
        return Err(format!("addressed to host '{key}', this is '{host}'"));
    }
    if msg.action == ControlAction::Kill && !msg.underlyings.is_empty() {
        return Err("kill is host-wide: use halt for single underlyings".into());
    }
    match (msg.action, msg.net_delta_budget) {
        (ControlAction::Limits, Some(b)) if !(b.is_finite() && b > 0.0) => {
            return Err(format!(
                "net_delta_budget {b} must be finite and > 0 (null clears)"
            ));
        }
        (ControlAction::Limits, _) => {}
        (_, Some(_)) => return Err("net_delta_budget is only valid with action limits".into()),
        (_, None) => {}
    }
    let mut targets = Vec::new();
    for u in &msg.underlyings {
        let Some(t) = known.iter().find(|(_, s)| s.eq_ignore_ascii_case(u)) else {
            let names: Vec<&str> = known.iter().map(|(_, s)| s.as_str()).collect();
            return Err(format!(
                "unknown underlying '{u}' on host '{host}' (known: {})",
                names.join(", ")
            ));
        };
        targets.push(t.clone());
    }
    Ok(Plan {
        action: msg.action,
        all_underlyings: targets.is_empty(),
        targets,
        net_delta_budget: msg.net_delta_budget,
    })
}

/// Applies a trading-state plan to the control block; returns what it did. `limits` plans
/// are not control-block words: the bridge keeps them (see [`crate::bridge`]).
pub fn apply(cb: &ControlBlock, plan: &Plan, known: &[(u32, String)]) -> String {
    let targets = if plan.all_underlyings {
        known
    } else {
        &plan.targets[..]
    };
    let state = match plan.action {
        ControlAction::Kill => {
            cb.set_kill_switch(true);
            return "kill switch on".into();
        }
        ControlAction::Limits => return "budgets set".into(),
        ControlAction::Halt => TradingState::Halted,
        ControlAction::ReduceOnly => TradingState::ReduceOnly,
        ControlAction::Resume => TradingState::Active,
    };
    for (id, _) in targets {
        cb.set_trading_state(*id, state);
    }
    let mut did = format!("{} for {} underlying(s)", state.name(), targets.len());
    if plan.action == ControlAction::Resume && plan.all_underlyings {
        cb.set_kill_switch(false);
        did.push_str(", kill switch off");
    }
    did
}

/// Fail-safe: every `active` underlying becomes `reduce-only` (halted ones stay halted).
/// Returns how many changed.
pub fn failsafe_reduce_only(cb: &ControlBlock, known: &[(u32, String)]) -> usize {
    let mut n = 0;
    for (id, _) in known {
        if cb.trading_state(*id) == TradingState::Active {
            cb.set_trading_state(*id, TradingState::ReduceOnly);
            n += 1;
        }
    }
    n
}

/// Whether the operator has resumed the host (kill off, every known underlying active).
pub fn resumed(cb: &ControlBlock, known: &[(u32, String)]) -> bool {
    !cb.kill_switch()
        && known
            .iter()
            .all(|(id, _)| cb.trading_state(*id) == TradingState::Active)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: &str) -> Result<ControlMsg, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn known() -> Vec<(u32, String)> {
        vec![(0, "BTC".into()), (1, "ETH".into())]
    }

    #[test]
    fn hedger_labels_split_into_name_and_underlying() {
        assert_eq!(
            underlying_label("net_delta{underlying=\"BTC\"}"),
            Some(("net_delta", "BTC".to_string()))
        );
        // A symbol with a quote is escaped in the segment and comes back whole.
        assert_eq!(
            underlying_label(r#"net_delta{underlying="B\"TC"}"#),
            Some(("net_delta", "B\"TC".to_string()))
        );
        // Per underlying and by reason: not one of the risk gauges.
        assert_eq!(
            underlying_label(r#"hedges{underlying="BTC",reason="band"}"#),
            None
        );
        assert_eq!(underlying_label("orders_inflight"), None);
        assert_eq!(underlying_label("hedges{reason=\"band\"}"), None);
    }

    #[test]
    fn bad_control_messages_are_rejected_whole_with_the_field_named() {
        let k = known();
        let cases = [
            (
                r#"{"host":"h2","action":"kill"}"#,
                "h1",
                "does not match key",
            ),
            (
                r#"{"host":"h2","action":"kill"}"#,
                "h2",
                "addressed to host 'h2'",
            ),
            (
                r#"{"host":"all","action":"halt","underlyings":["BTC","XRP"]}"#,
                "all",
                "unknown underlying 'XRP'",
            ),
            (
                r#"{"host":"all","action":"kill","underlyings":["BTC"]}"#,
                "all",
                "host-wide",
            ),
            (
                r#"{"host":"all","action":"limits","net_delta_budget":-1}"#,
                "all",
                "finite and > 0",
            ),
            (
                r#"{"host":"all","action":"halt","net_delta_budget":5}"#,
                "all",
                "only valid with action limits",
            ),
        ];
        for (json, key, want) in cases {
            let m = msg(json).unwrap();
            let err = validate(&m, key, "h1", &k).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
        for json in [
            r#"{"host":"all","action":"explode"}"#,
            r#"{"host":"all","action":"kill","colour":"red"}"#,
            r#"{"host":"all"}"#,
            r#"not json"#,
        ] {
            assert!(msg(json).is_err(), "{json}");
        }
        let ok = validate(
            &msg(r#"{"host":"all","action":"halt","underlyings":["eth"]}"#).unwrap(),
            "all",
            "h1",
            &k,
        )
        .unwrap();
        assert_eq!(ok.targets, vec![(1, "ETH".to_string())]);
    }
}
