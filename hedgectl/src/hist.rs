//! Reading the hedger's HdrHistogram interval logs (the format of Java's `HistogramLogWriter`,
//! readable by `HistogramLogProcessor`), merging the intervals per tag, and writing the classic
//! `.hgrm` percentile distribution.

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
    /// Tag to merged histogram (values in ns, as the hedger records them).
    pub by_tag: BTreeMap<String, Histogram<u64>>,
    /// Intervals read.
    pub intervals: usize,
}

/// Reads and merges an interval log.
///
/// # Errors
/// The file cannot be read; an interval cannot be decoded. A log cut short in its last line
/// (the writer is still running) is read up to that line.
pub fn read_interval_log(path: &Path) -> Result<MergedLog, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    merge_interval_log(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Merges the intervals of an interval log given as bytes.
///
/// # Errors
/// An interval's histogram cannot be decoded.
pub fn merge_interval_log(bytes: &[u8]) -> Result<MergedLog, String> {
    // Only complete lines: the hedger may be writing the last one right now.
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
        match out.by_tag.get_mut(&tag) {
            Some(acc) => acc
                .add(&h)
                .map_err(|e| format!("cannot merge interval: {e:?}"))?,
            None => {
                let mut acc = Histogram::<u64>::new_from(&h);
                acc.add(&h)
                    .map_err(|e| format!("cannot merge interval: {e:?}"))?;
                acc.auto(true);
                out.by_tag.insert(tag, acc);
            }
        }
        out.intervals += 1;
    }
    Ok(out)
}

/// Percentiles the status line, the summary and the plot use.
pub const SUMMARY_PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

/// `(percentile, value)` pairs for `SUMMARY_PERCENTILES`.
pub fn summary(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    SUMMARY_PERCENTILES
        .iter()
        .map(|&p| (p, h.value_at_quantile(p / 100.0)))
        .collect()
}

/// Writes the percentile distribution in the `.hgrm` text format of HdrHistogram's
/// `outputPercentileDistribution` (values scaled by `scale`, e.g. 1000.0 for ns to us).
pub fn hgrm(h: &Histogram<u64>, scale: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let ticks_per_half = 5u32;
    for v in h.iter_quantiles(ticks_per_half) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - q))
        } else {
            format!("{:>14}", "")
        };
        let _ = writeln!(
            s,
            "{:>12.3} {:>14.12} {:>10} {}",
            v.value_iterated_to() as f64 / scale,
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / scale,
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
}
