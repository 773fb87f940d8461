//! Rebuild after a lap (or at startup) from the last-value table, repricing only the options
//! whose entry moved on since the core last applied it.
//!
//! # What is repriced
//! Every last-value entry carries `last_seq`, the `seq` of the last market event written
//! into it. The core records, per option, the `seq` of the mark it holds (from the ring or
//! from a rebuild); an entry whose `last_seq` equals it holds exactly the mark the core
//! already applied, so repricing it again would only redo the same Black-76 evaluation (the
//! book's clock moves the held values on by itself, inside its error bound). A full rebuild
//! (the previous behaviour: every option) re-evaluated all 10,000 options of the e2e book on
//! every lap, 19.8 M instructions.
//!
//! One more option per expiry is repriced even when unchanged: a mark also sets its expiry's
//! forward (`ln(forward) - ln(index)` at the time it is applied), and in a rebuild, which
//! goes through the instruments in id order, the forward the expiry keeps is the one of its
//! last usable mark by id. Repricing that option too (found by a first pass in reverse id
//! order) leaves every expiry with the forward a full rebuild leaves it: the selective
//! rebuild ends in the same vols, forwards and prices as a full one (test
//! `selective_rebuild_ends_where_a_full_rebuild_ends`).
//!
//! Index, forward and hedge instruments (a few per underlying) are always re-read.
//!
//! No allocation: the per-instrument arrays are sized at construction.

use super::{HedgerCore, Role};
use crate::hedger::io::MarketSource;
use crate::hedger::risk::OptionRisk;
use shm_layout::{InstrumentDef, LastValue};

/// `applied_seq` of an option whose held mark matches no entry (never applied, or applied
/// from an event without a sequence number).
const NONE_APPLIED: u64 = u64::MAX;
/// `group` of an instrument that is not an option.
const NO_GROUP: u32 = u32::MAX;

/// What the core remembers between rebuilds to reprice only what changed.
#[derive(Debug, Clone)]
pub(super) struct RebuildMemo {
    /// Per instrument id: `last_seq` of the entry (or `seq` of the event) whose mark the
    /// core holds, [`NONE_APPLIED`] when none.
    applied_seq: Vec<u64>,
    /// Per instrument id: the option's expiry group (its underlying and expiry: one forward
    /// in the risk book), [`NO_GROUP`] for other instruments.
    group: Vec<u32>,
    /// Per group: the rebuild number in which the group's forward-setting mark was found.
    group_gen: Vec<u64>,
    /// Rebuilds started.
    gen: u64,
    /// Per instrument id: the mark to reprice with in the rebuild under way, copied by the
    /// first pass (each entry is read once per rebuild).
    pick: Vec<Option<Picked>>,
    /// Options repriced by rebuilds since start.
    repriced: u64,
    /// The next rebuild reprices every option the risk holds (a full rebuild).
    full_next: bool,
    /// Per instrument id: the highest `last_seq` the rebuilds since the ring was last past
    /// `rebuilt_seq` read from its entry (0: not read). An event of the ring at or below it
    /// is older than what the core holds for that instrument.
    read_seq: Vec<u64>,
}

impl RebuildMemo {
    /// Sized for `defs` (startup only: allocates).
    /// Options the risk does not hold get no group: their marks change nothing, so they
    /// are never repriced (nor taken for the mark that sets their expiry's forward).
    pub(super) fn new<R: OptionRisk>(defs: &[InstrumentDef], roles: &[Role], risk: &R) -> Self {
        let mut keys: Vec<(u32, u64)> = Vec::new();
        let mut group = vec![NO_GROUP; roles.len()];
        for (id, role) in roles.iter().enumerate() {
            let Role::Option { opt, .. } = *role else {
                continue;
            };
            if !risk.holds_option(opt as usize) {
                continue;
            }
            let d = &defs[id];
            let key = (d.underlying_id, d.expiry_ns);
            group[id] = match keys.iter().position(|k| *k == key) {
                Some(g) => g as u32,
                None => {
                    keys.push(key);
                    (keys.len() - 1) as u32
                }
            };
        }
        RebuildMemo {
            applied_seq: vec![NONE_APPLIED; roles.len()],
            group,
            group_gen: vec![0; keys.len()],
            gen: 0,
            pick: vec![None; roles.len()],
            repriced: 0,
            full_next: false,
            read_seq: vec![0; roles.len()],
        }
    }

    /// Whether the event numbered `seq` of instrument `id` is no newer than the entry a
    /// rebuild read for it (the core holds that entry's value or a newer one).
    #[inline]
    pub(super) fn older_than_read(&self, id: u32, seq: u64) -> bool {
        self.read_seq.get(id as usize).is_some_and(|&r| seq <= r)
    }

    /// A rebuild read the entry of `id` at `last_seq`.
    #[inline]
    fn read(&mut self, id: usize, last_seq: u64) {
        if let Some(r) = self.read_seq.get_mut(id) {
            *r = (*r).max(last_seq);
        }
    }

    /// The core applied a mark of option `id` from the event numbered `seq` (0: unnumbered).
    #[inline]
    pub(super) fn applied(&mut self, id: u32, seq: u64) {
        if let Some(s) = self.applied_seq.get_mut(id as usize) {
            *s = if seq == 0 { NONE_APPLIED } else { seq };
        }
    }

    /// The next rebuild reprices every option the risk holds (a full rebuild).
    pub(crate) fn forget(&mut self) {
        self.full_next = true;
    }
}

/// An option's mark as read from its last-value entry by the first pass.
#[derive(Debug, Clone, Copy)]
struct Picked {
    iv: f64,
    forward: f64,
    seq: u64,
}

/// The rebuild uses this option's mark: a usable vol and forward, not expired at `wall_ns`.
#[inline]
fn mark_usable(lv: &LastValue, d: &InstrumentDef, wall_ns: u64) -> bool {
    lv.valid & LastValue::HAS_MARK != 0
        && lv.mark_iv > 0.0
        && lv.mark_iv.is_finite()
        && lv.mark_underlying_px > 0.0
        && lv.mark_underlying_px.is_finite()
        && d.expiry_ns > wall_ns
}

impl<R: OptionRisk> HedgerCore<R> {
    /// Options repriced by rebuilds since start (a full rebuild: every option with a mark).
    pub fn rebuild_repriced(&self) -> u64 {
        self.memo.repriced
    }

    /// The next rebuild reprices every option, as if none had been applied (for tests and
    /// benchmarks comparing against a full rebuild).
    pub fn forget_applied_marks(&mut self) {
        self.memo.forget();
    }

    pub(super) fn rebuild_impl<M: MarketSource>(&mut self, md: &M, now_ns: u64) {
        let wall = self.wall_ns(now_ns);
        if self.rebuilt_seq == 0 {
            // The ring is past every earlier rebuild's reads: start the record afresh.
            self.memo.read_seq.fill(0);
        }
        self.pick_options(md, wall);
        // Every mark at once: one re-aggregation at the end instead of one per option.
        self.risk.begin_rebuild();
        for id in 0..self.roles.len() as u32 {
            match self.roles[id as usize] {
                Role::None => {}
                Role::Option { opt, .. } => {
                    if let Some(p) = self.memo.pick[id as usize] {
                        self.risk.on_mark(opt as usize, p.iv, p.forward, wall);
                        self.memo.applied(id, p.seq);
                        self.memo.repriced += 1;
                    }
                }
                role => {
                    if let Some(lv) = md.last_value(id) {
                        self.rebuilt_seq = self.rebuilt_seq.max(lv.last_seq);
                        self.memo.read(id as usize, lv.last_seq);
                        self.rebuild_one(id, role, &lv);
                    }
                }
            }
        }
        self.risk.end_rebuild();
        for u in &mut self.und {
            u.rebuilding = false;
        }
        self.stats.rebuilds += 1;
    }

    /// First pass, in reverse id order: marks the options to reprice (entry changed since
    /// applied, or the last usable mark of its expiry) and takes every option entry's
    /// `last_seq` into `rebuilt_seq`.
    fn pick_options<M: MarketSource>(&mut self, md: &M, wall_ns: u64) {
        let m = &mut self.memo;
        m.gen += 1;
        let full = std::mem::take(&mut m.full_next);
        for id in (0..self.roles.len()).rev() {
            m.pick[id] = None;
            let g = m.group[id];
            if g == NO_GROUP {
                continue;
            }
            let Some(lv) = md.last_value(id as u32) else {
                continue;
            };
            self.rebuilt_seq = self.rebuilt_seq.max(lv.last_seq);
            m.read(id, lv.last_seq);
            if !mark_usable(&lv, &self.defs[id], wall_ns) {
                continue;
            }
            let sets_forward = m.group_gen[g as usize] != m.gen;
            m.group_gen[g as usize] = m.gen;
            if full || sets_forward || lv.last_seq != m.applied_seq[id] {
                m.pick[id] = Some(Picked {
                    iv: lv.mark_iv,
                    forward: lv.mark_underlying_px,
                    seq: lv.last_seq,
                });
            }
        }
    }

    /// Applies the last value of an index, forward or hedge instrument.
    fn rebuild_one(&mut self, id: u32, role: Role, lv: &LastValue) {
        let has_price =
            lv.valid & LastValue::HAS_PRICE != 0 && lv.price > 0.0 && lv.price.is_finite();
        match role {
            Role::Index(u) if has_price => {
                let x = &mut self.und[u as usize];
                x.index_px = lv.price;
                x.index_ts_ns = lv.recv_ts_ns;
                self.risk.on_underlying(u as usize, lv.price);
            }
            Role::Forward(_) if has_price => self.risk.on_forward(id, lv.price),
            Role::Hedge(u) => {
                let x = &mut self.und[u as usize];
                if lv.valid & LastValue::HAS_QUOTE != 0 && lv.bid_px > 0.0 && lv.ask_px > lv.bid_px
                {
                    x.book = *lv;
                    x.book_ts_ns = lv.recv_ts_ns;
                    x.pstate.observe_book(&x.policy.cfg, lv.bid_px, lv.ask_px);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "rebuild_tests.rs"]
mod tests;
