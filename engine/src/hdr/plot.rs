//! A latency percentile plot as a hand-written SVG: the classic HdrHistogram chart, latency
//! (log scale) against percentile on a "number of nines" axis (50%, 90%, 99%, 99.9%, ...), one
//! line per series. No plotting dependency: a few dozen lines of text. The demo's and the
//! end-to-end benchmark's plots.

use std::fmt::Write as _;

/// One line of the plot: `(percentile 0..100, latency in us)` points, in percentile order.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// x coordinate of a percentile: log10(1 / (1 - p)), so 90% is 1, 99% is 2, 99.9% is 3.
fn nines(p: f64) -> f64 {
    let q = (p / 100.0).min(0.999_999);
    -(1.0 - q).log10()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The plot's scales: percentile to x (a "number of nines" axis up to `max_nines`), latency
/// to y (log10, whole decades `ylo..=yhi`).
struct Frame {
    max_nines: f64,
    ylo: f64,
    yhi: f64,
}

/// Plot width and height inside the margins.
const PW: f64 = W - LEFT - RIGHT;
const PH: f64 = H - TOP - BOTTOM;

impl Frame {
    /// Scales that hold every point (at least 99.9% and one decade).
    fn of(series: &[Series]) -> Frame {
        let points = || series.iter().flat_map(|s| s.points.iter());
        let max_nines = points()
            .map(|&(p, _)| nines(p))
            .fold(3.0_f64, f64::max)
            .ceil();
        let (mut lo, mut hi) = (f64::INFINITY, 0.0_f64);
        for &(_, v) in points() {
            if v > 0.0 {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if !lo.is_finite() {
            lo = 0.1;
            hi = 1.0;
        }
        let ylo = lo.log10().floor();
        Frame {
            max_nines,
            ylo,
            yhi: hi.log10().ceil().max(ylo + 1.0),
        }
    }

    fn x(&self, p: f64) -> f64 {
        LEFT + nines(p) / self.max_nines * PW
    }

    fn y(&self, v: f64) -> f64 {
        let (ylo, yhi) = (self.ylo, self.yhi);
        TOP + PH - (v.max(10f64.powf(ylo)).log10() - ylo) / (yhi - ylo) * PH
    }

    /// The grid lines with their labels, the plot's border and the axis titles.
    fn axes(&self, s: &mut String) {
        for n in 0..=self.max_nines as u32 {
            let p = 100.0 * (1.0 - 10f64.powi(-(n as i32)));
            let px = LEFT + f64::from(n) / self.max_nines * PW;
            let label = match n {
                0 => "0%".to_string(),
                _ => format!("{}%", trim_float(p)),
            };
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                TOP + PH,
                TOP + PH + 16.0
            );
        }
        for e in self.ylo as i32..=self.yhi as i32 {
            let v = 10f64.powi(e);
            let py = self.y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + PW,
                LEFT - 6.0,
                py + 4.0,
                trim_float(v)
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{PW}" height="{PH}" fill="none" stroke="#444"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
            LEFT + PW / 2.0,
            H - 18.0
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">latency (us, log scale)</text>"#,
            TOP + PH / 2.0,
            TOP + PH / 2.0
        );
    }

    /// One polyline per series, and the legend in the bottom-right corner, where percentile
    /// curves (rising to the right) rarely are.
    fn lines(&self, s: &mut String, series: &[Series]) {
        for (i, ser) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<String> = ser
                .points
                .iter()
                .map(|&(p, v)| format!("{:.1},{:.1}", self.x(p), self.y(v)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
            let ly = TOP + PH - 12.0 - 16.0 * (series.len() - 1 - i) as f64;
            let lx = LEFT + PW - 190.0;
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx,
                lx + 24.0,
                lx + 30.0,
                ly + 4.0,
                escape(&ser.name)
            );
        }
    }
}

/// Renders the series into an SVG document.
pub fn percentile_plot(title: &str, series: &[Series]) -> String {
    let frame = Frame::of(series);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    frame.axes(&mut s);
    frame.lines(&mut s, series);
    s.push_str("</svg>\n");
    s
}

fn trim_float(v: f64) -> String {
    let t = format!("{v:.6}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

/// Points for a plot from an HdrHistogram of ns values: percentiles from 0 to the maximum,
/// dense in the tail, converted to us.
pub fn points_from_histogram(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    if h.is_empty() {
        return pts;
    }
    // The last iteration step reaches quantile 1.0 (infinitely many nines); plot it at the
    // resolution the sample count supports instead.
    let q_max = 1.0 - 1.0 / h.len().max(2) as f64;
    for v in h.iter_quantiles(4) {
        let q = v.quantile_iterated_to().min(q_max);
        pts.push((q * 100.0, v.value_iterated_to() as f64 / 1000.0));
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_is_well_formed_svg_with_one_line_per_series() {
        let s = percentile_plot(
            "tick-to-order <latency>",
            &[
                Series {
                    name: "a".into(),
                    points: vec![(0.0, 1.0), (50.0, 2.0), (99.9, 40.0), (100.0, 100.0)],
                },
                Series {
                    name: "b".into(),
                    points: vec![(0.0, 0.5), (99.0, 3.0)],
                },
            ],
        );
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("&lt;latency&gt;"));
        assert!(s.contains(">99.9%<"));
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn empty_plot_does_not_produce_nan() {
        let s = percentile_plot("empty", &[]);
        assert!(!s.contains("NaN") && !s.contains("inf"));
    }
}
