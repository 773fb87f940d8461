//! Bounded single-producer single-consumer queue for orders and execs; never overwrites.
//!
//! Algorithm: Lamport's ring with cached copies of the other side's position, as in rtrb
//! (`mgeier/rtrb`, `src/lib.rs`) and iceoryx2's `lock-free/src/spsc/queue.rs`. Positions are
//! free-running u64 counters (slot = position & (capacity - 1)); `head` is the consumer's
//! committed position and `tail` the producer's. Both live in the segment, each on its own
//! 128-byte line, so a consumer killed and restarted resumes exactly at `head`: nothing lost,
//! nothing read twice. The consumer's pid is recorded beside `head` so two consumers cannot
//! attach at once.
//!
//! Layout (after the 128-byte header): at 128 `head` u64, at 136 `consumer_pid` u32, at 144
//! `consumer_start_ticks` u64 (line padded to 256); at 256 `tail` u64 (padded to 384); at 384
//! `capacity` slots of `size_of::<T>()` bytes.

use crate::sync::{Mem, Ordering};
use bytemuck::Pod;

/// Offset of the consumer's committed position.
pub const HEAD_OFFSET: usize = 128;
/// Offset of the attached consumer's pid (0 = none).
pub const CONSUMER_PID_OFFSET: usize = 136;
/// Offset of the attached consumer's start time (clock ticks since boot).
pub const CONSUMER_START_OFFSET: usize = 144;
/// Offset of the producer's position.
pub const TAIL_OFFSET: usize = 256;
/// Offset of slot 0.
pub const SLOTS_OFFSET: usize = 384;

/// Geometry of a queue region (shared with the loom model).
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub struct Geometry {
    mask: u64,
    size: usize,
}

impl Geometry {
    /// `capacity` (power of two) slots of `msg_size` bytes.
    pub fn new(capacity: u64, msg_size: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Geometry {
            mask: capacity - 1,
            size: msg_size,
        }
    }
    #[inline]
    fn slot(&self, pos: u64) -> usize {
        SLOTS_OFFSET + ((pos & self.mask) as usize) * self.size
    }
    /// Capacity in messages.
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }
    /// Total bytes a region of this geometry needs.
    pub fn region_len(&self) -> usize {
        SLOTS_OFFSET + (self.mask as usize + 1) * self.size
    }
}

/// Producer-side protocol state (local; `tail` mirrors the segment's word).
#[derive(Clone, Copy, Debug, Default)]
#[doc(hidden)]
pub struct ProducerState {
    /// Next position to write.
    pub tail: u64,
    /// Last `head` seen.
    pub cached_head: u64,
}

/// Consumer-side protocol state.
#[derive(Clone, Copy, Debug, Default)]
#[doc(hidden)]
pub struct ConsumerState {
    /// Committed position (mirrors the segment's `head`).
    pub head: u64,
    /// Next position to read (`>= head`; the gap is peeked but not committed).
    pub read: u64,
    /// Last `tail` seen.
    pub cached_tail: u64,
}

/// Free slots as seen by the producer, refreshing `cached_head` if needed for `want` slots.
///
/// # Safety
/// `mem` holds a queue region of geometry `g`.
#[inline]
unsafe fn free_slots(mem: &Mem, g: &Geometry, st: &mut ProducerState, want: u64) -> u64 {
    let cap = g.capacity();
    let mut free = cap - (st.tail - st.cached_head);
    if free < want {
        // SAFETY: HEAD_OFFSET inside the region.
        // SYNC POINT: Acquire; pairs with the consumer's Release store of `head` in `commit`,
        // so the consumer's reads of those slots happened before we overwrite them.
        st.cached_head = unsafe { mem.u64_at(HEAD_OFFSET) }.load(Ordering::Acquire);
        free = cap - (st.tail - st.cached_head);
    }
    free
}

/// Pushes one message; `false` when full.
///
/// # Safety
/// `mem` holds a queue region of geometry `g` for `T` and this is its only producer.
#[inline]
#[doc(hidden)]
pub unsafe fn push<T: Pod>(mem: &Mem, g: &Geometry, st: &mut ProducerState, msg: &T) -> bool {
    // SAFETY: caller contract.
    if unsafe { free_slots(mem, g, st, 1) } == 0 {
        return false;
    }
    // SAFETY: the slot is in the region and owned by the producer until `tail` passes it.
    unsafe { mem.write_plain(g.slot(st.tail), msg) };
    st.tail += 1;
    // SAFETY: TAIL_OFFSET inside the region.
    // SYNC POINT: Release; pairs with the consumer's Acquire load of `tail` in `available`.
    unsafe { mem.u64_at(TAIL_OFFSET) }.store(st.tail, Ordering::Release);
    true
}

/// Pushes as many of `msgs` as fit, with one `tail` store; returns how many.
///
/// # Safety
/// As for [`push`].
#[inline]
#[doc(hidden)]
pub unsafe fn push_batch<T: Pod>(
    mem: &Mem,
    g: &Geometry,
    st: &mut ProducerState,
    msgs: &[T],
) -> usize {
    // SAFETY: caller contract.
    let free = unsafe { free_slots(mem, g, st, msgs.len() as u64) };
    let n = (free as usize).min(msgs.len());
    if n == 0 {
        return 0;
    }
    for (i, m) in msgs[..n].iter().enumerate() {
        // SAFETY: as in `push`; these `n` slots are free.
        unsafe { mem.write_plain(g.slot(st.tail + i as u64), m) };
    }
    st.tail += n as u64;
    // SAFETY: TAIL_OFFSET inside the region.
    // SYNC POINT: Release; pairs with the consumer's Acquire load of `tail` in `available`.
    unsafe { mem.u64_at(TAIL_OFFSET) }.store(st.tail, Ordering::Release);
    n
}

/// Messages readable past `st.read`, refreshing `cached_tail` if none are cached.
///
/// # Safety
/// `mem` holds a queue region.
#[inline]
#[doc(hidden)]
pub unsafe fn available(mem: &Mem, st: &mut ConsumerState) -> u64 {
    let mut n = st.cached_tail - st.read;
    if n == 0 {
        // SAFETY: TAIL_OFFSET inside the region.
        // SYNC POINT: Acquire; pairs with the producer's Release store of `tail` in `push`, so
        // the slot contents written before it are visible.
        st.cached_tail = unsafe { mem.u64_at(TAIL_OFFSET) }.load(Ordering::Acquire);
        n = st.cached_tail - st.read;
    }
    n
}

/// Reads the message at `st.read` without committing it; advances `st.read`.
///
/// # Safety
/// `mem` holds a queue region of geometry `g` for `T` and this is its only consumer.
#[inline]
#[doc(hidden)]
pub unsafe fn peek<T: Pod>(mem: &Mem, g: &Geometry, st: &mut ConsumerState) -> Option<T> {
    // SAFETY: caller contract.
    if unsafe { available(mem, st) } == 0 {
        return None;
    }
    // SAFETY: position `read` is below `tail` (published) and at or above `head` (not yet
    // released to the producer), so the slot is the consumer's and fully written.
    let v = unsafe { mem.read_plain(g.slot(st.read)) };
    st.read += 1;
    Some(v)
}

/// Commits the first `n` read-but-uncommitted messages (clamped); persists `head`.
///
/// # Safety
/// `mem` holds a queue region and this is its only consumer.
#[inline]
#[doc(hidden)]
pub unsafe fn commit(mem: &Mem, st: &mut ConsumerState, n: u64) {
    let n = n.min(st.read - st.head);
    if n == 0 {
        return;
    }
    st.head += n;
    // SAFETY: HEAD_OFFSET inside the region.
    // SYNC POINT: Release; pairs with the producer's Acquire load of `head` in `free_slots`:
    // our reads of the committed slots happen before the producer reuses them.
    unsafe { mem.u64_at(HEAD_OFFSET) }.store(st.head, Ordering::Release);
}

#[cfg(not(loom))]
pub use real::*;

#[cfg(not(loom))]
mod real {
    use super::*;
    use crate::segment::{
        self, my_identity, pid_alive, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy,
    };
    use std::marker::PhantomData;
    use std::path::Path;

    fn size_for(cap: u64, msg_size: u32) -> Option<usize> {
        segment::ring_size(cap, msg_size as usize, SLOTS_OFFSET)
    }

    fn spec<T: Pod>() -> segment::Spec {
        segment::Spec::of::<T>(SegmentKind::Spsc, size_for)
    }

    fn positions(seg: &Segment) -> Result<(u64, u64), SegmentError> {
        // SAFETY: validated queue region; offsets inside it.
        let (head, tail) = unsafe {
            (
                seg.mem.u64_at(HEAD_OFFSET).load(Ordering::Acquire),
                seg.mem.u64_at(TAIL_OFFSET).load(Ordering::Acquire),
            )
        };
        if head > tail || tail - head > seg.capacity {
            return Err(SegmentError::Corrupt {
                path: seg.path.clone(),
                detail: format!(
                    "head {head}, tail {tail}, capacity {}: positions inconsistent",
                    seg.capacity
                ),
            });
        }
        Ok((head, tail))
    }

    /// The producer end of a queue (the segment's owner).
    pub struct SpscProducer<T: Pod> {
        seg: Segment,
        g: Geometry,
        st: ProducerState,
        _t: PhantomData<T>,
    }

    // SAFETY: the producer's state is its own; the mapping may be used from any thread.
    unsafe impl<T: Pod + Send> Send for SpscProducer<T> {}

    impl<T: Pod> SpscProducer<T> {
        /// Creates the queue `dir/name` with `capacity_pow2` slots.
        ///
        /// A restarted producer passes [`StalePolicy::Recover`]: unconsumed messages are kept
        /// and pushing continues at the stored position.
        ///
        /// # Errors
        /// [`SegmentError::InUse`] if a live producer owns it; [`SegmentError::Stale`] per
        /// policy; [`SegmentError::Corrupt`] if recovered positions are inconsistent; header
        /// errors when recovering a segment of another layout; I/O errors.
        pub fn create(
            dir: &Path,
            name: &str,
            capacity_pow2: usize,
            stale: StalePolicy,
        ) -> Result<Self, SegmentError> {
            Self::attach(segment::create_ring::<T>(
                dir,
                name,
                &spec::<T>(),
                capacity_pow2,
                stale,
            )?)
        }

        /// Re-attaches to an existing queue as its producer (its previous producer must be
        /// dead or have dropped its handle).
        ///
        /// # Errors
        /// Open errors; [`SegmentError::InUse`] if another live process is the producer.
        pub fn open(dir: &Path, name: &str, opts: OpenOptions) -> Result<Self, SegmentError> {
            #[allow(clippy::let_unit_value)]
            let () = crate::sync::WordSized::<T>::OK;
            Self::attach(segment::open_as_owner(dir, name, &spec::<T>(), opts)?)
        }

        fn attach(seg: Segment) -> Result<Self, SegmentError> {
            let (head, tail) = positions(&seg)?;
            let g = Geometry::new(seg.capacity, core::mem::size_of::<T>());
            Ok(SpscProducer {
                seg,
                g,
                st: ProducerState {
                    tail,
                    cached_head: head,
                },
                _t: PhantomData,
            })
        }

        /// Pushes one message, or hands it back when the queue is full. No syscall.
        ///
        /// # Errors
        /// `Err(msg)` when full.
        #[inline]
        pub fn push(&mut self, msg: T) -> Result<(), T> {
            // SAFETY: validated region of geometry `g` for `T`; this handle is the only
            // producer (owner check at create/open, `&mut self`).
            if unsafe { push(&self.seg.mem, &self.g, &mut self.st, &msg) } {
                Ok(())
            } else {
                Err(msg)
            }
        }

        /// Pushes as many of `msgs` as fit (in order, one release store); returns how many.
        #[inline]
        pub fn push_batch(&mut self, msgs: &[T]) -> usize {
            // SAFETY: as in `push`.
            unsafe { push_batch(&self.seg.mem, &self.g, &mut self.st, msgs) }
        }

        /// Messages in the queue (pushed, not yet committed by the consumer).
        pub fn len(&self) -> usize {
            // SAFETY: HEAD_OFFSET inside the validated region.
            let head = unsafe { self.seg.mem.u64_at(HEAD_OFFSET) }.load(Ordering::Acquire);
            self.st.tail.saturating_sub(head) as usize
        }

        /// Whether the queue is empty.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Capacity in messages.
        pub fn capacity(&self) -> usize {
            self.seg.capacity as usize
        }

        /// Total messages ever pushed (the producer position).
        pub fn position(&self) -> u64 {
            self.st.tail
        }

        /// Stores the current monotonic time in the header's heartbeat word.
        pub fn heartbeat(&self) {
            self.seg.heartbeat();
        }

        /// Whether a consumer process is attached and alive.
        pub fn consumer_alive(&self) -> bool {
            // SAFETY: offsets inside the validated region.
            let (pid, start) = unsafe {
                (
                    self.seg
                        .mem
                        .u32_at(CONSUMER_PID_OFFSET)
                        .load(Ordering::Relaxed),
                    self.seg
                        .mem
                        .u64_at(CONSUMER_START_OFFSET)
                        .load(Ordering::Relaxed),
                )
            };
            pid_alive(pid, start)
        }
    }

    impl<T: Pod> Drop for SpscProducer<T> {
        fn drop(&mut self) {
            // Release ownership so that `SpscProducer::open` (or `create` with Recover) can
            // re-attach; the queue's contents and positions stay.
            segment::release_owner(&self.seg);
        }
    }

    /// The consumer end of a queue. Its committed position lives in the segment.
    pub struct SpscConsumer<T: Pod> {
        seg: Segment,
        g: Geometry,
        st: ConsumerState,
        pid: u32,
        _t: PhantomData<T>,
    }

    // SAFETY: the consumer's state is its own; the mapping may be used from any thread.
    unsafe impl<T: Pod + Send> Send for SpscConsumer<T> {}

    impl<T: Pod> SpscConsumer<T> {
        /// Opens the queue as its consumer, resuming at the committed position.
        ///
        /// # Errors
        /// Open errors (waiting up to `opts.wait` for a missing or uninitialized segment);
        /// [`SegmentError::InUse`] if another live consumer is attached;
        /// [`SegmentError::Corrupt`] if the positions are inconsistent.
        pub fn open(dir: &Path, name: &str, opts: OpenOptions) -> Result<Self, SegmentError> {
            #[allow(clippy::let_unit_value)]
            let () = crate::sync::WordSized::<T>::OK;
            let seg = segment::open(dir, name, &spec::<T>(), opts, true)?;
            let (my_pid, my_start) = my_identity();
            // SAFETY: offsets inside the validated region.
            let (pid_word, start_word) = unsafe {
                (
                    seg.mem.u32_at(CONSUMER_PID_OFFSET),
                    seg.mem.u64_at(CONSUMER_START_OFFSET),
                )
            };
            let old = pid_word.load(Ordering::Acquire);
            if old != 0 && pid_alive(old, start_word.load(Ordering::Relaxed)) {
                return Err(SegmentError::InUse {
                    path: seg.path.clone(),
                    pid: old,
                });
            }
            // CAS so that two consumers racing to attach cannot both win.
            pid_word
                .compare_exchange(old, my_pid, Ordering::AcqRel, Ordering::Acquire)
                .map_err(|now| SegmentError::InUse {
                    path: seg.path.clone(),
                    pid: now,
                })?;
            start_word.store(my_start, Ordering::Relaxed);
            let (head, tail) = positions(&seg)?;
            let g = Geometry::new(seg.capacity, core::mem::size_of::<T>());
            Ok(SpscConsumer {
                seg,
                g,
                st: ConsumerState {
                    head,
                    read: head,
                    cached_tail: tail,
                },
                pid: my_pid,
                _t: PhantomData,
            })
        }

        /// Reads and commits the next message (and any peeked before it). No syscall.
        #[inline]
        pub fn pop(&mut self) -> Option<T> {
            // SAFETY: validated region for `T`; this handle is the only consumer (pid claim).
            let v = unsafe { peek(&self.seg.mem, &self.g, &mut self.st) }?;
            // SAFETY: as above.
            unsafe { commit(&self.seg.mem, &mut self.st, u64::MAX) };
            Some(v)
        }

        /// Reads the next message without committing it; successive peeks read successive
        /// messages. Uncommitted messages are read again by a restarted consumer.
        #[inline]
        pub fn peek(&mut self) -> Option<T> {
            // SAFETY: as in `pop`.
            unsafe { peek(&self.seg.mem, &self.g, &mut self.st) }
        }

        /// Commits the oldest `n` peeked messages (clamped to how many were peeked).
        #[inline]
        pub fn commit(&mut self, n: usize) {
            // SAFETY: as in `pop`.
            unsafe { commit(&self.seg.mem, &mut self.st, n as u64) }
        }

        /// Forgets peeked-but-uncommitted messages: the next peek/pop reads them again.
        pub fn rewind(&mut self) {
            self.st.read = self.st.head;
        }

        /// Reads and commits up to `out.len()` messages (one release store); returns how many.
        #[inline]
        pub fn pop_batch(&mut self, out: &mut [T]) -> usize {
            let mut n = 0;
            while n < out.len() {
                // SAFETY: as in `pop`.
                match unsafe { peek(&self.seg.mem, &self.g, &mut self.st) } {
                    Some(v) => {
                        out[n] = v;
                        n += 1;
                    }
                    None => break,
                }
            }
            // SAFETY: as in `pop`.
            unsafe { commit(&self.seg.mem, &mut self.st, u64::MAX) };
            n
        }

        /// Messages available (published, not yet read by this handle).
        pub fn len(&self) -> usize {
            // SAFETY: TAIL_OFFSET inside the validated region.
            let tail = unsafe { self.seg.mem.u64_at(TAIL_OFFSET) }.load(Ordering::Acquire);
            tail.saturating_sub(self.st.read) as usize
        }

        /// Whether nothing is available.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Capacity in messages.
        pub fn capacity(&self) -> usize {
            self.seg.capacity as usize
        }

        /// Committed position (total messages consumed over the queue's life).
        pub fn position(&self) -> u64 {
            self.st.head
        }

        /// Whether the producer process is alive.
        pub fn producer_alive(&self) -> bool {
            self.seg.creator_alive()
        }
    }

    impl<T: Pod> Drop for SpscConsumer<T> {
        fn drop(&mut self) {
            // Detach so that another consumer may attach; uncommitted peeks are re-read.
            // SAFETY: offset inside the validated region.
            let w = unsafe { self.seg.mem.u32_at(CONSUMER_PID_OFFSET) };
            let _ = w.compare_exchange(self.pid, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}
