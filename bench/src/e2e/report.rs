//! Results: percentiles of HdrHistograms, `.hgrm` percentile distributions (the classic
//! `HistogramLogProcessor` output, values in microseconds), reading HdrHistogram interval
//! logs (the hedger's `--histogram-path`, the gateway's `--latency-log`), and a percentile
//! plot drawn by hand as SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use engine::hdr::plot;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency tracked, ns (60 s); larger values saturate.
pub const MAX_NS: u64 = 60_000_000_000;

/// An empty latency histogram (1 ns .. 60 s, 3 significant digits), pre-sized so that
/// recording never allocates.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static bounds are valid")
}

/// Percentiles of one latency histogram, ns.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Values recorded.
    pub count: u64,
    /// Mean, ns.
    pub mean_ns: f64,
    /// p50, ns.
    pub p50_ns: u64,
    /// p90, ns.
    pub p90_ns: u64,
    /// p99, ns.
    pub p99_ns: u64,
    /// p99.9, ns.
    pub p999_ns: u64,
    /// p99.99, ns.
    pub p9999_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
}

impl Stats {
    /// Percentiles of `h` (zeros when empty).
    pub fn of(h: &Histogram<u64>) -> Stats {
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p / 100.0)
            }
        };
        Stats {
            count: h.len(),
            mean_ns: if h.is_empty() { 0.0 } else { h.mean() },
            p50_ns: q(50.0),
            p90_ns: q(90.0),
            p99_ns: q(99.0),
            p999_ns: q(99.9),
            p9999_ns: q(99.99),
            max_ns: if h.is_empty() { 0 } else { h.max() },
        }
    }

    /// p50, p90, p99, p99.9, p99.99 and max.
    pub fn values(&self) -> [u64; 6] {
        [
            self.p50_ns,
            self.p90_ns,
            self.p99_ns,
            self.p999_ns,
            self.p9999_ns,
            self.max_ns,
        ]
    }
}

/// A duration in ns as a short human string (ns, us, ms or s).
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 10_000 {
        format!("{ns} ns")
    } else if v < 10e6 {
        format!("{:.1} us", v / 1e3)
    } else if v < 10e9 {
        format!("{:.1} ms", v / 1e6)
    } else {
        format!("{:.1} s", v / 1e9)
    }
}

/// One table row: a label and its percentiles.
pub fn row(label: &str, s: &Stats) -> String {
    let mut out = format!("{label:<44} {:>9}", s.count);
    for v in s.values() {
        let _ = write!(out, " {:>9}", fmt_ns(v));
    }
    out
}

/// The header of [`row`] tables.
pub fn header() -> String {
    format!(
        "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    )
}

/// Writes the classic `.hgrm` percentile distribution of `h` (values in us, as
/// `HistogramLogProcessor -outputValueUnitRatio 1000` prints them; [`engine::hdr::hgrm`]).
///
/// # Errors
/// The file cannot be written.
pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> std::io::Result<()> {
    std::fs::write(path, engine::hdr::hgrm(h, 1000.0))
}

/// Reads an HdrHistogram interval log and merges its intervals by tag
/// ([`engine::hdr::read_interval_log`]).
///
/// # Errors
/// The file cannot be read or an interval cannot be decoded. A last line cut short (a writer
/// killed mid-line) is ignored.
pub fn read_interval_log(path: &Path) -> Result<BTreeMap<String, Histogram<u64>>, String> {
    engine::hdr::read_interval_log(path).map(|m| m.by_tag)
}

/// One line of the percentile plot.
#[derive(Debug)]
pub struct Series<'a> {
    /// Legend.
    pub label: String,
    /// Data.
    pub hist: &'a Histogram<u64>,
}

/// A percentile plot of the series (latency in us on a log axis against the percentile on a
/// "number of nines" axis), [`engine::hdr::plot`]'s, as `hedgectl demo` draws it.
pub fn percentile_svg(title: &str, series: &[Series<'_>]) -> String {
    let lines: Vec<plot::Series> = series
        .iter()
        .map(|s| plot::Series {
            name: s.label.clone(),
            points: plot::points_from_histogram(s.hist),
        })
        .collect();
    plot::percentile_plot(title, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_hgrm_and_svg_of_a_simple_histogram() {
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = Stats::of(&h);
        assert_eq!(s.count, 1000);
        assert!((499_000..=501_000).contains(&s.p50_ns));
        let dir = std::env::temp_dir().join(format!("e2e-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.hgrm");
        write_hgrm(&p, &h).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("Total count    =         1000"));
        std::fs::remove_dir_all(&dir).unwrap();
        let svg = percentile_svg(
            "t",
            &[Series {
                label: "a<b".into(),
                hist: &h,
            }],
        );
        assert!(svg.contains("polyline") && svg.contains("a&lt;b"));
    }
}
