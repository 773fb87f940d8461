//! Atomics facade and the memory the ring protocols run on.
//!
//! The ring algorithms (`broadcast`, `spsc`, `lvt`) are written against [`Mem`]: a region of
//! bytes addressed by offset, with 8-byte atomic words and whole-message copies. In a normal
//! build `Mem` is a shared mapping (`memmap2::MmapRaw`) and the atomics are `core`'s; under
//! `--cfg loom` it is heap memory made of `loom` atomics, so that loom can explore every
//! interleaving of writers and readers with exactly the same protocol code (see `tests/loom.rs`).
//!
//! Message payloads that a reader may race with a writer (broadcast slots, last-value entries:
//! the seqlock protocols) are copied as relaxed atomic 8-byte words, never with plain loads: a
//! torn read is then detected by the sequence check instead of being undefined behaviour. On
//! x86_64 and aarch64 a relaxed 8-byte load/store is an ordinary `mov`/`ldr`.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};

/// Hint inside a spin loop (under loom: yield so the model makes progress).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Checks, at compile time (post-monomorphization), that `T` can be moved as 8-byte words.
pub(crate) struct WordSized<T>(core::marker::PhantomData<T>);
impl<T> WordSized<T> {
    /// Message types carried by rings must have alignment 8 and a size that is a non-zero
    /// multiple of 8 (every type in `messages` does).
    pub(crate) const OK: () = assert!(
        core::mem::align_of::<T>() == 8
            && core::mem::size_of::<T>() & 7 == 0
            && core::mem::size_of::<T>() > 0,
        "ring message types need align 8 and a size that is a multiple of 8"
    );
}

/// A shared mapping viewed as bytes addressed by offset.
///
/// Safety at the type level (as in memmap2): the mapping stays valid while `Mem` lives, but
/// another process could truncate the file underneath (SIGBUS) or write anything into it.
/// Segments are mode 0600, so only processes of the same user can; every value read from the
/// segment is validated before it is used as an index.
#[cfg(not(loom))]
#[doc(hidden)]
pub struct Mem {
    map: memmap2::MmapRaw,
}

#[cfg(not(loom))]
impl Mem {
    pub(crate) fn new(map: memmap2::MmapRaw) -> Self {
        Mem { map }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[inline]
    pub(crate) fn ptr_at(&self, off: usize) -> *mut u8 {
        // wrapping_add: no UB even if `off` were out of range; callers check it.
        self.map.as_mut_ptr().wrapping_add(off)
    }

    /// The 8-byte atomic word at `off`.
    ///
    /// # Safety
    /// `off % 8 == 0` and `off + 8 <= self.len()`.
    #[inline]
    pub(crate) unsafe fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off & 7 == 0 && off + 8 <= self.len());
        // SAFETY: in bounds and aligned (caller contract; the mapping is page aligned); every
        // access to this word, in every process, is atomic; the reference cannot outlive the
        // mapping because it borrows `self`.
        unsafe { &*(self.ptr_at(off) as *const AtomicU64) }
    }

    /// The 4-byte atomic word at `off`.
    ///
    /// # Safety
    /// `off % 4 == 0` and `off + 4 <= self.len()`.
    #[inline]
    pub(crate) unsafe fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off & 3 == 0 && off + 4 <= self.len());
        // SAFETY: as for `u64_at`.
        unsafe { &*(self.ptr_at(off) as *const AtomicU32) }
    }

    /// The atomic byte at `off`.
    ///
    /// # Safety
    /// `off < self.len()`.
    #[inline]
    pub(crate) unsafe fn u8_at(&self, off: usize) -> &AtomicU8 {
        debug_assert!(off < self.len());
        // SAFETY: as for `u64_at` (alignment 1).
        unsafe { &*(self.ptr_at(off) as *const AtomicU8) }
    }

    /// Copies `dst.len()` words from `off` with relaxed atomic loads (seqlock readers).
    ///
    /// # Safety
    /// `off % 8 == 0` and `off + 8 * dst.len() <= self.len()`.
    #[inline]
    pub(crate) unsafe fn load_words(&self, off: usize, dst: &mut [u64]) {
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: in bounds and aligned by the caller's contract.
            *d = unsafe { self.u64_at(off + 8 * i) }.load(Ordering::Relaxed);
        }
    }

    /// Copies `src` to `off` with relaxed atomic stores (seqlock writers).
    ///
    /// # Safety
    /// `off % 8 == 0` and `off + 8 * src.len() <= self.len()`; the mapping is writable.
    #[inline]
    pub(crate) unsafe fn store_words(&self, off: usize, src: &[u64]) {
        for (i, s) in src.iter().enumerate() {
            // SAFETY: in bounds and aligned by the caller's contract.
            unsafe { self.u64_at(off + 8 * i) }.store(*s, Ordering::Relaxed);
        }
    }

    /// Reads a `T` at `off` with a plain copy (SPSC slots: the protocol excludes races).
    ///
    /// # Safety
    /// `off` aligned for `T`, `off + size_of::<T>() <= self.len()`, and no one writes those
    /// bytes concurrently (the SPSC protocol hands the slot to the consumer).
    #[inline]
    pub(crate) unsafe fn read_plain<T: bytemuck::Pod>(&self, off: usize) -> T {
        debug_assert!(off + core::mem::size_of::<T>() <= self.len());
        // SAFETY: caller contract; `T: Pod` so any bytes are a valid `T`.
        unsafe { core::ptr::read(self.ptr_at(off) as *const T) }
    }

    /// Writes a `T` at `off` with a plain copy (SPSC slots).
    ///
    /// # Safety
    /// As for [`Mem::read_plain`], and the mapping is writable.
    #[inline]
    pub(crate) unsafe fn write_plain<T: bytemuck::Pod>(&self, off: usize, v: &T) {
        debug_assert!(off + core::mem::size_of::<T>() <= self.len());
        // SAFETY: caller contract; the slot belongs to the producer until it publishes.
        unsafe { core::ptr::write(self.ptr_at(off) as *mut T, *v) }
    }
}

/// Heap memory made of loom atomics, with the same offsets as a real segment.
#[cfg(loom)]
pub struct Mem {
    words: Box<[AtomicU64]>,
}

#[cfg(loom)]
impl Mem {
    /// `len` bytes (rounded up to 8) of zeroed model memory.
    pub fn zeroed(len: usize) -> Self {
        Mem {
            words: (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    /// # Safety
    /// `off % 8 == 0` and in bounds.
    pub unsafe fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off & 7 == 0);
        &self.words[off / 8]
    }
    /// # Safety
    /// In bounds, aligned.
    pub unsafe fn load_words(&self, off: usize, dst: &mut [u64]) {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = self.words[off / 8 + i].load(Ordering::Relaxed);
        }
    }
    /// # Safety
    /// In bounds, aligned.
    pub unsafe fn store_words(&self, off: usize, src: &[u64]) {
        for (i, s) in src.iter().enumerate() {
            self.words[off / 8 + i].store(*s, Ordering::Relaxed);
        }
    }
    /// # Safety
    /// In bounds, aligned.
    pub unsafe fn read_plain<T: bytemuck::Pod>(&self, off: usize) -> T {
        let mut v = T::zeroed();
        // SAFETY: forwarded contract.
        unsafe { self.load_words(off, bytemuck::cast_slice_mut(core::slice::from_mut(&mut v))) };
        v
    }
    /// # Safety
    /// In bounds, aligned.
    pub unsafe fn write_plain<T: bytemuck::Pod>(&self, off: usize, v: &T) {
        // SAFETY: forwarded contract.
        unsafe { self.store_words(off, bytemuck::cast_slice(core::slice::from_ref(v))) }
    }
}

/// Loads a `T` from `off` as relaxed words.
///
/// # Safety
/// As for [`Mem::load_words`] with `size_of::<T>() / 8` words.
#[inline]
pub(crate) unsafe fn load_msg<T: bytemuck::Pod>(mem: &Mem, off: usize) -> T {
    #[allow(clippy::let_unit_value)]
    let () = WordSized::<T>::OK;
    let mut v = T::zeroed();
    // SAFETY: forwarded contract; `T` has align 8 and a size multiple of 8 (checked above),
    // so it is exactly a `[u64]`.
    unsafe { mem.load_words(off, bytemuck::cast_slice_mut(core::slice::from_mut(&mut v))) };
    v
}

/// Stores a `T` at `off` as relaxed words.
///
/// # Safety
/// As for [`Mem::store_words`] with `size_of::<T>() / 8` words.
#[inline]
pub(crate) unsafe fn store_msg<T: bytemuck::Pod>(mem: &Mem, off: usize, v: &T) {
    #[allow(clippy::let_unit_value)]
    let () = WordSized::<T>::OK;
    // SAFETY: forwarded contract.
    unsafe { mem.store_words(off, bytemuck::cast_slice(core::slice::from_ref(v))) }
}
