//! Fuzz target (proptest) for the hedger's TOML config parser (issue 21): 2,500 generated
//! files mixing valid values, edges (NaN, inf, 2^63 - 1, `..`) and unknown keys. Never a
//! panic; every refusal is one line naming the file and the key; every accepted config has
//! durations that cannot wrap when turned into ns, a namespace inside /dev/shm, and valid
//! policies and limits. Refusals are tallied by key and printed (`-- --nocapture`).

use engine::config::{ConfigError, HedgerConfig, MAX_DURATION_MS};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use testkit::config_fuzz;

const CASES: u32 = 2_500;

/// The hedger's own edges besides the harness's: an empty string, a namespace, an idle
/// strategy and a boolean where numbers go.
fn value() -> impl Strategy<Value = String> {
    config_fuzz::value(20_000, &["\"\"", "\"hedge-2\"", "\"backoff-park\"", "true"])
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
    config_fuzz::key_lines(keys, value()).prop_map(move |body| format!("[{name}]\n{body}"))
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
    config_fuzz::run("hedger", CASES, config(), |text| {
        let parsed = HedgerConfig::parse(text, "fuzz.toml");
        let key = |e: &ConfigError, _: &str| {
            prop_assert!(!e.key.is_empty(), "{e}");
            Ok(e.key.clone())
        };
        config_fuzz::judge(text, parsed, "config fuzz.toml: ", key, safe)
    });
}

/// What an accepted hedger config guarantees.
fn safe(c: HedgerConfig) -> Result<(), TestCaseError> {
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
    Ok(())
}
