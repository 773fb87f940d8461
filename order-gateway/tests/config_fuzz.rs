//! Fuzz target (proptest) for the gateway's TOML config (issue 21): 2,500 generated files
//! mixing valid values, edges (NaN, inf, negative, 2^63 - 1, `..`) and unknown keys, read
//! through the command line's own path (`--config FILE`). Never a panic; every refusal is one
//! line naming the file; every accepted config has finite, in-range numbers and timers that
//! cannot wrap in ns. Refusals are tallied by key and printed (`-- --nocapture`).

use clap::Parser;
use order_gateway::config::{Cli, Config, MAX_DURATION_MS};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use testkit::config_fuzz;

const CASES: u32 = 2_500;

/// The gateway's own edges besides the harness's: a larger negative number, a namespace that
/// climbs out of /dev/shm, a venue name and a boolean where numbers go.
fn value() -> impl Strategy<Value = String> {
    config_fuzz::value(5_000, &["-5.0", "\"../../tmp/X\"", "\"sim\"", "false"])
}

const TOP: &[&str] = &[
    "namespace",
    "open_wait_ms",
    "venue_connect_wait_ms",
    "execs_capacity",
    "heartbeat_ms",
    "drain_ms",
    "venue",
    "bogus",
];
const SIM: &[&str] = &[
    "latency_us",
    "jitter_us",
    "taker_fee_bps",
    "maker_fee_bps",
    "price_band_bps",
    "rate_limit_per_s",
    "rate_limit_burst",
    "max_resting",
];
const FLOW: &[&str] = &[
    "enabled",
    "intensity_per_s",
    "size_mean",
    "size_max",
    "edge_bps",
    "max_abs_log_moneyness",
    "seed",
];

fn lines(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    config_fuzz::key_lines(keys, value())
}

#[test]
fn fuzz_gateway_config_refuses_on_one_line_and_accepts_only_safe_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let file = path.display().to_string();
    let strategy = (lines(TOP), lines(SIM), lines(FLOW))
        .prop_map(|(top, sim, flow)| format!("{top}[sim]\n{sim}[flow]\n{flow}"));
    config_fuzz::run("gateway", CASES, strategy, |text| {
        std::fs::write(&path, text).unwrap();
        let cli = Cli::parse_from(["order-gateway", "--config", &file]);
        let head = format!("config {file}: ");
        let key = |e: &String, rest: &str| key_of(e, rest);
        config_fuzz::judge(text, cli.resolve(), &head, key, |c| safe(text, c))
    });
}

/// The key a refusal names: `line N, column M, key K: ...` for TOML errors, `K = V: ...` for
/// ranges.
fn key_of(e: &str, rest: &str) -> Result<String, TestCaseError> {
    let key = match rest.split(", key ").nth(1) {
        Some(k) if rest.starts_with("line") => k.split(':').next().unwrap_or(""),
        _ => rest.split([' ', ':']).next().unwrap_or(""),
    };
    prop_assert!(!key.is_empty() && !key.starts_with("line"), "no key: {e}");
    Ok(key.to_string())
}

/// What an accepted gateway config (from file `text`) guarantees.
fn safe(text: &str, c: Config) -> Result<(), TestCaseError> {
    for ms in [
        c.open_wait_ms,
        c.venue_connect_wait_ms,
        c.drain_ms,
        c.heartbeat_ms,
    ] {
        prop_assert!(ms <= MAX_DURATION_MS && ms.checked_mul(1_000_000).is_some());
    }
    prop_assert!(c.shm_dir().is_ok() && c.journal_path().is_ok());
    let f = &c.flow;
    for v in [f.edge_bps, f.intensity_per_s, f.size_mean, f.size_max] {
        prop_assert!(v.is_finite() && v >= 0.0, "{text:?}");
    }
    let s = &c.sim;
    for v in [s.latency_us, s.jitter_us, s.taker_fee_bps, s.maker_fee_bps] {
        prop_assert!(v.is_finite(), "{text:?}");
    }
    Ok(())
}
