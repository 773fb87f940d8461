//! Cross-process behaviour with real child processes: the test binary re-executes itself with
//! `SHM_CHILD=<role>` and runs `child_process_entry`, which plays the other end of a segment.

mod common;

use bytemuck::Zeroable;
use common::shm_dir;
use shm_layout::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const OPEN: OpenOptions = OpenOptions {
    wait: Duration::from_secs(20),
};

/// Message `i` of the stream: every field derived from `i`, so corruption is detected.
fn order(i: u64) -> HedgeOrder {
    let mut o = HedgeOrder::zeroed();
    o.client_order_id = i;
    o.instrument_id = (i as u32).wrapping_mul(2_654_435_761);
    o.qty = i as f64 * 0.5;
    o.limit_px =
        f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 12 | 0x3FF0_0000_0000_0000);
    o.publish_ts_ns = !i;
    o
}

fn verify(o: &HedgeOrder, expect: u64) {
    assert_eq!(
        o,
        &order(expect),
        "message {expect} corrupted or out of order"
    );
}

/// FNV-1a over the bytes of every message, in order.
fn fold(h: u64, o: &HedgeOrder) -> u64 {
    bytemuck::bytes_of(o).iter().fold(h, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// Parent side: starts the child `role` (this test binary, entry `child_process_entry`) on
/// `dir` and waits until it reports ready. A child's tag: one marker file per child in the
/// segment directory.
fn spawn_child(role: &str, tag: &str, dir: &Path, extra: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SHM_CHILD", role)
    .env("SHM_TAG", tag)
    .env("SHM_DIR", dir)
    .stdout(Stdio::null());
    for (k, v) in extra {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    wait_marker(&mut child, dir, tag, "ready");
    child
}

/// Parent side: the child's result marker, once it exited successfully.
fn child_result(child: &mut Child, dir: &Path, tag: &str) -> String {
    let res = wait_marker(child, dir, tag, "result");
    assert!(child.wait().unwrap().success());
    res
}

/// [`child_result`] as the numbers it lists (separated by spaces).
fn child_numbers(child: &mut Child, dir: &Path, tag: &str) -> Vec<u64> {
    let res = child_result(child, dir, tag);
    res.split(' ').map(|x| x.parse().unwrap()).collect()
}

/// The orders queue the `spsc-consumer` child reads: its name.
const ORDERS: &str = "orders";

/// Parent side: creates the orders queue of `capacity` messages in `dir`.
fn orders_producer(dir: &Path, capacity: usize) -> SpscProducer<HedgeOrder> {
    SpscProducer::<HedgeOrder>::create(dir, ORDERS, capacity, StalePolicy::Fail).unwrap()
}

/// Child side: writes `dir/<tag>.<marker>` atomically (write then rename).
fn put_marker(dir: &Path, marker: &str, text: &str) {
    let tag = std::env::var("SHM_TAG").unwrap();
    let tmp = dir.join(format!(".{tag}.{marker}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{tag}.{marker}"))).unwrap();
}

/// Parent side: waits for the child's marker file (fails if the child dies first).
fn wait_marker(child: &mut Child, dir: &Path, tag: &str, marker: &str) -> String {
    let path = dir.join(format!("{tag}.{marker}"));
    loop {
        if let Ok(s) = std::fs::read_to_string(&path) {
            return s;
        }
        if let Some(st) = child.try_wait().unwrap() {
            if let Ok(s) = std::fs::read_to_string(&path) {
                return s;
            }
            panic!("child {tag} exited ({st}) before writing {marker}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn env_u64(k: &str) -> u64 {
    std::env::var(k).unwrap().parse().unwrap()
}

/// The child side; a no-op when run as an ordinary test.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var("SHM_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("SHM_DIR").unwrap());
    match role.as_str() {
        "spsc-consumer" => {
            let n = env_u64("SHM_N");
            let mut c = SpscConsumer::<HedgeOrder>::open(&dir, ORDERS, OPEN).unwrap();
            let start = c.position();
            let mut next = start;
            let mut h = FNV0;
            let mut buf = [HedgeOrder::zeroed(); 64];
            let mut idle = 0u32;
            let mut progress = (env_u64("SHM_PROGRESS") != 0).then(|| {
                CountersWriter::create(&dir, "consumer", StalePolicy::Replace)
                    .unwrap()
                    .counter("consumed")
            });
            put_marker(&dir, "ready", "");
            while next < n {
                // Alternate single pops and batches to exercise both paths.
                let k = if next & 3 == 0 {
                    match c.pop() {
                        Some(o) => {
                            buf[0] = o;
                            1
                        }
                        None => 0,
                    }
                } else {
                    c.pop_batch(&mut buf)
                };
                if k == 0 {
                    idle += 1;
                    if idle > 64 {
                        std::thread::yield_now();
                    }
                    continue;
                }
                idle = 0;
                for o in &buf[..k] {
                    verify(o, next);
                    h = fold(h, o);
                    next += 1;
                }
                if let Some(p) = progress.as_mut() {
                    p.set(next);
                }
            }
            put_marker(&dir, "result", &format!("{start} {} {h}", next - start));
        }
        "broadcast-slow-reader" => {
            let n = env_u64("SHM_N");
            let mut r = BroadcastReader::<MarketEvent>::open_from_start(&dir, "md", OPEN).unwrap();
            assert_eq!(r.position(), 0);
            put_marker(&dir, "ready", "");
            let (mut delivered, mut lost, mut polls) = (0u64, 0u64, 0u64);
            while delivered + lost < n {
                let before = r.position();
                match r.poll() {
                    Poll::Message(e) => {
                        assert_eq!(e.seq, before, "delivered message is the cursor's");
                        assert_eq!(e.v[0], before as f64, "payload intact");
                        delivered += 1;
                    }
                    Poll::Lapped { lost: k } => {
                        assert_eq!(r.position(), before + k);
                        lost += k;
                    }
                    Poll::Empty => std::thread::yield_now(),
                }
                polls += 1;
                if polls & 511 == 0 {
                    // Deliberately slow.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            put_marker(&dir, "result", &format!("{delivered} {lost}"));
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn spsc_ten_million_messages_cross_processes_in_order_with_checksum() {
    const N: u64 = 10_000_000;
    let d = shm_dir();
    let mut p = orders_producer(d.path(), 4096);
    let mut child = spawn_child(
        "spsc-consumer",
        "c",
        d.path(),
        &[("SHM_N", N.to_string()), ("SHM_PROGRESS", "0".into())],
    );
    let mut h = FNV0;
    let mut i = 0u64;
    let mut batch = [HedgeOrder::zeroed(); 32];
    while i < N {
        if i & 1 == 0 {
            let o = order(i);
            match p.push(o) {
                Ok(()) => {
                    h = fold(h, &o);
                    i += 1;
                }
                Err(back) => {
                    assert_eq!(back, o, "a full queue hands the message back");
                    std::thread::yield_now();
                }
            }
        } else {
            let k = (N - i).min(batch.len() as u64) as usize;
            for (j, b) in batch[..k].iter_mut().enumerate() {
                *b = order(i + j as u64);
            }
            let pushed = p.push_batch(&batch[..k]);
            for b in &batch[..pushed] {
                h = fold(h, b);
            }
            i += pushed as u64;
            if pushed == 0 {
                std::thread::yield_now();
            }
        }
    }
    let res = child_result(&mut child, d.path(), "c");
    assert_eq!(res, format!("0 {N} {h}"), "start, count, checksum");
    assert_eq!(p.len(), 0);
}

#[test]
fn broadcast_slow_reader_counted_loss_equals_true_loss() {
    const N: u64 = 1_000_000;
    let d = shm_dir();
    let mut w =
        BroadcastWriter::<MarketEvent>::create(d.path(), "md", 1024, StalePolicy::Fail).unwrap();
    let mut child = spawn_child(
        "broadcast-slow-reader",
        "r",
        d.path(),
        &[("SHM_N", N.to_string())],
    );
    for i in 0..N {
        let mut e = MarketEvent::underlying_price(1, i, i, i as f64);
        e.seq = i;
        w.publish(&e);
        if i & 4095 == 0 {
            std::thread::yield_now();
        }
    }
    let v = child_numbers(&mut child, d.path(), "r");
    let (delivered, lost) = (v[0], v[1]);
    // Delivered messages are distinct and in order (checked in the child), so the true loss is
    // N - delivered.
    assert_eq!(lost, N - delivered, "counted loss == true loss");
    assert!(lost > 0, "the reader was slow enough to be lapped");
    assert!(delivered > 0);
}

#[test]
fn spsc_consumer_killed_mid_stream_resumes_exactly() {
    const N: u64 = 1_000_000;
    let d = shm_dir();
    let mut p = orders_producer(d.path(), 1024);
    let extra = [("SHM_N", N.to_string()), ("SHM_PROGRESS", "1".into())];
    let mut first = spawn_child("spsc-consumer", "c1", d.path(), &extra);
    let dir = d.path().to_path_buf();
    let mut killed_at = None;
    let mut i = 0u64;
    while i < N {
        match p.push(order(i)) {
            Ok(()) => i += 1,
            Err(_) => std::thread::yield_now(),
        }
        let consumed = p.position() - p.len() as u64;
        if killed_at.is_none() && consumed > N / 3 {
            first.kill().unwrap(); // SIGKILL
            let st = first.wait().unwrap();
            assert!(
                st.code().is_none(),
                "killed by a signal, not exited: {st:?}"
            );
            killed_at = Some(p.position() - p.len() as u64);
            let r = CountersReader::open(&dir, "consumer", OpenOptions::default()).unwrap();
            let progress = match r.snapshot()[0].1 {
                CounterValue::Counter(v) => v,
                CounterValue::Gauge(_) => unreachable!(),
            };
            let head = killed_at.unwrap();
            // pop commits before the child records progress: progress is head or one batch
            // behind, never ahead.
            assert!(
                progress <= head && head - progress <= 64,
                "{progress} vs {head}"
            );
            first = spawn_child("spsc-consumer", "c2", d.path(), &extra);
        }
    }
    let v = child_numbers(&mut first, d.path(), "c2");
    let head = killed_at.expect("consumer was killed");
    assert_eq!(
        v[0], head,
        "restarted consumer starts at the committed position"
    );
    assert_eq!(v[0] + v[1], N, "and reads the rest exactly once, in order");
}
