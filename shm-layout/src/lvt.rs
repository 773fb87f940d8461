//! Last-value table: the latest [`LastValue`] of each instrument under a per-entry seqlock.
//!
//! One writer (the feed handler) updates entries; any number of readers take consistent
//! snapshots without locks. Protocol (Boehm's seqlock, MSPC 2012; the Linux kernel's
//! `seqcount`): the entry's sequence word is even when stable (0 = never written) and odd while
//! being written. The writer stores the next odd value, a Release fence, the payload as relaxed
//! words, then the next even value with Release. A reader loads the word (Acquire), copies the
//! payload (relaxed words), issues an Acquire fence and re-loads the word: equal and even means
//! the copy is consistent; otherwise it retries.
//!
//! Layout (after the 128-byte header): 128 reserved bytes, then at 256 `capacity` entries of
//! `round_up(8 + 384, 64) = 448` bytes: `seq` u64 then the [`LastValue`].

use crate::messages::LastValue;
use crate::sync::{fence, spin_hint, Mem, Ordering};
use bytemuck::Pod;

/// Offset of entry 0.
pub const ENTRIES_OFFSET: usize = 256;
/// Bytes per entry.
pub const ENTRY_STRIDE: usize = entry_stride(core::mem::size_of::<LastValue>());
/// How many torn or busy attempts a read makes before giving up (a writer that died mid-write).
pub const READ_ATTEMPTS: u32 = 1 << 16;

/// Bytes per entry for a value of `size` bytes.
pub const fn entry_stride(size: usize) -> usize {
    (8 + size + 63) & !63
}

/// Writes `v` into the entry at byte offset `off` (its sequence word).
///
/// # Safety
/// `mem` holds an entry for a `T` at `off`; this is the entry's only writer.
#[inline]
#[doc(hidden)]
pub unsafe fn write_entry<T: Pod>(mem: &Mem, off: usize, v: &T) {
    // SAFETY: caller contract.
    let seq = unsafe { mem.u64_at(off) };
    let s = seq.load(Ordering::Relaxed);
    // From even s: s+1. From odd s (a writer died mid-write, we took over): s+2, still odd.
    let busy = (s | 1) + if s & 1 == 1 { 2 } else { 0 };
    seq.store(busy, Ordering::Relaxed);
    // SYNC POINT: Release fence orders the odd sequence before the payload stores; pairs with
    // the reader's Acquire fence in `read_entry`.
    fence(Ordering::Release);
    // SAFETY: payload follows the sequence word inside the entry.
    unsafe { crate::sync::store_msg(mem, off + 8, v) };
    // SYNC POINT: Release; pairs with the reader's first Acquire load of the sequence.
    seq.store(busy + 1, Ordering::Release);
}

/// Reads a consistent copy of the entry at `off`; `None` if never written, or if it stayed busy
/// or torn for [`READ_ATTEMPTS`] attempts.
///
/// # Safety
/// `mem` holds an entry for a `T` at `off`.
#[inline]
#[doc(hidden)]
pub unsafe fn read_entry<T: Pod>(mem: &Mem, off: usize, attempts: u32) -> Option<T> {
    // SAFETY: caller contract.
    let seq = unsafe { mem.u64_at(off) };
    for _ in 0..attempts {
        // SYNC POINT: Acquire; pairs with the writer's final Release store in `write_entry`.
        let s1 = seq.load(Ordering::Acquire);
        if s1 == 0 {
            return None;
        }
        if s1 & 1 == 0 {
            // SAFETY: payload inside the entry.
            let v: T = unsafe { crate::sync::load_msg(mem, off + 8) };
            // SYNC POINT: Acquire fence; pairs with the writer's Release fence in
            // `write_entry`: a payload word from a newer write implies we see its odd sequence.
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s1 {
                return Some(v);
            }
        }
        spin_hint();
    }
    None
}

#[cfg(not(loom))]
pub use real::*;

#[cfg(not(loom))]
mod real {
    use super::*;
    use crate::segment::{self, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy};
    use std::path::Path;

    fn size_for(cap: u64, msg_size: u32) -> Option<usize> {
        usize::try_from(cap)
            .ok()?
            .checked_mul(entry_stride(msg_size as usize))?
            .checked_add(ENTRIES_OFFSET)
    }

    fn spec() -> segment::Spec {
        segment::Spec {
            kind: SegmentKind::LastValue,
            msg_type: "LastValue",
            msg_size: core::mem::size_of::<LastValue>() as u32,
            msg_align: core::mem::align_of::<LastValue>() as u32,
            size_for,
        }
    }

    /// A last-value table, either created (writer) or opened (read-only mapping).
    ///
    /// Not `Sync`: [`LastValueTable::write`] takes `&self` but the seqlock allows only one
    /// writer per entry, so a handle is used from one thread at a time.
    pub struct LastValueTable {
        seg: Segment,
        writable: bool,
        _not_sync: core::marker::PhantomData<core::cell::Cell<()>>,
    }

    // SAFETY: the handle owns its mapping; moving it between threads is fine (it is not Sync).
    unsafe impl Send for LastValueTable {}

    impl LastValueTable {
        /// Creates the table with room for `capacity_instruments` entries (ids `0..capacity`).
        ///
        /// # Errors
        /// As for any segment creation: in use, stale per policy, size or I/O errors.
        pub fn create(
            dir: &Path,
            name: &str,
            capacity_instruments: usize,
            stale: StalePolicy,
        ) -> Result<Self, SegmentError> {
            let (seg, _) = segment::create(
                dir,
                name,
                &spec(),
                capacity_instruments as u64,
                stale,
                &|_| {},
            )?;
            Ok(LastValueTable {
                seg,
                writable: true,
                _not_sync: core::marker::PhantomData,
            })
        }

        /// Opens the table read-only.
        ///
        /// # Errors
        /// Every open error of [`SegmentError`].
        pub fn open(dir: &Path, name: &str, opts: OpenOptions) -> Result<Self, SegmentError> {
            let seg = segment::open(dir, name, &spec(), opts, false)?;
            Ok(LastValueTable {
                seg,
                writable: false,
                _not_sync: core::marker::PhantomData,
            })
        }

        /// Writes the entry of `id` (writer only). Out-of-range ids are ignored (and return
        /// `false`). No syscall, no allocation.
        ///
        /// # Panics
        /// If this handle was opened read-only.
        #[inline]
        pub fn write(&self, id: u32, v: &LastValue) -> bool {
            assert!(self.writable, "LastValueTable::write on a read-only handle");
            if u64::from(id) >= self.seg.capacity {
                return false;
            }
            let off = ENTRIES_OFFSET + id as usize * ENTRY_STRIDE;
            // SAFETY: `id < capacity`, so the entry is inside the validated region; this handle
            // is the creator (only writer) and is not Sync.
            unsafe { write_entry(&self.seg.mem, off, v) };
            true
        }

        /// A consistent snapshot of the entry of `id`; `None` if out of range, never written,
        /// or (after [`READ_ATTEMPTS`] tries) left half-written by a dead writer.
        #[inline]
        pub fn read(&self, id: u32) -> Option<LastValue> {
            if u64::from(id) >= self.seg.capacity {
                return None;
            }
            let off = ENTRIES_OFFSET + id as usize * ENTRY_STRIDE;
            // SAFETY: `id < capacity`: inside the validated region.
            unsafe { read_entry(&self.seg.mem, off, READ_ATTEMPTS) }
        }

        /// Sequence word of entry `id` (even = stable; changes on every write); for tools.
        pub fn entry_seq(&self, id: u32) -> Option<u64> {
            if u64::from(id) >= self.seg.capacity {
                return None;
            }
            let off = ENTRIES_OFFSET + id as usize * ENTRY_STRIDE;
            // SAFETY: inside the validated region.
            Some(unsafe { self.seg.mem.u64_at(off) }.load(Ordering::Acquire))
        }

        /// Number of entries.
        pub fn capacity(&self) -> usize {
            self.seg.capacity as usize
        }

        /// Stores the current monotonic time in the header's heartbeat word (writer only).
        pub fn heartbeat(&self) {
            if self.writable {
                self.seg.heartbeat();
            }
        }

        /// Whether the writer process is alive.
        pub fn writer_alive(&self) -> bool {
            self.seg.creator_alive()
        }
    }
}
