//! A read-only observer of an SPSC ring segment, for `stat` and `tail`.
//!
//! [`shm_layout::spsc::SpscConsumer::open`] claims the queue (it records its pid as *the*
//! consumer), so an observer must not use it. This view instead opens the segment file
//! `O_RDONLY` and reads the words it needs with `pread(2)` at the offsets of the documented
//! layout (`docs/shm-layout.md`, constants in `shm_layout::spsc` and
//! `shm_layout::segment::header`). It never maps the file writable, never writes, and costs the
//! engine nothing: tmpfs serves the reads from the same pages the processes map.
//!
//! Consistency: a slot is copied, then the producer position is read again; if the producer
//! may have started rewriting that slot (position `pos + capacity` reached), the copy is
//! discarded. Reads of the 8-byte aligned position words are single aligned copies.

use std::fs::File;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use bytemuck::Pod;
use shm_layout::segment::{header, SegmentKind, MAGIC};
use shm_layout::spsc::{HEAD_OFFSET, SLOTS_OFFSET, TAIL_OFFSET};

/// Why a ring could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// File missing or unreadable.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// Segment path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not an initialized SPSC segment for messages of this size.
    #[error("{} is not an initialized SPSC ring of {msg_size}-byte messages ({detail})", path.display())]
    Layout {
        /// Segment path.
        path: PathBuf,
        /// Expected message size.
        msg_size: usize,
        /// What did not match.
        detail: String,
    },
}

/// Read-only view of one SPSC ring.
#[derive(Debug)]
pub struct SpscView<T: Pod> {
    file: File,
    capacity: u64,
    _t: PhantomData<T>,
}

fn u32_at(f: &File, off: usize) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, off as u64)?;
    Ok(u32::from_le_bytes(b))
}

fn u64_at(f: &File, off: usize) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off as u64)?;
    Ok(u64::from_le_bytes(b))
}

impl<T: Pod> SpscView<T> {
    /// Opens `dir/name` read-only and checks its header.
    ///
    /// # Errors
    /// Missing file, or not an initialized SPSC ring of `T`.
    pub fn open(dir: &Path, name: &str) -> Result<Self, ViewError> {
        let path = dir.join(name);
        let io = |source| ViewError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let layout = |detail: String| ViewError::Layout {
            path: path.clone(),
            msg_size: size_of::<T>(),
            detail,
        };
        let magic = u64_at(&file, header::MAGIC).map_err(io)?;
        if magic != MAGIC {
            return Err(layout("bad magic".into()));
        }
        if u32_at(&file, header::INITIALIZED).map_err(io)? != shm_layout::segment::INITIALIZED {
            return Err(layout("not initialized yet".into()));
        }
        let kind = u32_at(&file, header::KIND).map_err(io)?;
        if kind != SegmentKind::Spsc as u32 {
            return Err(layout(format!("kind {kind}")));
        }
        let msg = u32_at(&file, header::MSG_SIZE).map_err(io)? as usize;
        if msg != size_of::<T>() {
            return Err(layout(format!("message size {msg}")));
        }
        let capacity = u64_at(&file, header::CAPACITY).map_err(io)?;
        if !capacity.is_power_of_two() {
            return Err(layout(format!("capacity {capacity}")));
        }
        Ok(SpscView {
            file,
            capacity,
            _t: PhantomData,
        })
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Messages the producer has written so far.
    pub fn producer_position(&self) -> u64 {
        u64_at(&self.file, TAIL_OFFSET).unwrap_or(0)
    }

    /// Messages the consumer has committed so far.
    pub fn consumer_position(&self) -> u64 {
        u64_at(&self.file, HEAD_OFFSET).unwrap_or(0)
    }

    /// A copy of the message at absolute position `pos`, if it is still in the ring
    /// (`producer - capacity <= pos < producer`) and was not being overwritten while copied.
    pub fn peek_at(&self, pos: u64) -> Option<T> {
        let before = self.producer_position();
        if pos >= before || before - pos > self.capacity {
            return None;
        }
        let off = SLOTS_OFFSET as u64 + (pos & (self.capacity - 1)) * size_of::<T>() as u64;
        let mut msg = T::zeroed();
        self.file
            .read_exact_at(bytemuck::bytes_of_mut(&mut msg), off)
            .ok()?;
        // The producer rewrites this slot only at position pos + capacity, i.e. once its
        // position has reached that value. The read above happened before this one (two
        // syscalls in order), so if the position is still below, the copy is whole.
        let after = self.producer_position();
        (after < pos + self.capacity).then_some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_layout::segment::{OpenOptions, StalePolicy};
    use shm_layout::spsc::{SpscConsumer, SpscProducer};

    #[test]
    fn observer_sees_queued_and_consumed_messages_without_claiming_the_consumer() {
        let dir = testkit::shm::namespace_dir("hedgectl-view-");
        let mut p = SpscProducer::<u64>::create(dir.path(), "q", 8, StalePolicy::Fail).unwrap();
        for i in 0..5u64 {
            p.push(100 + i).unwrap();
        }
        let v = SpscView::<u64>::open(dir.path(), "q").unwrap();
        assert_eq!((v.producer_position(), v.consumer_position()), (5, 0));
        // The real consumer can still attach: the view claimed nothing.
        let mut c = SpscConsumer::<u64>::open(dir.path(), "q", OpenOptions::default()).unwrap();
        assert_eq!(c.pop(), Some(100));
        assert_eq!(c.pop(), Some(101));
        assert_eq!(v.consumer_position(), 2);
        assert_eq!(v.peek_at(0), Some(100), "consumed but not yet overwritten");
        assert_eq!(v.peek_at(4), Some(104));
        assert_eq!(v.peek_at(5), None, "not written yet");
        for i in 5..10u64 {
            p.push(100 + i).unwrap();
        }
        assert_eq!(v.peek_at(0), None, "overwritten by position 8");
        assert_eq!(v.peek_at(9), Some(109));
        assert!(
            SpscView::<[u8; 64]>::open(dir.path(), "q").is_err(),
            "wrong size"
        );
    }
}
