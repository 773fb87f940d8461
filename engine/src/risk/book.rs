//! The incremental risk book. See the module docs of [`crate::risk`] for the method.

use thiserror::Error;

use crate::pricing::black::{gbs_greeks, GbsAt, GbsTerms, MAX_VOL};
use crate::pricing::{Model, OptionType, Settlement};

/// Nanoseconds in a year of 365 days (Deribit's and the engine's year): the pricing crate's.
pub use crate::pricing::time::NS_PER_YEAR;

// Sups over all d of |polynomial(d)| n(d), rounded up (see the module docs).
const SUP_D_N: f64 = 0.241_970_8; // |d| n(d), at d = 1
const SUP_D2M1_N: f64 = 0.398_942_3; // |d^2 - 1| n(d), at d = 0
const SUP_D3_N: f64 = 0.462_541_0; // |d|^3 n(d), at d = sqrt(3)
const SUP_D3MD_N: f64 = 0.325_812_8; // |d^3 - d| n(d)

/// 1/6 rounded up: `1.0 / 6.0` is 0x3FC5555555555555 = 0.1666666666666666574..., below
/// 1/6, and this is the next f64 (0.1666666666666666851...). `x * SIXTH_UP` is therefore
/// never below `x / 6` for x >= 0, so the Taylor bounds stay bounds without a division.
const SIXTH_UP: f64 = f64::from_bits(0x3FC5_5555_5555_5556);

/// Shortest time to expiry used in the bound's powers of 1/T (an expired option's bound is
/// then huge but finite).
const MIN_T_BOUND: f64 = 1e-12;

/// Rates and yields the book accepts, per year, continuously compounded: within
/// [-RATE_LIMIT, RATE_LIMIT] (the configuration refuses a rate outside it by the same bound).
pub const RATE_LIMIT: f64 = 1.0;

/// Smallest volatility the book accepts (0.1%): below it the delta is nearly a step function
/// and no useful bound exists.
pub const MIN_BOOK_VOL: f64 = 1e-3;

/// Which delta inverse (coin-settled) options contribute. See
/// [`crate::pricing::settlement`] for the definitions and the reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InverseDelta {
    /// `dV/dF`: the USD value sensitivity (Deribit's displayed delta).
    Model,
    /// `dV/dF - V/F`: keeps the book's coin value flat (default).
    PremiumAdjusted,
}

/// Configuration of a [`BookRisk`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskConfig {
    /// Largest acceptable |delta error| of an underlying's net delta, in units of underlying.
    pub delta_tolerance: f64,
    /// Options re-evaluated exactly per [`BookRisk::idle_step`].
    pub reeval_per_idle_step: usize,
    /// Delta convention for inverse options.
    pub inverse_delta: InverseDelta,
    /// Options the book can hold without allocating (capacity reserved up front).
    pub max_options: usize,
    /// Instrument ids (underlyings, forwards, options) are below this bound (a direct map of
    /// this size is reserved; ids are dense, as in the instruments table).
    pub max_instrument_id: u32,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            delta_tolerance: 0.01,
            reeval_per_idle_step: 8,
            inverse_delta: InverseDelta::PremiumAdjusted,
            max_options: 16_384,
            max_instrument_id: 65_536,
        }
    }
}

/// Static description of an option held (or possibly held) by the book.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionSpec {
    /// Instrument id of the option.
    pub id: u32,
    /// Instrument id of its underlying.
    pub underlying_id: u32,
    /// Forward of its expiry (required for Black-76, must be `None` for BSM on the spot).
    pub forward_id: Option<u32>,
    /// Strike in the quote currency.
    pub strike: f64,
    /// Expiry, nanoseconds on the book's clock ([`BookRisk::advance_time`]).
    pub expiry_ns: u64,
    /// Call or put.
    pub kind: OptionType,
    /// Black-76 on the forward or BSM on the spot.
    pub model: Model,
    /// Linear or inverse (coin-settled).
    pub settlement: Settlement,
    /// Units of underlying per contract (> 0).
    pub multiplier: f64,
}

/// Why a book set-up call was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum RiskError {
    /// The id is at or above [`RiskConfig::max_instrument_id`].
    #[error("instrument id {0} is out of range (raise RiskConfig::max_instrument_id)")]
    IdOutOfRange(u32),
    /// The id is already used by another underlying, forward or option.
    #[error("instrument id {0} is already registered")]
    DuplicateId(u32),
    /// The underlying id is not registered.
    #[error("underlying {0} is not registered (add_underlying first)")]
    UnknownUnderlying(u32),
    /// The forward id is not registered, or belongs to another underlying.
    #[error("forward {0} is not registered for this underlying (add_forward first)")]
    UnknownForward(u32),
    /// A price is not finite and > 0.
    #[error("price {0} must be finite and > 0")]
    BadPrice(f64),
    /// A strike is not finite and > 0.
    #[error("strike {0} must be finite and > 0")]
    BadStrike(f64),
    /// A volatility is not finite in [0.001, 10] (the book needs a positive vol to bound
    /// its delta error).
    #[error("volatility {0} must be finite and within [0.001, 10]")]
    BadVol(f64),
    /// A rate or yield is not finite in [-1, 1].
    #[error("rate or yield {0} must be finite and within [-1, 1]")]
    BadRate(f64),
    /// The multiplier is not finite and > 0.
    #[error("multiplier {0} must be finite and > 0")]
    BadMultiplier(f64),
    /// A Black-76 option without a forward, or a BSM option with one.
    #[error("option {0}: Black-76 options need a forward_id, BSM options must not have one")]
    ModelForwardMismatch(u32),
    /// The option's expiry differs from its forward's.
    #[error(
        "option {option}: expiry {option_expiry_ns} differs from its forward's {forward_expiry_ns}"
    )]
    ExpiryMismatch {
        /// Option id.
        option: u32,
        /// Option expiry (ns).
        option_expiry_ns: u64,
        /// Forward expiry (ns).
        forward_expiry_ns: u64,
    },
    /// More options than [`RiskConfig::max_options`].
    #[error("the book already holds {0} options (raise RiskConfig::max_options)")]
    CapacityExceeded(usize),
}

/// Risk of one underlying (all its expiries), as last updated.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UnderlyingRisk {
    /// Underlying instrument id.
    pub underlying_id: u32,
    /// Last underlying price.
    pub price: f64,
    /// Spot-equivalent net option delta, units of underlying (see module docs).
    pub net_delta: f64,
    /// d(net_delta)/dS, per 1.0 of underlying price.
    pub gamma: f64,
    /// Sum of option vegas, quote currency per 1.00 of vol (at last exact evaluations).
    pub vega: f64,
    /// Sum of option thetas, quote currency per year (at last exact evaluations).
    pub theta: f64,
    /// Upper bound of |net_delta - exact net delta| (Taylor remainder; excludes rounding).
    pub delta_error_bound: f64,
    /// `delta_error_bound <= RiskConfig::delta_tolerance`.
    pub within_tolerance: bool,
    /// Options registered on this underlying.
    pub n_options: u32,
}

/// Risk of one expiry bucket of an underlying.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BucketRisk {
    /// The forward of the bucket (`None`: BSM options on the spot).
    pub forward_id: Option<u32>,
    /// Expiry, ns.
    pub expiry_ns: u64,
    /// Current forward (for BSM buckets, `S exp((r - q) T)`).
    pub forward: f64,
    /// Time to expiry, years.
    pub t_years: f64,
    /// Spot-equivalent delta of the bucket, units of underlying.
    pub delta: f64,
    /// Forward delta `dV/dF` of the bucket, units of underlying.
    pub delta_forward: f64,
    /// d(delta)/dS.
    pub gamma: f64,
    /// Quote currency per 1.00 vol.
    pub vega: f64,
    /// Quote currency per year.
    pub theta: f64,
    /// Bound on |delta - exact|.
    pub delta_error_bound: f64,
}

/// What an option position becomes at expiry.
///
/// The book implements cash settlement only, for every option it holds: Deribit's options (the
/// synthetic market and the Tardis data) are European and cash-settled. A physically-settled
/// option would become a position in its underlying (or a future) at expiry, which the book
/// does not model: do not register such options (they would settle as cash here and their
/// delivered delta would be missing from the hedge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpirySettlement {
    /// At expiry the position is replaced by its intrinsic value against the expiry's
    /// forward (the underlying, for options on the spot); its delta, gamma, vega and theta
    /// become 0.
    Cash,
}

/// One option position settled at expiry ([`BookRisk::settlement`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettledOption {
    /// Option instrument id.
    pub option_id: u32,
    /// Its underlying's instrument id.
    pub underlying_id: u32,
    /// Expiry, ns on the book's clock.
    pub expiry_ns: u64,
    /// The book's time when it settled (the first clock update at or after the expiry), ns.
    pub settled_at_ns: u64,
    /// How it settled (always [`ExpirySettlement::Cash`]).
    pub style: ExpirySettlement,
    /// Premium currency of [`SettledOption::value`]: quote currency (`Linear`) or coin
    /// (`Inverse`).
    pub settlement: Settlement,
    /// Position settled, contracts (signed, negative = short); the book's position is 0 after.
    pub contracts: f64,
    /// Settlement price: the expiry's forward as the book knew it when it settled (the last
    /// underlying price times the expiry's last quoted basis; the underlying itself for
    /// options on the spot), quote currency. An estimate for operators: the venue's own
    /// settlement price (Deribit: a 30-minute average of its index) is the accounting figure.
    pub settlement_px: f64,
    /// `contracts * multiplier * intrinsic`, in the premium currency: for linear options
    /// quote currency, `max(w (settlement_px - strike), 0)` per unit of underlying; for
    /// inverse options coin, that intrinsic divided by `settlement_px`. Positive: the
    /// holder receives it.
    pub value: f64,
    /// The same value in quote currency (`value * settlement_px` for inverse options).
    pub value_quote: f64,
}

/// Settlement totals of one underlying ([`BookRisk::settlement_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SettlementTotals {
    /// Option positions settled (options with a non-zero position at expiry).
    pub options_settled: u64,
    /// Sum of the settled positions, contracts (signed).
    pub net_contracts: f64,
    /// Sum of the settled values in quote currency.
    pub value_quote: f64,
    /// Sum of the settled values of inverse options, in coin.
    pub value_coin: f64,
}

impl SettlementTotals {
    fn add(&mut self, s: &SettledOption) {
        self.options_settled += 1;
        self.net_contracts += s.contracts;
        self.value_quote += s.value_quote;
        if s.settlement == Settlement::Inverse {
            self.value_coin += s.value;
        }
    }

    fn remove(&mut self, s: &SettledOption) {
        self.options_settled -= 1;
        self.net_contracts -= s.contracts;
        self.value_quote -= s.value_quote;
        if s.settlement == Settlement::Inverse {
            self.value_coin -= s.value;
        }
    }
}

/// End of a bucket's intrusive list of options.
const NO_OPTION: u32 = u32::MAX;

/// Net delta of a linear perpetual/future/spot position, units of underlying.
#[inline]
pub fn linear_position_delta(qty_contracts: f64, multiplier: f64) -> f64 {
    qty_contracts * multiplier
}

/// Net delta, in coin, of an inverse perpetual/future position of `qty_contracts` contracts
/// of `contract_value_quote` (e.g. 10 USD on Deribit BTC-PERPETUAL) at price `price`: its
/// coin value moves like `qty * value / price` coins of the underlying (the convention that
/// matches premium-adjusted option deltas).
#[inline]
pub fn inverse_position_delta(qty_contracts: f64, contract_value_quote: f64, price: f64) -> f64 {
    if price > 0.0 {
        qty_contracts * contract_value_quote / price
    } else {
        0.0
    }
}

/// Running sums of one leg (model-delta or premium-adjusted options) of a bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Leg {
    // Delta polynomial in Y (log-level of the forward vs the bucket reference) and time.
    c0: f64,
    c1: f64,
    c2: f64,
    s1: f64,
    s2: f64,
    // Sums of the options' bound coefficients, each times its |q|.
    bound: BoundCoeffs,
}

/// Bound coefficients of an option (a leg holds their sums, each times |q|): `yyy` by powers
/// sigma^-3, ^-2, ^-1, ^0, and K (inverse puts); `sy`: sigma^-1, sigma^0; `ss`: sigma^0,
/// sigma^1, sigma^2.
#[derive(Debug, Clone, Copy, Default)]
struct BoundCoeffs {
    yyy: [f64; 5],
    sy: [f64; 2],
    ss: [f64; 3],
}

impl BoundCoeffs {
    /// Adds `k` times `o`, element by element (a leg adds an option's coefficients times its
    /// |change of quantity|).
    #[inline]
    fn add_scaled(&mut self, o: &BoundCoeffs, k: f64) {
        for (a, b) in self.yyy.iter_mut().zip(&o.yyy) {
            *a += k * b;
        }
        for (a, b) in self.sy.iter_mut().zip(&o.sy) {
            *a += k * b;
        }
        for (a, b) in self.ss.iter_mut().zip(&o.ss) {
            *a += k * b;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    underlying: usize,
    forward_id: Option<u32>,
    expiry_ns: u64,
    /// ln(F / S); for BSM buckets recomputed from carry on every time step.
    ln_basis: f64,
    /// ln(F_ref): fixed at creation; Y = ln S + ln_basis - ln_fref.
    ln_fref: f64,
    legs: [Leg; 2],
    /// Options registered on each leg. A leg with none has sums of +0.0 only (only an
    /// option's `apply` writes a leg; `clear_sums` zeroes it), so it adds exactly zero to
    /// every term: [`bucket_terms`] skips it (most expiries hold one leg: Deribit's options
    /// are all inverse).
    leg_options: [u32; 2],
    vega: f64,
    theta: f64,
    // Time factors, refreshed by advance_time.
    t_years: f64,
    /// `t_years.sqrt()` and `disc` = exp(-rate t_years): every option's re-evaluation uses
    /// them (the Black-76 kernel's, bit for bit), computed once per expiry and clock tick.
    sqrt_t: f64,
    half_ln_t: f64,
    disc: f64,
    inv_t15: f64,
    inv_t10: f64,
    inv_t05: f64,
    // Ranges of anchors (Y, T) of the options in this bucket (conservative).
    y_lo: f64,
    y_hi: f64,
    t_anchor_max: f64,
    // Ranges of anchors since the current idle sweep started.
    sweep_y_lo: f64,
    sweep_y_hi: f64,
    sweep_t_max: f64,
    // Cached transcendental factors (see `prepare`), so that events do arithmetic only.
    ratio: f64,
    s_w: f64,
    sqrt_tmax: f64,
    inv_f_lo: f64,
    /// The inputs the cached factors were computed from (see `prepare`).
    prepared: PreparedFrom,
    /// First option of the bucket (intrusive list through `OptState::next_in_bucket`), so
    /// that settling an expiry touches only its own options.
    first_option: u32,
    /// Scratch of [`BookRisk::force_reeval_over_bound`]: re-evaluated in the current call.
    reevaluated_now: bool,
    /// Settled: its options' positions are cash, its sums are zero.
    settled: bool,
    /// Position of the bucket in its underlying's `buckets` and `sums` (the order of the
    /// aggregate's sum).
    pos: usize,
}

/// One bucket's place in its underlying's aggregate ([`Underlying::sums`], in the order of
/// [`Underlying::buckets`]).
#[derive(Debug, Clone, Copy, Default)]
struct ExpirySum {
    /// The bucket's terms at the underlying's `terms_ln_price` (see
    /// [`BookRisk::refresh_bucket`]): only a changed bucket is expanded again.
    terms: BucketTerms,
    /// The bucket's vega and theta when `terms` were expanded (every change to them is
    /// followed by that expansion, or by the whole underlying's).
    vega: f64,
    theta: f64,
    /// The sum of this and every earlier position's terms, vega and theta, added in order
    /// from [`Aggregate::default`] (`ln_ref` unused): the aggregate is the last prefix, and
    /// a change at position k re-adds positions k.. only, the same additions in the same
    /// order as a full sum (bit for bit).
    prefix: Aggregate,
}

#[derive(Debug, Clone)]
struct Underlying {
    price: f64,
    ln_price: f64,
    rate: f64,
    div: f64,
    buckets: Vec<usize>,
    /// Per position of `buckets`: the bucket's cached terms and the running sums.
    sums: Vec<ExpirySum>,
    agg: Aggregate,
    /// Log-price at which every bucket's cached `terms` were computed (NaN: none are), so a
    /// change to one expiry re-expands that expiry only while the underlying has not moved.
    terms_ln_price: f64,
    risk: UnderlyingRisk,
    settled: SettlementTotals,
}

#[derive(Debug, Clone, Copy)]
struct OptState {
    id: u32,
    bucket: usize,
    leg: usize,
    /// Next option of the same bucket (`NO_OPTION`: last).
    next_in_bucket: u32,
    settlement: Settlement,
    /// Settled at expiry: `contracts` is 0 and stays 0; `settled_*` describe it.
    settled: bool,
    settled_contracts: f64,
    settled_px: f64,
    settled_at_ns: u64,
    kind: OptionType,
    model: Model,
    strike: f64,
    /// `strike.ln()`: an evaluation's log-moneyness is `ln F - ln K` (a subtraction, where
    /// `(F / K).ln()` put a division and a logarithm at the head of every mark's work).
    ln_strike: f64,
    multiplier: f64,
    vol: f64,
    contracts: f64,
    // Anchor (per unit of underlying, undiscounted) and its contribution shape.
    g0: f64,
    gy: f64,
    gyy: f64,
    gs: f64,
    y0: f64,
    half_ln_t0: f64,
    vega: f64,
    theta: f64,
    bound: BoundCoeffs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Underlying(u32),
    Forward(u32),
    Option(u32),
}

/// Incremental risk of all the underlyings of one hedger. See [`crate::risk`].
#[derive(Debug, Clone)]
pub struct BookRisk {
    cfg: RiskConfig,
    now_ns: u64,
    slots: Vec<Slot>,
    underlyings: Vec<Underlying>,
    buckets: Vec<Bucket>,
    options: Vec<OptState>,
    cursor: usize,
    /// Earliest expiry of a bucket not yet settled (`u64::MAX`: none): `advance_time`
    /// compares against it, so settlement costs nothing until an expiry passes.
    next_expiry_ns: u64,
    /// Inside [`BookRisk::begin_batch`]: changes are not re-aggregated until
    /// [`BookRisk::end_batch`].
    batching: bool,
    /// Tests only: every change re-expands every bucket (the behaviour before
    /// `refresh_bucket`), the reference the one-bucket refresh is compared with.
    #[cfg(test)]
    full_refresh_only: bool,
}

#[inline]
fn valid_price(px: f64) -> bool {
    px.is_finite() && px > 0.0
}

impl BookRisk {
    /// An empty book; reserves room for `cfg.max_options` options and
    /// `cfg.max_instrument_id` ids so that event calls never allocate.
    pub fn new(cfg: RiskConfig) -> Self {
        // The normal distribution's table, filled here rather than by a first valuation on
        // the event path.
        crate::pricing::normal::fill_tables();
        BookRisk {
            cfg,
            now_ns: 0,
            slots: vec![Slot::Free; cfg.max_instrument_id as usize],
            underlyings: Vec::with_capacity(16),
            buckets: Vec::with_capacity(256),
            options: Vec::with_capacity(cfg.max_options),
            cursor: 0,
            next_expiry_ns: u64::MAX,
            batching: false,
            #[cfg(test)]
            full_refresh_only: false,
        }
    }

    /// Starts a batch of marks, fills and prices (a rebuild of the whole book after the
    /// market data reader was lapped): until [`BookRisk::end_batch`], each change updates
    /// its option and expiry but not the underlying's aggregate, so the risk read in between
    /// is stale. One re-aggregation at the end replaces one per change (for 10,000 marks,
    /// 10,000 expansions and sums). The result is the same, bit for bit.
    pub fn begin_batch(&mut self) {
        self.batching = true;
    }

    /// Ends a batch: re-aggregates every underlying (O(expiries)). No allocation.
    pub fn end_batch(&mut self) {
        self.batching = false;
        for u in 0..self.underlyings.len() {
            self.refresh_underlying(u);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RiskConfig {
        &self.cfg
    }

    /// Current time of the book, ns.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn free_slot(&self, id: u32) -> Result<(), RiskError> {
        match self.slots.get(id as usize) {
            None => Err(RiskError::IdOutOfRange(id)),
            Some(Slot::Free) => Ok(()),
            Some(_) => Err(RiskError::DuplicateId(id)),
        }
    }

    /// Registers an underlying at `price` (rate and yield 0; see [`BookRisk::set_rates`]).
    ///
    /// # Errors
    /// Bad id or price.
    pub fn add_underlying(&mut self, underlying_id: u32, price: f64) -> Result<(), RiskError> {
        self.free_slot(underlying_id)?;
        if !valid_price(price) {
            return Err(RiskError::BadPrice(price));
        }
        let idx = self.underlyings.len() as u32;
        self.underlyings.push(Underlying {
            price,
            ln_price: price.ln(),
            rate: 0.0,
            div: 0.0,
            buckets: Vec::with_capacity(64),
            sums: Vec::with_capacity(64),
            agg: Aggregate::default(),
            terms_ln_price: f64::NAN,
            settled: SettlementTotals::default(),
            risk: UnderlyingRisk {
                underlying_id,
                price,
                within_tolerance: true,
                ..UnderlyingRisk::default()
            },
        });
        self.slots[underlying_id as usize] = Slot::Underlying(idx);
        Ok(())
    }

    /// Sets the discount rate and dividend/carry yield of an underlying (continuously
    /// compounded, per year). Re-evaluates its options (O(n), set-up time).
    ///
    /// # Errors
    /// Unknown underlying, or a rate outside [-1, 1].
    pub fn set_rates(&mut self, underlying_id: u32, rate: f64, div: f64) -> Result<(), RiskError> {
        let u = self.underlying_index(underlying_id)?;
        for x in [rate, div] {
            if !(-RATE_LIMIT..=RATE_LIMIT).contains(&x) {
                return Err(RiskError::BadRate(x));
            }
        }
        self.underlyings[u].rate = rate;
        self.underlyings[u].div = div;
        self.force_reeval(underlying_id);
        Ok(())
    }

    fn underlying_index(&self, id: u32) -> Result<usize, RiskError> {
        match self.slots.get(id as usize) {
            Some(Slot::Underlying(i)) => Ok(*i as usize),
            _ => Err(RiskError::UnknownUnderlying(id)),
        }
    }

    fn new_bucket(
        &mut self,
        u: usize,
        forward_id: Option<u32>,
        expiry_ns: u64,
        ln_basis: f64,
    ) -> usize {
        let ln_fref = self.underlyings[u].ln_price + ln_basis;
        let b = Bucket {
            underlying: u,
            forward_id,
            expiry_ns,
            ln_basis,
            ln_fref,
            legs: [Leg::default(); 2],
            leg_options: [0; 2],
            vega: 0.0,
            theta: 0.0,
            t_years: 0.0,
            sqrt_t: 0.0,
            half_ln_t: 0.0,
            disc: 1.0,
            inv_t15: 0.0,
            inv_t10: 0.0,
            inv_t05: 0.0,
            y_lo: f64::INFINITY,
            y_hi: f64::NEG_INFINITY,
            t_anchor_max: 0.0,
            sweep_y_lo: f64::INFINITY,
            sweep_y_hi: f64::NEG_INFINITY,
            sweep_t_max: 0.0,
            ratio: 1.0,
            s_w: 0.0,
            sqrt_tmax: 0.0,
            inv_f_lo: 0.0,
            prepared: PreparedFrom::NONE,
            first_option: NO_OPTION,
            reevaluated_now: false,
            settled: false,
            pos: self.underlyings[u].buckets.len(),
        };
        self.next_expiry_ns = self.next_expiry_ns.min(expiry_ns);
        let idx = self.buckets.len();
        self.buckets.push(b);
        self.underlyings[u].buckets.push(idx);
        self.underlyings[u].sums.push(ExpirySum::default());
        self.refresh_time(idx);
        idx
    }

    /// Registers the forward of one expiry (`SYN.BTC-<expiry>` or a future) at `price`. It
    /// moves with the underlying afterwards (keeping `price / S`) unless quoted itself.
    ///
    /// # Errors
    /// Bad id, unknown underlying, bad price.
    pub fn add_forward(
        &mut self,
        forward_id: u32,
        underlying_id: u32,
        expiry_ns: u64,
        price: f64,
    ) -> Result<(), RiskError> {
        self.free_slot(forward_id)?;
        let u = self.underlying_index(underlying_id)?;
        if !valid_price(price) {
            return Err(RiskError::BadPrice(price));
        }
        let ln_basis = price.ln() - self.underlyings[u].ln_price;
        let b = self.new_bucket(u, Some(forward_id), expiry_ns, ln_basis);
        self.slots[forward_id as usize] = Slot::Forward(b as u32);
        self.refresh_underlying(u);
        Ok(())
    }

    /// Registers an option with volatility `vol` (position 0) and evaluates it.
    ///
    /// # Errors
    /// Bad id, unknown underlying or forward, model/forward mismatch, expiry mismatch, bad
    /// strike, vol or multiplier, capacity exceeded.
    pub fn add_option(&mut self, spec: OptionSpec, vol: f64) -> Result<(), RiskError> {
        self.free_slot(spec.id)?;
        let u = self.underlying_index(spec.underlying_id)?;
        if !valid_price(spec.strike) {
            return Err(RiskError::BadStrike(spec.strike));
        }
        if !(MIN_BOOK_VOL..=MAX_VOL).contains(&vol) {
            return Err(RiskError::BadVol(vol));
        }
        if !(spec.multiplier.is_finite() && spec.multiplier > 0.0) {
            return Err(RiskError::BadMultiplier(spec.multiplier));
        }
        if self.options.len() >= self.cfg.max_options {
            return Err(RiskError::CapacityExceeded(self.options.len()));
        }
        let bucket = self.option_bucket(&spec, u)?;
        let leg = match (spec.settlement, self.cfg.inverse_delta) {
            (Settlement::Inverse, InverseDelta::PremiumAdjusted) => 1,
            _ => 0,
        };
        let idx = self.options.len();
        let bucket_settled = self.buckets[bucket].settled;
        self.options.push(OptState {
            id: spec.id,
            bucket,
            leg,
            next_in_bucket: self.buckets[bucket].first_option,
            settlement: spec.settlement,
            // An option of an expiry already settled is born settled (position 0 forever).
            settled: bucket_settled,
            settled_contracts: 0.0,
            settled_px: 0.0,
            settled_at_ns: 0,
            kind: spec.kind,
            model: spec.model,
            strike: spec.strike,
            ln_strike: spec.strike.ln(),
            multiplier: spec.multiplier,
            vol,
            contracts: 0.0,
            g0: 0.0,
            gy: 0.0,
            gyy: 0.0,
            gs: 0.0,
            y0: 0.0,
            half_ln_t0: 0.0,
            vega: 0.0,
            theta: 0.0,
            bound: BoundCoeffs::default(),
        });
        self.slots[spec.id as usize] = Slot::Option(idx as u32);
        self.buckets[bucket].first_option = idx as u32;
        self.buckets[bucket].leg_options[leg] += 1;
        self.underlyings[u].risk.n_options += 1;
        self.reeval(idx);
        self.refresh_underlying(u);
        Ok(())
    }

    /// The expiry bucket of a new option on underlying `u`: its forward's (Black-76), or
    /// the underlying's spot bucket of that expiry (Black-Scholes-Merton), created when new.
    fn option_bucket(&mut self, spec: &OptionSpec, u: usize) -> Result<usize, RiskError> {
        let bucket = match (spec.model, spec.forward_id) {
            (Model::Black76, Some(f)) => {
                let b = match self.slots.get(f as usize) {
                    Some(Slot::Forward(b)) if self.buckets[*b as usize].underlying == u => {
                        *b as usize
                    }
                    _ => return Err(RiskError::UnknownForward(f)),
                };
                if self.buckets[b].expiry_ns != spec.expiry_ns {
                    return Err(RiskError::ExpiryMismatch {
                        option: spec.id,
                        option_expiry_ns: spec.expiry_ns,
                        forward_expiry_ns: self.buckets[b].expiry_ns,
                    });
                }
                b
            }
            (Model::Bsm, None) => {
                let existing = self.underlyings[u].buckets.iter().copied().find(|&b| {
                    self.buckets[b].forward_id.is_none()
                        && self.buckets[b].expiry_ns == spec.expiry_ns
                });
                match existing {
                    Some(b) => b,
                    None => {
                        let b = self.new_bucket(u, None, spec.expiry_ns, 0.0);
                        // The basis of a spot bucket is the carry (set by refresh_time).
                        let ln_basis = self.buckets[b].ln_basis;
                        self.buckets[b].ln_fref = self.underlyings[u].ln_price + ln_basis;
                        prepare(&mut self.buckets[b]);
                        b
                    }
                }
            }
            _ => return Err(RiskError::ModelForwardMismatch(spec.id)),
        };
        Ok(bucket)
    }

    #[inline]
    fn option_index(&self, id: u32) -> Option<usize> {
        match self.slots.get(id as usize) {
            Some(Slot::Option(i)) => Some(*i as usize),
            _ => None,
        }
    }

    /// Changes an option position by `dqty_contracts` (a fill). O(1) in the number of options
    /// (plus O(expiries) re-aggregation), no allocation.
    /// Returns `false` (and changes nothing) for an unknown option, an option already settled
    /// at expiry ([`BookRisk::settlement`]) or a non-finite quantity.
    pub fn add_position(&mut self, option_id: u32, dqty_contracts: f64) -> bool {
        let Some(i) = self.option_index(option_id) else {
            return false;
        };
        if !dqty_contracts.is_finite() || self.options[i].settled {
            return false;
        }
        let o = self.options[i];
        let q_old = o.contracts * o.multiplier;
        let contracts = o.contracts + dqty_contracts;
        let q_new = contracts * o.multiplier;
        self.options[i].contracts = contracts;
        let b = o.bucket;
        apply(
            &mut self.buckets[b],
            &o,
            q_new - q_old,
            q_new.abs() - q_old.abs(),
        );
        self.refresh_bucket(b);
        true
    }

    /// The option's position in contracts (None: unknown option).
    pub fn position(&self, option_id: u32) -> Option<f64> {
        self.option_index(option_id)
            .map(|i| self.options[i].contracts)
    }

    /// New volatility for an option: it is re-evaluated exactly. O(1) in the number of options
    /// (plus O(expiries) re-aggregation), no allocation.
    /// Returns `false` (and changes nothing) for an unknown or settled option or an invalid
    /// vol.
    pub fn on_vol(&mut self, option_id: u32, vol: f64) -> bool {
        let Some(i) = self.option_index(option_id) else {
            return false;
        };
        if !(MIN_BOOK_VOL..=MAX_VOL).contains(&vol) || self.options[i].settled {
            return false;
        }
        self.options[i].vol = vol;
        self.reeval(i);
        self.refresh_bucket(self.options[i].bucket);
        true
    }

    /// An option mark: its vol and its expiry's forward price (ignored for BSM options).
    /// O(number of expiries of the underlying), no allocation.
    pub fn on_mark(&mut self, option_id: u32, vol: f64, forward_px: f64) -> bool {
        let Some(i) = self.option_index(option_id) else {
            return false;
        };
        let b = self.options[i].bucket;
        if self.buckets[b].forward_id.is_some() && valid_price(forward_px) {
            let u = self.buckets[b].underlying;
            self.buckets[b].ln_basis = forward_px.ln() - self.underlyings[u].ln_price;
            // The re-evaluation recomputes the factors of the new basis (the ratio before
            // it values the option, the rest in its `prepare`): one exp per mark.
            if !self.on_vol(option_id, vol) {
                // The forward moved even though the vol was refused.
                prepare(&mut self.buckets[b]);
                self.refresh_bucket(b);
                return false;
            }
            return true;
        }
        self.on_vol(option_id, vol)
    }

    /// A new price of an underlying (all its forwards move with it): O(1), a few flops and
    /// one logarithm. A new price of one forward: O(number of expiries of its underlying).
    /// Independent of the number of options; no allocation. Returns `false` for an unknown id
    /// or a bad price.
    pub fn on_price(&mut self, instrument_id: u32, px: f64) -> bool {
        if !valid_price(px) {
            return false;
        }
        match self.slots.get(instrument_id as usize) {
            Some(Slot::Underlying(u)) => {
                let u = *u as usize;
                let und = &mut self.underlyings[u];
                und.price = px;
                und.ln_price = px.ln();
                Self::evaluate(und, self.cfg.delta_tolerance);
                true
            }
            Some(Slot::Forward(b)) => {
                let b = *b as usize;
                let u = self.buckets[b].underlying;
                self.buckets[b].ln_basis = px.ln() - self.underlyings[u].ln_price;
                prepare(&mut self.buckets[b]);
                self.refresh_bucket(b);
                true
            }
            _ => false,
        }
    }

    /// Moves the book's clock to `now_ns` (never backwards): discounting, carry and the
    /// decay of delta are applied, the bound grows. O(number of buckets), no allocation.
    ///
    /// Settlement: every expiry at or before `now_ns` that is not settled yet is settled in
    /// cash ([`ExpirySettlement::Cash`]): each of its options' positions is recorded as a
    /// [`SettledOption`] (intrinsic value against the expiry's forward now) and set to 0,
    /// and the expiry's sums are zeroed, so it contributes exactly nothing to delta, gamma,
    /// vega and theta from then on. This costs O(options of that expiry), once per expiry;
    /// a call with no expiry passed costs one comparison more. No allocation.
    pub fn advance_time(&mut self, now_ns: u64) {
        if now_ns < self.now_ns {
            return;
        }
        self.now_ns = now_ns;
        for b in 0..self.buckets.len() {
            self.refresh_time(b);
        }
        if now_ns >= self.next_expiry_ns {
            let mut next = u64::MAX;
            for b in 0..self.buckets.len() {
                if self.buckets[b].settled {
                    continue;
                }
                if self.buckets[b].expiry_ns <= now_ns {
                    self.settle_bucket(b);
                } else {
                    next = next.min(self.buckets[b].expiry_ns);
                }
            }
            self.next_expiry_ns = next;
        }
        for u in 0..self.underlyings.len() {
            self.refresh_underlying(u);
        }
    }

    /// Sets the book's clock to `now_ns`, also backwards: for a clock that was provisional
    /// until the market's own clock was known (the hedger on recorded data, whose exchange
    /// time is years before the wall clock it started with). Expiries already settled stay
    /// settled; nothing settles here (the next [`BookRisk::advance_time`] does).
    /// O(number of buckets), no allocation.
    pub fn reset_time(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        for b in 0..self.buckets.len() {
            self.refresh_time(b);
        }
        for u in 0..self.underlyings.len() {
            self.refresh_underlying(u);
        }
    }

    /// Earliest expiry not yet settled, ns on the book's clock (None: nothing left to
    /// settle). Settlement happens at the first [`BookRisk::advance_time`] at or after it.
    pub fn next_expiry_ns(&self) -> Option<u64> {
        (self.next_expiry_ns != u64::MAX).then_some(self.next_expiry_ns)
    }

    /// Settles bucket `b` in cash: O(its options). The caller re-aggregates its underlying.
    fn settle_bucket(&mut self, b: usize) {
        let (u, expiry_ns, ln_basis) = {
            let bk = &self.buckets[b];
            (bk.underlying, bk.expiry_ns, bk.ln_basis)
        };
        let fwd = self.underlyings[u].price * ln_basis.exp();
        let now = self.now_ns;
        let mut i = self.buckets[b].first_option;
        while i != NO_OPTION {
            let o = &mut self.options[i as usize];
            let next = o.next_in_bucket;
            if !o.settled {
                o.settled = true;
                o.settled_contracts = o.contracts;
                o.settled_px = fwd;
                o.settled_at_ns = now;
                o.contracts = 0.0;
                if o.settled_contracts != 0.0 {
                    let s = settled_record(o, self.underlyings[u].risk.underlying_id, expiry_ns);
                    self.underlyings[u].settled.add(&s);
                }
            }
            // The bucket's sums are zeroed below: forget the old contribution.
            o.clear_anchor();
            i = next;
        }
        let bk = &mut self.buckets[b];
        bk.settled = true;
        bk.clear_sums();
        bk.sweep_y_lo = f64::INFINITY;
        bk.sweep_y_hi = f64::NEG_INFINITY;
        bk.sweep_t_max = 0.0;
        prepare(bk);
    }

    /// How an option settled at expiry (None: unknown, or not settled yet). An option of a
    /// settled expiry that had no position is settled with 0 contracts (and value 0).
    pub fn settlement(&self, option_id: u32) -> Option<SettledOption> {
        let o = &self.options[self.option_index(option_id)?];
        if !o.settled {
            return None;
        }
        let bk = &self.buckets[o.bucket];
        let und_id = self.underlyings[bk.underlying].risk.underlying_id;
        Some(settled_record(o, und_id, bk.expiry_ns))
    }

    /// Settlement totals of an underlying (None: unknown id).
    pub fn settlement_totals(&self, underlying_id: u32) -> Option<&SettlementTotals> {
        self.underlying_index(underlying_id)
            .ok()
            .map(|u| &self.underlyings[u].settled)
    }

    /// Adds a trade that reached the book after its option settled (executed before the expiry,
    /// delivered after it) to the option's settlement record, at the recorded settlement
    /// price: the fill is kept, and, like the rest of the settled position, carries no risk.
    /// The totals follow. O(1), no allocation. Returns `false` (and changes nothing) for an
    /// unknown option, one not settled, or a non-finite quantity.
    pub fn add_settled_trade(&mut self, option_id: u32, dqty_contracts: f64) -> bool {
        let Some(i) = self.option_index(option_id) else {
            return false;
        };
        if !self.options[i].settled || !dqty_contracts.is_finite() {
            return false;
        }
        let b = self.options[i].bucket;
        let (u, expiry_ns) = (self.buckets[b].underlying, self.buckets[b].expiry_ns);
        let und_id = self.underlyings[u].risk.underlying_id;
        if self.options[i].settled_contracts != 0.0 {
            let before = settled_record(&self.options[i], und_id, expiry_ns);
            self.underlyings[u].settled.remove(&before);
        }
        self.options[i].settled_contracts += dqty_contracts;
        if self.options[i].settled_contracts != 0.0 {
            let after = settled_record(&self.options[i], und_id, expiry_ns);
            self.underlyings[u].settled.add(&after);
        }
        true
    }

    /// Marks an option settled as recorded earlier (a restart from a snapshot): its position
    /// is removed from the sums and set to 0, the record counts in the totals, and no later
    /// expiry settles it again. Returns `false` (and changes nothing) for an unknown option,
    /// one already settled, or a record with a non-finite quantity or price.
    /// O(expiries of its underlying), set-up time.
    pub fn restore_settlement(
        &mut self,
        option_id: u32,
        contracts: f64,
        settlement_px: f64,
        settled_at_ns: u64,
    ) -> bool {
        let Some(i) = self.option_index(option_id) else {
            return false;
        };
        if self.options[i].settled || !contracts.is_finite() || !valid_price(settlement_px) {
            return false;
        }
        // Remove any position first, through the ordinary path.
        let cur = self.options[i].contracts;
        self.add_position(option_id, -cur);
        let o = &mut self.options[i];
        o.contracts = 0.0;
        o.settled = true;
        o.settled_contracts = contracts;
        o.settled_px = settlement_px;
        o.settled_at_ns = settled_at_ns;
        let b = o.bucket;
        let u = self.buckets[b].underlying;
        if contracts != 0.0 {
            let s = settled_record(
                &self.options[i],
                self.underlyings[u].risk.underlying_id,
                self.buckets[b].expiry_ns,
            );
            self.underlyings[u].settled.add(&s);
        }
        self.refresh_underlying(u);
        true
    }

    /// Re-evaluates the next few options exactly (round robin over the whole book,
    /// `RiskConfig::reeval_per_idle_step` of them) and tightens the anchor ranges at the end
    /// of each sweep. Returns how many options were re-evaluated. No allocation.
    pub fn idle_step(&mut self) -> usize {
        let n = self.options.len();
        if n == 0 {
            return 0;
        }
        let k = self.cfg.reeval_per_idle_step.min(n);
        for _ in 0..k {
            if self.cursor >= n {
                self.end_sweep();
            }
            let i = self.cursor;
            self.reeval(i);
            self.cursor += 1;
            self.refresh_bucket(self.options[i].bucket);
        }
        if self.cursor >= n {
            self.end_sweep();
        }
        k
    }

    fn end_sweep(&mut self) {
        self.cursor = 0;
        for b in &mut self.buckets {
            b.y_lo = b.sweep_y_lo;
            b.y_hi = b.sweep_y_hi;
            b.t_anchor_max = b.sweep_t_max;
            prepare(b);
            b.sweep_y_lo = f64::INFINITY;
            b.sweep_y_hi = f64::NEG_INFINITY;
            b.sweep_t_max = 0.0;
        }
        for u in 0..self.underlyings.len() {
            self.refresh_underlying(u);
        }
    }

    /// Re-evaluates every option of an underlying exactly and rebuilds its sums from
    /// scratch (bound 0 afterwards). O(n): the forced path when the bound exceeds the
    /// tolerance, and after set-up changes. Unknown ids are ignored.
    pub fn force_reeval(&mut self, underlying_id: u32) {
        let Ok(u) = self.underlying_index(underlying_id) else {
            return;
        };
        for bi in 0..self.underlyings[u].buckets.len() {
            let b = self.underlyings[u].buckets[bi];
            self.refresh_time(b);
            let bk = &mut self.buckets[b];
            bk.clear_sums();
            prepare(bk);
        }
        for i in 0..self.options.len() {
            if self.buckets[self.options[i].bucket].underlying == u {
                let o = &mut self.options[i];
                // Forget the old contribution: the sums were zeroed above.
                o.clear_anchor();
                self.reeval(i);
            }
        }
        self.refresh_underlying(u);
    }

    /// [`BookRisk::force_reeval`] of only the expiries that carry most of the delta error
    /// bound: each expiry's share of the bound (its terms at the underlying's move since
    /// they were expanded) is computed, and the largest shares are re-evaluated exactly
    /// until what the others carry is at most half the tolerance. When the bound is still
    /// above the tolerance after that (it cannot be, short of rounding), every expiry is
    /// re-evaluated. O(expiries^2 + options of the expiries re-evaluated), no allocation.
    pub fn force_reeval_over_bound(&mut self, underlying_id: u32) {
        let Ok(u) = self.underlying_index(underlying_id) else {
            return;
        };
        let al = (self.underlyings[u].ln_price - self.underlyings[u].agg.ln_ref).abs();
        let mut rest: f64 = self.underlyings[u]
            .sums
            .iter()
            .map(|s| terms_bound(&s.terms, al))
            .sum();
        let target = 0.5 * self.cfg.delta_tolerance;
        let n = self.underlyings[u].buckets.len();
        // Largest share first; a bucket re-evaluated is marked by a negative share.
        let mut done = 0;
        while rest > target && done < n {
            let mut best = (usize::MAX, f64::NEG_INFINITY);
            for bi in 0..n {
                let b = self.underlyings[u].buckets[bi];
                if self.buckets[b].reevaluated_now {
                    continue;
                }
                let share = terms_bound(&self.underlyings[u].sums[bi].terms, al);
                if share > best.1 {
                    best = (b, share);
                }
            }
            if best.0 == usize::MAX {
                break;
            }
            self.reeval_bucket(best.0);
            rest -= best.1;
            done += 1;
        }
        for bi in 0..n {
            let b = self.underlyings[u].buckets[bi];
            self.buckets[b].reevaluated_now = false;
        }
        self.refresh_underlying(u);
        if !self.underlyings[u].risk.within_tolerance {
            self.force_reeval(underlying_id);
        }
    }

    /// Re-evaluates every option of bucket `b` exactly, at the current time and price (the
    /// caller re-aggregates). Marks the bucket `reevaluated_now`.
    fn reeval_bucket(&mut self, b: usize) {
        self.refresh_time(b);
        let bk = &mut self.buckets[b];
        bk.clear_sums();
        bk.reevaluated_now = true;
        prepare(bk);
        let mut i = bk.first_option;
        while i != NO_OPTION {
            let next = self.options[i as usize].next_in_bucket;
            self.options[i as usize].clear_anchor();
            self.reeval(i as usize);
            i = next;
        }
    }

    /// The risk of an underlying as last updated (None: unknown id).
    pub fn underlying(&self, id: u32) -> Option<&UnderlyingRisk> {
        self.underlying_index(id)
            .ok()
            .map(|u| &self.underlyings[u].risk)
    }

    /// Per-expiry buckets of an underlying (computed values, in registration order).
    pub fn buckets(&self, id: u32) -> impl Iterator<Item = BucketRisk> + '_ {
        let list: &[usize] = match self.underlying_index(id) {
            Ok(u) => &self.underlyings[u].buckets,
            Err(_) => &[],
        };
        list.iter().map(move |&b| {
            let bk = &self.buckets[b];
            let u = &self.underlyings[bk.underlying];
            let t = bucket_terms::<true>(bk, u.ln_price, u.price);
            BucketRisk {
                forward_id: bk.forward_id,
                expiry_ns: bk.expiry_ns,
                forward: u.price * bk.ln_basis.exp(),
                t_years: bk.t_years,
                delta: t.delta,
                delta_forward: t.delta_forward,
                gamma: t.gamma,
                vega: bk.vega,
                theta: bk.theta,
                delta_error_bound: t.bound,
            }
        })
    }

    /// Exact risk of an underlying by full recomputation of every option at the current
    /// prices, vols and time (O(n); for tests, replay checks and the forced path's
    /// reference). Bound 0. None: unknown id.
    pub fn full_recompute(&self, id: u32) -> Option<UnderlyingRisk> {
        let u = self.underlying_index(id).ok()?;
        let und = &self.underlyings[u];
        let mut r = UnderlyingRisk {
            underlying_id: id,
            price: und.price,
            within_tolerance: true,
            n_options: und.risk.n_options,
            ..UnderlyingRisk::default()
        };
        for o in &self.options {
            let bk = &self.buckets[o.bucket];
            if bk.underlying != u {
                continue;
            }
            let q = o.contracts * o.multiplier;
            if q == 0.0 {
                continue;
            }
            let f = und.price * bk.ln_basis.exp();
            let t = bk.t_years;
            let g = gbs_greeks(o.kind, f, o.strike, t, o.vol, und.rate, und.rate);
            let ratio = f / und.price;
            if o.leg == 0 {
                r.net_delta += q * g.delta * ratio;
                r.gamma += q * g.gamma * ratio * ratio;
            } else {
                let pa = g.delta - g.price / f;
                let gamma_pa = g.gamma - g.delta / f + g.price / (f * f);
                r.net_delta += q * pa;
                r.gamma += q * gamma_pa * ratio;
            }
            r.vega += q * g.vega;
            r.theta += q * option_theta(o, und.price, und.rate, und.div, t, &g);
        }
        Some(r)
    }

    /// Recomputes a bucket's time factors (and a spot bucket's carry basis).
    fn refresh_time(&mut self, b: usize) {
        let now = self.now_ns;
        let bk = &mut self.buckets[b];
        let und = &self.underlyings[bk.underlying];
        let t = if bk.expiry_ns > now {
            (bk.expiry_ns - now) as f64 / NS_PER_YEAR
        } else {
            0.0
        };
        bk.t_years = t;
        bk.sqrt_t = t.sqrt();
        let tb = t.max(MIN_T_BOUND);
        bk.half_ln_t = 0.5 * tb.ln();
        bk.disc = (-und.rate * t).exp();
        bk.inv_t05 = 1.0 / tb.sqrt();
        bk.inv_t10 = 1.0 / tb;
        bk.inv_t15 = bk.inv_t10 * bk.inv_t05;
        if bk.forward_id.is_none() {
            bk.ln_basis = (und.rate - und.div) * t;
        }
        prepare(bk);
    }

    /// Exact re-evaluation of option `i` at its bucket's current state: replaces its
    /// contribution to the bucket sums. O(1).
    fn reeval(&mut self, i: usize) {
        // By reference, not by copy (the state is some 200 bytes, a memcpy per copy).
        let o = &self.options[i];
        if o.settled {
            // Cash now: nothing to evaluate, nothing in the sums.
            return;
        }
        let b = o.bucket;
        let (ln_s, rate, div, und_price) = {
            let u = &self.underlyings[self.buckets[b].underlying];
            (u.ln_price, u.rate, u.div, u.price)
        };
        let q = o.contracts * o.multiplier;
        // Remove the old contribution.
        apply(&mut self.buckets[b], o, -q, -q.abs());
        // The forward as the bucket's factor of the spot (as `full_recompute` values it):
        // a multiplication, the exp only when the basis moved since it was last taken.
        prepare_ratio(&mut self.buckets[b]);
        let (bk, o) = (&self.buckets[b], &self.options[i]);
        let ln_f = ln_s + bk.ln_basis;
        let f = und_price * bk.ratio;
        let y0 = ln_f - bk.ln_fref;
        let t = bk.t_years;
        // The Black-76 valuation on the forward (carry yield = rate), once: the delta terms,
        // the vega and the theta share its d1, d2, N and n.
        let at = GbsAt {
            s: f,
            k: o.strike,
            t,
            sqrt_t: bk.sqrt_t,
            r: rate,
            q: rate,
            dr: bk.disc,
            dq: bk.disc,
        };
        // ln(F/K) as ln F - ln K, in log space as y0 is (it differs from `(f / K).ln()`
        // by a few ulps of ln F).
        let x = ln_f - o.ln_strike;
        let black = if rate == 0.0 {
            // Zero rate (every shipped configuration's, and crypto's usual): the delta
            // reads one side's N, and the theta's carry terms are 0 (bit for bit the same).
            GbsTerms::new_zero_carry_one_side(o.kind, &at, o.vol, x, o.leg == 1)
        } else {
            GbsTerms::new(o.kind, &at, o.vol, x)
        };
        let (g0, gy, gyy, gs) = delta_terms(o, &black, f);
        let (b_yyy, b_sy, b_ss) = bound_coefficients(o);
        let theta = match o.model {
            Model::Black76 => black.theta(),
            Model::Bsm => gbs_greeks(o.kind, und_price, o.strike, t, o.vol, rate, div).theta,
        };
        let half_ln_t0 = self.buckets[b].half_ln_t;
        let o = &mut self.options[i];
        o.g0 = g0;
        o.gy = gy;
        o.gyy = gyy;
        o.gs = gs;
        o.y0 = y0;
        o.half_ln_t0 = half_ln_t0;
        o.vega = black.vega();
        o.theta = theta;
        o.bound = BoundCoeffs {
            yyy: b_yyy,
            sy: b_sy,
            ss: b_ss,
        };
        let bk = &mut self.buckets[b];
        apply(bk, &self.options[i], q, q.abs());
        // Ranges that are never NaN (an option's y0 and t are not: prices and times are
        // validated), so a compare and a move each instead of `f64::min`'s NaN handling.
        bk.y_lo = lower(bk.y_lo, y0);
        bk.y_hi = higher(bk.y_hi, y0);
        bk.t_anchor_max = higher(bk.t_anchor_max, t);
        prepare(bk);
        bk.sweep_y_lo = lower(bk.sweep_y_lo, y0);
        bk.sweep_y_hi = higher(bk.sweep_y_hi, y0);
        bk.sweep_t_max = higher(bk.sweep_t_max, t);
    }

    /// Re-aggregates the buckets of underlying `u` into its delta and bound polynomials in
    /// the log-move of the underlying since now, then evaluates them. O(number of
    /// expiries); called after anything but an underlying price changed.
    fn refresh_underlying(&mut self, u: usize) {
        let und = &mut self.underlyings[u];
        for (&b, slot) in und.buckets.iter().zip(und.sums.iter_mut()) {
            let bk = &self.buckets[b];
            slot.terms = bucket_terms::<false>(bk, und.ln_price, und.price);
            slot.vega = bk.vega;
            slot.theta = bk.theta;
        }
        und.terms_ln_price = und.ln_price;
        self.sum_terms(u, 0);
    }

    /// Re-aggregates after a change to bucket `b` only (a fill, a mark, a forward price, an
    /// idle re-evaluation): while the underlying has not moved since the other buckets'
    /// terms were expanded, only `b` is expanded again (the expansion costs a few dozen
    /// flops per leg), and only the running sums from `b`'s position on are added again
    /// (the same additions, in the same order, as [`BookRisk::refresh_underlying`]'s, so
    /// the result is bit for bit the same). One expansion and O(expiries from `b` on)
    /// additions.
    #[inline]
    fn refresh_bucket(&mut self, b: usize) {
        let u = self.buckets[b].underlying;
        if self.batching {
            // `end_batch` re-expands every bucket.
            return;
        }
        let und = &mut self.underlyings[u];
        #[cfg(test)]
        if self.full_refresh_only {
            self.refresh_underlying(u);
            return;
        }
        // Bitwise: NaN (no terms yet) never matches.
        if und.terms_ln_price.to_bits() != und.ln_price.to_bits() {
            self.refresh_underlying(u);
            return;
        }
        let bk = &self.buckets[b];
        let pos = bk.pos;
        let slot = &mut und.sums[pos];
        slot.terms = bucket_terms::<false>(bk, und.ln_price, und.price);
        slot.vega = bk.vega;
        slot.theta = bk.theta;
        self.sum_terms(u, pos);
    }

    /// Adds the cached terms of the buckets at positions `from..` of underlying `u` onto
    /// the running sum before `from` (the earlier prefixes are current), stores each
    /// prefix, and evaluates the last as the underlying's aggregate.
    #[inline]
    fn sum_terms(&mut self, u: usize, from: usize) {
        let und = &mut self.underlyings[u];
        let (done, redo) = und.sums.split_at_mut(from);
        let mut agg = done.last().map_or_else(Aggregate::default, |s| s.prefix);
        for slot in redo {
            agg.add(slot);
            slot.prefix = agg;
        }
        agg.ln_ref = und.ln_price;
        und.agg = agg;
        Self::evaluate(und, self.cfg.delta_tolerance);
    }

    /// Evaluates an underlying's aggregated polynomials at its current price. O(1).
    #[inline]
    fn evaluate(und: &mut Underlying, tolerance: f64) {
        let g = &und.agg;
        let a = und.ln_price - g.ln_ref;
        let al = a.abs();
        let mut bound = (g.p[0] + al * (g.p[1] + al * (g.p[2] + al * g.p[3]))) * SIXTH_UP
            + g.r[0]
            + g.r[1] * al;
        if g.q[3] > 0.0 {
            // exp(0) is exactly 1: the re-aggregation after any change but a move evaluates
            // at the move 0 and needs no exp.
            let e = if al == 0.0 { 1.0 } else { al.exp() };
            bound += e * (g.q[0] + al * (g.q[1] + al * (g.q[2] + al * g.q[3]))) * SIXTH_UP;
        }
        let r = &mut und.risk;
        r.price = und.price;
        r.net_delta = g.a[0] + a * (g.a[1] + a * g.a[2]);
        r.gamma = (g.a[1] + 2.0 * a * g.a[2]) / und.price;
        r.vega = g.vega;
        r.theta = g.theta;
        r.delta_error_bound = bound;
        r.within_tolerance = bound <= tolerance;
    }
}

/// Polynomials of an underlying's net delta and error bound in the log-move `a` of the
/// underlying since `ln_ref`: delta = a0 + a1 a + a2 a^2; bound = p(|a|)/6 + e^|a| q(|a|)/6 +
/// r0 + r1 |a|. Rebuilt after any change other than an underlying move (from the changed
/// expiry's running sum on: O(expiries) at most), so that an underlying move costs O(1).
#[derive(Debug, Clone, Copy, Default)]
struct Aggregate {
    ln_ref: f64,
    a: [f64; 3],
    p: [f64; 4],
    q: [f64; 4],
    r: [f64; 2],
    vega: f64,
    theta: f64,
}

impl Aggregate {
    /// Adds one bucket's cached terms, vega and theta (`ln_ref` unchanged).
    #[inline(always)]
    fn add(&mut self, s: &ExpirySum) {
        let t = &s.terms;
        self.a[0] += t.a[0];
        self.a[1] += t.a[1];
        self.a[2] += t.a[2];
        for k in 0..4 {
            self.p[k] += t.p[k];
            self.q[k] += t.q[k];
        }
        self.r[0] += t.r[0];
        self.r[1] += t.r[1];
        self.vega += s.vega;
        self.theta += s.theta;
    }
}

/// A bucket's share of its underlying's delta error bound at the log-move `al` (absolute)
/// since its terms were expanded: [`BookRisk::evaluate`]'s bound on its terms alone (the
/// `q` part whenever any `q` term is set, so the shares add up to at least the bound).
fn terms_bound(t: &BucketTerms, al: f64) -> f64 {
    let mut bound =
        (t.p[0] + al * (t.p[1] + al * (t.p[2] + al * t.p[3]))) * SIXTH_UP + t.r[0] + t.r[1] * al;
    if t.q.iter().any(|&q| q != 0.0) {
        bound += al.exp() * (t.q[0] + al * (t.q[1] + al * (t.q[2] + al * t.q[3]))) * SIXTH_UP;
    }
    bound
}

/// One bucket's contribution at the underlying's log-price `ln_s`, expanded in the
/// underlying's log-move `a` from there (see [`Aggregate`]), and its own values at `a = 0`
/// (`delta`, `delta_forward`, `gamma`, `bound`: computed for [`BookRisk::buckets`] only,
/// zero in the cached terms of the event path).
#[derive(Debug, Clone, Copy, Default)]
struct BucketTerms {
    a: [f64; 3],
    p: [f64; 4],
    q: [f64; 4],
    r: [f64; 2],
    delta: f64,
    delta_forward: f64,
    gamma: f64,
    bound: f64,
}

impl Bucket {
    /// Forgets every option's contribution (legs, vega, theta, the anchors' range and
    /// latest anchor time), before the options are re-evaluated or after they settled.
    fn clear_sums(&mut self) {
        self.legs = [Leg::default(); 2];
        self.vega = 0.0;
        self.theta = 0.0;
        self.y_lo = f64::INFINITY;
        self.y_hi = f64::NEG_INFINITY;
        self.t_anchor_max = 0.0;
    }
}

/// The inputs of a bucket's cached factors when `prepare` last computed them, as bits (a
/// factor is a pure function of its inputs: recomputed only when they changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PreparedFrom {
    /// ln_basis (-> ratio).
    ln_basis: u64,
    /// t_anchor_max and t_years (-> s_w; t_anchor_max -> sqrt_tmax).
    times: [u64; 2],
    /// ln_fref and y_lo (-> inv_f_lo).
    lo: [u64; 2],
    /// False until the first `prepare`.
    valid: bool,
    /// False until the first `prepare_ratio` (`ln_basis` is then the ratio's input).
    ratio_valid: bool,
}

impl PreparedFrom {
    const NONE: PreparedFrom = PreparedFrom {
        ln_basis: 0,
        times: [0; 2],
        lo: [0; 2],
        valid: false,
        ratio_valid: false,
    };
}

/// Recomputes a bucket's cached factors after its basis, time or anchor range changed:
/// each one only when its own inputs changed (bitwise), so that the same values come out
/// as from a full recomputation, and a mark (which moves the basis, rarely the anchors'
/// range and never the time) pays one exp instead of two exps, a log and a sqrt.
fn prepare(bk: &mut Bucket) {
    prepare_ratio(bk);
    let from = bk.prepared;
    let times = [bk.t_anchor_max.to_bits(), bk.t_years.to_bits()];
    if !from.valid || from.times != times {
        bk.s_w = if bk.t_anchor_max > bk.t_years {
            0.5 * (bk.t_anchor_max.max(MIN_T_BOUND) / bk.t_years.max(MIN_T_BOUND)).ln()
        } else {
            0.0
        };
        bk.sqrt_tmax = bk.t_anchor_max.sqrt();
    }
    let lo = [bk.ln_fref.to_bits(), bk.y_lo.to_bits()];
    if !from.valid || from.lo != lo {
        bk.inv_f_lo = if bk.y_lo.is_finite() {
            (-(bk.ln_fref + bk.y_lo)).exp()
        } else {
            0.0
        };
    }
    bk.prepared = PreparedFrom {
        ln_basis: from.ln_basis,
        times,
        lo,
        valid: true,
        ratio_valid: true,
    };
}

/// A bucket's `ratio` = exp(ln_basis), recomputed when the basis changed (bitwise) since
/// it was last computed: [`prepare`]'s first factor, which an option's re-evaluation also
/// reads before the rest is prepared.
#[inline]
fn prepare_ratio(bk: &mut Bucket) {
    let ln_basis = bk.ln_basis.to_bits();
    if !bk.prepared.ratio_valid || bk.prepared.ln_basis != ln_basis {
        bk.ratio = bk.ln_basis.exp();
        bk.prepared.ln_basis = ln_basis;
        bk.prepared.ratio_valid = true;
    }
}

/// A bucket's [`BucketTerms`] at the underlying's log-price `ln_s` and price `s`; its own
/// values at `a = 0` only when `REPORT` (the aggregate needs the expansion alone).
#[inline]
fn bucket_terms<const REPORT: bool>(bk: &Bucket, ln_s: f64, s: f64) -> BucketTerms {
    expand::<REPORT, true>(bk, ln_s, s)
}

/// [`bucket_terms`], skipping the empty legs or not (`SKIP_EMPTY`; tests compare the two).
#[inline(always)]
fn expand<const REPORT: bool, const SKIP_EMPTY: bool>(
    bk: &Bucket,
    ln_s: f64,
    s: f64,
) -> BucketTerms {
    let mut t = BucketTerms::default();
    let y = ln_s + bk.ln_basis - bk.ln_fref;
    let ratio = bk.ratio;
    // The anchors' distance: |y + a - anchor| <= |a| + w for every anchor.
    let w = if bk.y_lo <= bk.y_hi {
        higher((y - bk.y_lo).abs(), (y - bk.y_hi).abs())
    } else {
        0.0
    };
    let s_w = bk.s_w;
    let sqrt_tmax = bk.sqrt_tmax;
    // 1 / F_min: F_min >= F_ref exp(min(y, y_lo) - |a|) (the exp(|a|) is in the q terms).
    let inv_f_min = if y < bk.y_lo {
        1.0 / (s * ratio)
    } else {
        bk.inv_f_lo
    };
    // An empty leg's terms are zero times finite factors: +-0, and adding a zero changes no
    // sum here (each starts at +0.0, so none is -0.0). Kept when a factor is not finite
    // (a forward beyond f64's range of the spot), where 0 x inf would be NaN.
    let skip_empty = ratio.is_finite() && inv_f_min.is_finite();
    for (li, leg) in bk.legs.iter().enumerate() {
        if SKIP_EMPTY && skip_empty && bk.leg_options[li] == 0 {
            continue;
        }
        // Spot-equivalent scale: model leg D F/S, premium-adjusted leg D.
        let scale = if li == 0 { bk.disc * ratio } else { bk.disc };
        let g0 = leg.c0 + y * (leg.c1 + y * leg.c2) + bk.half_ln_t * leg.s1 - leg.s2;
        let g1 = leg.c1 + 2.0 * y * leg.c2;
        t.a[0] += scale * g0;
        t.a[1] += scale * g1;
        t.a[2] += scale * leg.c2;
        if REPORT {
            t.delta += scale * g0;
            t.delta_forward += if li == 0 {
                bk.disc * g0
            } else {
                bk.disc * g0 / ratio
            };
            t.gamma += scale * g1 / s;
        }
        let yyy = pos(leg.bound.yyy[0]) * bk.inv_t15
            + pos(leg.bound.yyy[1]) * bk.inv_t10
            + pos(leg.bound.yyy[2]) * bk.inv_t05
            + pos(leg.bound.yyy[3]);
        let yyy_k = pos(leg.bound.yyy[4]) * inv_f_min;
        let sy = pos(leg.bound.sy[0]) * bk.inv_t05 + pos(leg.bound.sy[1]);
        let ss = pos(leg.bound.ss[0])
            + pos(leg.bound.ss[1]) * sqrt_tmax
            + pos(leg.bound.ss[2]) * bk.t_anchor_max;
        // (|a| + w)^3 = w^3 + 3 w^2 |a| + 3 w |a|^2 + |a|^3.
        let k0 = scale * yyy;
        let kk = scale * yyy_k;
        let pw = [w * w * w, 3.0 * w * w, 3.0 * w, 1.0];
        for (k, pwk) in pw.iter().enumerate() {
            t.p[k] += k0 * pwk;
            t.q[k] += kk * pwk;
        }
        t.r[0] += scale * (sy * s_w * w + ss * s_w * s_w * 0.5);
        t.r[1] += scale * sy * s_w;
    }
    if REPORT {
        t.bound = (t.p[0] + t.q[0]) * SIXTH_UP + t.r[0];
    }
    t
}

/// `a.min(b)` for an `a` that is not NaN, as one compare and move (`b` NaN gives `a`, as
/// `f64::min` does).
#[inline(always)]
fn lower(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// `a.max(b)` for an `a` that is not NaN, as one compare and move (`b` NaN gives `a`, as
/// `f64::max` does).
#[inline(always)]
fn higher(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// `x.max(0.0)` as one `maxsd` (NaN gives 0 as `f64::max` does; -0 gives +0, which adds
/// the same to a sum that starts at +0): the bound's sums can round a hair below zero.
#[inline(always)]
fn pos(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Theta per year of an option, F-fixed for Black-76 options, S-fixed for BSM options.
fn option_theta(
    o: &OptState,
    spot: f64,
    rate: f64,
    div: f64,
    t: f64,
    black: &crate::pricing::Greeks,
) -> f64 {
    match o.model {
        Model::Black76 => black.theta,
        Model::Bsm => gbs_greeks(o.kind, spot, o.strike, t, o.vol, rate, div).theta,
    }
}

/// The settlement record of a settled option.
fn settled_record(o: &OptState, underlying_id: u32, expiry_ns: u64) -> SettledOption {
    let f = o.settled_px;
    let per_unit = (o.kind.sign() * (f - o.strike)).max(0.0);
    let value_quote = o.settled_contracts * o.multiplier * per_unit;
    let value = match o.settlement {
        Settlement::Linear => value_quote,
        Settlement::Inverse if f > 0.0 => value_quote / f,
        Settlement::Inverse => 0.0,
    };
    SettledOption {
        option_id: o.id,
        underlying_id,
        expiry_ns,
        settled_at_ns: o.settled_at_ns,
        style: ExpirySettlement::Cash,
        settlement: o.settlement,
        contracts: o.settled_contracts,
        settlement_px: f,
        value,
        value_quote,
    }
}

/// Adds `dq` times the option's linear contribution and `dabs` times its bound
/// contribution to its bucket.
#[inline]
fn apply(bk: &mut Bucket, o: &OptState, dq: f64, dabs: f64) {
    if dq == 0.0 && dabs == 0.0 {
        return;
    }
    let leg = &mut bk.legs[o.leg];
    let y0 = o.y0;
    leg.c0 += dq * (o.g0 - o.gy * y0 + 0.5 * o.gyy * y0 * y0);
    leg.c1 += dq * (o.gy - o.gyy * y0);
    leg.c2 += dq * 0.5 * o.gyy;
    leg.s1 += dq * o.gs;
    leg.s2 += dq * o.gs * o.half_ln_t0;
    leg.bound.add_scaled(&o.bound, dabs);
    bk.vega += dq * o.vega;
    bk.theta += dq * o.theta;
}

impl OptState {
    /// Zeroes the stored anchor so that removing "the old contribution" removes nothing
    /// (used after the bucket sums were reset).
    fn clear_anchor(&mut self) {
        self.g0 = 0.0;
        self.gy = 0.0;
        self.gyy = 0.0;
        self.gs = 0.0;
        self.y0 = 0.0;
        self.half_ln_t0 = 0.0;
        self.vega = 0.0;
        self.theta = 0.0;
        self.bound = BoundCoeffs::default();
    }
}

/// The delta polynomial's terms of option `o` from its Black-76 valuation `black` (at
/// log-moneyness x = ln(F/K), total standard deviation v = vol x sqrt(T)) and forward `f`:
/// `(g0, gy, gyy, gs)` (the value and its derivatives in the log-move Y, twice, and in the
/// stddev), for the plain leg or the premium-adjusted (inverse) one; the deterministic limit
/// below `MIN_STDDEV`.
#[inline]
fn delta_terms(o: &OptState, black: &GbsTerms, f: f64) -> (f64, f64, f64, f64) {
    let w = o.kind.sign();
    let leg_pa = o.leg == 1;
    if black.deterministic {
        // The sign of d1 (+-inf, or 0 at the money) is the sign of x.
        let ind = if black.d1 > 0.0 {
            1.0
        } else if black.d1 < 0.0 {
            0.0
        } else {
            0.5
        };
        // Delta / disc of the deterministic option.
        let call_ind = ind;
        let base = if o.kind == OptionType::Call {
            call_ind
        } else {
            call_ind - 1.0
        };
        let g0 = if leg_pa { base * o.strike / f } else { base };
        // PA leg: u = w e^{-x} N(w d2): derivative -u in Y.
        let gy = if leg_pa { -g0 } else { 0.0 };
        let gyy = if leg_pa { g0 } else { 0.0 };
        return (g0, gy, gyy, 0.0);
    }
    let (d1, d2, v, n1) = (black.d1, black.d2, black.v, black.pdf1);
    // One division for the two terms that divide by v (Taylor coefficients: their last
    // bits are rounding, far below the tolerance their truncation is bounded against).
    let inv_v = 1.0 / v;
    let n1_v = n1 * inv_v;
    let d1_n1_vv = d1 * n1_v * inv_v;
    if leg_pa {
        // N(w d2).
        let u = w * (o.strike / f) * black.nw2;
        (u, -u + n1_v, u - n1_v - d1_n1_vv, -d1 * n1)
    } else {
        // N(d1) for a call, -N(-d1) for a put: w N(w d1).
        let g0 = if o.kind == OptionType::Call {
            black.nw1
        } else {
            -black.nw1
        };
        (g0, n1_v, -d1_n1_vv, -d2 * n1)
    }
}

/// The coefficients of option `o`'s error-bound polynomials `(b_yyy, b_sy, b_ss)`, from the
/// suprema of the normal density's derivatives at its vol (at least `MIN_BOOK_VOL`).
#[inline]
fn bound_coefficients(o: &OptState) -> ([f64; 5], [f64; 2], [f64; 3]) {
    let sig = o.vol.max(MIN_BOOK_VOL);
    // One division for the three powers (the sups are rounded up in their 7th digit: a
    // few ulps of rounding here leave every coefficient above its exact value).
    let inv_sig = 1.0 / sig;
    let inv_sig2 = inv_sig * inv_sig;
    let inv_sig3 = inv_sig2 * inv_sig;
    if o.leg == 1 {
        let put_k = if o.kind == OptionType::Put {
            o.strike
        } else {
            0.0
        };
        (
            [
                SUP_D2M1_N * inv_sig3,
                SUP_D_N * inv_sig2,
                SUP_D2M1_N * inv_sig,
                1.0,
                put_k,
            ],
            [SUP_D2M1_N * inv_sig, 0.0],
            [SUP_D3MD_N, SUP_D2M1_N * sig, 0.0],
        )
    } else {
        (
            [SUP_D2M1_N * inv_sig3, 0.0, 0.0, 0.0, 0.0],
            [SUP_D2M1_N * inv_sig, SUP_D_N],
            [2.0 * SUP_D3_N + SUP_D_N, 0.0, 2.0 * SUP_D_N * sig * sig],
        )
    }
}

#[cfg(test)]
mod sixth_up {
    use super::SIXTH_UP;

    /// The f64 1/6 rounds to is below 1/6 and SIXTH_UP is the next one up, so SIXTH_UP is
    /// above 1/6: exact integer arithmetic on the significands (both are m x 2^-55).
    #[test]
    fn sixth_up_is_the_least_f64_above_one_sixth() {
        let mantissa = |x: f64| (x.to_bits() & ((1u64 << 52) - 1)) | (1u64 << 52);
        let (down, up) = (mantissa(1.0 / 6.0), mantissa(SIXTH_UP));
        // 1/6 in [2^-3, 2^-2): x = m 2^-55, so x < 1/6 iff 6 m < 2^55.
        assert_eq!((1.0f64 / 6.0).to_bits() >> 52, SIXTH_UP.to_bits() >> 52);
        assert!(6 * u128::from(down) < 1u128 << 55);
        assert!(6 * u128::from(up) > 1u128 << 55);
        assert_eq!(up, down + 1);
    }
}

#[cfg(test)]
mod cached_terms {
    //! `refresh_bucket` re-expands only the changed expiry and re-adds only the running sums
    //! from its position on: after every kind of change, the aggregate must be bit for bit
    //! what a full re-expansion of every bucket and a full sum in order give.
    use super::*;
    use crate::pricing::{Model, OptionType, Settlement};
    use proptest::prelude::*;

    const DAY_NS: u64 = 86_400_000_000_000;
    const T0_NS: u64 = 1_600_000_000_000_000_000;
    const EXPIRIES_DAYS: [u64; 6] = [2, 7, 14, 30, 90, 180];

    /// Six forwards (ids 1-6), 16 options (ids 8-23: two BSM expiries too, so eight
    /// buckets), positions held.
    fn book() -> BookRisk {
        let mut b = BookRisk::new(RiskConfig {
            delta_tolerance: 0.01,
            reeval_per_idle_step: 3,
            inverse_delta: InverseDelta::PremiumAdjusted,
            max_options: 32,
            max_instrument_id: 32,
        });
        b.advance_time(T0_NS);
        b.add_underlying(0, 9000.0).unwrap();
        for (j, days) in EXPIRIES_DAYS.iter().enumerate() {
            let px = 9000.0 * (1.0 + 0.002 * j as f64);
            b.add_forward(1 + j as u32, 0, T0_NS + days * DAY_NS, px)
                .unwrap();
        }
        for i in 0..16u32 {
            let j = i as usize % EXPIRIES_DAYS.len();
            let black = i < 12;
            let spec = OptionSpec {
                id: 8 + i,
                underlying_id: 0,
                forward_id: black.then_some(1 + j as u32),
                strike: 8000.0 + 250.0 * f64::from(i),
                expiry_ns: T0_NS + EXPIRIES_DAYS[if black { j } else { j % 2 }] * DAY_NS,
                kind: if i % 2 == 0 {
                    OptionType::Call
                } else {
                    OptionType::Put
                },
                model: if black { Model::Black76 } else { Model::Bsm },
                settlement: if i % 3 == 0 {
                    Settlement::Linear
                } else {
                    Settlement::Inverse
                },
                multiplier: 1.0,
            };
            b.add_option(spec, 0.5 + 0.05 * f64::from(i)).unwrap();
            b.add_position(8 + i, f64::from(i % 5) - 2.0);
        }
        b
    }

    #[derive(Debug, Clone)]
    enum Op {
        Move(f64),
        Forward(u32, f64),
        /// A mark; vols outside the book's range are refused (the forward still moves).
        Mark(u32, f64, f64),
        Vol(u32, f64),
        Fill(u32, f64),
        Idle,
        Time(u64),
        /// The clock to the next expiry: it settles.
        Expire,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (-0.01f64..0.01).prop_map(Op::Move),
            (1u32..7, -0.01f64..0.01).prop_map(|(f, r)| Op::Forward(f, r)),
            (
                8u32..24,
                prop::sample::select(vec![0.3, 0.8, 1.5, 0.0, 50.0]),
                -0.01f64..0.01
            )
                .prop_map(|(i, v, r)| Op::Mark(i, v, r)),
            (8u32..24, 0.1f64..2.0).prop_map(|(i, v)| Op::Vol(i, v)),
            (8u32..24, -3.0f64..3.0).prop_map(|(i, q)| Op::Fill(i, q)),
            Just(Op::Idle),
            (1u64..3600).prop_map(Op::Time),
            Just(Op::Expire),
        ]
    }

    fn apply_op(b: &mut BookRisk, op: &Op) {
        let spot = b.underlyings[0].price;
        match *op {
            Op::Move(r) => _ = b.on_price(0, spot * r.exp()),
            Op::Forward(f, r) => _ = b.on_price(f, spot * 1.001 * r.exp()),
            Op::Mark(i, v, r) => _ = b.on_mark(i, v, spot * r.exp()),
            Op::Vol(i, v) => _ = b.on_vol(i, v),
            Op::Fill(i, q) => _ = b.add_position(i, q),
            Op::Idle => _ = b.idle_step(),
            Op::Time(s) => b.advance_time(b.now_ns() + s * 1_000_000_000),
            Op::Expire => b.advance_time(b.next_expiry_ns().unwrap_or(b.now_ns())),
        }
    }

    /// What one expiry adds to the aggregate, field by field: its cached terms (a, p, q, r),
    /// vega and theta.
    fn slot_fields(s: &ExpirySum) -> [f64; 15] {
        let t = &s.terms;
        let (a, p, q, r) = (t.a, t.p, t.q, t.r);
        [
            a[0], a[1], a[2], p[0], p[1], p[2], p[3], q[0], q[1], q[2], q[3], r[0], r[1], s.vega,
            s.theta,
        ]
    }

    /// Every field of a bucket's terms, as bits.
    fn terms_bits(t: &BucketTerms) -> [u64; 17] {
        let (a, p, q, r) = (t.a, t.p, t.q, t.r);
        [
            a[0],
            a[1],
            a[2],
            p[0],
            p[1],
            p[2],
            p[3],
            q[0],
            q[1],
            q[2],
            q[3],
            r[0],
            r[1],
            t.delta,
            t.delta_forward,
            t.gamma,
            t.bound,
        ]
        .map(f64::to_bits)
    }

    /// An aggregate's sums, field by field, in [`slot_fields`]' order (`ln_ref` apart).
    fn agg_fields(g: &Aggregate) -> [f64; 15] {
        let (a, p, q, r) = (g.a, g.p, g.q, g.r);
        [
            a[0], a[1], a[2], p[0], p[1], p[2], p[3], q[0], q[1], q[2], q[3], r[0], r[1], g.vega,
            g.theta,
        ]
    }

    /// The full sum of underlying 0's first `n` cached expiries, in order, from +0: what the
    /// aggregate was before running sums (one pass over every expiry, per change).
    fn full_sum(b: &BookRisk, n: usize) -> [u64; 15] {
        let mut acc = [0.0f64; 15];
        for s in &b.underlyings[0].sums[..n] {
            for (x, y) in acc.iter_mut().zip(slot_fields(s)) {
                *x += y;
            }
        }
        acc.map(f64::to_bits)
    }

    /// The running sums of underlying 0 are what full sums give, bit for bit: every prefix,
    /// and the aggregate; each expiry's cached vega and theta are its current ones.
    fn check_running_sums(b: &BookRisk) -> Result<(), TestCaseError> {
        let und = &b.underlyings[0];
        prop_assert_eq!(und.sums.len(), und.buckets.len());
        for (k, s) in und.sums.iter().enumerate() {
            let bk = &b.buckets[und.buckets[k]];
            prop_assert_eq!(bk.pos, k);
            prop_assert_eq!(s.vega.to_bits(), bk.vega.to_bits(), "vega cached at {}", k);
            prop_assert_eq!(
                s.theta.to_bits(),
                bk.theta.to_bits(),
                "theta cached at {}",
                k
            );
            // The cached factors are current: what a fresh `prepare` computes.
            let mut fresh = Bucket {
                prepared: PreparedFrom::NONE,
                ..*bk
            };
            prepare(&mut fresh);
            let factors = |b: &Bucket| [b.ratio, b.s_w, b.sqrt_tmax, b.inv_f_lo].map(f64::to_bits);
            prop_assert_eq!(factors(bk), factors(&fresh), "factors of expiry {}", k);
            let prefix = agg_fields(&s.prefix).map(f64::to_bits);
            prop_assert_eq!(prefix, full_sum(b, k + 1), "prefix {}", k);
        }
        let agg = agg_fields(&und.agg).map(f64::to_bits);
        prop_assert_eq!(agg, full_sum(b, und.sums.len()), "aggregate");
        prop_assert_eq!(und.agg.ln_ref.to_bits(), und.terms_ln_price.to_bits());
        Ok(())
    }

    fn bits(r: &UnderlyingRisk) -> [u64; 6] {
        [
            r.price,
            r.net_delta,
            r.gamma,
            r.vega,
            r.theta,
            r.delta_error_bound,
        ]
        .map(f64::to_bits)
    }

    proptest! {
        #[test]
        fn a_batch_of_changes_ends_where_the_changes_one_by_one_end(ops in prop::collection::vec(op(), 1..60)) {
            let mut one_by_one = book();
            let mut batched = book();
            batched.begin_batch();
            for op in &ops {
                apply_op(&mut one_by_one, op);
                apply_op(&mut batched, op);
            }
            batched.end_batch();
            // The batch's end re-expands at the last price (one by one, a last move is
            // evaluated from the previous expansion): compare with that re-expansion.
            one_by_one.refresh_underlying(0);
            prop_assert_eq!(bits(batched.underlying(0).unwrap()), bits(one_by_one.underlying(0).unwrap()));
        }

        #[test]
        fn one_bucket_refresh_equals_full_reexpansion(ops in prop::collection::vec(op(), 1..80)) {
            let mut b = book();
            let mut reference = book();
            reference.full_refresh_only = true;
            for (k, op) in ops.iter().enumerate() {
                apply_op(&mut b, op);
                apply_op(&mut reference, op);
                let (got, want) = (bits(b.underlying(0).unwrap()), bits(reference.underlying(0).unwrap()));
                prop_assert_eq!(got, want, "after op {} {:?}", k, op);
            }
        }

        #[test]
        fn skipping_an_empty_leg_changes_no_bucket_term(ops in prop::collection::vec(op(), 0..80)) {
            let mut b = book();
            // Each kind of bucket is there: both legs, the model leg only, the premium-
            // adjusted leg only.
            let used = |b: &BookRisk, leg: [bool; 2]| b.buckets.iter().any(|bk| bk.leg_options.map(|n| n > 0) == leg);
            prop_assert!(used(&b, [true, true]) && used(&b, [true, false]) && used(&b, [false, true]));
            for op in &ops {
                apply_op(&mut b, op);
            }
            let und = &b.underlyings[0];
            for bk in &b.buckets {
                for (ln_s, s) in [(und.ln_price, und.price), (und.terms_ln_price, und.terms_ln_price.exp())] {
                    // Against the same bucket with every leg expanded (none skipped).
                    let got = [bucket_terms::<true>(bk, ln_s, s), bucket_terms::<false>(bk, ln_s, s)];
                    let want = [expand::<true, false>(bk, ln_s, s), expand::<false, false>(bk, ln_s, s)];
                    for (g, w) in got.iter().zip(&want) {
                        prop_assert_eq!(terms_bits(g), terms_bits(w), "expiry {}", bk.pos);
                    }
                }
            }
        }

        #[test]
        fn running_sums_equal_a_full_sum_in_order_bit_for_bit(ops in prop::collection::vec(op(), 1..120)) {
            let mut b = book();
            let mut reference = book();
            reference.full_refresh_only = true;
            check_running_sums(&b)?;
            for (k, op) in ops.iter().enumerate() {
                apply_op(&mut b, op);
                apply_op(&mut reference, op);
                check_running_sums(&b)?;
                let (got, want) = (&b.underlyings[0].agg, &reference.underlyings[0].agg);
                prop_assert_eq!(agg_fields(got).map(f64::to_bits), agg_fields(want).map(f64::to_bits), "after op {} {:?}", k, op);
            }
        }
    }
}

#[cfg(test)]
mod shared_black_terms {
    //! `reeval` values each option once (`GbsTerms`, with the expiry's cached sqrt(T) and
    //! discount, the log-moneyness as ln F - ln K, and one side's N at zero rate) for its
    //! delta terms, vega and theta: they must be bit for bit what the kernel's full
    //! `GbsTerms::new` gives for the same forward, log-moneyness, time, vol and rate, and
    //! within rounding of `gbs_greeks` at that forward and strike (which forms ln(F/K)
    //! from the quotient).
    use super::*;
    use proptest::prelude::*;

    const DAY_NS: u64 = 86_400_000_000_000;
    const T0_NS: u64 = 1_600_000_000_000_000_000;

    proptest! {
        #[test]
        fn an_options_vega_and_theta_are_the_kernels_terms_bit_for_bit(
            call in any::<bool>(),
            inverse in any::<bool>(),
            log_k in -1.0f64..1.0,
            vol in 0.01f64..3.0,
            minutes in 1u64..500_000,
            rate in prop_oneof![Just(0.0), -0.2f64..0.2],
            fwd_move in -0.05f64..0.05,
            qty in prop::sample::select(vec![-3.0, -1.0, 0.1, 1.0, 2.5]),
        ) {
            let mut b = BookRisk::new(RiskConfig { max_options: 1, max_instrument_id: 4, ..RiskConfig::default() });
            b.advance_time(T0_NS);
            b.add_underlying(0, 9000.0).unwrap();
            b.set_rates(0, rate, 0.0).unwrap();
            let expiry_ns = T0_NS + 400 * DAY_NS;
            b.add_forward(1, 0, expiry_ns, 9050.0).unwrap();
            let kind = if call { OptionType::Call } else { OptionType::Put };
            let strike = (9000.0 * log_k.exp()).round();
            let spec = OptionSpec {
                id: 2,
                underlying_id: 0,
                forward_id: Some(1),
                strike,
                expiry_ns,
                kind,
                model: Model::Black76,
                settlement: if inverse { Settlement::Inverse } else { Settlement::Linear },
                multiplier: 1.0,
            };
            b.add_option(spec, 0.5).unwrap();
            b.add_position(2, qty);
            b.advance_time(expiry_ns - minutes * 60_000_000_000);
            prop_assert!(b.on_mark(2, vol, 9050.0 * fwd_move.exp()));
            let bk = &b.buckets[0];
            let f = b.underlyings[0].price * bk.ratio;
            let (t, disc) = (bk.t_years, bk.disc);
            let at = GbsAt { s: f, k: strike, t, sqrt_t: bk.sqrt_t, r: rate, q: rate, dr: disc, dq: disc };
            let x = b.underlyings[0].ln_price + bk.ln_basis - strike.ln();
            let want = GbsTerms::new(kind, &at, vol, x);
            let got = b.buckets(0).next().unwrap();
            // Bit for bit, but for the sign of a zero (the bucket's sum starts at +0).
            let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a == 0.0 && b == 0.0);
            prop_assert!(same(got.vega, qty * want.vega()), "vega {} {}", got.vega, qty * want.vega());
            prop_assert!(same(got.theta, qty * want.theta()), "theta {} {}", got.theta, qty * want.theta());
            // And the quotient's log: the same values to rounding.
            let full = gbs_greeks(kind, f, strike, t, vol, rate, rate);
            let near = |a: f64, b: f64| (a - b).abs() <= 1e-11 * b.abs().max(1.0);
            prop_assert!(near(got.vega, qty * full.vega), "vega {} {}", got.vega, qty * full.vega);
            prop_assert!(near(got.theta, qty * full.theta), "theta {} {}", got.theta, qty * full.theta);
        }
    }
}
