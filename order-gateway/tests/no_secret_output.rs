//! Credentials never appear in anything the `order-gateway` binary prints: `--print-config`,
//! config errors, `[fix]` table errors, start-up and shutdown logs. Each case runs the real
//! binary with a FIX password and username (in the file and in the environment) and searches
//! its whole stdout and stderr for them.

use bytemuck::Zeroable;
use shm_layout::{
    names, HedgeOrder, InstrumentDef, InstrumentKind, InstrumentTable, LastValueTable, Settlement,
    SpscProducer, StalePolicy,
};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FILE_PASSWORD: &str = "file-pw-Zq81";
const FILE_USERNAME: &str = "file-user-Kx27";
const ENV_PASSWORD: &str = "env-pw-Wm44";
const ENV_USERNAME: &str = "env-user-Jd93";
const ALL: [&str; 4] = [FILE_PASSWORD, FILE_USERNAME, ENV_PASSWORD, ENV_USERNAME];

fn gateway(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_order-gateway"));
    c.args(args)
        .env("HEDGE_FIX_USERNAME", ENV_USERNAME)
        .env("HEDGE_FIX_PASSWORD", ENV_PASSWORD)
        .env_remove("ORDER_GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn assert_no_secret(what: &str, out: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for s in ALL {
        assert!(!text.contains(s), "{what}: {s:?} printed:\n{text}");
    }
    text
}

/// Writes the gateway config `config`: the FIX venue on 127.0.0.1:`port`, its state in
/// `state_dir`, and `password` as it stands in the file (quoted or not).
fn write_fix_config(config: &Path, port: u16, state_dir: &Path, password: &str) {
    let table = format!(
        "[fix]\nhost = \"127.0.0.1\"\nport = {port}\nsender_comp_id = \"HEDGER\"\ntarget_comp_id = \"EXCH\"\nstate_dir = \"{}\"\nusername = \"{FILE_USERNAME}\"\npassword = {password}\nconnect_timeout_ms = 50\nreconnect_min_ms = 20\nreconnect_max_ms = 100\n",
        state_dir.display()
    );
    std::fs::write(config, format!("venue = \"fix\"\n{table}")).unwrap();
}

#[test]
fn print_config_redacts_fix_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.toml");
    write_fix_config(&config, 9876, dir.path(), &format!("\"{FILE_PASSWORD}\""));
    let out = gateway(&["--config", config.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    let text = assert_no_secret("--print-config", &out);
    assert!(out.status.success(), "{text}");
    // The rest of the table is still shown.
    assert!(
        text.contains("<redacted>") && text.contains("HEDGER"),
        "{text}"
    );
}

#[test]
fn config_syntax_error_on_a_credential_line_does_not_quote_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.toml");
    // Unquoted: a TOML syntax error on the password's line (toml's own message shows the line).
    write_fix_config(&config, 9876, dir.path(), FILE_PASSWORD);
    for extra in [&["--print-config"][..], &[]] {
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = gateway(&args).output().unwrap();
        let text = assert_no_secret("syntax error", &out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains("line 9"),
            "the error still says where: {text}"
        );
    }
}

/// Feed and hedger segments, so that the gateway gets as far as building its venue.
fn segments(dir: &Path) -> (InstrumentTable, LastValueTable, SpscProducer<HedgeOrder>) {
    let mut perp = InstrumentDef::zeroed();
    perp.kind = InstrumentKind::Perpetual as u8;
    perp.settlement = Settlement::Linear as u8;
    (
        perp.contract_multiplier,
        perp.tick_size,
        perp.lot_size,
        perp.min_qty,
    ) = (1.0, 0.5, 1.0, 1.0);
    perp.set_symbol("BTC-PERP");
    (
        InstrumentTable::create(dir, names::INSTRUMENTS, &[perp], StalePolicy::Fail).unwrap(),
        LastValueTable::create(dir, names::LVT, 4, StalePolicy::Fail).unwrap(),
        SpscProducer::create(dir, names::ORDERS, 1024, StalePolicy::Fail).unwrap(),
    )
}

#[test]
fn run_logs_and_fix_table_errors_do_not_show_credentials() {
    let shm = testkit::shm::namespace_dir("ogw-secret-");
    let _segs = segments(shm.path());
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("gw.toml");
    // A port nobody listens on: the session keeps trying to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shm_arg = shm.path().to_str().unwrap();
    let common = [
        "--config",
        config.to_str().unwrap(),
        "--shm-dir",
        shm_arg,
        "--idle",
        "backoff-park",
        "--open-wait-ms",
        "5000",
        "--no-flow",
        "--venue-connect-wait-ms",
        "0",
    ];

    // 1. A mistyped (numeric) password: the [fix] table is refused when the venue is built;
    //    the deserializer's message would quote the number.
    write_fix_config(&config, port, state.path(), "8675309");
    let out = gateway(&common).output().unwrap();
    let text = assert_no_secret("numeric password", &out);
    assert!(!text.contains("8675309"), "{text}");
    assert!(
        !out.status.success() && text.contains("[fix] table"),
        "{text}"
    );

    // 2. A valid config: start-up, a run with connect attempts, SIGTERM, shutdown logs.
    write_fix_config(&config, port, state.path(), &format!("\"{FILE_PASSWORD}\""));
    let child = gateway(&common).spawn().unwrap();
    let pid = child.id();
    // Wait for the gateway to be up (its counters segment says Running), then stop it.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let up = shm_layout::CountersReader::open(
            shm.path(),
            "gateway",
            shm_layout::OpenOptions::default(),
        )
        .ok()
        .and_then(|r| r.state())
            == Some(shm_layout::ProcessState::Running);
        if up || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let text = assert_no_secret("run", &out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("venue fix"), "{text}");
}
