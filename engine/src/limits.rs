//! Pre-trade risk controls for hedge orders, each with its own rejection counter.
//!
//! Pure and allocation-free like [`crate::policy`]: the caller passes the clock and every
//! external fact (kill switch, gateway liveness, book ages, trading state) in a
//! [`CheckContext`], so the replay/backtest runs the same checks. Modelled on NautilusTrader's
//! `RiskEngine` (order-rate throttle, max notional per order, `Active`/`Reducing`/`Halted`).
//!
//! Checks run in a fixed order and the first failure wins (one counter moves per rejected
//! order): kill switch, gateway down, reject-rate halt, trading state, stale data, max order
//! quantity, max notional per order, max hedge position, max traded notional per day, order
//! rate (last, so that a rejected order does not consume a token).

/// Trading state of one underlying (mirrors the control block's per-underlying word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TradingMode {
    /// Orders allowed.
    #[default]
    Active,
    /// Only orders that reduce the absolute hedge position (without flipping it).
    ReduceOnly,
    /// No orders.
    Halted,
}

/// Limits of one underlying's hedging. Quantities in hedge contracts, notionals in quote
/// currency, times in ns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitsConfig {
    /// Max quantity of one order, contracts.
    pub max_order_qty: f64,
    /// Max notional of one order, quote currency.
    pub max_order_notional: f64,
    /// Max absolute hedge position (including quantity in flight) after the order, contracts.
    pub max_position: f64,
    /// Token bucket refill rate, orders per second.
    pub max_orders_per_sec: f64,
    /// Token bucket capacity (burst), orders.
    pub order_burst: f64,
    /// Max traded (filled + in flight) notional per UTC day, quote currency.
    pub max_daily_notional: f64,
    /// Max age of the underlying's price and of the hedge book, ns.
    pub max_data_age_ns: u64,
    /// More than this many rejects within `reject_window_ns` halts the underlying...
    pub max_rejects: u32,
    /// ...counted over this window, ns...
    pub reject_window_ns: u64,
    /// ...for this long, ns.
    pub reject_halt_ns: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_order_qty: f64::INFINITY,
            max_order_notional: f64::INFINITY,
            max_position: f64::INFINITY,
            max_orders_per_sec: 100.0,
            order_burst: 10.0,
            max_daily_notional: f64::INFINITY,
            max_data_age_ns: 5_000_000_000,
            max_rejects: 10,
            reject_window_ns: 1_000_000_000,
            reject_halt_ns: 10_000_000_000,
        }
    }
}

/// Which control rejected an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitBreach {
    /// The operator's kill switch is set.
    KillSwitch,
    /// The gateway's heartbeat stopped.
    GatewayDown,
    /// Too many rejects recently: auto-halted.
    RejectRate,
    /// The underlying is halted.
    Halted,
    /// The underlying is reduce-only and the order would not reduce.
    ReduceOnly,
    /// Underlying price or hedge book too old, empty or crossed.
    StaleData,
    /// Order quantity above the maximum.
    OrderQty,
    /// Order notional above the maximum.
    OrderNotional,
    /// Hedge position would exceed the maximum.
    Position,
    /// Daily traded notional would exceed the maximum.
    DailyNotional,
    /// Order rate above the token bucket.
    Rate,
}

impl LimitBreach {
    /// Every breach, in check order.
    pub const ALL: [LimitBreach; 11] = [
        LimitBreach::KillSwitch,
        LimitBreach::GatewayDown,
        LimitBreach::RejectRate,
        LimitBreach::Halted,
        LimitBreach::ReduceOnly,
        LimitBreach::StaleData,
        LimitBreach::OrderQty,
        LimitBreach::OrderNotional,
        LimitBreach::Position,
        LimitBreach::DailyNotional,
        LimitBreach::Rate,
    ];

    /// Counter label.
    pub const fn name(self) -> &'static str {
        match self {
            LimitBreach::KillSwitch => "kill_switch",
            LimitBreach::GatewayDown => "gateway_down",
            LimitBreach::RejectRate => "reject_rate",
            LimitBreach::Halted => "halted",
            LimitBreach::ReduceOnly => "reduce_only",
            LimitBreach::StaleData => "stale_data",
            LimitBreach::OrderQty => "max_order_qty",
            LimitBreach::OrderNotional => "max_order_notional",
            LimitBreach::Position => "max_position",
            LimitBreach::DailyNotional => "max_daily_notional",
            LimitBreach::Rate => "max_order_rate",
        }
    }

    /// Index into [`LimitCounters::rejected`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Rejection counters, one per control, indexed by [`LimitBreach::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitCounters {
    /// Orders rejected by each control.
    pub rejected: [u64; 11],
    /// Orders that passed every check.
    pub passed: u64,
    /// Times the reject-rate auto-halt was triggered.
    pub auto_halts: u64,
}

impl LimitCounters {
    /// Count of one breach.
    #[inline]
    pub fn get(&self, b: LimitBreach) -> u64 {
        self.rejected[b.index()]
    }
}

/// Everything about the world that a check needs, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckContext {
    /// Monotonic now, ns.
    pub now_ns: u64,
    /// UTC day number (wall ns / 86400e9): the daily notional resets when it changes.
    pub utc_day: u64,
    /// Operator's kill switch.
    pub kill_switch: bool,
    /// Whether the gateway's heartbeat is fresh.
    pub gateway_alive: bool,
    /// Trading state of this underlying.
    pub mode: TradingMode,
    /// Monotonic receive time of the last underlying price, ns (0 = never).
    pub underlying_ts_ns: u64,
    /// Monotonic receive time of the last hedge book update, ns (0 = never).
    pub hedge_book_ts_ns: u64,
    /// Whether the hedge book is two-sided, positive and uncrossed.
    pub hedge_book_ok: bool,
    /// Hedge position plus signed quantity in flight before this order, contracts.
    pub position_contracts: f64,
    /// Notional of hedge orders in flight (not yet filled), quote currency.
    pub inflight_notional: f64,
}

/// An order to check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderToCheck {
    /// Signed quantity, contracts (+ buy, - sell).
    pub signed_qty: f64,
    /// Quote-currency notional of the order.
    pub notional: f64,
}

/// The risk controls of one underlying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Configuration.
    pub cfg: LimitsConfig,
    /// Rejection counters.
    pub counters: LimitCounters,
    tokens: f64,
    tokens_ts_ns: u64,
    day: u64,
    filled_today: f64,
    reject_window_start_ns: u64,
    rejects_in_window: u32,
    halted_until_ns: u64,
}

impl Limits {
    /// Fresh limits with a full token bucket.
    pub fn new(cfg: LimitsConfig) -> Self {
        Limits {
            cfg,
            counters: LimitCounters::default(),
            tokens: cfg.order_burst,
            tokens_ts_ns: 0,
            day: 0,
            filled_today: 0.0,
            reject_window_start_ns: 0,
            rejects_in_window: 0,
            halted_until_ns: 0,
        }
    }

    /// Filled notional of the current UTC day.
    pub fn filled_today(&self) -> f64 {
        self.filled_today
    }

    /// Restores the day's filled notional (after a restart).
    pub fn restore_day(&mut self, utc_day: u64, filled: f64) {
        self.day = utc_day;
        self.filled_today = filled;
    }

    /// UTC day the filled notional belongs to.
    pub fn day(&self) -> u64 {
        self.day
    }

    /// Whether the reject-rate auto-halt is in force at `now_ns`.
    #[inline]
    pub fn auto_halted(&self, now_ns: u64) -> bool {
        now_ns < self.halted_until_ns
    }

    /// Records a fill's notional for the daily limit.
    #[inline]
    pub fn on_fill(&mut self, utc_day: u64, notional: f64) {
        self.roll_day(utc_day);
        self.filled_today += notional.abs();
    }

    /// Records a reject from the venue/gateway; may trigger the auto-halt.
    #[inline]
    pub fn on_reject(&mut self, now_ns: u64) {
        if now_ns.saturating_sub(self.reject_window_start_ns) >= self.cfg.reject_window_ns {
            self.reject_window_start_ns = now_ns;
            self.rejects_in_window = 0;
        }
        self.rejects_in_window += 1;
        if self.rejects_in_window > self.cfg.max_rejects && !self.auto_halted(now_ns) {
            self.halted_until_ns = now_ns.saturating_add(self.cfg.reject_halt_ns);
            self.counters.auto_halts += 1;
        }
    }

    #[inline]
    fn roll_day(&mut self, utc_day: u64) {
        if utc_day != self.day {
            self.day = utc_day;
            self.filled_today = 0.0;
        }
    }

    #[inline]
    fn refill(&mut self, now_ns: u64) {
        let dt = now_ns.saturating_sub(self.tokens_ts_ns) as f64 * 1e-9;
        self.tokens_ts_ns = now_ns;
        self.tokens = (self.tokens + dt * self.cfg.max_orders_per_sec).min(self.cfg.order_burst);
    }

    #[inline]
    fn first_breach(&mut self, ctx: &CheckContext, o: &OrderToCheck) -> Option<LimitBreach> {
        let cfg = &self.cfg;
        if ctx.kill_switch {
            return Some(LimitBreach::KillSwitch);
        }
        if !ctx.gateway_alive {
            return Some(LimitBreach::GatewayDown);
        }
        if self.auto_halted(ctx.now_ns) {
            return Some(LimitBreach::RejectRate);
        }
        let before = ctx.position_contracts;
        let after = before + o.signed_qty;
        match ctx.mode {
            TradingMode::Active => {}
            TradingMode::Halted => return Some(LimitBreach::Halted),
            TradingMode::ReduceOnly => {
                // Reduces without flipping: opposite sign, and |after| <= |before|.
                if before * o.signed_qty >= 0.0 || after * before < 0.0 {
                    return Some(LimitBreach::ReduceOnly);
                }
            }
        }
        let fresh = |ts: u64| ts != 0 && ctx.now_ns.saturating_sub(ts) <= cfg.max_data_age_ns;
        if !ctx.hedge_book_ok || !fresh(ctx.underlying_ts_ns) || !fresh(ctx.hedge_book_ts_ns) {
            return Some(LimitBreach::StaleData);
        }
        // NaN quantities or notionals fail too.
        if o.signed_qty.is_nan() || o.signed_qty.abs() > cfg.max_order_qty {
            return Some(LimitBreach::OrderQty);
        }
        if o.notional.is_nan() || o.notional > cfg.max_order_notional {
            return Some(LimitBreach::OrderNotional);
        }
        if after.abs() > cfg.max_position && after.abs() > before.abs() {
            return Some(LimitBreach::Position);
        }
        self.roll_day(ctx.utc_day);
        if self.filled_today + ctx.inflight_notional + o.notional > self.cfg.max_daily_notional {
            return Some(LimitBreach::DailyNotional);
        }
        self.refill(ctx.now_ns);
        if self.tokens < 1.0 {
            return Some(LimitBreach::Rate);
        }
        self.tokens -= 1.0;
        None
    }

    /// Checks an order; on success a rate token is consumed. Every rejection moves the
    /// counter of its control.
    ///
    /// # Errors
    /// The first control that rejects the order.
    #[inline]
    pub fn check(&mut self, ctx: &CheckContext, order: &OrderToCheck) -> Result<(), LimitBreach> {
        match self.first_breach(ctx, order) {
            None => {
                self.counters.passed += 1;
                Ok(())
            }
            Some(b) => {
                self.counters.rejected[b.index()] += 1;
                Err(b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ctx(now: u64) -> CheckContext {
        CheckContext {
            now_ns: now,
            utc_day: 100,
            kill_switch: false,
            gateway_alive: true,
            mode: TradingMode::Active,
            underlying_ts_ns: now,
            hedge_book_ts_ns: now,
            hedge_book_ok: true,
            position_contracts: 0.0,
            inflight_notional: 0.0,
        }
    }

    fn order(q: f64) -> OrderToCheck {
        OrderToCheck {
            signed_qty: q,
            notional: q.abs() * 100.0,
        }
    }

    fn limits() -> Limits {
        Limits::new(LimitsConfig {
            max_order_qty: 10.0,
            max_order_notional: 500.0,
            max_position: 20.0,
            max_orders_per_sec: 2.0,
            order_burst: 2.0,
            max_daily_notional: 3_000.0,
            max_data_age_ns: S,
            max_rejects: 2,
            reject_window_ns: S,
            reject_halt_ns: 5 * S,
        })
    }

    fn assert_counted(l: &Limits, b: LimitBreach, n: u64) {
        assert_eq!(l.counters.get(b), n, "{}", b.name());
        let others: u64 = l.counters.rejected.iter().sum::<u64>() - n;
        assert_eq!(others, 0, "only {} moved: {:?}", b.name(), l.counters);
    }

    #[test]
    fn passing_order_consumes_a_token() {
        let mut l = limits();
        assert_eq!(l.check(&ctx(S), &order(1.0)), Ok(()));
        assert_eq!(l.counters.passed, 1);
    }

    #[test]
    fn max_order_qty_rejects_and_counts() {
        let mut l = limits();
        assert_eq!(l.check(&ctx(S), &order(10.5)), Err(LimitBreach::OrderQty));
        assert_counted(&l, LimitBreach::OrderQty, 1);
    }

    #[test]
    fn max_order_notional_rejects_and_counts() {
        let mut l = limits();
        let o = OrderToCheck {
            signed_qty: 1.0,
            notional: 600.0,
        };
        assert_eq!(l.check(&ctx(S), &o), Err(LimitBreach::OrderNotional));
        assert_counted(&l, LimitBreach::OrderNotional, 1);
    }

    #[test]
    fn max_position_rejects_growth_but_allows_reduction() {
        let mut l = limits();
        let mut c = ctx(S);
        c.position_contracts = 18.0;
        assert_eq!(l.check(&c, &order(3.0)), Err(LimitBreach::Position));
        c.position_contracts = 25.0;
        assert_eq!(l.check(&c, &order(-3.0)), Ok(()));
        assert_counted(&l, LimitBreach::Position, 1);
    }

    #[test]
    fn token_bucket_limits_order_rate_and_refills() {
        let mut l = limits();
        assert!(l.check(&ctx(S), &order(1.0)).is_ok());
        assert!(l.check(&ctx(S), &order(1.0)).is_ok());
        assert_eq!(l.check(&ctx(S), &order(1.0)), Err(LimitBreach::Rate));
        assert_counted(&l, LimitBreach::Rate, 1);
        // Half a second refills one token at 2/s.
        assert!(l.check(&ctx(S + S / 2), &order(1.0)).is_ok());
    }

    #[test]
    fn daily_notional_counts_fills_and_in_flight_and_resets_next_day() {
        let mut l = limits();
        l.on_fill(100, 2_500.0);
        let mut c = ctx(S);
        assert!(l.check(&c, &order(4.0)).is_ok()); // 2500 + 400 <= 3000
        c.inflight_notional = 400.0;
        assert_eq!(l.check(&c, &order(2.0)), Err(LimitBreach::DailyNotional));
        assert_counted(&l, LimitBreach::DailyNotional, 1);
        c.utc_day = 101;
        c.inflight_notional = 0.0;
        assert!(l.check(&c, &order(2.0)).is_ok());
        assert_eq!(l.filled_today(), 0.0);
    }

    #[test]
    fn stale_empty_or_crossed_books_block_hedging() {
        let mut l = limits();
        let mut c = ctx(3 * S);
        c.underlying_ts_ns = S; // 2 s old > 1 s
        assert_eq!(l.check(&c, &order(1.0)), Err(LimitBreach::StaleData));
        let mut c = ctx(3 * S);
        c.hedge_book_ts_ns = 0; // never seen
        assert_eq!(l.check(&c, &order(1.0)), Err(LimitBreach::StaleData));
        let mut c = ctx(3 * S);
        c.hedge_book_ok = false; // empty or crossed
        assert_eq!(l.check(&c, &order(1.0)), Err(LimitBreach::StaleData));
        assert_counted(&l, LimitBreach::StaleData, 3);
    }

    #[test]
    fn reduce_only_allows_reductions_without_flipping() {
        let mut l = limits();
        let mut c = ctx(S);
        c.mode = TradingMode::ReduceOnly;
        c.position_contracts = 5.0;
        assert!(l.check(&c, &order(-3.0)).is_ok());
        assert_eq!(l.check(&c, &order(1.0)), Err(LimitBreach::ReduceOnly));
        assert_eq!(l.check(&c, &order(-6.0)), Err(LimitBreach::ReduceOnly));
        c.position_contracts = 0.0;
        assert_eq!(l.check(&c, &order(-1.0)), Err(LimitBreach::ReduceOnly));
        assert_counted(&l, LimitBreach::ReduceOnly, 3);
    }

    #[test]
    fn halted_state_kill_switch_or_gateway_heartbeat_loss_blocks_and_counts() {
        type SetState = fn(&mut CheckContext);
        let blocking: [(SetState, LimitBreach); 3] = [
            (|c| c.mode = TradingMode::Halted, LimitBreach::Halted),
            (|c| c.kill_switch = true, LimitBreach::KillSwitch),
            (|c| c.gateway_alive = false, LimitBreach::GatewayDown),
        ];
        for (set, breach) in blocking {
            let mut l = limits();
            let mut c = ctx(S);
            set(&mut c);
            assert_eq!(l.check(&c, &order(1.0)), Err(breach));
            assert_counted(&l, breach, 1);
        }
    }

    #[test]
    fn reject_rate_auto_halts_for_a_while() {
        let mut l = limits();
        l.on_reject(S);
        l.on_reject(S + 1);
        assert!(l.check(&ctx(S + 2), &order(1.0)).is_ok());
        l.on_reject(S + 3); // third within 1 s > max 2
        assert_eq!(l.counters.auto_halts, 1);
        assert_eq!(
            l.check(&ctx(S + 4), &order(1.0)),
            Err(LimitBreach::RejectRate)
        );
        assert_counted(&l, LimitBreach::RejectRate, 1);
        assert!(l.check(&ctx(7 * S), &order(1.0)).is_ok());
    }
}
