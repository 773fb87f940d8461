//! What the hedger's unit tests share: the clock origin, the BTC index and perpetual ids,
//! instrument definitions and the one-underlying set-up.

use super::core::{hedge_instrument, UnderlyingSetup};
use crate::limits::LimitsConfig;
use crate::policy::{BandRule, PolicyConfig, RehedgeTarget};
use shm_layout::{InstrumentDef, InstrumentKind};

/// 2026-01-02T00:00:00Z: in the past, so a loop that read the real clock would call the
/// tests' options (expiring days later) expired.
pub const T0: u64 = 1_767_312_000_000_000_000;
/// One day, ns.
pub const DAY: u64 = 86_400_000_000_000;
/// The underlying's index.
pub const BTC: u32 = 0;
/// The hedge instrument, a linear perpetual.
pub const PERP: u32 = 1;

/// A linear instrument of BTC (contract size 0.5, tick 0.001) named `sym`.
pub fn def(id: u32, sym: &str, kind: InstrumentKind) -> InstrumentDef {
    let mut d = InstrumentDef::linear(id, kind, BTC, 0.5, 0.001);
    assert!(d.set_symbol(sym));
    d
}

/// A fixed band of `band` (underlying units), hedged back to zero.
pub fn fixed_band(band: f64) -> BandRule {
    BandRule::Fixed {
        band,
        target: RehedgeTarget::Zero,
    }
}

/// BTC hedged with the perpetual of `defs` under `policy` and `limits`, no rate, flat.
pub fn btc_setup(
    defs: &[InstrumentDef],
    policy: PolicyConfig,
    limits: LimitsConfig,
) -> UnderlyingSetup {
    UnderlyingSetup {
        name: "BTC".into(),
        index_id: BTC,
        hedge: hedge_instrument(&defs[PERP as usize], "t").unwrap(),
        policy,
        limits,
        rate: 0.0,
        initial_hedge_position: 0.0,
    }
}
