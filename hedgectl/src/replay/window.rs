//! `--from` / `--to`: replay a time window of a recording.
//!
//! Events whose exchange time is before `from` are read and skipped; the source ends at the
//! first event at or after `to`. A snapshot source (a Tardis `options_chain`, a ticker) carries
//! the whole state in every snapshot, and all of a snapshot's events share one time, so a
//! window never cuts one: the first snapshot inside the window starts the replay as a whole.
//! An incremental source (`incremental_book_L2`) would start without the book built before
//! `from`; the window is meant for snapshot data (docs/replay.md).

use feed_handler::instruments::Registry;
use feed_handler::partial::Partials;
use feed_handler::source::{Rejects, Source, SourceEvent};

/// A source limited to `[from_ns, to_ns)` of exchange time.
pub struct Window<S> {
    inner: S,
    from_ns: u64,
    to_ns: u64,
    /// Events skipped before `from_ns`.
    pub before: u64,
    ended: bool,
}

impl<S: Source> Window<S> {
    /// `inner` limited to `[from_ns, to_ns)`; `to_ns = u64::MAX` for no end.
    pub fn new(inner: S, from_ns: u64, to_ns: u64) -> Self {
        Window {
            inner,
            from_ns,
            to_ns,
            before: 0,
            ended: false,
        }
    }
}

impl<S: Source> Source for Window<S> {
    fn registry(&self) -> &Registry {
        self.inner.registry()
    }

    fn next(&mut self, out: &mut SourceEvent) -> bool {
        while !self.ended && self.inner.next(out) {
            if out.source_ts_ns >= self.to_ns {
                break;
            }
            if out.source_ts_ns >= self.from_ns {
                return true;
            }
            self.before += 1;
        }
        self.ended = true;
        false
    }

    fn rejects(&self) -> Rejects {
        self.inner.rejects()
    }

    fn partials(&self) -> Partials {
        self.inner.partials()
    }

    fn rows_read(&self) -> u64 {
        self.inner.rows_read()
    }
}
