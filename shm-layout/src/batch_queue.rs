//! In-process bounded single-producer single-consumer queue with batched publication and
//! slice access: the hedger's session journal (its loop thread records, a writer thread
//! writes the records to files).
//!
//! Per message, each side does plain stores and compares: the producer writes the message
//! into its slot and moves a local position; it makes what it wrote visible with one Release
//! store ([`BatchProducer::publish`]) once per batch (every `publish_every` messages, when
//! the queue is full, and whenever its owner calls it: the hedger at the end of each loop
//! iteration, before it can idle). The consumer loads the published position once and is
//! handed the whole published run as one or two slices (two when it wraps around the end
//! of the buffer: [`BatchConsumer::consume`]), which the journal writes to its file as they
//! are, then frees them with one Release store.
//!
//! Algorithm: Lamport's ring with cached copies of the other side's position, as in rtrb
//! (`mgeier/rtrb`, `src/lib.rs`) and this crate's [`crate::spsc`], with the producer's
//! position published per batch instead of per message (the "batched commit" of Aeron's
//! and iceoryx2's claim/commit APIs). Positions are free-running u64 counters; slot =
//! position & (capacity - 1).
//!
//! Why hand-written: crossbeam's `ArrayQueue` is a multi-producer multi-consumer queue (a
//! compare-and-swap per push and per pop, and one message at a time out of it); rtrb is a
//! single-producer single-consumer ring with slice access but it publishes at every
//! `commit` of a chunk and is only a dependency of `bench` (product crates take no peer
//! queue); [`crate::spsc`] lives in a shared-memory segment and publishes per message.
//! None has a publication the producer batches across separate pushes together with
//! slice access for the consumer.
//!
//! Under `--cfg loom` the slots are loom cells, so the model (`tests/loom_batch_queue.rs`)
//! checks that every slot the consumer reads was written before it was published, and
//! every slot the producer overwrites was read before it was freed.
//!
//! ```
//! use shm_layout::batch_queue::batch_queue;
//! let (mut p, mut c) = batch_queue::<u64>(4, 64);
//! for i in 0..3 {
//!     p.push(i).unwrap();
//! }
//! // Not published yet: the consumer sees nothing.
//! assert_eq!(c.consume(|_| Ok::<_, ()>(())), Ok(0));
//! p.publish();
//! let mut got = Vec::new();
//! assert_eq!(c.consume(|run| { got.extend_from_slice(run); Ok::<_, ()>(()) }), Ok(3));
//! assert_eq!(got, [0, 1, 2]);
//! ```

use crate::sync::{AtomicU64, Ordering};
use bytemuck::Pod;
use crossbeam_utils::CachePadded;

#[cfg(loom)]
use loom::sync::Arc;
#[cfg(not(loom))]
use std::sync::Arc;

#[cfg(loom)]
type Cell<T> = loom::cell::UnsafeCell<T>;
#[cfg(not(loom))]
type Cell<T> = core::cell::UnsafeCell<T>;

/// What both ends share: the two positions, each on its own cache line, and the slots.
struct Shared<T> {
    /// The consumer's position: slots before it are free. Written by the consumer only.
    head: CachePadded<AtomicU64>,
    /// The producer's published position: slots before it (and from `head`) hold messages.
    /// Written by the producer only.
    tail: CachePadded<AtomicU64>,
    /// Capacity - 1 (capacity is a power of two).
    mask: u64,
    slots: Box<[Cell<T>]>,
}

// SAFETY: the slots are accessed under the SPSC protocol (one `BatchProducer`, one
// `BatchConsumer`, neither `Clone`): the producer writes only positions in [tail, head +
// capacity) (not published, already freed), the consumer reads only positions in [head,
// tail) (published, not yet freed); the Release/Acquire pairs on `tail` and `head` order
// those accesses (see the SYNC POINT comments). `T: Send` because messages move from the
// producer's thread to the consumer's.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T: Pod> Shared<T> {
    /// Writes slot `i`.
    ///
    /// # Safety
    /// Only the producer calls this, for a slot that is free (the consumer has released it
    /// and the producer has not published it).
    #[inline]
    unsafe fn write(&self, i: usize, v: T) {
        debug_assert!(i < self.slots.len());
        #[cfg(not(loom))]
        // SAFETY: `i` is masked into range (debug-asserted); the caller guarantees the slot
        // is the producer's, so no one reads it concurrently.
        unsafe {
            *self.slots.get_unchecked(i).get() = v
        };
        #[cfg(loom)]
        // SAFETY: as above; loom checks it.
        self.slots[i].with_mut(|p| unsafe { *p = v });
    }

    /// Calls `f` with slots `start..start + len`.
    ///
    /// # Safety
    /// Only the consumer calls this, for slots the producer has published and the consumer
    /// has not released; `start + len <= capacity`.
    #[inline]
    unsafe fn with_run<R>(&self, start: usize, len: usize, f: impl FnOnce(&[T]) -> R) -> R {
        debug_assert!(start + len <= self.slots.len());
        #[cfg(not(loom))]
        {
            // SAFETY: in bounds (caller contract); `UnsafeCell<T>` has the layout of `T`, so
            // the cells are `len` consecutive `T`s; the producer does not write them until
            // the consumer releases them, after `f` returns and the slice is gone.
            let run = unsafe {
                core::slice::from_raw_parts(self.slots.as_ptr().add(start).cast::<T>(), len)
            };
            f(run)
        }
        #[cfg(loom)]
        {
            // Loom cells are not contiguous: the model copies them (each read checked).
            let run: Vec<T> = self.slots[start..start + len]
                .iter()
                // SAFETY: as above; loom checks it.
                .map(|c| c.with(|p| unsafe { *p }))
                .collect();
            f(&run)
        }
    }
}

/// A queue of at least `capacity` messages (rounded up to a power of two, at least 2) whose
/// producer publishes at the latest every `publish_every` messages (at least 1).
///
/// Allocates the slots here, once; nothing allocates afterwards.
pub fn batch_queue<T: Pod + Send>(
    capacity: usize,
    publish_every: usize,
) -> (BatchProducer<T>, BatchConsumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicU64::new(0)),
        tail: CachePadded::new(AtomicU64::new(0)),
        mask: cap as u64 - 1,
        slots: (0..cap).map(|_| Cell::new(T::zeroed())).collect(),
    });
    let producer = BatchProducer {
        shared: Arc::clone(&shared),
        write: 0,
        published: 0,
        cached_head: 0,
        cap: cap as u64,
        publish_every: publish_every.max(1) as u64,
    };
    let consumer = BatchConsumer {
        shared,
        head: 0,
        cap,
    };
    (producer, consumer)
}

/// The producing end (one thread).
pub struct BatchProducer<T> {
    shared: Arc<Shared<T>>,
    /// Next position to write.
    write: u64,
    /// Last position stored into `tail`.
    published: u64,
    /// Last `head` seen.
    cached_head: u64,
    cap: u64,
    publish_every: u64,
}

impl<T> std::fmt::Debug for BatchProducer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProducer")
            .field("capacity", &self.cap)
            .field("written", &self.write)
            .field("published", &self.published)
            .finish()
    }
}

impl<T: Pod> BatchProducer<T> {
    /// Writes `v` into the next slot, or hands it back when the queue is full (after
    /// publishing what it holds, so that a producer waiting for room does not wait on its
    /// own unpublished messages). Publishes every `publish_every` messages. No allocation,
    /// no system call.
    ///
    /// # Errors
    /// `Err(v)` when full.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if self.write - self.cached_head >= self.cap {
            // SYNC POINT: Acquire pairs with the consumer's Release store of `head` in
            // `release`: its reads of the slots it freed happen before we overwrite them.
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if self.write - self.cached_head >= self.cap {
                self.publish();
                return Err(v);
            }
        }
        let i = (self.write & self.shared.mask) as usize;
        // SAFETY: we are the only producer; position `write` is free (write - head < cap)
        // and not yet published.
        unsafe { self.shared.write(i, v) };
        self.write += 1;
        if self.write - self.published >= self.publish_every {
            self.publish();
        }
        Ok(())
    }

    /// Makes every message pushed so far visible to the consumer (one Release store, none
    /// when there is nothing new).
    #[inline]
    pub fn publish(&mut self) {
        if self.published != self.write {
            self.published = self.write;
            // SYNC POINT: Release pairs with the consumer's Acquire load of `tail` in
            // `consume`: the slot writes before it are visible to the consumer's reads.
            self.shared.tail.store(self.write, Ordering::Release);
        }
    }

    /// Messages pushed and not yet published.
    #[inline]
    pub fn unpublished(&self) -> usize {
        (self.write - self.published) as usize
    }

    /// Capacity in messages (a power of two).
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }
}

/// The consuming end (one thread).
pub struct BatchConsumer<T> {
    shared: Arc<Shared<T>>,
    /// Next position to read (mirrors `head`).
    head: u64,
    cap: usize,
}

impl<T> std::fmt::Debug for BatchConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchConsumer")
            .field("capacity", &self.cap)
            .field("read", &self.head)
            .finish()
    }
}

impl<T: Pod> BatchConsumer<T> {
    /// Hands every published message to `f`, oldest first, as one slice, or two when the
    /// run wraps around the end of the buffer, then frees them with one store. Returns how
    /// many were consumed (0: nothing published).
    ///
    /// # Errors
    /// The first error of `f`; the slices before it are consumed, the one it failed on and
    /// the rest stay queued.
    pub fn consume<E>(&mut self, mut f: impl FnMut(&[T]) -> Result<(), E>) -> Result<usize, E> {
        // SYNC POINT: Acquire pairs with the producer's Release store of `tail` in
        // `publish`: its slot writes before that store are visible here.
        let tail = self.shared.tail.load(Ordering::Acquire);
        let n = (tail - self.head) as usize;
        debug_assert!(n <= self.cap, "published {n} > capacity {}", self.cap);
        if n == 0 {
            return Ok(0);
        }
        let start = (self.head & self.shared.mask) as usize;
        let first = n.min(self.cap - start);
        // SAFETY: positions head..tail are published and not released; the first run
        // ends at the buffer's end at most.
        unsafe { self.shared.with_run(start, first, &mut f) }?;
        if first < n {
            self.release(first);
            // SAFETY: the rest of the published run, from slot 0.
            unsafe { self.shared.with_run(0, n - first, &mut f) }?;
            self.release(n - first);
        } else {
            self.release(n);
        }
        Ok(n)
    }

    /// Frees `n` consumed slots.
    #[inline]
    fn release(&mut self, n: usize) {
        self.head += n as u64;
        // SYNC POINT: Release pairs with the producer's Acquire load of `head` in `push`:
        // our reads of the freed slots happen before it overwrites them.
        self.shared.head.store(self.head, Ordering::Release);
    }

    /// Messages published and not yet consumed.
    pub fn len(&self) -> usize {
        (self.shared.tail.load(Ordering::Acquire) - self.head) as usize
    }

    /// Whether nothing published is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in messages (a power of two).
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Everything published, as the consumer sees it, with the number of slices.
    fn drain(c: &mut BatchConsumer<u64>) -> (Vec<u64>, usize) {
        let (mut got, mut runs) = (Vec::new(), 0);
        c.consume(|run| {
            got.extend_from_slice(run);
            runs += 1;
            Ok::<_, ()>(())
        })
        .unwrap();
        (got, runs)
    }

    #[test]
    fn nothing_is_visible_before_it_is_published() {
        let (mut p, mut c) = batch_queue::<u64>(8, 100);
        p.push(1).unwrap();
        p.push(2).unwrap();
        assert_eq!(p.unpublished(), 2);
        assert_eq!(drain(&mut c), (vec![], 0));
        assert!(c.is_empty());
        p.publish();
        assert_eq!(p.unpublished(), 0);
        assert_eq!(c.len(), 2);
        assert_eq!(drain(&mut c), (vec![1, 2], 1));
    }

    #[test]
    fn the_producer_publishes_every_batch_by_itself() {
        let (mut p, mut c) = batch_queue::<u64>(16, 3);
        for i in 0..7 {
            p.push(i).unwrap();
        }
        // Published after the 3rd and the 6th; the 7th waits for the next batch or publish.
        assert_eq!(drain(&mut c), ((0..6).collect(), 1));
        assert_eq!(p.unpublished(), 1);
    }

    #[test]
    fn a_full_queue_hands_the_message_back_and_publishes_what_it_holds() {
        let (mut p, mut c) = batch_queue::<u64>(4, 100);
        assert_eq!(p.capacity(), 4);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(4), Err(4));
        assert_eq!(p.unpublished(), 0, "a full queue publishes");
        assert_eq!(drain(&mut c).0, [0, 1, 2, 3]);
        // Room again once the consumer freed the slots.
        p.push(5).unwrap();
        p.publish();
        assert_eq!(drain(&mut c).0, [5]);
    }

    #[test]
    fn a_run_across_the_end_of_the_buffer_comes_as_two_slices_in_order() {
        let (mut p, mut c) = batch_queue::<u64>(4, 100);
        for i in 0..3 {
            p.push(i).unwrap();
        }
        p.publish();
        assert_eq!(drain(&mut c), (vec![0, 1, 2], 1));
        for i in 3..7 {
            p.push(i).unwrap();
        }
        p.publish();
        // Slots 3, 0, 1, 2.
        assert_eq!(drain(&mut c), (vec![3, 4, 5, 6], 2));
    }

    #[test]
    fn a_failed_slice_stays_queued() {
        let (mut p, mut c) = batch_queue::<u64>(4, 1);
        for i in 0..3 {
            p.push(i).unwrap();
        }
        drain(&mut c);
        for i in 3..6 {
            p.push(i).unwrap();
        }
        // The first slice (3) is consumed, the second (4, 5) fails and stays.
        let mut calls = 0;
        let r = c.consume(|_| {
            calls += 1;
            if calls == 2 {
                Err("disk full")
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err("disk full"));
        assert_eq!(drain(&mut c).0, [4, 5]);
    }

    #[test]
    fn capacity_is_rounded_up_to_a_power_of_two() {
        let (p, c) = batch_queue::<u64>(100, 1);
        assert_eq!((p.capacity(), c.capacity()), (128, 128));
        assert_eq!(batch_queue::<u64>(0, 0).0.capacity(), 2);
    }

    #[test]
    fn messages_cross_threads_in_order() {
        let (mut p, mut c) = batch_queue::<u64>(64, 7);
        const N: u64 = 100_000;
        let t = std::thread::spawn(move || {
            let mut next = 0;
            while next < N {
                c.consume(|run| {
                    for &v in run {
                        assert_eq!(v, next);
                        next += 1;
                    }
                    Ok::<_, ()>(())
                })
                .unwrap();
                std::hint::spin_loop();
            }
        });
        for i in 0..N {
            let mut v = i;
            while let Err(back) = p.push(v) {
                v = back;
                std::thread::yield_now();
            }
        }
        p.publish();
        t.join().unwrap();
    }
}
