//! Results: percentiles of HdrHistograms, `.hgrm` percentile distributions (the classic
//! `HistogramLogProcessor` output, values in microseconds), reading HdrHistogram interval
//! logs (the hedger's `--histogram-path`, the gateway's `--latency-log`), and a percentile
//! plot drawn by hand as SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
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
/// `HistogramLogProcessor -outputValueUnitRatio 1000` prints them).
///
/// # Errors
/// The file cannot be written.
pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> std::io::Result<()> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 {
                format!("{:>14.2}", 1.0 / (1.0 - q))
            } else {
                format!("{:>14}", "")
            };
            let _ = writeln!(
                s,
                "{:>12.3} {:>2.12} {:>10} {}",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                total,
                inv
            );
        }
        let _ = writeln!(
            s,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
            h.mean() / 1000.0,
            h.stdev() / 1000.0
        );
        let _ = writeln!(
            s,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            h.max() as f64 / 1000.0,
            h.len()
        );
        let _ = writeln!(
            s,
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
            h.buckets(),
            h.distinct_values()
        );
    }
    std::fs::write(path, s)
}

/// Reads an HdrHistogram interval log and merges its intervals by tag.
///
/// # Errors
/// The file cannot be read or an interval cannot be decoded. A last line cut short (a writer
/// killed mid-line) is ignored.
pub fn read_interval_log(path: &Path) -> Result<BTreeMap<String, Histogram<u64>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes[..end]) {
        let Ok(LogEntry::Interval(iv)) = entry else {
            continue;
        };
        let raw = base64_decode(iv.encoded_histogram().trim())
            .ok_or_else(|| format!("{}: bad base64 in an interval", path.display()))?;
        let h: Histogram<u64> = de
            .deserialize(&mut std::io::Cursor::new(raw))
            .map_err(|e| format!("{}: bad histogram: {e:?}", path.display()))?;
        let tag = iv.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
        let acc = out.entry(tag).or_insert_with(new_hist);
        acc.add(&h)
            .map_err(|e| format!("{}: cannot merge: {e:?}", path.display()))?;
    }
    Ok(out)
}

/// Standard base64 (RFC 4648, with padding) to bytes; None on a bad character. Small enough
/// to keep here rather than add a dependency for reading two log files.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let b = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(b.len() * 3 / 4);
    for chunk in b.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&bytes[1..1 + n]);
    }
    Some(out)
}

/// One line of the percentile plot.
#[derive(Debug)]
pub struct Series<'a> {
    /// Legend.
    pub label: String,
    /// Data.
    pub hist: &'a Histogram<u64>,
}

/// A percentile plot (x: percentile on the usual 1/(1-p) log axis, y: latency on a log axis),
/// in SVG written by hand.
pub fn percentile_svg(title: &str, series: &[Series<'_>]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 560.0;
    const L: f64 = 80.0;
    const R: f64 = 330.0;
    const T: f64 = 40.0;
    const B: f64 = 60.0;
    const COLORS: [&str; 10] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    let x_max = 5.0f64; // 99.999%
    let (mut y_lo, mut y_hi) = (f64::MAX, f64::MIN);
    for s in series.iter().filter(|s| !s.hist.is_empty()) {
        y_lo = y_lo.min((s.hist.min().max(1) as f64).log10());
        y_hi = y_hi.max((s.hist.max().max(1) as f64).log10());
    }
    if y_lo > y_hi {
        (y_lo, y_hi) = (1.0, 6.0);
    }
    let (y_lo, y_hi) = (y_lo.floor(), y_hi.ceil().max(y_lo.floor() + 1.0));
    let px = |x: f64| L + (x.min(x_max) / x_max) * (W - L - R);
    let py = |y: f64| T + (1.0 - (y - y_lo) / (y_hi - y_lo)) * (H - T - B);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (L + W - R) / 2.0,
        xml(title)
    );
    for (i, lab) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = px(i as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{lab}</text>"##,
            H - B,
            H - B + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        (L + W - R) / 2.0,
        H - 15.0
    );
    let mut e = y_lo as i32;
    while e <= y_hi as i32 {
        let y = py(f64::from(e));
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0,
            decade_label(e)
        );
        e += 1;
    }
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" transform="rotate(-90 18 {:.1})" text-anchor="middle">latency (log)</text>"#,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let ly = T + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly:.1}" x2="{}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{}" y="{:.1}">{}</text>"#,
            W - R + 15.0,
            W - R + 40.0,
            W - R + 46.0,
            ly + 4.0,
            xml(&ser.label)
        );
        if ser.hist.is_empty() {
            continue;
        }
        let mut pts = String::new();
        for v in ser.hist.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                x_max
            } else {
                (1.0 / (1.0 - q)).log10()
            };
            let y = (v.value_iterated_to().max(1) as f64).log10();
            let _ = write!(pts, "{:.1},{:.1} ", px(x), py(y));
            if q >= 1.0 || x >= x_max {
                break;
            }
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.trim_end()
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// `10^e` ns as an axis label: 100 ns, 1 us, 10 us, ..., 1 s, 10 s.
fn decade_label(e: i32) -> String {
    let (unit, base) = match e {
        ..=2 => ("ns", 0),
        3..=5 => ("us", 3),
        6..=8 => ("ms", 6),
        _ => ("s", 9),
    };
    format!("{} {unit}", 10u64.pow((e - base).max(0) as u32))
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_rfc4648_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), dec.as_bytes());
        }
        assert!(base64_decode("Z!==").is_none());
    }

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
