//! Instrument definitions table, written once at startup by the feed handler.
//!
//! Layout (after the 128-byte header): `capacity` [`InstrumentDef`]s of 128 bytes at offset 128.
//! The definitions are written before the `initialized` word and never change afterwards, so
//! readers access them as a plain slice. `InstrumentDef.id` equals its index.
//!
//! Because readers hold plain references into the table, a restarted creator never rewrites an
//! existing table in place: [`StalePolicy::Recover`] behaves like [`StalePolicy::Replace`] (a new
//! file replaces the name; readers of the old file keep a valid mapping).

use crate::messages::InstrumentDef;
use crate::segment::{self, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy};
use std::path::Path;

/// Offset of definition 0.
pub const DEFS_OFFSET: usize = 128;

fn size_for(cap: u64, msg_size: u32) -> Option<usize> {
    segment::records_size(cap, msg_size as usize, DEFS_OFFSET)
}

fn spec() -> segment::Spec {
    segment::Spec::of::<InstrumentDef>(SegmentKind::Instruments, size_for)
}

/// The instruments table.
pub struct InstrumentTable {
    seg: Segment,
}

// SAFETY: the table is immutable after initialization; sharing references is fine.
unsafe impl Send for InstrumentTable {}
// SAFETY: as above: only reads after initialization.
unsafe impl Sync for InstrumentTable {}

impl InstrumentTable {
    /// Creates the table holding `defs` (`defs[i].id` must equal `i`).
    ///
    /// # Errors
    /// [`SegmentError::Corrupt`] if an id does not match its index; otherwise as any creation.
    pub fn create(
        dir: &Path,
        name: &str,
        defs: &[InstrumentDef],
        stale: StalePolicy,
    ) -> Result<Self, SegmentError> {
        if let Some((i, d)) = defs.iter().enumerate().find(|(i, d)| d.id as usize != *i) {
            return Err(SegmentError::Corrupt {
                path: dir.join(name),
                detail: format!("definition at index {i} has id {}", d.id),
            });
        }
        let stale = match stale {
            StalePolicy::Recover => StalePolicy::Replace,
            s => s,
        };
        let (seg, _) = segment::create(dir, name, &spec(), defs.len() as u64, stale, &|mem| {
            for (i, d) in defs.iter().enumerate() {
                // SAFETY: the fresh mapping has room for `defs.len()` definitions at
                // DEFS_OFFSET (size_for), aligned to 8; nobody else sees it yet.
                unsafe { mem.write_plain(DEFS_OFFSET + i * 128, d) };
            }
        })?;
        Ok(InstrumentTable { seg })
    }

    /// Opens the table (read-only).
    ///
    /// # Errors
    /// Every open error of [`SegmentError`].
    pub fn open(dir: &Path, name: &str, opts: OpenOptions) -> Result<Self, SegmentError> {
        Ok(InstrumentTable {
            seg: segment::open(dir, name, &spec(), opts, false)?,
        })
    }

    /// All definitions, indexed by id.
    pub fn defs(&self) -> &[InstrumentDef] {
        // SAFETY: the region holds `capacity` definitions at DEFS_OFFSET (validated size),
        // aligned to 8 (page-aligned mapping + 128); written before `initialized` (which we
        // loaded with Acquire at open) and never written again; `InstrumentDef: Pod`.
        unsafe {
            core::slice::from_raw_parts(
                self.seg.mem.ptr_at(DEFS_OFFSET) as *const InstrumentDef,
                self.seg.capacity as usize,
            )
        }
    }

    /// The definition of `id`.
    pub fn get(&self, id: u32) -> Option<InstrumentDef> {
        self.defs().get(id as usize).copied()
    }

    /// The underlyings named by the table, `(id, symbol)`: its index instruments (an index is
    /// its own underlying), or, when it has none, every distinct underlying id an instrument
    /// names (with that id's symbol, or the id as text).
    pub fn underlyings(&self) -> Vec<(u32, String)> {
        let defs = self.defs();
        let mut out: Vec<(u32, String)> = defs
            .iter()
            .filter(|d| d.kind() == Ok(crate::InstrumentKind::Index) && d.underlying_id == d.id)
            .map(|d| (d.id, d.symbol().to_string()))
            .collect();
        if out.is_empty() {
            let mut ids: Vec<u32> = defs.iter().map(|d| d.underlying_id).collect();
            ids.sort_unstable();
            ids.dedup();
            out = ids
                .into_iter()
                .map(|id| {
                    let sym = self
                        .get(id)
                        .map_or(id.to_string(), |d| d.symbol().to_string());
                    (id, sym)
                })
                .collect();
        }
        out
    }

    /// Number of definitions.
    pub fn len(&self) -> usize {
        self.seg.capacity as usize
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
