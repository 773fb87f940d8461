//! The HdrHistogram files of the hedger's (and the gateway's) latencies, read and written in one
//! place for every tool (`hedgectl demo`, the end-to-end benchmark): interval logs (the format
//! of Java's `HistogramLogWriter`, readable by `HistogramLogProcessor`) merged per tag, the
//! classic `.hgrm` percentile distribution, and a percentile plot ([`plot`]).
//!
//! ```
//! use engine::hdr::hgrm;
//! let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
//! h.record(1_500).unwrap();
//! assert!(hgrm(&h, 1000.0).contains("Total count    =            1"));
//! ```

pub mod plot;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

/// Histograms of one log, merged over all intervals, by tag (`""` for untagged intervals).
#[derive(Debug, Default)]
pub struct MergedLog {
    /// Tag to merged histogram (values as recorded: ns for the hedger and the gateway).
    pub by_tag: BTreeMap<String, Histogram<u64>>,
    /// Intervals read.
    pub intervals: usize,
}

/// Reads and merges an interval log.
///
/// # Errors
/// The file cannot be read; an interval cannot be decoded (both name the file). A log cut
/// short in its last line (the writer is still running, or was killed mid-line) is read up to
/// that line.
pub fn read_interval_log(path: &Path) -> Result<MergedLog, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    merge_interval_log(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Merges the intervals of an interval log given as bytes.
///
/// # Errors
/// An interval's histogram cannot be decoded.
pub fn merge_interval_log(bytes: &[u8]) -> Result<MergedLog, String> {
    // Only complete lines: the writer may be writing the last one right now.
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut out = MergedLog::default();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes[..end]) {
        let Ok(LogEntry::Interval(ilh)) = entry else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(ilh.encoded_histogram().trim())
            .map_err(|e| format!("bad base64 in interval: {e}"))?;
        let h: Histogram<u64> = de
            .deserialize(&mut std::io::Cursor::new(raw))
            .map_err(|e| format!("cannot decode interval histogram: {e:?}"))?;
        let tag = ilh
            .tag()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let acc = out.by_tag.entry(tag).or_insert_with(|| {
            let mut acc = Histogram::<u64>::new_from(&h);
            acc.auto(true);
            acc
        });
        acc.add(&h)
            .map_err(|e| format!("cannot merge interval: {e:?}"))?;
        out.intervals += 1;
    }
    Ok(out)
}

/// The percentile distribution of `h` in the `.hgrm` text format of HdrHistogram's
/// `outputPercentileDistribution` (five ticks per half-distance, values divided by
/// `value_unit_ratio`: 1000.0 for ns recorded, us written, as `HistogramLogProcessor
/// -outputValueUnitRatio 1000` prints them). `TotalCount` is cumulative, as in the Java
/// format; an empty histogram gives the header only.
pub fn hgrm(h: &Histogram<u64>, value_unit_ratio: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if h.is_empty() {
        return s;
    }
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
            v.value_iterated_to() as f64 / value_unit_ratio,
            q,
            total,
            inv
        );
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / value_unit_ratio,
        h.stdev() / value_unit_ratio
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / value_unit_ratio,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;

    #[test]
    fn interval_log_written_by_the_crate_merges_per_tag() {
        let mut buf = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        {
            let mut w = IntervalLogWriterBuilder::new()
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut buf, &mut ser)
                .unwrap();
            for i in 0..3u64 {
                let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
                for v in 1..=1000u64 {
                    h.record(v * 100 + i).unwrap();
                }
                let start = std::time::Duration::from_secs(i);
                let d = std::time::Duration::from_secs(1);
                w.write_histogram(&h, start, d, Tag::new("tick_to_order"))
                    .unwrap();
                w.write_histogram(&h, start, d, None).unwrap();
            }
        }
        // A partial last line (writer mid-write) is ignored.
        buf.extend_from_slice(b"Tag=tick_to_order,3.0,1.0,9.9,HIS");
        let m = merge_interval_log(&buf).unwrap();
        assert_eq!(m.intervals, 6);
        let h = &m.by_tag["tick_to_order"];
        assert_eq!(h.len(), 3000);
        assert!(m.by_tag.contains_key(""));
        let p50 = h.value_at_quantile(0.5);
        assert!((49_000..=51_100).contains(&p50), "{p50}");
        let text = hgrm(h, 1000.0);
        assert!(text.contains("Total count    =         3000"), "{text}");
    }

    /// The `TotalCount` column counts every value up to its row (Java's format), so the last
    /// row holds them all; the percentile column is `%2.12f`, as `HistogramLogProcessor`'s.
    #[test]
    fn hgrm_total_count_is_cumulative_and_ends_at_the_histogram_count() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h, 1000.0);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let totals: Vec<u64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
        assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{text}");
        assert_eq!(*totals.last().unwrap(), 1000, "{text}");
        assert_eq!(rows[0][1], "0.000000000000", "{text}");
        assert_eq!(rows.last().unwrap()[1], "1.000000000000", "{text}");
        assert!(text.contains("Total count    =         1000"), "{text}");
    }

    #[test]
    fn hgrm_of_an_empty_histogram_is_the_header_only() {
        let h = Histogram::<u64>::new(3).unwrap();
        assert_eq!(hgrm(&h, 1000.0).lines().count(), 2);
    }
}
