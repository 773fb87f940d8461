//! The hot path (push/pop/publish/poll, seqlock write/read, last-value updates in place with and
//! without depth, counters, control reads) neither
//! allocates nor makes system calls.
//!
//! - Allocation: a counting global allocator (`alloc_count`), counting only on the thread
//!   under test.
//! - System calls: the operations run on a thread in `SECCOMP_MODE_STRICT`, where any system
//!   call other than read/write/exit/sigreturn kills the process with SIGKILL; it runs in a
//!   child process (this binary re-executed) so that a violation fails the test cleanly.
//!   `clock::now_ns` is not exercised there: strict mode also disables `rdtsc` (TIF_NOTSC), which
//!   the vDSO `clock_gettime` uses; it is a vDSO call, not a system call, on a TSC clocksource.

use bytemuck::Zeroable;
use shm_layout::*;
use std::path::Path;
use std::sync::atomic::Ordering;

#[global_allocator]
static GLOBAL: alloc_count::CountingAlloc = alloc_count::CountingAlloc;

struct Fixture {
    _dir: tempfile::TempDir,
    md_w: BroadcastWriter<MarketEvent>,
    md_r: BroadcastReader<MarketEvent>,
    prod: SpscProducer<HedgeOrder>,
    cons: SpscConsumer<HedgeOrder>,
    lvt_w: LastValueTable,
    lvt_r: LastValueTable,
    counter: Counter,
    gauge: Gauge,
    control: ControlBlock,
    _cnc: CountersWriter,
}

fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("shm-layout-hot-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let p: &Path = dir.path();
    let o = OpenOptions::default();
    let f = StalePolicy::Fail;
    let mut cnc = CountersWriter::create(p, "test", f).unwrap();
    Fixture {
        md_w: BroadcastWriter::create(p, names::MD, 64, f).unwrap(),
        md_r: BroadcastReader::open(p, names::MD, o).unwrap(),
        prod: SpscProducer::create(p, names::ORDERS, 64, f).unwrap(),
        cons: SpscConsumer::open(p, names::ORDERS, o).unwrap(),
        lvt_w: LastValueTable::create(p, names::LVT, 8, f).unwrap(),
        lvt_r: LastValueTable::open(p, names::LVT, o).unwrap(),
        counter: cnc.counter("events"),
        gauge: cnc.gauge("delta"),
        control: ControlBlock::create(p, f).unwrap(),
        _cnc: cnc,
        _dir: dir,
    }
}

/// One round of every hot-path operation; returns a checksum so nothing is optimized away.
fn hot_path_round(f: &mut Fixture, i: u64) -> u64 {
    let mut sum = 0u64;
    let mut e = MarketEvent::underlying_price(1, i, i, 100.0);
    e.seq = i;
    f.md_w.publish(&e);
    f.md_w.publish_batch(&[e, e]);
    for _ in 0..4 {
        match f.md_r.poll() {
            Poll::Message(m) => sum = sum.wrapping_add(m.seq),
            Poll::Lapped { lost } => sum = sum.wrapping_add(lost),
            Poll::Empty => {}
        }
    }
    let mut o = HedgeOrder::zeroed();
    o.client_order_id = i;
    let _ = f.prod.push(o);
    f.prod.push_batch(&[o, o]);
    let mut out = [HedgeOrder::zeroed(); 4];
    sum = sum.wrapping_add(f.cons.pop().map_or(0, |o| o.client_order_id));
    sum = sum.wrapping_add(f.cons.peek().map_or(0, |o| o.client_order_id));
    f.cons.commit(1);
    sum = sum.wrapping_add(f.cons.pop_batch(&mut out) as u64);
    let mut v = LastValue::zeroed();
    v.apply(&e);
    f.lvt_w.write(3, &v);
    // In-place updates: a price, then a quote with depth, compared word by word and with a
    // promise of which levels changed (the feed handler's publish path).
    f.lvt_w.apply(2, &e, None);
    let q = MarketEvent::quote(2, i, i, 99.0, 1.0, 101.0, 1.0);
    let levels: [[f64; 2]; DEPTH_LEVELS] = std::array::from_fn(|l| [100.0 - l as f64, i as f64]);
    for (bid_changed, ask_changed) in [
        (DepthUpdate::ALL_CHANGED, DepthUpdate::ALL_CHANGED),
        (1, 1 << 3),
    ] {
        let d = DepthUpdate {
            bid_levels: DEPTH_LEVELS as u32,
            ask_levels: DEPTH_LEVELS as u32,
            bids: &levels,
            asks: &levels,
            bid_changed,
            ask_changed,
        };
        f.lvt_w.apply(2, &q, Some(&d));
    }
    sum = sum.wrapping_add(f.lvt_r.read(2).map_or(0, |v| v.bid_depth[0][1] as u64));
    sum = sum.wrapping_add(f.lvt_r.read(3).map_or(0, |v| v.last_seq));
    f.counter.inc();
    f.gauge.set(i as f64);
    sum = sum.wrapping_add(f.control.generation());
    sum = sum.wrapping_add(f.control.kill_switch() as u64);
    sum = sum.wrapping_add(f.control.trading_state(1) as u64);
    sum
}

#[test]
fn hot_path_does_not_allocate() {
    let mut f = fixture();
    hot_path_round(&mut f, 0); // warm up (first touches of pages, lazy statics)
    let region = alloc_count::Region::start();
    let mut s = 0u64;
    for i in 1..10_000 {
        s = s.wrapping_add(hot_path_round(&mut f, i));
    }
    let c = region.change();
    assert_eq!(
        (c.allocations, c.deallocations, c.reallocations),
        (0, 0, 0),
        "allocations on the hot path"
    );
    assert_ne!(s, 0);
}

/// Child side of the seccomp test; a no-op unless re-executed with `SHM_SECCOMP_CHILD=1`.
#[test]
fn seccomp_child_entry() {
    if std::env::var("SHM_SECCOMP_CHILD").is_err() {
        return;
    }
    let mut f = fixture();
    hot_path_round(&mut f, 0);
    // process::exit below skips destructors: remember the directory to remove it by hand.
    let seg_dir = f._dir.path().to_path_buf();
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let wfd = fds[1];
    let fx = std::sync::atomic::AtomicPtr::new(&mut f as *mut Fixture);
    std::thread::scope(|sc| {
        let fx = &fx;
        sc.spawn(move || {
            // SAFETY: the fixture outlives the scope and only this thread uses it meanwhile.
            let f = unsafe { &mut *fx.load(Ordering::Relaxed) };
            // SAFETY: prctl with constant arguments; affects only this thread.
            let rc =
                unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT, 0, 0, 0) };
            assert_eq!(rc, 0, "seccomp strict mode unavailable");
            let mut s = 0u64;
            for i in 1..10_000 {
                s = s.wrapping_add(hot_path_round(f, i));
            }
            let msg = if s != 0 { b"OK" } else { b"ZZ" };
            // SAFETY: write(2) and exit(2) are allowed in strict mode; `msg` is valid. The
            // thread ends here through the raw exit system call (exit_group is not allowed).
            unsafe {
                libc::write(wfd, msg.as_ptr().cast(), 2);
                libc::syscall(libc::SYS_exit, 0);
            }
        });
        let mut pfd = libc::pollfd {
            fd: fds[0],
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd. A thread killed by seccomp never writes: time out.
        let ready = unsafe { libc::poll(&mut pfd, 1, 20_000) };
        let mut buf = [0u8; 2];
        let n = if ready == 1 {
            // SAFETY: reading 2 bytes into a 2-byte buffer.
            unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 2) }
        } else {
            0
        };
        let _ = std::fs::remove_dir_all(&seg_dir);
        if n != 2 || &buf != b"OK" {
            // Not `assert!`: the scope would wait forever for the killed thread.
            eprintln!("hot-path thread was killed (a system call) or hung");
            std::process::exit(1);
        }
        // The hot-path thread exited without unwinding; leave without joining it.
        std::process::exit(0);
    });
}

#[test]
fn hot_path_makes_no_system_calls() {
    let st = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "seccomp_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHM_SECCOMP_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "the hot path made a system call under seccomp strict mode (killed: {st:?})"
    );
}
