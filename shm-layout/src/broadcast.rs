//! Broadcast ring for market data: one writer that never waits, any number of readers.
//!
//! Algorithm: a per-slot sequence word used as a seqlock, as in Aeron's broadcast buffer
//! (`org.agrona.concurrent.broadcast`) and the classic seqlock (Boehm, "Can seqlocks get along
//! with programming language memory models?", MSPC 2012). Slot `i = p & (capacity - 1)` holds
//! position `p`. Its sequence word is `2p + 1` while position `p` is being written and `2p + 2`
//! once it is complete (0 = never written). A reader at position `c` loads the word of slot
//! `c & mask`: `2c + 2` means the message is there; smaller means not yet written (empty);
//! larger means the writer has lapped the reader. The payload is copied as relaxed atomic words
//! and the word is re-checked after an Acquire fence, so a torn copy is never returned.
//!
//! Layout (after the 128-byte header): `tail` (u64, next position to publish) padded to 128
//! bytes, then `capacity` slots of `round_up(8 + size_of::<T>(), 64)` bytes: `seq` u64 then the
//! message.

use crate::sync::{fence, Mem, Ordering};
use bytemuck::Pod;

/// Offset of the writer position word.
pub const TAIL_OFFSET: usize = 128;
/// Offset of slot 0.
pub const SLOTS_OFFSET: usize = 256;

/// Bytes per slot for a message of `msg_size` bytes.
pub const fn slot_stride(msg_size: usize) -> usize {
    (8 + msg_size + 63) & !63
}

/// Result of [`BroadcastReader::poll`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Poll<T> {
    /// Nothing new.
    Empty,
    /// The next message.
    Message(T),
    /// The writer overwrote `lost` messages this reader had not read; the cursor now points at
    /// the oldest message still readable.
    Lapped {
        /// How many messages were skipped.
        lost: u64,
    },
}

/// Protocol state shared by the real ring and the loom model: offsets and geometry.
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub struct Geometry {
    mask: u64,
    stride: usize,
}

impl Geometry {
    /// Geometry for `capacity` (a power of two) messages of `msg_size` bytes.
    pub fn new(capacity: u64, msg_size: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Geometry {
            mask: capacity - 1,
            stride: slot_stride(msg_size),
        }
    }
    #[inline]
    fn slot(&self, pos: u64) -> usize {
        SLOTS_OFFSET + ((pos & self.mask) as usize) * self.stride
    }
    /// Total bytes a region of this geometry needs.
    pub fn region_len(&self) -> usize {
        SLOTS_OFFSET + (self.mask as usize + 1) * self.stride
    }
}

/// Writes position `pos` (the writer's own counter).
///
/// # Safety
/// `mem` holds a broadcast region of geometry `g` for messages of type `T`, and this is its
/// only writer.
#[inline]
#[doc(hidden)]
pub unsafe fn write_at<T: Pod>(mem: &Mem, g: &Geometry, pos: u64, msg: &T) {
    let slot = g.slot(pos);
    // SAFETY: `slot` is an 8-aligned offset inside the region (caller contract).
    let seq = unsafe { mem.u64_at(slot) };
    seq.store(2 * pos + 1, Ordering::Relaxed);
    // SYNC POINT: this Release fence orders the odd (busy) sequence before the payload stores;
    // pairs with the reader's Acquire fence in `read_at` (a reader that sees any new payload
    // word then sees the odd or a newer sequence on its re-check).
    fence(Ordering::Release);
    // SAFETY: the payload follows the sequence word inside the slot.
    unsafe { crate::sync::store_msg(mem, slot + 8, msg) };
    // SYNC POINT: Release; pairs with the reader's Acquire load of the slot sequence.
    seq.store(2 * pos + 2, Ordering::Release);
}

/// Publishes the writer position (after one or more `write_at`).
///
/// # Safety
/// As for [`write_at`].
#[inline]
#[doc(hidden)]
pub unsafe fn publish_tail(mem: &Mem, next: u64) {
    // SAFETY: TAIL_OFFSET is inside the region.
    // SYNC POINT: Release; pairs with the Acquire loads of `tail` in `tail` (readers' lag,
    // open, and lap recovery).
    unsafe { mem.u64_at(TAIL_OFFSET) }.store(next, Ordering::Release);
}

/// Loads the writer position.
///
/// # Safety
/// `mem` holds a broadcast region.
#[inline]
#[doc(hidden)]
pub unsafe fn tail(mem: &Mem) -> u64 {
    // SAFETY: TAIL_OFFSET is inside the region.
    // SYNC POINT: Acquire; pairs with `publish_tail`.
    unsafe { mem.u64_at(TAIL_OFFSET) }.load(Ordering::Acquire)
}

/// One read attempt at `*cursor`; advances the cursor on `Message` and `Lapped`.
///
/// The payload is loaded right after the sequence word and before the sequence is looked at:
/// a slot spans two cache lines (`seq` and the first 56 bytes of the message, then its last
/// 8 bytes), and loading both before the branch lets the core fetch them together. With the
/// branch first (predicted "empty" while the reader spins), the second line was requested
/// only once the first had arrived: two core-to-core transfers in series per message instead
/// of one. A reader that spins on `poll` also keeps both lines shared, so the writer's store
/// to the second line is a transfer from this core rather than a miss to memory. The copy is
/// discarded unless the sequence says it is complete and unchanged (same protocol as before).
///
/// # Safety
/// `mem` holds a broadcast region of geometry `g` for messages of type `T`.
#[inline]
#[doc(hidden)]
pub unsafe fn read_at<T: Pod>(mem: &Mem, g: &Geometry, cursor: &mut u64) -> Poll<T> {
    let c = *cursor;
    let slot = g.slot(c);
    // SAFETY: `slot` is inside the region (caller contract).
    let seq = unsafe { mem.u64_at(slot) };
    let want = 2 * c + 2;
    // SYNC POINT: Acquire; pairs with the writer's Release store of `2p + 2` in `write_at`.
    let s1 = seq.load(Ordering::Acquire);
    // SAFETY: payload inside the slot. Relaxed atomic words: a copy torn by a concurrent
    // write is harmless, it is discarded by the checks below.
    let msg: T = unsafe { crate::sync::load_msg(mem, slot + 8) };
    if s1 < want {
        // Not yet written, or position `c` is being written (`2c + 1`).
        return Poll::Empty;
    }
    if s1 == want {
        // SYNC POINT: Acquire fence; pairs with the writer's Release fence in `write_at`: if any
        // payload word came from a later write, the re-check below sees its odd sequence.
        fence(Ordering::Acquire);
        let s2 = seq.load(Ordering::Relaxed);
        if s2 == want {
            *cursor = c + 1;
            return Poll::Message(msg);
        }
    }
    // Lapped: the slot holds (or is being overwritten by) a later position, so position `c` is
    // gone. Every position below `tail + 1 - capacity` is gone too (its slot holds a complete or
    // in-progress later position); skip to the oldest one that may be intact. `tail` may lag the
    // sequence word seen above (that store was Relaxed), so skip at least `c` itself. Every
    // skipped position is counted exactly once: counted loss == true loss.
    // SAFETY: caller contract.
    let t = unsafe { tail(mem) };
    let oldest = (t + 1).saturating_sub(g.mask + 1).max(c + 1);
    *cursor = oldest;
    Poll::Lapped { lost: oldest - c }
}

/// Prefetch of the cache line holding `p`, for writing or reading: a hint, no-op off x86-64.
/// "For writing" is `_MM_HINT_ET0`, which is `prefetchw` only in a build with the `prfchw`
/// target feature; the default x86-64 target (this project's) compiles it to `prefetcht0`, a
/// read prefetch. A scratch build with `prefetchw` itself measured no faster in the e2e
/// (docs/benchmarks.md, "Where the stage's excess over the ring lies").
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn prefetch(p: *const u8, for_write: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults or changes memory, whatever the address; the `sse`
    // target feature it is declared with is part of the x86-64 baseline.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
        if for_write {
            _mm_prefetch::<_MM_HINT_ET0>(p.cast::<i8>());
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, for_write);
}

/// How far ahead of its cursor [`BroadcastReader::poll`] prefetches, in positions.
pub const PREFETCH_AHEAD: u64 = 4;

#[cfg(not(loom))]
pub use real::*;

#[cfg(not(loom))]
mod real {
    use super::*;
    use crate::segment::{self, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy};
    use std::marker::PhantomData;
    use std::path::Path;

    fn size_for(cap: u64, msg_size: u32) -> Option<usize> {
        segment::ring_size(cap, slot_stride(msg_size as usize), SLOTS_OFFSET)
    }

    fn spec<T: Pod>() -> segment::Spec {
        segment::Spec::of::<T>(SegmentKind::Broadcast, size_for)
    }

    /// The single writer of a broadcast ring. Never waits for readers.
    pub struct BroadcastWriter<T: Pod> {
        seg: Segment,
        g: Geometry,
        pos: u64,
        _t: PhantomData<T>,
    }

    // SAFETY: the writer owns its position and the mapping; moving it to another thread is fine.
    unsafe impl<T: Pod + Send> Send for BroadcastWriter<T> {}

    impl<T: Pod> BroadcastWriter<T> {
        /// Creates the ring `dir/name` with `capacity_pow2` slots (a power of two).
        ///
        /// With [`StalePolicy::Recover`] a ring left by a dead writer is adopted and publishing
        /// continues from its position.
        ///
        /// # Errors
        /// [`SegmentError::InUse`] if a live writer owns it; [`SegmentError::Stale`] per policy;
        /// [`SegmentError::SizeMismatch`] if the capacity is not a power of two; I/O errors.
        pub fn create(
            dir: &Path,
            name: &str,
            capacity_pow2: usize,
            stale: StalePolicy,
        ) -> Result<Self, SegmentError> {
            let seg = segment::create_ring::<T>(dir, name, &spec::<T>(), capacity_pow2, stale)?;
            let g = Geometry::new(seg.capacity, core::mem::size_of::<T>());
            // SAFETY: validated broadcast region.
            let pos = unsafe { tail(&seg.mem) };
            Ok(BroadcastWriter {
                seg,
                g,
                pos,
                _t: PhantomData,
            })
        }

        /// Publishes one message; returns its position (0-based). Never waits; no syscall.
        #[inline]
        pub fn publish(&mut self, msg: &T) -> u64 {
            let p = self.pos;
            // SAFETY: validated region of geometry `g` for `T`; `&mut self` makes this the only
            // writer in this process and the owner check at create makes it the only one anywhere.
            unsafe {
                write_at(&self.seg.mem, &self.g, p, msg);
                publish_tail(&self.seg.mem, p + 1);
            }
            self.pos = p + 1;
            p
        }

        /// Publishes a batch (one `tail` store at the end).
        #[inline]
        pub fn publish_batch(&mut self, msgs: &[T]) {
            let mut p = self.pos;
            for m in msgs {
                // SAFETY: as in `publish`.
                unsafe { write_at(&self.seg.mem, &self.g, p, m) };
                p += 1;
            }
            // SAFETY: as in `publish`.
            unsafe { publish_tail(&self.seg.mem, p) };
            self.pos = p;
        }

        /// Next position to be published (= number of messages published so far).
        pub fn position(&self) -> u64 {
            self.pos
        }

        /// Number of slots.
        pub fn capacity(&self) -> usize {
            self.seg.capacity as usize
        }

        /// Stores the current monotonic time in the header's heartbeat word.
        pub fn heartbeat(&self) {
            self.seg.heartbeat();
        }

        /// Path of the segment.
        pub fn path(&self) -> &Path {
            &self.seg.path
        }
    }

    /// A reader of a broadcast ring, with its own cursor (not shared, not persisted).
    pub struct BroadcastReader<T: Pod> {
        seg: Segment,
        g: Geometry,
        cursor: u64,
        _t: PhantomData<T>,
    }

    // SAFETY: the reader only loads from the mapping; its cursor is its own.
    unsafe impl<T: Pod + Send> Send for BroadcastReader<T> {}

    impl<T: Pod> BroadcastReader<T> {
        /// Opens the ring read-only; the cursor starts at the writer's current position.
        ///
        /// # Errors
        /// Every [`SegmentError`] of opening: missing, not initialized, magic, version, fingerprint,
        /// kind or message type, size.
        pub fn open(dir: &Path, name: &str, opts: OpenOptions) -> Result<Self, SegmentError> {
            let mut r = Self::open_from_start(dir, name, opts)?;
            // SAFETY: validated broadcast region.
            r.cursor = unsafe { tail(&r.seg.mem) };
            Ok(r)
        }

        /// Opens the ring read-only with the cursor at the oldest message still in the ring.
        ///
        /// # Errors
        /// As [`BroadcastReader::open`].
        pub fn open_from_start(
            dir: &Path,
            name: &str,
            opts: OpenOptions,
        ) -> Result<Self, SegmentError> {
            #[allow(clippy::let_unit_value)]
            let () = crate::sync::WordSized::<T>::OK;
            let seg = segment::open(dir, name, &spec::<T>(), opts, false)?;
            let g = Geometry::new(seg.capacity, core::mem::size_of::<T>());
            // SAFETY: validated broadcast region.
            let t = unsafe { tail(&seg.mem) };
            let cursor = (t + 1).saturating_sub(seg.capacity);
            Ok(BroadcastReader {
                seg,
                g,
                cursor,
                _t: PhantomData,
            })
        }

        /// Reads the next message, reports a lap, or says there is nothing new. No syscall, no
        /// allocation, never blocks.
        ///
        /// After a message it asks for the slot [`PREFETCH_AHEAD`] positions on (a hint): a
        /// reader that is behind the writer finds it in its cache instead of fetching its two
        /// lines from the writer's core when it gets there; a reader that keeps up holds the
        /// slot's lines before the writer writes them, so the writer takes them from this
        /// core rather than from memory (32 MB for the feed's 262,144 slots).
        #[inline]
        pub fn poll(&mut self) -> Poll<T> {
            // SAFETY: validated region of geometry `g` for `T`.
            let p = unsafe { read_at(&self.seg.mem, &self.g, &mut self.cursor) };
            if let Poll::Message(_) = p {
                let slot = self.g.slot(self.cursor + PREFETCH_AHEAD);
                prefetch(self.seg.mem.ptr_at(slot), false);
                prefetch(self.seg.mem.ptr_at(slot + 64), false);
            }
            p
        }

        /// Whether [`BroadcastReader::poll`] would return something other than
        /// [`Poll::Empty`] (a message or a lap), without reading it: a cheap test for a loop
        /// that spins until there is work. It loads the whole slot, as `poll` does, so that a
        /// reader spinning on it keeps both of the slot's cache lines (see [`read_at`]).
        #[inline]
        pub fn ready(&self) -> bool {
            let mut c = self.cursor;
            // SAFETY: validated region of geometry `g` for `T`; the cursor copy is discarded.
            let p: Poll<T> = unsafe { read_at(&self.seg.mem, &self.g, &mut c) };
            !matches!(p, Poll::Empty)
        }

        /// Moves the cursor to the writer's position, skipping every message published but
        /// not yet read; returns how many were skipped. For a reader that has just been
        /// lapped and rebuilds its state from something as new as the writer (the
        /// last-value table, which the feed writes before the ring): the messages between
        /// the oldest readable one and the writer are older than that state, and reading
        /// them only gives the writer time to lap the reader again. No syscall.
        pub fn skip_to_writer(&mut self) -> u64 {
            // SAFETY: validated broadcast region.
            let t = unsafe { tail(&self.seg.mem) };
            let skipped = t.saturating_sub(self.cursor);
            self.cursor = self.cursor.max(t);
            skipped
        }

        /// Messages published but not yet read by this reader.
        pub fn lag(&self) -> u64 {
            // SAFETY: validated broadcast region.
            unsafe { tail(&self.seg.mem) }.saturating_sub(self.cursor)
        }

        /// The writer's position (messages published so far); for tools.
        pub fn writer_position(&self) -> u64 {
            // SAFETY: validated broadcast region.
            unsafe { tail(&self.seg.mem) }
        }

        /// This reader's cursor (next position it will read).
        pub fn position(&self) -> u64 {
            self.cursor
        }

        /// Number of slots.
        pub fn capacity(&self) -> usize {
            self.seg.capacity as usize
        }

        /// Whether the writer process is alive (pid and start time); off the hot path.
        pub fn writer_alive(&self) -> bool {
            self.seg.creator_alive()
        }

        /// Writer heartbeat (monotonic ns).
        pub fn writer_heartbeat_ns(&self) -> u64 {
            self.seg.heartbeat_ns()
        }
    }
}
