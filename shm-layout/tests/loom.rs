//! loom models of the ring protocols, run on heap memory with the exact protocol code.
//!
//! Run (bounded so it finishes in about a minute on 2 cores):
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!  cargo test -p shm-layout --release --test loom`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shm_layout::broadcast::{self, Poll};
use shm_layout::lvt;
use shm_layout::spsc::{self, ConsumerState, ProducerState};
use shm_layout::sync::Mem;

/// A two-word message whose words must agree: a torn copy is detected.
type Msg = [u64; 2];

fn msg(i: u64) -> Msg {
    [i, !i]
}

fn check(m: Msg) -> u64 {
    assert_eq!(m[1], !m[0], "torn message {m:?}");
    m[0]
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Spawns the producer of messages `0..n` into the queue `mem` of geometry `g`, retrying
/// while it is full.
fn spawn_producer(mem: &Arc<Mem>, g: spsc::Geometry, n: u64) -> thread::JoinHandle<()> {
    let mem = mem.clone();
    thread::spawn(move || {
        let mut st = ProducerState::default();
        for i in 0..n {
            // SAFETY: region of geometry `g` for Msg; only producer.
            while !unsafe { spsc::push(&mem, &g, &mut st, &msg(i)) } {
                thread::yield_now();
            }
        }
    })
}

/// A two-slot queue of [`Msg`] and the producer of messages `0..n` into it.
fn queue_with_producer(n: u64) -> (spsc::Geometry, Arc<Mem>, thread::JoinHandle<()>) {
    let g = spsc::Geometry::new(2, 16);
    let mem = Arc::new(Mem::zeroed(g.region_len()));
    let producer = spawn_producer(&mem, g, n);
    (g, mem, producer)
}

/// As the only consumer of the queue `mem` of geometry `g`: reads and commits one message at
/// a time into `got`, yielding while the queue is empty, until `got` holds `n`.
fn consume_until(
    mem: &Mem,
    g: &spsc::Geometry,
    st: &mut ConsumerState,
    got: &mut Vec<u64>,
    n: usize,
) {
    while got.len() < n {
        // SAFETY: region of geometry `g` for Msg; the caller is the only consumer.
        match unsafe { spsc::peek::<Msg>(mem, g, st) } {
            Some(m) => {
                got.push(check(m));
                // SAFETY: as above.
                unsafe { spsc::commit(mem, st, 1) };
            }
            None => thread::yield_now(),
        }
    }
}

#[test]
fn spsc_delivers_in_order_through_full_and_empty_with_wrap_around() {
    model(|| {
        let (g, mem, producer) = queue_with_producer(3);
        let mut got = vec![];
        consume_until(&mem, &g, &mut ConsumerState::default(), &mut got, 3);
        assert_eq!(got, vec![0, 1, 2], "in order");
        producer.join().unwrap();
    });
}

#[test]
fn spsc_restarted_consumer_resumes_at_committed_position() {
    model(|| {
        let (g, mem, producer) = queue_with_producer(3);
        let mut got = vec![];
        // First consumer life: reads one message and commits it, peeks another without
        // committing, then "dies" (its local state is dropped).
        let mut st = ConsumerState::default();
        consume_until(&mem, &g, &mut st, &mut got, 1);
        // SAFETY: only consumer.
        let _uncommitted = unsafe { spsc::peek::<Msg>(&mem, &g, &mut st) };
        let _ = st;
        // Restart: the position comes from the segment only.
        // SAFETY: HEAD_OFFSET inside the region.
        let head =
            unsafe { mem.u64_at(spsc::HEAD_OFFSET) }.load(loom::sync::atomic::Ordering::Acquire);
        let mut st = ConsumerState {
            head,
            read: head,
            cached_tail: head,
        };
        consume_until(&mem, &g, &mut st, &mut got, 3);
        assert_eq!(got, vec![0, 1, 2], "nothing lost, nothing read twice");
        producer.join().unwrap();
    });
}

#[test]
fn broadcast_reader_never_tears_and_counts_every_lost_message() {
    model(|| {
        let g = broadcast::Geometry::new(2, 16);
        let mem = Arc::new(Mem::zeroed(g.region_len()));
        let m2 = mem.clone();
        const N: u64 = 4;
        let writer = thread::spawn(move || {
            for p in 0..N {
                // SAFETY: region of geometry `g` for Msg; only writer.
                unsafe {
                    broadcast::write_at(&m2, &g, p, &msg(p));
                    broadcast::publish_tail(&m2, p + 1);
                }
            }
        });
        let mut cursor = 0u64;
        let (mut delivered, mut lost) = (0u64, 0u64);
        while delivered + lost < N {
            let before = cursor;
            // SAFETY: region of geometry `g` for Msg.
            match unsafe { broadcast::read_at::<Msg>(&mem, &g, &mut cursor) } {
                Poll::Message(m) => {
                    assert_eq!(check(m), before, "message of the cursor's position");
                    delivered += 1;
                }
                Poll::Lapped { lost: n } => {
                    assert!(n > 0);
                    assert_eq!(cursor, before + n);
                    lost += n;
                }
                Poll::Empty => thread::yield_now(),
            }
        }
        assert_eq!(cursor, N);
        assert_eq!(delivered + lost, N, "counted loss == true loss");
        writer.join().unwrap();
    });
}

#[test]
fn seqlock_entry_read_is_never_torn() {
    model(|| {
        let mem = Arc::new(Mem::zeroed(lvt::entry_stride(16)));
        let m2 = mem.clone();
        let writer = thread::spawn(move || {
            // SAFETY: one entry for a Msg at offset 0; only writer.
            unsafe {
                lvt::write_entry(&m2, 0, &msg(1));
                lvt::write_entry(&m2, 0, &msg(2));
            }
        });
        // SAFETY: one entry for a Msg at offset 0.
        let r = unsafe { lvt::read_entry::<Msg>(&mem, 0, 3) };
        if let Some(m) = r {
            assert!(matches!(check(m), 1 | 2));
        }
        writer.join().unwrap();
        // SAFETY: as above.
        let last = unsafe { lvt::read_entry::<Msg>(&mem, 0, 3) };
        assert_eq!(last, Some(msg(2)));
    });
}

/// A four-word entry written whole, then half by half with partial writes: a reader sees one of
/// the stable states, never a mix of two.
#[test]
fn seqlock_partial_writes_are_never_torn() {
    type Quad = [u64; 4];
    model(|| {
        let mem = Arc::new(Mem::zeroed(lvt::entry_stride(32)));
        let m2 = mem.clone();
        let writer = thread::spawn(move || {
            // SAFETY: one entry for a Quad at offset 0 (4 payload words); only writer.
            unsafe {
                lvt::write_entry::<Quad>(&m2, 0, &[1, !1, 1, !1]);
                assert!(lvt::write_entry_words(&m2, 0, &[(0, &[2, !2])]));
                assert!(lvt::write_entry_words(&m2, 0, &[(2, &[3]), (3, &[!3])]));
            }
        });
        // SAFETY: one entry for a Quad at offset 0.
        let r = unsafe { lvt::read_entry::<Quad>(&mem, 0, 3) };
        if let Some(q) = r {
            assert!(
                matches!(q, [1, _, 1, _] | [2, _, 1, _] | [2, _, 3, _])
                    && q[1] == !q[0]
                    && q[3] == !q[2],
                "torn {q:?}"
            );
        }
        writer.join().unwrap();
        // SAFETY: as above.
        let last = unsafe { lvt::read_entry::<Quad>(&mem, 0, 3) };
        assert_eq!(last, Some([2, !2, 3, !3]));
        // An entry left odd (a writer died mid-write) refuses partial writes.
        // SAFETY: the entry's sequence word; no other thread is running.
        unsafe { mem.u64_at(0) }.store(7, loom::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        assert!(!unsafe { lvt::write_entry_words(&mem, 0, &[(0, &[4, !4])]) });
    });
}
