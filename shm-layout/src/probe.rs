//! One shared cache line, for measuring the hardware's inter-core (and inter-process) limit.
//!
//! `bench` ping-pongs the words of this line between two cores to get the raw latency floor
//! that the rings are compared against; it lives here because `bench` forbids unsafe code.
//!
//! Layout (after the 128-byte header): at 128, eight u64 atomic words (one 64-byte line), padded
//! to 256 bytes. Segment kind 7, message type `ProbeLine`.

use crate::segment::{self, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy};
use crate::sync::AtomicU64;
use std::path::Path;

/// Offset of the line.
pub const LINE_OFFSET: usize = 128;
/// Words in the line.
pub const WORDS: usize = 8;

fn size_for(cap: u64, msg_size: u32) -> Option<usize> {
    (cap == 1 && msg_size == 64).then_some(256)
}

fn spec() -> segment::Spec {
    segment::Spec {
        kind: SegmentKind::Probe,
        msg_type: "ProbeLine",
        msg_size: 64,
        msg_align: 64,
        size_for,
    }
}

/// A mapped probe line.
pub struct ProbeLine {
    seg: Segment,
}

// SAFETY: only atomics are accessed through the mapping.
unsafe impl Send for ProbeLine {}
// SAFETY: as above.
unsafe impl Sync for ProbeLine {}

impl ProbeLine {
    /// Creates `dir/name` (all words zero).
    ///
    /// # Errors
    /// As any segment creation.
    pub fn create(dir: &Path, name: &str, stale: StalePolicy) -> Result<Self, SegmentError> {
        Ok(ProbeLine {
            seg: segment::create(dir, name, &spec(), 1, stale, &|_| {})?.0,
        })
    }

    /// Opens `dir/name` read-write.
    ///
    /// # Errors
    /// Every open error of [`SegmentError`].
    pub fn open(dir: &Path, name: &str, opts: OpenOptions) -> Result<Self, SegmentError> {
        Ok(ProbeLine {
            seg: segment::open(dir, name, &spec(), opts, true)?,
        })
    }

    /// Word `i` (`0..WORDS`) of the line.
    ///
    /// # Panics
    /// If `i >= WORDS`.
    #[inline]
    pub fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < WORDS);
        // SAFETY: `LINE_OFFSET + 8 * i + 8 <= 256`, the validated segment size; aligned.
        unsafe { self.seg.mem.u64_at(LINE_OFFSET + 8 * i) }
    }
}
