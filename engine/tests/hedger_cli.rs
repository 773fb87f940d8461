//! The `hedger` binary's command line: help, and one clear line naming the key for a bad
//! config, with a non-zero exit.

use std::process::Command;

fn hedger(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hedger"))
        .args(args)
        .output()
        .expect("run hedger")
}

#[test]
fn help_explains_every_option() {
    let out = hedger(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--config",
        "--namespace",
        "--shm-dir",
        "--md",
        "--lvt",
        "--instruments",
        "--orders",
        "--execs",
        "--on-stale",
        "--core",
        "--idle",
        "--state-dir",
        "--histogram-path",
        "--histogram-interval-ms",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help");
    }
}

#[test]
fn invalid_config_prints_one_line_naming_the_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[underlyings.BTC]\nhedge_instrument = \"BTC-PERPETUAL\"\n[underlyings.BTC.policy]\nkind = \"fixed\"\nband = -1.0\n",
            "underlyings.BTC.policy.band",
        ),
        (
            "[underlyings.BTC]\nhedge_instrument = \"BTC-PERPETUAL\"\n[underlyings.BTC.limits]\nmax_orders_per_sec = \"fast\"\n",
            "underlyings.BTC.limits.max_orders_per_sec",
        ),
        ("[runtime]\nidle = \"nap\"\n", "runtime.idle"),
        ("[shm]\norders_capacity = 1000\n[underlyings.BTC]\nhedge_instrument = \"P\"\n", "shm.orders_capacity"),
        ("", "underlyings"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let out = hedger(&["--config", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "case {i}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(key), "names {key}: {err}");
    }
}

/// The hedger binary with config `cfg`, its segments in `dir/seg` and its state in
/// `dir/state` (the test's own directory).
fn hedger_in(dir: &std::path::Path, cfg: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hedger"));
    c.arg("--config")
        .arg(cfg)
        .arg("--shm-dir")
        .arg(dir.join("seg"))
        .arg("--state-dir")
        .arg(dir.join("state"));
    c
}

#[test]
fn example_config_with_missing_segments_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/hedger.example.toml"
    ))
    .unwrap();
    assert!(example.contains("open_wait_ms = 10000"));
    let cfg = dir.path().join("h.toml");
    std::fs::write(
        &cfg,
        example.replace("open_wait_ms = 10000", "open_wait_ms = 100"),
    )
    .unwrap();
    let out = hedger_in(dir.path(), &cfg)
        .arg("--histogram-path")
        .arg(dir.path().join("h.hlog"))
        .output()
        .unwrap();
    // The instruments segment never appears.
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("instruments"), "{err}");
}

#[test]
fn sigterm_while_waiting_for_segments_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("h.toml");
    std::fs::write(
        &cfg,
        "[shm]\nopen_wait_ms = 30000\n[underlyings.BTC]\nhedge_instrument = \"BTC-PERPETUAL\"\n",
    )
    .unwrap();
    let mut child = hedger_in(dir.path(), &cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        if t0.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            panic!("SIGTERM ignored during startup");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
