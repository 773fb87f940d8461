//! Operator control words: kill switch and per-underlying trading state.
//!
//! Created by the hedger, written by `hedgectl`. Every write bumps `generation` (Release) after
//! storing the value, so the hedger checks one word per loop iteration and re-reads the values
//! only when it changed.
//!
//! Layout (after the 128-byte header): at 128 `generation` u64 (padded to 256), at 256
//! `kill_switch` u32 (0 off, 1 on), at 320 `trading_state` [`CAPACITY`] bytes
//! ([`TradingState`] per underlying id).

use crate::segment::{self, names, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy};
use crate::sync::Ordering;
use std::path::Path;

/// Offset of the generation counter.
pub const GENERATION_OFFSET: usize = 128;
/// Offset of the kill-switch word.
pub const KILL_SWITCH_OFFSET: usize = 256;
/// Offset of the trading-state bytes.
pub const TRADING_STATE_OFFSET: usize = 320;
/// Number of underlying ids with a trading state (ids `0..CAPACITY`).
pub const CAPACITY: usize = 4096;

fn spec() -> segment::Spec {
    // Only CAPACITY ids: the block reads ids 0..CAPACITY.
    let size_for = segment::fixed_records_size::<CAPACITY, TRADING_STATE_OFFSET>;
    segment::Spec::of::<TradingState>(SegmentKind::Control, size_for)
}

/// Trading state of one underlying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TradingState {
    /// Hedge normally.
    Active = 0,
    /// Only orders that reduce the position.
    ReduceOnly = 1,
    /// No orders.
    Halted = 2,
}

impl TryFrom<u8> for TradingState {
    type Error = crate::messages::UnknownEnumValue;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            0 => Ok(TradingState::Active),
            1 => Ok(TradingState::ReduceOnly),
            2 => Ok(TradingState::Halted),
            _ => Err(crate::messages::UnknownEnumValue {
                field: "control.trading_state",
                value: v,
            }),
        }
    }
}

impl TradingState {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::ReduceOnly => "reduce-only",
            TradingState::Halted => "halted",
        }
    }
}

/// The control block (created by the hedger; opened read-write by hedgectl).
pub struct ControlBlock {
    seg: Segment,
}

// SAFETY: only atomics are accessed through the mapping.
unsafe impl Send for ControlBlock {}
// SAFETY: as above.
unsafe impl Sync for ControlBlock {}

impl ControlBlock {
    /// Creates `dir/control` (kill switch off, everything Active).
    ///
    /// # Errors
    /// As any segment creation.
    pub fn create(dir: &Path, stale: StalePolicy) -> Result<Self, SegmentError> {
        let (seg, _) = segment::create(
            dir,
            names::CONTROL,
            &spec(),
            CAPACITY as u64,
            stale,
            &|_| {},
        )?;
        Ok(ControlBlock { seg })
    }

    /// Opens `dir/control` read-write.
    ///
    /// # Errors
    /// Every open error of [`SegmentError`].
    pub fn open(dir: &Path, opts: OpenOptions) -> Result<Self, SegmentError> {
        Ok(ControlBlock {
            seg: segment::open(dir, names::CONTROL, &spec(), opts, true)?,
        })
    }

    fn bump(&self) {
        // SAFETY: offset inside the validated region.
        // SYNC POINT: Release; pairs with the Acquire load in `generation`: the value stored
        // before the bump is visible to a reader that sees the new generation.
        unsafe { self.seg.mem.u64_at(GENERATION_OFFSET) }.fetch_add(1, Ordering::Release);
    }

    /// Changes on every write; one Acquire load, cheap enough for every loop iteration.
    #[inline]
    pub fn generation(&self) -> u64 {
        // SAFETY: offset inside the validated region.
        // SYNC POINT: Acquire; pairs with the Release in `bump`.
        unsafe { self.seg.mem.u64_at(GENERATION_OFFSET) }.load(Ordering::Acquire)
    }

    /// Whether the kill switch is on.
    #[inline]
    pub fn kill_switch(&self) -> bool {
        // SAFETY: offset inside the validated region.
        unsafe { self.seg.mem.u32_at(KILL_SWITCH_OFFSET) }.load(Ordering::Acquire) != 0
    }

    /// Turns the kill switch on or off.
    pub fn set_kill_switch(&self, on: bool) {
        // SAFETY: offset inside the validated region.
        unsafe { self.seg.mem.u32_at(KILL_SWITCH_OFFSET) }.store(on as u32, Ordering::Release);
        self.bump();
    }

    /// Trading state of `underlying_id`; ids `>= CAPACITY` and unknown values read as
    /// [`TradingState::Halted`] (fail safe).
    #[inline]
    pub fn trading_state(&self, underlying_id: u32) -> TradingState {
        if underlying_id as usize >= CAPACITY {
            return TradingState::Halted;
        }
        // SAFETY: `underlying_id < CAPACITY`: inside the validated region.
        let v = unsafe {
            self.seg
                .mem
                .u8_at(TRADING_STATE_OFFSET + underlying_id as usize)
        }
        .load(Ordering::Acquire);
        TradingState::try_from(v).unwrap_or(TradingState::Halted)
    }

    /// Sets the trading state of `underlying_id`; returns `false` (no change) if out of range.
    pub fn set_trading_state(&self, underlying_id: u32, st: TradingState) -> bool {
        if underlying_id as usize >= CAPACITY {
            return false;
        }
        // SAFETY: inside the validated region.
        unsafe {
            self.seg
                .mem
                .u8_at(TRADING_STATE_OFFSET + underlying_id as usize)
        }
        .store(st as u8, Ordering::Release);
        self.bump();
        true
    }

    /// Stores the current monotonic time in the header's heartbeat word.
    pub fn heartbeat(&self) {
        self.seg.heartbeat();
    }
}
