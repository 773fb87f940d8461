//! loom models of the in-process batch queue (`shm_layout::batch_queue`, the session
//! journal's queue): its slots are loom cells, so loom reports any slot read that is not
//! ordered after its write (a publication too weak) and any overwrite not ordered after the
//! consumer's read (a release too weak).
//!
//! Run (bounded; seconds on 2 cores):
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!  cargo test -p shm-layout --release --test loom_batch_queue`
#![cfg(loom)]

use loom::thread;
use shm_layout::batch_queue::{batch_queue, BatchConsumer, BatchProducer};

/// A two-word message whose words must agree: a torn copy is detected.
type Msg = [u64; 2];

fn msg(i: u64) -> Msg {
    [i, !i]
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Pushes messages `0..n`, yielding while the queue is full.
fn push_all(p: &mut BatchProducer<Msg>, n: u64) {
    for i in 0..n {
        let mut m = msg(i);
        while let Err(back) = p.push(m) {
            m = back;
            thread::yield_now();
        }
    }
}

/// Reads until `n` messages came, checking order and integrity; returns the slices seen.
fn consume_all(c: &mut BatchConsumer<Msg>, n: u64) -> usize {
    let (mut next, mut slices) = (0, 0);
    while next < n {
        let got = c
            .consume(|run| {
                slices += 1;
                for m in run {
                    assert_eq!(m[1], !m[0], "torn message {m:?}");
                    assert_eq!(m[0], next, "out of order");
                    next += 1;
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        if got == 0 {
            thread::yield_now();
        }
    }
    slices
}

/// The model of a queue of `cap` slots publishing every `every` pushes: `produce` runs on its
/// own thread while the consumer reads `n` messages beside it.
fn run_model(cap: usize, every: usize, n: u64, produce: fn(&mut BatchProducer<Msg>)) {
    model(move || {
        let (mut p, mut c) = batch_queue::<Msg>(cap, every);
        let producer = thread::spawn(move || produce(&mut p));
        consume_all(&mut c, n);
        producer.join().unwrap();
    });
}

/// Three messages through two slots, published one by one: full, wrap-around and empty
/// states with the consumer running beside the producer.
#[test]
fn batch_queue_delivers_in_order_through_full_and_wrap_around() {
    run_model(2, 1, 3, |p| push_all(p, 3));
}

/// A batch of two published with one store, then a third that wraps: the consumer may see
/// the batch as one run and the wrapped message as another, never a message early.
#[test]
fn batch_queue_publishes_a_batch_at_once() {
    run_model(4, 4, 3, |p| {
        p.push(msg(0)).unwrap();
        p.push(msg(1)).unwrap();
        p.publish();
        p.push(msg(2)).unwrap();
        p.publish();
    });
}

/// The consumer frees slots while the producer refills them: every overwrite of a slot comes
/// after the consumer's read of it.
#[test]
fn batch_queue_reuses_a_slot_only_after_it_was_read() {
    run_model(2, 2, 4, |p| {
        push_all(p, 4);
        p.publish();
    });
}
