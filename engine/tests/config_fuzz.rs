//! Fuzz target (proptest) for the hedger's TOML config parser (issue 21): 2,500 generated
//! files mixing valid values, edges (NaN, inf, 2^63 - 1, `..`) and unknown keys. Never a
//! panic; every refusal is one line naming the file and the key; every accepted config has
//! durations that cannot wrap when turned into ns, a namespace inside /dev/shm, and valid
//! policies and limits. Refusals are tallied by key and printed (`-- --nocapture`).

use engine::config::{HedgerConfig, MAX_DURATION_MS};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use std::collections::BTreeMap;

const CASES: u32 = 2_500;

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => (0.01f64..100.0).prop_map(|v| format!("{v:?}")),
        3 => (1u64..20_000).prop_map(|v| v.to_string()),
        1 => prop_oneof![
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("-1.0".to_string()),
            Just("0".to_string()),
            Just("9223372036854775807".to_string()),
            Just("\"..\"".to_string()),
            Just("\"\"".to_string()),
            Just("\"hedge-2\"".to_string()),
            Just("\"backoff-park\"".to_string()),
            Just("true".to_string()),
        ],
    ]
}

const SHM: &[&str] = &[
    "namespace",
    "orders",
    "orders_capacity",
    "open_wait_ms",
    "gateway_heartbeat_timeout_ms",
    "on_stale",
    "bogus",
];
const RUNTIME: &[&str] = &[
    "idle",
    "histogram_interval_ms",
    "snapshot_interval_ms",
    "stats_interval_ms",
    "reconcile_quiet_ms",
    "reconcile_timeout_ms",
    "fsync",
    "typo_ms",
];
const LIMITS: &[&str] = &[
    "max_order_qty",
    "max_position",
    "max_orders_per_sec",
    "order_burst",
    "max_data_age_ms",
    "max_rejects",
    "reject_window_ms",
    "reject_halt_ms",
];

fn table(name: &'static str, keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::collection::vec((0..keys.len(), value()), 0..4).prop_map(move |kv| {
        let mut seen = std::collections::HashSet::new();
        let body: String = kv
            .into_iter()
            .filter(|(k, _)| seen.insert(*k))
            .map(|(k, v)| format!("{} = {v}\n", keys[k]))
            .collect();
        format!("[{name}]\n{body}")
    })
}

fn config() -> impl Strategy<Value = String> {
    (
        table("shm", SHM),
        table("runtime", RUNTIME),
        table("underlyings.BTC.limits", LIMITS),
    )
        .prop_map(|(shm, rt, lim)| {
            format!("{shm}{rt}[underlyings.BTC]\nhedge_instrument = \"BTC-PERPETUAL\"\n{lim}")
        })
}

#[test]
fn fuzz_hedger_config_refuses_on_one_line_and_accepts_only_safe_values() {
    let mut runner = TestRunner::new(RunnerConfig::with_cases(CASES));
    let refused = std::cell::RefCell::new(BTreeMap::<String, u64>::new());
    let accepted = std::cell::Cell::new(0u64);
    runner
        .run(&config(), |text| {
            match HedgerConfig::parse(&text, "fuzz.toml") {
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(!msg.contains('\n'), "{text:?}: {msg}");
                    prop_assert!(msg.starts_with("config fuzz.toml: "), "{msg}");
                    prop_assert!(!e.key.is_empty(), "{msg}");
                    *refused.borrow_mut().entry(e.key).or_default() += 1;
                }
                Ok(c) => {
                    accepted.set(accepted.get() + 1);
                    for ms in [
                        c.shm.open_wait_ms,
                        c.shm.gateway_heartbeat_timeout_ms,
                        c.runtime.histogram_interval_ms,
                        c.runtime.snapshot_interval_ms,
                        c.runtime.stats_interval_ms,
                        c.runtime.reconcile_quiet_ms,
                        c.runtime.reconcile_timeout_ms,
                    ] {
                        prop_assert!(ms <= MAX_DURATION_MS && ms.checked_mul(1_000_000).is_some());
                    }
                    prop_assert!(shm_layout::namespace_dir(&c.shm.namespace).is_ok());
                    let u = &c.underlyings["BTC"];
                    prop_assert!(u.policy_config().is_ok());
                    let l = u
                        .limits_config()
                        .map_err(|(k, m)| TestCaseError::fail(format!("{k}: {m}")))?;
                    prop_assert!(l.max_data_age_ns <= MAX_DURATION_MS * 1_000_000);
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "hedger config fuzz: {CASES} cases, {} accepted, refused by key {:?}",
        accepted.get(),
        refused.borrow()
    );
    assert!(accepted.get() > 0 && !refused.borrow().is_empty());
}
