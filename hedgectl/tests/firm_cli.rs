//! `hedgectl firm`: its help names every subcommand, and an unreachable bus is one clear
//! line and a non-zero exit (the commands against live bridges are risk-bridge's tests).

use std::net::TcpListener;
use std::process::Command;

#[test]
fn firm_help_lists_the_subcommands() {
    let o = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["firm", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for sub in [
        "stat",
        "kill",
        "halt",
        "reduce-only",
        "resume",
        "limits",
        "--nats-url",
    ] {
        assert!(text.contains(sub), "{sub} missing from:\n{text}");
    }
}

#[test]
fn firm_stat_without_a_server_fails_with_one_clear_line() {
    // A port nothing listens on: bind, read it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args([
            "firm",
            "stat",
            "--nats-url",
            &format!("nats://127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("setup-nats.sh"),
        "{err}"
    );
}

#[test]
fn firm_limits_needs_a_budget_or_clear() {
    let o = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["firm", "limits", "BTC"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--net-delta-budget"));
}
