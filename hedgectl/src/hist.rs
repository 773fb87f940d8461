//! The percentiles hedgectl shows of the hedger's HdrHistogram interval logs; reading and
//! merging the logs and the `.hgrm` percentile distribution are [`engine::hdr`]'s (one reader
//! and one writer for hedgectl and the benchmarks).

use hdrhistogram::Histogram;

pub use engine::hdr::{hgrm, read_interval_log, MergedLog};

/// Percentiles the status line, the summary and the plot use.
pub const SUMMARY_PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

/// `(percentile, value)` pairs for `SUMMARY_PERCENTILES`.
pub fn summary(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    SUMMARY_PERCENTILES
        .iter()
        .map(|&p| (p, h.value_at_quantile(p / 100.0)))
        .collect()
}
