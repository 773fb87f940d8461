//! Firm control: a `control` bucket entry for this host (or `all`) is parsed, validated whole,
//! applied to the local control block, acknowledged in `control_acks`, and its revision
//! persisted so that a restarted bridge does not apply it again.

use async_nats::jetstream::kv;

use super::Bridge;
use crate::local;
use crate::schema::{AckMsg, ControlAction, ControlMsg, ALL_HOSTS};
use crate::state;

impl Bridge {
    pub(super) async fn on_control(&mut self, e: kv::Entry) {
        if e.operation != kv::Operation::Put || (e.key != ALL_HOSTS && e.key != self.cfg.host) {
            return;
        }
        let parsed: Result<ControlMsg, String> =
            serde_json::from_slice(&e.value).map_err(|err| format!("not a control message: {err}"));
        if e.revision <= self.pos.last_control_revision {
            // Already answered before a restart. Budgets live in the bridge only: restore them.
            if let Ok(msg) = &parsed {
                if msg.action == ControlAction::Limits {
                    if let Ok(plan) = self.plan(msg, &e.key) {
                        self.set_budgets(&plan);
                    }
                }
            }
            return;
        }
        let result = parsed.and_then(|msg| self.plan(&msg, &e.key).map(|p| (msg, p)));
        let (applied, detail) = match result {
            Ok((msg, plan)) => match &self.cb {
                Some(cb) => {
                    let mut did = local::apply(cb, &plan, &local::underlyings(&self.cfg.dir));
                    if plan.action == ControlAction::Limits {
                        did = self.set_budgets(&plan);
                    }
                    self.m.control_applied.inc();
                    tracing::info!(host = %self.cfg.host, key = %e.key, revision = e.revision,
                        issued_by = %msg.issued_by, "control applied: {did}");
                    (true, did)
                }
                None => (
                    false,
                    "no control block: the hedger has not started".to_string(),
                ),
            },
            Err(why) => (false, why),
        };
        if !applied {
            self.m.control_rejected.inc();
            tracing::warn!(host = %self.cfg.host, key = %e.key, revision = e.revision,
                "control message rejected, nothing applied: {detail}");
        }
        self.ack(e.revision, applied, detail).await;
    }

    fn plan(&self, msg: &ControlMsg, key: &str) -> Result<local::Plan, String> {
        local::validate(msg, key, &self.cfg.host, &local::underlyings(&self.cfg.dir))
    }

    fn set_budgets(&mut self, plan: &local::Plan) -> String {
        let known = local::underlyings(&self.cfg.dir);
        let targets = if plan.all_underlyings {
            &known
        } else {
            &plan.targets
        };
        for (_, sym) in targets {
            match plan.net_delta_budget {
                Some(b) => self.budgets.insert(sym.clone(), b),
                None => self.budgets.remove(sym),
            };
        }
        match plan.net_delta_budget {
            Some(b) => format!("|net delta| budget {b} for {} underlying(s)", targets.len()),
            None => format!("budget cleared for {} underlying(s)", targets.len()),
        }
    }

    async fn ack(&mut self, revision: u64, applied: bool, detail: String) {
        self.pos.last_control_revision = revision;
        if let Err(e) = state::store(&self.cfg.state_file, &self.pos) {
            tracing::error!("{e}");
        }
        let Some(bus) = &self.bus else { return };
        let ack = AckMsg {
            host: self.cfg.host.clone(),
            revision,
            applied,
            detail,
        };
        let body = serde_json::to_vec(&ack).expect("an AckMsg always serializes");
        let put = bus.acks.put(&self.cfg.host, body.into());
        if !matches!(
            tokio::time::timeout(super::REQUEST_TIMEOUT, put).await,
            Ok(Ok(_))
        ) {
            self.m.bus_errors.inc();
            tracing::warn!(
                revision,
                "control ack not stored (bus trouble); the command was handled"
            );
        }
    }
}
