//! Execution reports as the order gateway sends them, for the hedger's tests and the hot-path
//! benchmark (which plays the gateway in process).

use shm_layout::{ExecEvent, ExecKind, HedgeOrder, Liquidity, RejectReason, Side};

/// Execution report `exec_id` for order `coid` on `instr`: `(qty, px, leaves)` in contracts and
/// quote currency, stamped `ts_ns` (monotonic ns). As the gateway fills it: a fill is taker
/// liquidity and pays no fee, a reject is for no liquidity, anything else has no liquidity flag.
pub fn exec_event(
    exec_id: u64,
    kind: ExecKind,
    coid: u64,
    instr: u32,
    side: Side,
    (qty, px, leaves): (f64, f64, f64),
    ts_ns: u64,
) -> ExecEvent {
    ExecEvent {
        exec_id,
        client_order_id: coid,
        instrument_id: instr,
        kind: kind as u8,
        side: side as u8,
        liquidity: if matches!(kind, ExecKind::Fill | ExecKind::PartialFill) {
            Liquidity::Taker as u8
        } else {
            Liquidity::None as u8
        },
        reject_reason: if kind == ExecKind::Rejected {
            RejectReason::NoLiquidity as u8
        } else {
            0
        },
        qty,
        price: px,
        fee: 0.0,
        leaves_qty: leaves,
        ts_ns,
    }
}

/// What plays the gateway's execution stream: numbers each report and delivers it to the hedger
/// (in memory, over the real ring, or into the hot-path benchmark's one-event slot).
pub trait ExecStream {
    /// The exec id of the next report (each id once, increasing).
    fn next_exec_id(&mut self) -> u64;
    /// Hands report `e` to the hedger.
    fn deliver(&mut self, e: ExecEvent);

    /// Sends the next execution report, stamped now: `(qty, px, leaves)` in contracts and
    /// quote currency.
    #[allow(clippy::too_many_arguments)]
    fn exec(
        &mut self,
        kind: ExecKind,
        coid: u64,
        instr: u32,
        side: Side,
        qty: f64,
        px: f64,
        leaves: f64,
    ) {
        let id = self.next_exec_id();
        let now = shm_layout::clock::now_ns();
        let e = exec_event(id, kind, coid, instr, side, (qty, px, leaves), now);
        self.deliver(e);
    }

    /// Sends the next report of `kind` on order `o`: `(qty, px, leaves)` as in [`Self::exec`].
    fn on_order(&mut self, kind: ExecKind, o: &HedgeOrder, (qty, px, leaves): (f64, f64, f64)) {
        let side = o.side().expect("an order the hedger sent has a valid side");
        let (coid, instr) = (o.client_order_id, o.instrument_id);
        self.exec(kind, coid, instr, side, qty, px, leaves);
    }
}
