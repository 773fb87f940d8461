//! The `risk-bridge` process: see the crate docs and docs/firm-risk.md.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use risk_bridge::bridge::{self, Config};
use shm_layout::StalePolicy;

/// Per-host bridge to NATS JetStream: drop copy, risk, heartbeat out; firm control in.
#[derive(Debug, Parser)]
#[command(name = "risk-bridge", version, about)]
struct Args {
    /// Host name: subject token and key (1-64 of [A-Za-z0-9_-], not `all`).
    #[arg(long, env = "HEDGE_HOST")]
    host: String,
    /// Namespace: segments live in /dev/shm/<NAMESPACE>.
    #[arg(long, env = "HEDGE_NAMESPACE", default_value = "hedge")]
    namespace: String,
    /// Segment directory, overriding --namespace.
    #[arg(long, env = "HEDGE_SHM_DIR")]
    shm_dir: Option<PathBuf>,
    /// The gateway's journal (default: <segment dir>/order-gateway.journal).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Position file (default: <segment dir>/risk-bridge.position), written 0600, atomically.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// NATS server.
    #[arg(long, env = "HEDGE_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Bus lost for longer than this (ms): the local hedger goes reduce-only until resumed.
    #[arg(long, default_value_t = 5000)]
    bus_timeout_ms: u64,
    /// Heartbeat and full risk re-publication period (ms).
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Loop period (ms): journal tail, risk change detection, bus check.
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// JetStream duplicate window of the EXECS stream (s), set when the stream is created.
    #[arg(long, default_value_t = bridge::DEFAULT_DEDUP_WINDOW.as_secs())]
    dedup_window_s: u64,
    /// What to do with a counters segment left by a dead bridge.
    #[arg(long, value_enum, default_value_t = StalePolicy::Recover)]
    on_stale: StalePolicy,
}

fn main() -> ExitCode {
    let a = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let dir = match a.shm_dir.clone() {
        Some(d) => d,
        // The one namespace rule: `..` or `a/b` would leave /dev/shm (issue 21).
        None => match shm_layout::namespace_dir(&a.namespace) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("risk-bridge: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let cfg = Config {
        host: a.host.clone(),
        journal: a
            .journal
            .unwrap_or_else(|| dir.join("order-gateway.journal")),
        state_file: a
            .state_file
            .unwrap_or_else(|| dir.join("risk-bridge.position")),
        dir,
        nats_url: a.nats_url,
        bus_timeout: Duration::from_millis(a.bus_timeout_ms),
        heartbeat: Duration::from_millis(a.heartbeat_ms),
        poll: Duration::from_millis(a.poll_ms.max(1)),
        dedup_window: Duration::from_secs(a.dedup_window_s),
        on_stale: a.on_stale,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("risk-bridge: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    match rt.block_on(bridge::run(cfg, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("risk-bridge: {e:#}");
            ExitCode::from(1)
        }
    }
}
