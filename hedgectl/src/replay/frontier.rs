//! Parameter sweeps and the cost / risk frontier.
//!
//! `--sweep 'fixed:band=0.25,0.5,1,2'` expands into one policy spec per value; any key may take
//! a list and lists multiply (`cost-aware:risk_aversion=1e-5,1e-4,max_band=2,5` is four
//! configurations). Each configuration is one run of the live `HedgerCore` over the same data.
//! The frontier puts each run's hedging cost (fees + half-spread + slippage, quote currency)
//! against its tracking error (RMS, over every event, of the hedged book's PnL minus the PnL
//! of a cost-free continuous delta hedge) and flags the dominated configurations.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use serde::Serialize;

use super::report::PolicyReport;

/// The specs a sweep expands to, in grid order (the last key varies fastest).
///
/// # Errors
/// A token that is neither `key=value` nor a further value of the previous key.
pub fn expand(sweep: &str) -> Result<Vec<String>> {
    let (kind, rest) = sweep.split_once(':').unwrap_or((sweep, ""));
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for tok in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match tok.split_once('=') {
            Some((k, v)) => keys.push((k.trim().to_string(), vec![v.trim().to_string()])),
            None => match keys.last_mut() {
                Some((_, vals)) => vals.push(tok.to_string()),
                None => bail!("--sweep {sweep}: `{tok}` is not key=value"),
            },
        }
    }
    let mut specs = vec![String::new()];
    for (k, vals) in &keys {
        let mut next = Vec::with_capacity(specs.len() * vals.len());
        for s in &specs {
            for v in vals {
                let sep = if s.is_empty() { "" } else { "," };
                next.push(format!("{s}{sep}{k}={v}"));
            }
        }
        specs = next;
    }
    Ok(specs
        .into_iter()
        .map(|s| {
            if s.is_empty() {
                kind.trim().to_string()
            } else {
                format!("{}:{s}", kind.trim())
            }
        })
        .collect())
}

/// One configuration on the frontier.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Policy kind (`none`, `fixed`, `whalley-wilmott`, `cost-aware`).
    pub family: String,
    /// The policy spec.
    pub spec: String,
    /// Execution style (`ioc`, `passive`, `slices`: the spec's `style`, `ioc` when unset).
    pub style: String,
    /// Fees + half-spread + slippage, all underlyings, quote currency.
    pub hedging_cost: f64,
    /// RMS over events of hedged PnL minus a cost-free continuous hedge's PnL, quote currency
    /// (underlyings combined as the root of the sum of squares).
    pub tracking_error: f64,
    /// Another configuration is at most as costly and at most as risky, and better in one.
    pub dominated: bool,
}

/// The `style` of a policy spec (`ioc` when unset).
fn spec_style(spec: &str) -> &str {
    spec.split_once(':')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == "style")
        .map_or("ioc", |(_, v)| v.trim())
}

/// The frontier of a set of runs.
pub fn frontier(runs: &[PolicyReport]) -> Vec<Point> {
    let mut pts: Vec<Point> = runs
        .iter()
        .map(|r| Point {
            family: r.policy.split(':').next().unwrap_or("").trim().to_string(),
            spec: r.policy.clone(),
            style: spec_style(&r.policy).to_string(),
            hedging_cost: r
                .underlyings
                .values()
                .map(|u| u.summary.total_hedge_cost)
                .sum(),
            tracking_error: r
                .underlyings
                .values()
                .map(|u| u.tracking_error * u.tracking_error)
                .sum::<f64>()
                .sqrt(),
            dominated: false,
        })
        .collect();
    for i in 0..pts.len() {
        let (c, t) = (pts[i].hedging_cost, pts[i].tracking_error);
        pts[i].dominated = pts.iter().enumerate().any(|(j, o)| {
            j != i
                && o.hedging_cost <= c
                && o.tracking_error <= t
                && (o.hedging_cost < c || o.tracking_error < t)
        });
    }
    pts
}

const COLORS: [(&str, &str); 4] = [
    ("none", "#7f7f7f"),
    ("fixed", "#1f77b4"),
    ("whalley-wilmott", "#2ca02c"),
    ("cost-aware", "#d62728"),
];

fn color(family: &str) -> &'static str {
    COLORS
        .iter()
        .find(|(f, _)| *f == family)
        .map_or("#9467bd", |(_, c)| c)
}

/// Cost against tracking error, one colour per family; dominated points hollow.
pub fn svg(points: &[Point]) -> String {
    let (w, h, l, r, t, b) = (760.0, 520.0, 90.0, 190.0, 40.0, 60.0);
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let xs: Vec<f64> = points.iter().map(|p| finite(p.tracking_error)).collect();
    let ys: Vec<f64> = points.iter().map(|p| finite(p.hedging_cost)).collect();
    let span = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::MAX, f64::min).min(0.0);
        let hi = v.iter().copied().fold(f64::MIN, f64::max).max(lo + 1e-9);
        (lo, hi + 0.05 * (hi - lo))
    };
    let ((x0, x1), (y0, y1)) = (span(&xs), span(&ys));
    let sx = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
    let sy = |y: f64| h - b - (y - y0) / (y1 - y0) * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{l}" y="22" font-size="14">Hedging cost against tracking error (filled: on the frontier)</text>"#
    );
    let _ = writeln!(
        s,
        r#"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{l}" y1="{t}" x2="{l}" y2="{}" stroke="black"/>"#,
        h - b,
        w - r,
        h - b,
        h - b
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">tracking error (RMS, quote currency): {x0:.0} .. {x1:.0}</text>"#,
        (l + w - r) / 2.0,
        h - 20.0
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="{}" transform="rotate(-90 20 {})" text-anchor="middle">hedging cost (quote currency): {y0:.0} .. {y1:.0}</text>"#,
        (t + h - b) / 2.0,
        (t + h - b) / 2.0
    );
    for (p, (&x, &y)) in points.iter().zip(xs.iter().zip(&ys)) {
        let c = color(&p.family);
        let fill = if p.dominated { "white" } else { c };
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{fill}" stroke="{c}" stroke-width="2"><title>{}: cost {:.2}, tracking error {:.2}</title></circle>"#,
            sx(x),
            sy(y),
            p.spec.replace('&', "&amp;").replace('<', "&lt;"),
            p.hedging_cost,
            p.tracking_error
        );
    }
    for (i, (f, c)) in COLORS.iter().enumerate() {
        let y = t + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<circle cx="{}" cy="{y}" r="5" fill="{c}"/><text x="{}" y="{}">{f}</text>"#,
            w - r + 20.0,
            w - r + 32.0,
            y + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_multiply_their_lists() {
        assert_eq!(
            expand("fixed:band=0.25,0.5,1,2").unwrap(),
            [
                "fixed:band=0.25",
                "fixed:band=0.5",
                "fixed:band=1",
                "fixed:band=2"
            ]
        );
        assert_eq!(
            expand("cost-aware:risk_aversion=1e-5,1e-4,max_band=2,5").unwrap(),
            [
                "cost-aware:risk_aversion=1e-5,max_band=2",
                "cost-aware:risk_aversion=1e-5,max_band=5",
                "cost-aware:risk_aversion=1e-4,max_band=2",
                "cost-aware:risk_aversion=1e-4,max_band=5"
            ]
        );
        assert_eq!(expand("none").unwrap(), ["none"]);
        assert!(expand("fixed:0.5").is_err());
    }
}
