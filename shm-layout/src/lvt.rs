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
//! Partial writes ([`write_entry_words`], [`LastValueTable::apply`]) follow the same protocol
//! but store only the words an update changes (e.g. 7 words for an option mark instead of 48):
//! the words left alone keep the value of the previous stable state, so a reader still sees
//! either the old or the new entry, never a mix. Readers are unchanged.
//!
//! Layout (after the 128-byte header): 128 reserved bytes, then at 256 `capacity` entries of
//! `round_up(8 + 384, 64) = 448` bytes: `seq` u64 then the [`LastValue`].

use crate::messages::{LastValue, DEPTH_LEVELS};
use crate::sync::{fence, spin_hint, Mem, Ordering};
use bytemuck::Pod;

/// Offset of entry 0.
pub const ENTRIES_OFFSET: usize = 256;
/// Bytes per entry.
pub const ENTRY_STRIDE: usize = entry_stride(core::mem::size_of::<LastValue>());
/// How many torn or busy attempts a read makes before giving up (a writer that died mid-write).
pub const READ_ATTEMPTS: u32 = 1 << 16;

/// Word indices (8-byte words from the start of a [`LastValue`]) of the groups a partial write
/// stores; checked against the struct at compile time.
#[cfg_attr(loom, allow(dead_code))]
mod word {
    use super::LastValue;
    use core::mem::offset_of;
    /// `last_seq`, `exch_ts_ns`, `recv_ts_ns`, then `instrument_id` and `valid` in one word.
    pub const HEADER: usize = 0;
    pub const ID_VALID: usize = 3;
    pub const QUOTE: usize = 4;
    pub const MARK: usize = 8;
    pub const PRICE: usize = 11;
    pub const TRADE: usize = 12;
    /// `bid_levels` and `ask_levels` in one word, then `bid_depth`, then `ask_depth`.
    pub const LEVELS: usize = 14;
    pub const BID_DEPTH: usize = 15;
    pub const ASK_DEPTH: usize = 31;
    const _: () = assert!(
        offset_of!(LastValue, last_seq) == 8 * HEADER
            && offset_of!(LastValue, exch_ts_ns) == 8 * (HEADER + 1)
            && offset_of!(LastValue, recv_ts_ns) == 8 * (HEADER + 2)
            && offset_of!(LastValue, instrument_id) == 8 * ID_VALID
            && offset_of!(LastValue, valid) == 8 * ID_VALID + 4
            && offset_of!(LastValue, bid_px) == 8 * QUOTE
            && offset_of!(LastValue, ask_qty) == 8 * (QUOTE + 3)
            && offset_of!(LastValue, mark_px) == 8 * MARK
            && offset_of!(LastValue, mark_underlying_px) == 8 * (MARK + 2)
            && offset_of!(LastValue, price) == 8 * PRICE
            && offset_of!(LastValue, last_trade_px) == 8 * TRADE
            && offset_of!(LastValue, last_trade_qty) == 8 * (TRADE + 1)
            && offset_of!(LastValue, bid_levels) == 8 * LEVELS
            && offset_of!(LastValue, ask_levels) == 8 * LEVELS + 4
            && offset_of!(LastValue, bid_depth) == 8 * BID_DEPTH
            && offset_of!(LastValue, ask_depth) == 8 * ASK_DEPTH
            && ASK_DEPTH + 2 * super::DEPTH_LEVELS == 47
    );
}

/// Both sides of the book's depth, for [`LastValueTable::apply`] (same meaning as the
/// `*_levels` and `*_depth` fields of [`LastValue`]).
#[derive(Debug, Clone, Copy)]
pub struct DepthUpdate<'a> {
    /// Valid bid levels (0..=DEPTH_LEVELS).
    pub bid_levels: u32,
    /// Valid ask levels.
    pub ask_levels: u32,
    /// Bid depth, best first: `[price, qty]`.
    pub bids: &'a [[f64; 2]; DEPTH_LEVELS],
    /// Ask depth, best first.
    pub asks: &'a [[f64; 2]; DEPTH_LEVELS],
    /// Bid levels that may differ from the entry's current ones (bit `i`: level `i`). A clear
    /// bit is the caller's promise that the level already holds its new value (the single
    /// writer knows what it published last), so it is not touched;
    /// [`DepthUpdate::ALL_CHANGED`] promises nothing and each word is compared instead.
    pub bid_changed: u32,
    /// Ask levels that may differ, as `bid_changed`.
    pub ask_changed: u32,
}

impl DepthUpdate<'_> {
    /// Every level may have changed (no promise).
    pub const ALL_CHANGED: u32 = u32::MAX;
}

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

/// Partial write of the entry at `off`: under one odd/even sequence pair, stores only the given
/// runs of payload words (`(first word index within the payload, words)`); the other words keep
/// their previous (stable) values. Same protocol and orderings as [`write_entry`].
///
/// Returns `false` without writing if the entry was left odd by a writer that died mid-write
/// (its untouched words may be torn): the caller must rewrite it whole with [`write_entry`].
///
/// # Safety
/// `mem` holds an entry whose payload has at least `first + words.len()` words for every run;
/// this is the entry's only writer.
#[inline]
#[doc(hidden)]
pub unsafe fn write_entry_words(mem: &Mem, off: usize, runs: &[(usize, &[u64])]) -> bool {
    // SAFETY: caller contract.
    let Some(s) = (unsafe { begin_partial(mem, off) }) else {
        return false;
    };
    for (first, words) in runs {
        // SAFETY: the run lies inside the entry's payload (caller contract), 8-aligned.
        unsafe { mem.store_words(off + 8 + 8 * first, words) };
    }
    // SAFETY: caller contract; `s` from `begin_partial`.
    unsafe { end_partial(mem, off, s) };
    true
}

/// Opens a partial write of the entry at `off`: stores the odd sequence `s + 1` and a Release
/// fence, and returns the even `s`; `None` (nothing stored) if the entry is odd (a writer died
/// mid-write). The caller then stores payload words (relaxed) and calls [`end_partial`].
///
/// # Safety
/// `mem` holds an entry at `off`; this is the entry's only writer.
#[inline(always)]
unsafe fn begin_partial(mem: &Mem, off: usize) -> Option<u64> {
    // SAFETY: caller contract.
    let seq = unsafe { mem.u64_at(off) };
    let s = seq.load(Ordering::Relaxed);
    if s & 1 == 1 {
        return None;
    }
    seq.store(s + 1, Ordering::Relaxed);
    // SYNC POINT: Release fence orders the odd sequence before the payload stores that follow;
    // pairs with the reader's Acquire fence in `read_entry` (a reader that copies any payload
    // word stored after this then sees an odd or newer sequence on its re-check and retries).
    fence(Ordering::Release);
    Some(s)
}

/// Stores one side of a depth update at `off` (its first word) inside a partial write: the
/// levels named in `changed`, both words of each, without looking; without a promise
/// ([`DepthUpdate::ALL_CHANGED`]), the words that differ from the stored ones (bit masks from
/// branch-free compares, then one store per set bit). A word left alone already holds its new
/// value, so readers see the same old-or-new entry.
///
/// # Safety
/// `mem` holds `2 * DEPTH_LEVELS` words at `off` (8-aligned) inside an entry opened with
/// [`begin_partial`]; this is the entry's only writer.
#[cfg(not(loom))] // its only caller, `LastValueTable::apply`, is not in the loom build
#[inline(always)]
unsafe fn store_depth_side(mem: &Mem, off: usize, words: &[u64; 2 * DEPTH_LEVELS], changed: u32) {
    const ALL: u32 = (1 << DEPTH_LEVELS) - 1;
    let at = |i: usize| {
        // SAFETY: `i < 2 * DEPTH_LEVELS`: one of the words of the caller contract.
        unsafe { mem.u64_at(off + 8 * i) }
    };
    let mut m = 0u32;
    if changed & ALL == ALL {
        for (i, w) in words.iter().enumerate() {
            // The writer's own earlier stores (single writer: no race).
            m |= u32::from(at(i).load(Ordering::Relaxed) != *w) << i;
        }
    } else {
        let l = changed & ALL;
        if l == 0 {
            return;
        }
        // The lowest and the highest named level without a data-dependent branch (a quote
        // usually names one or two, in a random pattern a loop exit would mispredict on; with
        // one, the same level is stored twice), then any others.
        let (lo, hi) = (l.trailing_zeros() as usize, 31 - l.leading_zeros() as usize);
        for i in [2 * lo, 2 * lo + 1, 2 * hi, 2 * hi + 1] {
            at(i).store(words[i], Ordering::Relaxed);
        }
        let mut rest = l & !(1 << lo) & !(1 << hi);
        while rest != 0 {
            m |= 3 << (2 * rest.trailing_zeros());
            rest &= rest - 1;
        }
    }
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        at(i).store(words[i], Ordering::Relaxed);
        m &= m - 1;
    }
}

/// Closes a partial write opened by [`begin_partial`] (which returned `s`).
///
/// # Safety
/// As for [`begin_partial`].
#[inline(always)]
unsafe fn end_partial(mem: &Mem, off: usize, s: u64) {
    // SAFETY: caller contract.
    let seq = unsafe { mem.u64_at(off) };
    // SYNC POINT: Release; pairs with the reader's first Acquire load of the sequence: a
    // reader that sees `s + 2` sees every payload store above.
    seq.store(s + 2, Ordering::Release);
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
    use crate::messages::{MarketEvent, MarketEventKind};

    // `apply` reads a MarketEvent as words: 0 `seq`, 1 `exch_ts_ns`, 2 `recv_ts_ns`, 4..8 `v`.
    const _: () = assert!(
        core::mem::offset_of!(MarketEvent, seq) == 0
            && core::mem::offset_of!(MarketEvent, exch_ts_ns) == 8
            && core::mem::offset_of!(MarketEvent, recv_ts_ns) == 16
            && core::mem::offset_of!(MarketEvent, v) == 32
            && core::mem::size_of::<MarketEvent>() == 64
    );
    use crate::segment::{self, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy};
    use std::path::Path;

    fn size_for(cap: u64, msg_size: u32) -> Option<usize> {
        segment::records_size(cap, entry_stride(msg_size as usize), ENTRIES_OFFSET)
    }

    fn spec() -> segment::Spec {
        segment::Spec::of::<LastValue>(SegmentKind::LastValue, size_for)
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

        /// Asks the core to bring the cache lines that [`LastValueTable::apply`] of an event of
        /// `id` will store to into its cache (x86-64 `_MM_HINT_ET0`: `prefetcht0` on the
        /// default target, see `broadcast::prefetch`; nothing elsewhere): the sequence word and the header, quote, mark, price and trade words
        /// (the entry's first two lines), and with `with_depth` the depth words too (the
        /// rest of the entry). A hint only: no value changes, no ordering, nothing waits.
        ///
        /// Why: the table has one 448-byte entry per instrument (4.5 MB for 10,000), so the
        /// entry an event updates is usually not in the feed's cache, and on x86 the ring
        /// slot's stores that follow the entry's cannot become visible before them. A writer
        /// that knows the next event before it may publish it (a paced source waiting for the
        /// event's time) calls this meanwhile; the stores of `apply` then hit the cache.
        #[inline]
        pub fn prefetch_for_update(&self, id: u32, with_depth: bool) {
            if u64::from(id) >= self.seg.capacity {
                return;
            }
            let off = ENTRIES_OFFSET + id as usize * ENTRY_STRIDE;
            let lines = if with_depth { ENTRY_STRIDE / 64 } else { 2 };
            for i in 0..lines {
                crate::broadcast::prefetch(self.seg.mem.ptr_at(off + 64 * i), true);
            }
        }

        /// Applies a market event to the entry of `id` in place, exactly as
        /// [`LastValue::apply`] followed (if `depth` is given) by setting the depth fields and
        /// `HAS_DEPTH` would, but storing only the words that change (writer only): the header
        /// (4 words) plus 4 for a quote, 3 for a mark, 1 for a price, 2 for a trade, and for
        /// depth only the level-count and `[price, qty]` words that differ from the entry's.
        /// Same seqlock as [`LastValueTable::write`]: readers see the entry before or after,
        /// never a mix. Out-of-range ids are ignored (`false`). No syscall, no
        /// allocation.
        ///
        /// An entry left mid-write by a dead writer (after `StalePolicy::Recover`) is rewritten
        /// whole instead, with only this update's fields valid.
        ///
        /// # Panics
        /// If this handle was opened read-only.
        #[inline(always)]
        pub fn apply(&self, id: u32, e: &MarketEvent, depth: Option<&DepthUpdate<'_>>) -> bool {
            assert!(self.writable, "LastValueTable::apply on a read-only handle");
            if u64::from(id) >= self.seg.capacity {
                return false;
            }
            let off = ENTRIES_OFFSET + id as usize * ENTRY_STRIDE;
            let mem = &self.seg.mem;
            // The writer's own last store of `instrument_id`/`valid` (single writer: no race).
            // SAFETY: `id < capacity`: word inside the validated region, 8-aligned.
            let w3 = unsafe { mem.u64_at(off + 8 + 8 * word::ID_VALID) }.load(Ordering::Relaxed);
            let [_, mut valid]: [u32; 2] = bytemuck::cast(w3);
            let kind = e.kind();
            valid = match kind {
                Ok(MarketEventKind::Quote) => LastValue::valid_after_quote(valid, e.flags),
                _ => valid,
            };
            valid |= match kind {
                Ok(MarketEventKind::Quote) => LastValue::HAS_QUOTE,
                Ok(MarketEventKind::OptionMark) => LastValue::HAS_MARK,
                Ok(MarketEventKind::UnderlyingPrice) => LastValue::HAS_PRICE,
                Ok(MarketEventKind::Trade) => LastValue::HAS_TRADE,
                Err(_) => 0,
            };
            if depth.is_some() {
                valid |= LastValue::HAS_DEPTH;
            }
            // The event as 8-byte words (`seq`, `exch_ts_ns`, `recv_ts_ns`, id/kind/side/flags,
            // `v[0..4]`), each loaded and stored on its own: no staging copy.
            let w: &[u64; 8] = bytemuck::cast_ref(e);
            let p = off + 8;
            let put = |i: usize, x: u64| {
                // SAFETY: `id < capacity`, so the entry is inside the validated region; every
                // word index is < 48 (checked at compile time in `word`), so 8-aligned, in it.
                unsafe { mem.u64_at(p + 8 * i) }.store(x, Ordering::Relaxed);
            };
            // SAFETY: entry inside the validated region; this handle is the only writer (not
            // Sync).
            if let Some(s) = unsafe { begin_partial(mem, off) } {
                put(word::HEADER, w[0]);
                put(word::HEADER + 1, w[1]);
                put(word::HEADER + 2, w[2]);
                put(word::ID_VALID, bytemuck::cast([e.instrument_id, valid]));
                match kind {
                    Ok(MarketEventKind::Quote) => {
                        for i in 0..4 {
                            put(word::QUOTE + i, w[4 + i]);
                        }
                    }
                    Ok(MarketEventKind::OptionMark) => {
                        for i in 0..3 {
                            put(word::MARK + i, w[4 + i]);
                        }
                    }
                    Ok(MarketEventKind::UnderlyingPrice) => put(word::PRICE, w[4]),
                    Ok(MarketEventKind::Trade) => {
                        put(word::TRADE, w[4]);
                        put(word::TRADE + 1, w[5]);
                    }
                    Err(_) => {}
                }
                if let Some(d) = depth {
                    // Only the depth words that changed are stored (`store_depth_side`): a book
                    // update usually resizes a few levels.
                    let old = |i: usize| {
                        // SAFETY: as for `put`.
                        unsafe { mem.u64_at(p + 8 * i) }.load(Ordering::Relaxed)
                    };
                    let levels: u64 = bytemuck::cast([d.bid_levels, d.ask_levels]);
                    if old(word::LEVELS) != levels {
                        put(word::LEVELS, levels);
                    }
                    let bids: &[u64; 2 * DEPTH_LEVELS] = bytemuck::cast_ref(d.bids);
                    let asks: &[u64; 2 * DEPTH_LEVELS] = bytemuck::cast_ref(d.asks);
                    // SAFETY: entry inside the validated region, single writer (as for `put`);
                    // both sides' words are inside it (checked at compile time in `word`).
                    unsafe {
                        store_depth_side(mem, p + 8 * word::BID_DEPTH, bids, d.bid_changed);
                        store_depth_side(mem, p + 8 * word::ASK_DEPTH, asks, d.ask_changed);
                    }
                }
                // SAFETY: as above; `s` from `begin_partial`.
                unsafe { end_partial(mem, off, s) };
                return true;
            }
            // Left odd by a dead writer: its other words may be torn; rewrite it whole.
            let mut lv: LastValue = bytemuck::Zeroable::zeroed();
            lv.apply(e);
            if let Some(d) = depth {
                lv.bid_levels = d.bid_levels;
                lv.ask_levels = d.ask_levels;
                lv.bid_depth = *d.bids;
                lv.ask_depth = *d.asks;
                lv.valid |= LastValue::HAS_DEPTH;
            }
            // SAFETY: as for `write`.
            unsafe { write_entry(mem, off, &lv) };
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
