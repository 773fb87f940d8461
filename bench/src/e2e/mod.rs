//! End-to-end tick-to-order benchmark (issue 10): the three processes on shared memory at
//! several offered rates, beside the hardware's limit (a raw core-to-core ping-pong) and the
//! naive pipeline (threads, crossbeam channels, full recomputation per tick), in one run.
//!
//! Outputs in `--out`: `summary.json`, one `.hgrm` per measured distribution, and
//! `percentiles.svg`; the run directories keep each process's config and log.

pub mod market;
pub mod naive;
pub mod pingpong;
pub mod pipeline;
pub mod report;
pub mod ringhop;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};

use report::{fmt_ns, header, row, write_hgrm, Series, Stats};

/// Pins the calling benchmark thread to `core` (none: leaves it alone). When that is
/// impossible the thread runs unpinned and a warning says so: its numbers are then not those
/// of the asked-for cores.
pub(crate) fn pin(core: Option<usize>) {
    let outcome = shm_layout::process::pin_current_thread(core);
    if outcome.is_warning() {
        eprintln!("bench: warning: {outcome}");
    }
}

/// End-to-end tick-to-order benchmark: feed-handler -> hedger -> order-gateway on shared
/// memory at each offered rate, beside the raw core-to-core ping-pong and the naive
/// pipeline (threads + crossbeam channels + full delta recomputation per tick).
#[derive(Debug, Parser)]
#[command(name = "e2e", version, args_override_self = true)]
pub struct Args {
    /// Directory of the release binaries feed-handler, hedger, order-gateway
    /// [default: the directory of this executable].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Output directory (summary.json, .hgrm files, percentiles.svg, per-run logs).
    #[arg(long, default_value = "target/e2e-bench")]
    pub out: PathBuf,
    /// Cores of feed, hedger and gateway, e.g. `1,2,3` [default: 1,2,3 with >= 4 cores,
    /// else 0,1,0].
    #[arg(long, value_delimiter = ',')]
    pub cores: Option<Vec<usize>>,
    /// Idle strategies of feed, hedger and gateway [default: busy-spin with >= 4 cores,
    /// else spin-then-yield].
    #[arg(long, value_delimiter = ',')]
    pub idle: Option<Vec<String>>,
    /// Offered rates, events/s, `max` = as fast as the feed can publish.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,100000,1000000,max"
    )]
    pub rates: Vec<String>,
    /// Events per rate (fixed count). Default: rate x --secs-per-rate, capped at --max-events.
    #[arg(long)]
    pub events: Option<u64>,
    /// Seconds of events per paced rate when --events is not given [default: 12; quick 2].
    #[arg(long)]
    pub secs_per_rate: Option<f64>,
    /// Cap of the events per rate [default: 4000000; quick 500000].
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Options in the book.
    #[arg(long, default_value_t = 10_000)]
    pub options: usize,
    /// Hedge band half-width, BTC (fixed policy, back to zero).
    #[arg(long, default_value_t = 0.15)]
    pub band: f64,
    /// The hedger's `runtime.housekeeping_core`: its side threads (session journal, state,
    /// histogram log) on this core instead of wherever the scheduler puts them [default: none].
    #[arg(long)]
    pub housekeeping_core: Option<usize>,
    /// Events offered to the naive pipeline (at the first rate) [default: 20000; quick 5000].
    #[arg(long)]
    pub naive_events: Option<u64>,
    /// Time budget of the naive pipeline, s [default: 25; quick 5].
    #[arg(long)]
    pub naive_budget_s: Option<f64>,
    /// Ping-pong round trips [default: 2000000; quick 300000].
    #[arg(long)]
    pub pingpong_round_trips: Option<u64>,
    /// About 20 s in all: fewer events everywhere.
    #[arg(long)]
    pub quick: bool,
    /// Skip the baselines (ping-pong and naive pipeline).
    #[arg(long)]
    pub no_baselines: bool,
}

fn parse_rate(s: &str) -> anyhow::Result<f64> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(f64::INFINITY);
    }
    let v: f64 = s
        .trim()
        .replace('_', "")
        .parse()
        .with_context(|| format!("rate {s:?}: a number of events/s or `max`"))?;
    anyhow::ensure!(v > 0.0, "rate {s:?} must be > 0");
    Ok(v)
}

fn rate_name(r: f64) -> String {
    if !r.is_finite() {
        "max".into()
    } else if r >= 1e6 && r % 1e6 == 0.0 {
        format!("{}M", r / 1e6)
    } else if r >= 1e3 && r % 1e3 == 0.0 {
        format!("{}k", r / 1e3)
    } else {
        format!("{r}")
    }
}

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    json!({
        "cpu_model": model,
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg": read("/proc/loadavg").trim(),
    })
}

fn stats_json(s: &Stats) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// Runs the whole benchmark.
///
/// # Errors
/// Bad arguments, missing binaries, a process failing, an output not writable.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let big = ncpu >= 4;
    if let Some(c) = &args.cores {
        anyhow::ensure!(
            c.len() == 3,
            "--cores takes three cores: feed,hedger,gateway"
        );
    }
    if let Some(c) = &args.idle {
        anyhow::ensure!(
            c.len() == 3,
            "--idle takes three strategies: feed,hedger,gateway"
        );
    }
    let cores: [usize; 3] = match &args.cores {
        Some(c) => [c[0], c[1], c[2]],
        None if big => [1, 2, 3],
        None => [0, 1.min(ncpu - 1), 0],
    };
    let idle: [String; 3] = match &args.idle {
        Some(v) => [v[0].clone(), v[1].clone(), v[2].clone()],
        None if big => ["busy-spin".into(), "busy-spin".into(), "busy-spin".into()],
        None => [
            "spin-then-yield".into(),
            "spin-then-yield".into(),
            "spin-then-yield".into(),
        ],
    };
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .context("no directory for this executable")?,
    };
    let rates: Vec<f64> = args
        .rates
        .iter()
        .map(|r| parse_rate(r))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!rates.is_empty(), "--rates is empty");
    let secs = args
        .secs_per_rate
        .unwrap_or(if args.quick { 2.0 } else { 12.0 });
    let cap = args
        .max_events
        .unwrap_or(if args.quick { 500_000 } else { 4_000_000 });
    let events_for = |r: f64| -> u64 {
        args.events.unwrap_or_else(|| {
            if r.is_finite() {
                ((r * secs) as u64).clamp(1000, cap)
            } else {
                cap
            }
        })
    };
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let machine_before = machine();
    let mut distinct: Vec<usize> = cores.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    println!(
        "e2e: {} options, rates {:?}, cores feed {} hedger {} gateway {} ({} distinct of {ncpu}), idle {:?}, load {}",
        args.options,
        rates.iter().map(|r| rate_name(*r)).collect::<Vec<_>>(),
        cores[0],
        cores[1],
        cores[2],
        distinct.len(),
        idle,
        machine_before["loadavg"].as_str().unwrap_or("?"),
    );

    // Baseline 1: the hardware limit, between the feed's and the hedger's cores.
    let mut pp = None;
    let mut hop = None;
    if !args.no_baselines {
        let n = args
            .pingpong_round_trips
            .unwrap_or(if args.quick { 300_000 } else { 2_000_000 });
        let budget = Duration::from_secs(if args.quick { 3 } else { 10 });
        let (a, b) = if cores[0] != cores[1] {
            (cores[0], cores[1])
        } else {
            (cores[1], cores[2])
        };
        let p = pingpong::run(Some(a), Some(b), n, budget);
        write_hgrm(&out.join("pingpong_one_way.hgrm"), &p.one_way)?;
        write_hgrm(&out.join("pingpong_rtt.hgrm"), &p.rtt)?;
        println!(
            "\nraw ping-pong, cores {a} <-> {b}, {} round trips: one-way p50 {}, p99.9 {}",
            p.round_trips,
            fmt_ns(Stats::of(&p.one_way).p50_ns),
            fmt_ns(Stats::of(&p.one_way).p999_ns)
        );
        // Baseline 2: the ring's own one-way, stamped at both ends as the pipeline stamps
        // its "feed publish -> hedger read" stage, paced at the first paced rate.
        let r = rates.iter().copied().find(|r| r.is_finite()).unwrap_or(1e5);
        let msgs = if args.quick { 50_000 } else { 200_000 };
        let h = ring_hop((a, b), r, msgs, budget, &out.join("ring_one_way.hgrm"), "")?;
        hop = Some((a, b, r, h));
        pp = Some((a, b, p));
    }

    // The product at each rate.
    let mut runs = Vec::new();
    for &r in &rates {
        let name = rate_name(r);
        let events = events_for(r);
        println!("\nshm pipeline at {name} events/s, {events} events ...");
        let spec = pipeline::RunSpec {
            bin_dir: bin_dir.clone(),
            out: out.join(format!("rate-{name}")),
            rate: r,
            events,
            options: args.options,
            band: args.band,
            housekeeping_core: args.housekeeping_core,
            placement: pipeline::Placement {
                cores,
                idle: idle.clone(),
            },
            drain_timeout: Duration::from_secs(20),
        };
        let res = pipeline::run(&spec).with_context(|| format!("rate {name}"))?;
        for (k, h) in &res.stages {
            write_hgrm(&spec.out.join(format!("{k}.hgrm")), h)?;
        }
        let t2o = Stats::of(&res.stages["recv_to_gateway"]);
        println!(
            "  published {} in {:.2} s ({:.0}/s); hedger read {} ({:.0}/s), lapped {} times, lost {}; orders {} sent, {} at gateway, {} filled, ring full {}",
            res.published,
            res.publish_s,
            res.published as f64 / res.publish_s.max(1e-9),
            res.md_events,
            res.md_events as f64 / res.consume_s.max(1e-9),
            res.md_lapped,
            res.md_lost,
            res.orders_sent,
            res.orders_received,
            res.orders_filled,
            res.orders_ring_full,
        );
        println!(
            "  hedger CPU per event read {:.0} ns: its loop thread while events flowed {:.3} s ({:.0} ns per event) + its side threads (journal writer, state writer, histogram log) {:.3} s ({:.0} ns per event)",
            res.hedger_cpu_ns_per_event(),
            res.hedger_flow_loop_cpu_s,
            res.ns_per_event(res.hedger_flow_loop_cpu_s),
            res.hedger_side_cpu_s,
            res.ns_per_event(res.hedger_side_cpu_s),
        );
        println!(
            "  the whole window (the feed's start to the end of the drain, idle polling included): on-CPU {:.2} s of {:.2} s wall ({:.0}% of a core), {:.0} ns per event read; its loop thread {:.2} s, {:.0} ns per event",
            res.hedger_cpu_s,
            res.hedger_wall_s,
            100.0 * res.hedger_cpu_s / res.hedger_wall_s.max(1e-9),
            res.ns_per_event(res.hedger_cpu_s),
            res.hedger_loop_cpu_s,
            res.ns_per_event(res.hedger_loop_cpu_s),
        );
        println!(
            "  session journal {:.1} MB, {:.0} bytes per event read (removed after the run)",
            res.journal_bytes as f64 / 1e6,
            res.journal_bytes as f64 / (res.md_events.max(1)) as f64
        );
        for w in &res.pin_warnings {
            println!("  WARNING: {w}");
        }
        println!(
            "  tick-to-order p50 {} p99.9 {}",
            fmt_ns(t2o.p50_ns),
            fmt_ns(t2o.p999_ns)
        );
        runs.push((name, r, events, res));
    }

    // The ring's one-way again: the host may move the vCPUs while the pipeline runs (the raw
    // and ring figures have moved by 3x between runs on a KVM guest), and a ratio against a
    // baseline taken under another placement says nothing. Both are reported.
    let mut hop_after = None;
    if let Some((a, b, r, h)) = &hop {
        let msgs = h.messages.max(1);
        let budget = Duration::from_secs(if args.quick { 3 } else { 10 });
        let path = out.join("ring_one_way_after.hgrm");
        hop_after = Some(ring_hop(
            (*a, *b),
            *r,
            msgs,
            budget,
            &path,
            " again, after the pipeline",
        )?);
    }

    // Baseline 3: the naive pipeline at the first (lowest) rate.
    let mut naive_res = None;
    if !args.no_baselines {
        let r = rates[0];
        let n = args
            .naive_events
            .unwrap_or(if args.quick { 5_000 } else { 20_000 });
        let budget = args
            .naive_budget_s
            .unwrap_or(if args.quick { 5.0 } else { 25.0 });
        println!(
            "\nnaive pipeline (threads + crossbeam, full recomputation per tick) at {} events/s, {n} events, budget {budget} s ...",
            rate_name(r)
        );
        let cfg = market::synthetic_config(args.options, r, shm_layout::clock::wall_ns(), 1);
        let nr = naive::run(
            &cfg,
            n,
            [Some(cores[0]), Some(cores[1]), Some(cores[2])],
            args.band,
            Duration::from_secs_f64(budget),
        );
        let d = out.join("naive");
        std::fs::create_dir_all(&d)?;
        for (k, h) in [
            ("recv_to_read", &nr.recv_to_read),
            ("read_to_decision", &nr.read_to_decision),
            ("decision_to_publish", &nr.decision_to_publish),
            ("publish_to_gateway", &nr.publish_to_gateway),
            ("recv_to_gateway", &nr.tick_to_order),
            ("full_recompute", &nr.recompute),
        ] {
            write_hgrm(&d.join(format!("{k}.hgrm")), h)?;
        }
        println!(
            "  sent {}, processed {} in {:.2} s ({:.0}/s), backlog at the end {}, orders {}; full recomputation mean {}",
            nr.sent,
            nr.processed,
            nr.elapsed_s,
            nr.processed as f64 / nr.elapsed_s.max(1e-9),
            nr.backlog,
            nr.orders,
            fmt_ns(nr.recompute.mean() as u64)
        );
        naive_res = Some((r, n, nr));
    }

    // Tables.
    println!("\n{}", header());
    if let Some((a, b, p)) = &pp {
        println!(
            "{}",
            row(
                &format!("raw ping-pong one-way ({a}<->{b})"),
                &Stats::of(&p.one_way)
            )
        );
    }
    if let Some((a, b, r, h)) = &hop {
        println!(
            "{}",
            row(
                &format!("ring one-way, stamped ({a}->{b}, {}/s)", rate_name(*r)),
                &Stats::of(&h.one_way)
            )
        );
    }
    if let (Some((a, b, r, _)), Some(h)) = (&hop, &hop_after) {
        println!(
            "{}",
            row(
                &format!("ring one-way, again after ({a}->{b}, {}/s)", rate_name(*r)),
                &Stats::of(&h.one_way)
            )
        );
    }
    for (name, _, _, res) in &runs {
        for (k, label) in [
            ("recv_to_read", "feed publish -> hedger read"),
            ("read_to_decision", "hedger read -> decision"),
            ("decision_to_publish", "decision -> order published"),
            ("publish_to_gateway", "order published -> gateway read"),
            ("recv_to_gateway", "TICK-TO-ORDER (feed -> gateway)"),
        ] {
            println!(
                "{}",
                row(&format!("shm {name}: {label}"), &Stats::of(&res.stages[k]))
            );
        }
    }
    if let Some((r, _, nr)) = &naive_res {
        let name = rate_name(*r);
        for (h, label) in [
            (&nr.recv_to_read, "feed send -> hedger recv"),
            (&nr.recompute, "full recomputation (per event)"),
            (&nr.publish_to_gateway, "order sent -> gateway recv"),
            (&nr.tick_to_order, "TICK-TO-ORDER (feed -> gateway)"),
        ] {
            println!("{}", row(&format!("naive {name}: {label}"), &Stats::of(h)));
        }
    }

    // Ratios.
    println!("\nratios (p50 / p99.9):");
    if let (Some(b), Some(a)) = (&hop, &hop_after) {
        let (b, a) = (Stats::of(&b.3.one_way).p50_ns, Stats::of(&a.one_way).p50_ns);
        if ratio(b.max(a), b.min(a).max(1)) > 1.5 {
            println!(
                "  NOTE: the ring's own one-way p50 moved from {b} ns before the pipeline to {a} ns after it: the host moved the vCPUs during the run, and the pipeline ran in one placement or the other (or both): the two ratios below, against each, bracket its ratio"
            );
        }
    }
    let mut ratios = Vec::new();
    for (name, _, _, res) in &runs {
        let f = Stats::of(&res.stages["recv_to_read"]);
        for (base, what) in [
            (
                pp.as_ref().map(|p| &p.2.one_way),
                "raw one-way (half a ping-pong)",
            ),
            (
                hop.as_ref().map(|h| &h.3.one_way),
                "the ring's stamped one-way",
            ),
            (
                hop_after.as_ref().map(|h| &h.one_way),
                "the ring's stamped one-way after the pipeline",
            ),
        ] {
            let Some(base) = base else { continue };
            let o = Stats::of(base);
            let (a, b) = (ratio(f.p50_ns, o.p50_ns), ratio(f.p999_ns, o.p999_ns));
            println!("  shm {name} feed publish -> hedger read vs {what}: {a:.1}x / {b:.1}x");
            ratios.push(json!({"what": format!("shm {name} feed publish -> hedger read / {what}"), "p50": a, "p999": b}));
        }
    }
    for (name, r, _, res) in &runs {
        let t = Stats::of(&res.stages["recv_to_gateway"]);
        if let Some((_, _, p)) = &pp {
            // Two hops (feed -> hedger -> gateway): the floor is two one-way transfers.
            let ow = Stats::of(&p.one_way);
            let (a, b) = (
                ratio(t.p50_ns, 2 * ow.p50_ns),
                ratio(t.p999_ns, 2 * ow.p999_ns),
            );
            println!("  shm {name} tick-to-order vs 2 x raw one-way: {a:.1}x / {b:.1}x");
            ratios.push(json!({"what": format!("shm {name} tick-to-order / (2 x raw one-way)"), "p50": a, "p999": b}));
        }
        if let Some((nr_rate, _, nr)) = &naive_res {
            if nr_rate == r {
                let n = Stats::of(&nr.tick_to_order);
                let (a, b) = (ratio(n.p50_ns, t.p50_ns), ratio(n.p999_ns, t.p999_ns));
                println!("  naive {name} tick-to-order vs shm {name}: {a:.0}x / {b:.0}x slower");
                ratios.push(json!({"what": format!("naive {name} tick-to-order / shm {name}"), "p50": a, "p999": b}));
            }
        }
    }
    if let (Some((_, _, nr)), Some((name, _, _, res))) = (
        &naive_res,
        runs.iter().max_by(|a, b| {
            let ta = a.3.md_events as f64 / a.3.consume_s.max(1e-9);
            let tb = b.3.md_events as f64 / b.3.consume_s.max(1e-9);
            ta.total_cmp(&tb)
        }),
    ) {
        let shm_tp = res.md_events as f64 / res.consume_s.max(1e-9);
        let naive_tp = 1e9 / nr.recompute.mean().max(1.0);
        println!(
            "  throughput: shm hedger {shm_tp:.0} events/s (at {name}) vs naive capacity {naive_tp:.0} events/s (1 / mean recomputation): {:.0}x",
            shm_tp / naive_tp
        );
        ratios.push(json!({"what": "throughput shm / naive", "shm_events_per_s": shm_tp, "naive_events_per_s": naive_tp, "ratio": shm_tp / naive_tp}));
    }

    // JSON and plot.
    let mut series = Vec::new();
    if let Some((_, _, p)) = &pp {
        series.push(Series {
            label: "raw ping-pong one-way".into(),
            hist: &p.one_way,
        });
    }
    for (name, _, _, res) in &runs {
        series.push(Series {
            label: format!("shm tick-to-order {name}/s"),
            hist: &res.stages["recv_to_gateway"],
        });
    }
    if let Some((r, _, nr)) = &naive_res {
        series.push(Series {
            label: format!("naive tick-to-order {}/s", rate_name(*r)),
            hist: &nr.tick_to_order,
        });
    }
    std::fs::write(
        out.join("percentiles.svg"),
        report::percentile_svg(
            &format!(
                "tick-to-order, {} options, {} cores",
                args.options,
                distinct.len()
            ),
            &series,
        ),
    )?;
    let runs_json: Vec<Value> = runs
        .iter()
        .map(|(name, r, events, res)| {
            let stages: serde_json::Map<String, Value> = res
                .stages
                .iter()
                .map(|(k, h)| (k.clone(), stats_json(&Stats::of(h))))
                .collect();
            json!({
                "rate": name,
                "offered_events_per_s": if r.is_finite() { json!(r) } else { Value::Null },
                "events": events,
                "published": res.published,
                "publish_events_per_s": res.published as f64 / res.publish_s.max(1e-9),
                "hedger_md_events": res.md_events,
                "hedger_events_per_s": res.md_events as f64 / res.consume_s.max(1e-9),
                "md_lapped": res.md_lapped,
                "md_lost": res.md_lost,
                "md_rejected": res.md_rejected,
                "feed_rejects": res.feed_rejects,
                "orders_sent": res.orders_sent,
                "orders_received_by_gateway": res.orders_received,
                "orders_filled": res.orders_filled,
                "orders_ring_full": res.orders_ring_full,
                "pin_warnings": res.pin_warnings,
                "hedger_cpu_ns_per_event": res.hedger_cpu_ns_per_event(),
                "hedger_loop_cpu_s": res.hedger_flow_loop_cpu_s,
                "hedger_loop_cpu_ns_per_event": res.ns_per_event(res.hedger_flow_loop_cpu_s),
                "hedger_side_cpu_s": res.hedger_side_cpu_s,
                "hedger_side_cpu_ns_per_event": res.ns_per_event(res.hedger_side_cpu_s),
                "hedger_window_cpu_s": res.hedger_cpu_s,
                "hedger_window_wall_s": res.hedger_wall_s,
                "hedger_window_cpu_ns_per_event": res.ns_per_event(res.hedger_cpu_s),
                "hedger_window_loop_cpu_s": res.hedger_loop_cpu_s,
                "hedger_window_loop_cpu_ns_per_event": res.ns_per_event(res.hedger_loop_cpu_s),
                "journal_bytes": res.journal_bytes,
                "tick_to_order": stats_json(&Stats::of(&res.stages["recv_to_gateway"])),
                "stages": stages,
            })
        })
        .collect();
    let summary = json!({
        "benchmark": "e2e tick-to-order",
        "date_unix_s": shm_layout::clock::wall_ns() / 1_000_000_000,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine_before": machine_before,
        "machine_after": machine(),
        "options": args.options,
        "band_btc": args.band,
        "cores": {"feed": cores[0], "hedger": cores[1], "gateway": cores[2], "distinct": distinct.len()},
        "idle": idle,
        "pingpong": pp.as_ref().map(|(a, b, p)| json!({
            "cores": [a, b], "round_trips": p.round_trips,
            "one_way": stats_json(&Stats::of(&p.one_way)), "rtt": stats_json(&Stats::of(&p.rtt)),
        })),
        "ring_one_way": hop.as_ref().map(|(a, b, r, h)| json!({
            "cores": [a, b], "rate": r, "messages": h.messages, "lost": h.lost,
            "one_way": stats_json(&Stats::of(&h.one_way)),
        })),
        "ring_one_way_after": hop_after.as_ref().map(|h| json!({
            "messages": h.messages, "lost": h.lost,
            "one_way": stats_json(&Stats::of(&h.one_way)),
        })),
        "runs": runs_json,
        "naive": naive_res.as_ref().map(|(r, n, nr)| json!({
            "offered_events_per_s": if r.is_finite() { json!(r) } else { Value::Null },
            "events_offered": n, "sent": nr.sent, "processed": nr.processed, "backlog": nr.backlog,
            "orders": nr.orders, "elapsed_s": nr.elapsed_s,
            "events_per_s": nr.processed as f64 / nr.elapsed_s.max(1e-9),
            "tick_to_order": stats_json(&Stats::of(&nr.tick_to_order)),
            "recv_to_read": stats_json(&Stats::of(&nr.recv_to_read)),
            "full_recompute": stats_json(&Stats::of(&nr.recompute)),
            "publish_to_gateway": stats_json(&Stats::of(&nr.publish_to_gateway)),
        })),
        "ratios": ratios,
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!(
        "\ncores used: {} distinct ({:?}) of {ncpu}; load before {} after {}",
        distinct.len(),
        distinct,
        summary["machine_before"]["loadavg"].as_str().unwrap_or("?"),
        summary["machine_after"]["loadavg"].as_str().unwrap_or("?"),
    );
    println!(
        "wrote {}/summary.json, percentiles.svg and .hgrm files",
        out.display()
    );
    Ok(())
}

/// The ring's own one-way between cores `a` and `b` at `rate` (see [`ringhop`]), `msgs`
/// messages, written to `path` and printed (`when` after "stamped").
fn ring_hop(
    (a, b): (usize, usize),
    rate: f64,
    msgs: u64,
    budget: Duration,
    path: &Path,
    when: &str,
) -> anyhow::Result<ringhop::RingHop> {
    let cap = feed_handler::publish::PublisherOptions::default().ring_capacity;
    let h = ringhop::run((Some(a), Some(b)), cap, msgs, (1e9 / rate) as u64, budget)?;
    write_hgrm(path, &h.one_way)?;
    println!(
        "ring one-way, stamped{when}, cores {a} -> {b}, {} messages at {}/s, {cap} slots: p50 {}, p99.9 {} (lost {})",
        h.messages,
        rate_name(rate),
        fmt_ns(Stats::of(&h.one_way).p50_ns),
        fmt_ns(Stats::of(&h.one_way).p999_ns),
        h.lost
    );
    Ok(h)
}
