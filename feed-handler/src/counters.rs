//! The feed handler's counters and gauges (`cnc-feed-handler`), declared once: this table is
//! the only place their names, units and help texts are written. The publisher copies its plain
//! counts into them by index off the hot path ([`crate::publish::Publisher::flush_counters`]);
//! readers take names, units and help from the segment.

use crate::partial::PartialReason;
use crate::source::RejectReason;
use shm_layout::counter_schema::CounterDef as D;

/// `reason` values of `events_rejected` ([`RejectReason::ALL`] order).
const REJECT_NAMES: [&str; RejectReason::ALL.len()] = shm_layout::label_values!(RejectReason);
/// `reason` values of `parts_dropped` ([`PartialReason::ALL`] order).
const PARTIAL_NAMES: [&str; PartialReason::ALL.len()] = shm_layout::label_values!(PartialReason);
/// `kind` values of `events_by_kind`: `MarketEventKind` wire values 1..=4, in order.
pub const EVENT_KINDS: [&str; 4] = ["quote", "option_mark", "underlying_price", "trade"];

shm_layout::counter_schema! {
    /// Every counter and gauge of the feed handler.
    pub enum FeedCounter {
        /// Events published.
        EventsPublished = D::counter("events_published", "events", "Market events written into the md ring and the last-value table"),
        /// Events published by kind.
        EventsByKind = D::counter("events_by_kind", "events", "Market events published, by kind")
            .by("kind", &EVENT_KINDS),
        /// Rows rejected by reason.
        EventsRejected = D::counter("events_rejected", "rows", "Source rows skipped as invalid, by reason")
            .by("reason", &REJECT_NAMES),
        /// Parts dropped by reason.
        PartsDropped = D::counter("parts_dropped", "parts", "Parts of used rows dropped or degraded, by reason")
            .by("reason", &PARTIAL_NAMES),
        /// Rows used in part.
        RowsPartial = D::counter("rows_partial", "rows", "Source rows used only in part"),
        /// Underlying renames.
        UnderlyingRenames = D::counter("underlying_renames", "renames", "Underlyings renamed mid-file (SYN.X -> X), each once"),
        /// Replay gaps skipped.
        ReplayGapsSkipped = D::counter("replay_gaps_skipped", "gaps", "Paced replay: recording gaps longer than max_gap_s skipped"),
        /// Rows read.
        RowsRead = D::counter("rows_read", "rows", "Source rows read"),
        /// Publish rate.
        PublishRate = D::gauge("publish_rate_per_s", "events/s", "Publish rate over the last stats interval"),
        /// Source lag.
        SourceLag = D::gauge("source_lag_ns", "ns", "Publication behind the source's paced timestamps"),
        /// Worst source lag.
        SourceLagMax = D::gauge("source_lag_max_ns", "ns", "Worst source_lag_ns since start"),
        /// Exchange lag.
        ExchangeLag = D::gauge("exchange_lag_ns", "ns", "Wall clock behind the last event's exchange time"),
    }
}
