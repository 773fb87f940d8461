//! One producer/consumer trait pair (`shm_layout::queue`) with the shared-memory SPSC ring
//! and the in-process queues behind it: the same contract checked through the trait on each
//! (what the hedger core relies on when it pushes orders and reads execs).

use bytemuck::Zeroable;
use engine::hedger::io::{Consumer, MemExecs, MemOrders, Producer};
use shm_layout::{ExecEvent, HedgeOrder, OpenOptions, SpscConsumer, SpscProducer, StalePolicy};

const CAPACITY: usize = 4;

fn order(coid: u64) -> HedgeOrder {
    let mut o = HedgeOrder::zeroed();
    o.client_order_id = coid;
    o
}

fn exec(exec_id: u64) -> ExecEvent {
    let mut e = ExecEvent::zeroed();
    e.exec_id = exec_id;
    e
}

/// Fills the queue: every push is taken until it is full, then the order comes back whole.
fn fill_then_push_back<P: Producer<HedgeOrder>>(p: &mut P) {
    for coid in 1..=CAPACITY as u64 {
        assert!(p.push(order(coid)).is_ok(), "push {coid} of {CAPACITY}");
        assert_eq!(p.pending(), coid as usize);
    }
    let back = p
        .push(order(99))
        .expect_err("a full queue hands the order back");
    assert_eq!(back.client_order_id, 99);
    assert_eq!(p.pending(), CAPACITY);
}

/// Reads 1..=n in order without committing, then nothing; commits them.
fn read_in_order<C: Consumer<ExecEvent>>(c: &mut C, n: u64) {
    for id in 1..=n {
        assert_eq!(c.peek().map(|e| e.exec_id), Some(id));
    }
    assert!(c.peek().is_none());
    c.commit(n as usize);
    assert!(c.peek().is_none());
}

#[test]
fn in_process_queues_keep_the_ring_contract() {
    let mut orders = MemOrders::new(CAPACITY);
    fill_then_push_back(&mut orders);
    assert_eq!(orders.buf.pop_front().map(|o| o.client_order_id), Some(1));
    assert_eq!(orders.pending(), CAPACITY - 1);

    let mut execs = MemExecs::default();
    execs.buf.extend((1..=3).map(exec));
    read_in_order(&mut execs, 3);
    assert_eq!(execs.head, 3);
}

#[test]
fn shared_memory_ring_keeps_the_same_contract() {
    // A fresh directory per run, removed even when an assertion fails.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut orders =
        SpscProducer::<HedgeOrder>::create(dir.path(), "orders", CAPACITY, StalePolicy::Fail)
            .expect("orders ring");
    let mut gateway =
        SpscConsumer::<HedgeOrder>::open(dir.path(), "orders", OpenOptions::default())
            .expect("open orders");
    fill_then_push_back(&mut orders);
    assert_eq!(gateway.pop().map(|o| o.client_order_id), Some(1));
    assert_eq!(orders.pending(), CAPACITY - 1);

    let mut gw_execs =
        SpscProducer::<ExecEvent>::create(dir.path(), "execs", CAPACITY, StalePolicy::Fail)
            .expect("execs ring");
    let mut execs = SpscConsumer::<ExecEvent>::open(dir.path(), "execs", OpenOptions::default())
        .expect("open execs");
    for id in 1..=3 {
        gw_execs.push(exec(id)).expect("room");
    }
    read_in_order(&mut execs, 3);
    assert_eq!(execs.position(), 3);
}
