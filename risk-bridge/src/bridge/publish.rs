//! Outbound: executions to the `EXECS` stream (exactly once by message id), risk rows to the
//! `risk` bucket, the heartbeat to `hosts`.

use std::time::Instant;

use async_nats::HeaderMap;
use shm_layout::control::TradingState;
use shm_layout::ExecEvent;

use super::{Bridge, REQUEST_TIMEOUT};
use crate::local;
use crate::schema::{self, ExecMsg, HeartbeatMsg, RiskMsg};
use crate::state;

/// Most executions published per tick (bounds one tick's time; the rest go next tick).
const MAX_EXECS_PER_TICK: usize = 4096;

fn exec_msg(host: &str, e: &ExecEvent, underlying: String) -> ExecMsg {
    ExecMsg {
        host: host.to_string(),
        exec_id: e.exec_id,
        client_order_id: e.client_order_id,
        instrument_id: e.instrument_id,
        underlying,
        kind: e
            .kind()
            .map_or(format!("unknown({})", e.kind), |k| k.name().to_string()),
        side: e
            .side()
            .map_or(format!("unknown({})", e.side), |s| s.name().to_string()),
        qty_lots: e.qty,
        price: e.price,
        fee: e.fee,
        ts_ns: e.ts_ns,
    }
}

impl Bridge {
    /// New journal records past the acknowledged exec id: publish them all (pipelined), then
    /// take the acks in order; the position advances over the acknowledged prefix only, so
    /// a crash anywhere re-sends at most the unacknowledged tail, which JetStream drops as
    /// duplicates of `<host>.<exec_id>` within the window.
    pub(super) async fn pump_journal(&mut self) {
        let offset = self.journal_offset;
        let tail = match order_gateway::journal::read_execs(&self.cfg.journal, offset) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("journal {}: {e}", self.cfg.journal.display());
                return;
            }
        };
        if tail.file_id != self.journal_file || tail.next_offset < offset {
            // Compacted (a new file renamed over it): read it whole; ids filter what was sent.
            self.journal_file = tail.file_id;
            self.journal_offset = 0;
            if offset != 0 {
                return;
            }
        }
        let fresh: Vec<ExecEvent> = tail
            .execs
            .iter()
            .filter(|e| e.exec_id > self.pos.last_acked_exec_id)
            .take(MAX_EXECS_PER_TICK)
            .copied()
            .collect();
        let complete = fresh.len() < MAX_EXECS_PER_TICK;
        if self.publish_execs(&fresh).await && complete {
            self.journal_offset = tail.next_offset;
        }
    }

    /// Returns whether every exec was acknowledged.
    async fn publish_execs(&mut self, execs: &[ExecEvent]) -> bool {
        let Some(bus) = self.bus.clone() else {
            return false;
        };
        if execs.is_empty() {
            return true;
        }
        let und = local::underlying_of_instruments(&self.cfg.dir);
        let mut pending = Vec::with_capacity(execs.len());
        for e in execs {
            let sym = und.get(e.instrument_id as usize).cloned();
            let sym = sym.unwrap_or_else(|| e.instrument_id.to_string());
            let subject = format!(
                "{}.{}.{}",
                schema::EXECS_SUBJECT_PREFIX,
                self.cfg.host,
                schema::token(&sym)
            );
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("{}.{}", self.cfg.host, e.exec_id).as_str(),
            );
            let body = serde_json::to_vec(&exec_msg(&self.cfg.host, e, sym)).expect("serializes");
            let sent = bus.js.publish_with_headers(subject, headers, body.into());
            match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
                Ok(Ok(ack)) => pending.push((e.exec_id, ack)),
                _ => break,
            }
        }
        let before = self.pos.last_acked_exec_id;
        let mut all = pending.len() == execs.len();
        for (id, ack) in pending {
            match tokio::time::timeout(REQUEST_TIMEOUT, std::future::IntoFuture::into_future(ack))
                .await
            {
                Ok(Ok(a)) => {
                    if a.duplicate {
                        self.m.execs_duplicate.inc();
                    } else {
                        self.m.execs_published.inc();
                    }
                    if self.pos.last_acked_exec_id != 0 && id > self.pos.last_acked_exec_id + 1 {
                        self.m.exec_id_gaps.inc();
                        tracing::warn!(from = self.pos.last_acked_exec_id, to = id,
                            "gap in exec ids (gateway ring replaced, or journal compacted before it was read)");
                    }
                    self.pos.last_acked_exec_id = id;
                }
                _ => {
                    all = false;
                    break;
                }
            }
        }
        if !all {
            self.m.bus_errors.inc();
        }
        if self.pos.last_acked_exec_id != before {
            self.m
                .last_acked_exec_id
                .set(self.pos.last_acked_exec_id as f64);
            if let Err(e) = state::store(&self.cfg.state_file, &self.pos) {
                tracing::error!("{e}");
            }
        }
        all
    }

    fn risk_rows(&mut self) -> Vec<RiskMsg> {
        let Some(risk) = local::read_risk(&self.cfg.dir) else {
            return Vec::new();
        };
        let known = local::underlyings(&self.cfg.dir);
        let now = schema::unix_ms();
        let mut rows = Vec::new();
        for (sym, r) in &risk.underlyings {
            let id = known.iter().find(|(_, s)| s == sym).map(|(id, _)| *id);
            let budget = self.budgets.get(sym).copied();
            let state = match (&self.cb, id) {
                (Some(cb), Some(id)) => self.enforce_budget(cb, id, sym, r.net_delta, budget),
                _ => "unknown".to_string(),
            };
            rows.push(RiskMsg {
                host: self.cfg.host.clone(),
                underlying: sym.clone(),
                net_delta: r.net_delta,
                option_delta: r.option_delta,
                hedge_position: r.hedge_position,
                orders_inflight: risk.orders_inflight,
                trading_state: state,
                net_delta_budget: budget,
                budget_use: budget.map(|b| r.net_delta.abs() / b),
                updated_unix_ms: now,
            });
        }
        rows
    }

    /// Over its budget, an active underlying goes reduce-only (once per breach).
    fn enforce_budget(
        &self,
        cb: &shm_layout::control::ControlBlock,
        id: u32,
        sym: &str,
        net_delta: f64,
        budget: Option<f64>,
    ) -> String {
        let st = cb.trading_state(id);
        if budget.is_some_and(|b| net_delta.abs() > b) && st == TradingState::Active {
            cb.set_trading_state(id, TradingState::ReduceOnly);
            self.m.budget_breaches.inc();
            tracing::warn!(
                underlying = sym,
                net_delta,
                budget,
                "over firm budget: reduce-only"
            );
            return TradingState::ReduceOnly.name().to_string();
        }
        st.name().to_string()
    }

    /// Risk rows that changed (ignoring their timestamp), or all of them at the heartbeat;
    /// then the heartbeat.
    pub(super) async fn publish_risk(&mut self) {
        let due = self
            .last_heartbeat
            .is_none_or(|t| t.elapsed() >= self.cfg.heartbeat);
        let Some(bus) = self.bus.clone() else { return };
        for row in self.risk_rows() {
            let key = format!("{}.{}", self.cfg.host, schema::token(&row.underlying));
            let changed = self.last_risk.get(&key).is_none_or(|old| {
                RiskMsg {
                    updated_unix_ms: row.updated_unix_ms,
                    ..old.clone()
                } != row
            });
            if !(changed || due) {
                continue;
            }
            let body = serde_json::to_vec(&row).expect("serializes");
            match tokio::time::timeout(REQUEST_TIMEOUT, bus.risk.put(&key, body.into())).await {
                Ok(Ok(_)) => {
                    self.m.risk_updates.inc();
                    self.last_risk.insert(key, row);
                }
                _ => self.m.bus_errors.inc(),
            }
        }
        if due {
            self.put_heartbeat(&bus).await;
        }
    }

    async fn put_heartbeat(&mut self, bus: &crate::bus::Bus) {
        let hb = HeartbeatMsg {
            host: self.cfg.host.clone(),
            unix_ms: schema::unix_ms(),
            pid: std::process::id(),
            kill_switch: self.cb.as_ref().is_some_and(|c| c.kill_switch()),
            failsafe: self.failsafe.clone(),
            last_exec_id: self.pos.last_acked_exec_id,
        };
        let body = serde_json::to_vec(&hb).expect("serializes");
        match tokio::time::timeout(REQUEST_TIMEOUT, bus.hosts.put(&self.cfg.host, body.into()))
            .await
        {
            Ok(Ok(_)) => self.last_heartbeat = Some(Instant::now()),
            _ => self.m.bus_errors.inc(),
        }
    }
}
