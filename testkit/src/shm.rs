//! Shared-memory fixtures: a namespace directory of one's own, and the instrument set of a
//! small engine (an index and its perpetual per underlying).

use bytemuck::Zeroable as _;
use shm_layout::{InstrumentDef, InstrumentKind};

/// A fresh, uniquely named namespace directory under /dev/shm (`prefix` then random
/// characters), removed on drop even when the test fails.
///
/// # Panics
/// /dev/shm is not writable.
pub fn namespace_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .expect("a namespace directory in /dev/shm")
}

/// For each underlying `U` in order, its index `U` (id `2k`) and its linear perpetual
/// `U-PERPETUAL` (id `2k + 1`, tick 0.5, lot and minimum 1 contract), both of underlying `2k`.
pub fn index_and_perpetuals(underlyings: &[&str]) -> Vec<InstrumentDef> {
    let def = |id: u32, underlying: u32, kind: InstrumentKind, symbol: &str| {
        let mut d = InstrumentDef::zeroed();
        d.id = id;
        d.underlying_id = underlying;
        d.kind = kind as u8;
        d.settlement = shm_layout::Settlement::Linear as u8;
        d.forward_id = shm_layout::NO_FORWARD;
        d.tick_size = 0.5;
        d.lot_size = 1.0;
        d.min_qty = 1.0;
        assert!(d.set_symbol(symbol), "symbol {symbol} too long");
        d
    };
    let mut defs = Vec::new();
    for (k, u) in (0u32..).zip(underlyings) {
        defs.push(def(2 * k, 2 * k, InstrumentKind::Index, u));
        defs.push(def(
            2 * k + 1,
            2 * k,
            InstrumentKind::Perpetual,
            &format!("{u}-PERPETUAL"),
        ));
    }
    defs
}
