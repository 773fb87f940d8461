//! Test support: a global allocator that counts the allocations of the threads that ask it to,
//! for the "the hot path allocates nothing" tests of every crate.
//!
//! Counting is per thread on purpose: a process-wide count also sees the test harness's own
//! threads (libtest's main thread allocates while a test thread starts), which made such tests
//! fail now and then on a loaded machine.
//!
//! ```
//! use shm_layout::alloc_count::{CountingAlloc, Region};
//! #[global_allocator]
//! static GLOBAL: CountingAlloc = CountingAlloc;
//!
//! fn main() {
//!     let region = Region::start();
//!     let v = vec![1u8; 10]; // one allocation (and its free below)
//!     drop(v);
//!     let c = region.change();
//!     assert_eq!((c.allocations, c.deallocations), (1, 1));
//! }
//! ```
//! The allocator forwards to the system allocator and costs a thread-local flag check per call.
//! One region at a time per thread (dropping a region stops the thread's counting).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static DEALLOCS: Cell<u64> = const { Cell::new(0) };
    static REALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// The counting allocator: install it with `#[global_allocator]` in a test binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

fn bump(c: &'static std::thread::LocalKey<Cell<u64>>) {
    // `try_with`: a thread being torn down may allocate after its locals are gone.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = c.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added,
// and they neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        bump(&DEALLOCS);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        bump(&REALLOCS);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

/// Calls counted on one thread since a [`Region`] started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocations: u64,
    /// `dealloc` calls.
    pub deallocations: u64,
    /// `realloc` calls.
    pub reallocations: u64,
}

/// Counts this thread's allocator calls from [`Region::start`] until it is dropped (only with
/// [`CountingAlloc`] installed as the global allocator; otherwise the counts stay 0).
#[derive(Debug)]
pub struct Region {
    start: Counts,
    // Not Send: the counts are this thread's.
    _thread: std::marker::PhantomData<*const ()>,
}

fn now() -> Counts {
    Counts {
        allocations: ALLOCS.with(Cell::get),
        deallocations: DEALLOCS.with(Cell::get),
        reallocations: REALLOCS.with(Cell::get),
    }
}

impl Region {
    /// Starts counting on this thread.
    pub fn start() -> Self {
        let start = now();
        COUNTING.with(|c| c.set(true));
        Region {
            start,
            _thread: std::marker::PhantomData,
        }
    }

    /// This thread's calls since the start.
    pub fn change(&self) -> Counts {
        let n = now();
        Counts {
            allocations: n.allocations - self.start.allocations,
            deallocations: n.deallocations - self.start.deallocations,
            reallocations: n.reallocations - self.start.reallocations,
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        COUNTING.with(|c| c.set(false));
    }
}
