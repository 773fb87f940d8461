//! Idle strategies: what the loop does when an iteration found no work.
//!
//! Modelled on Agrona's `BusySpinIdleStrategy` and `BackoffIdleStrategy` (spin, then yield,
//! then park with exponentially growing sleeps).

use crate::config::IdleKind;
use std::time::Duration;

/// Iterations spun before yielding.
pub const SPINS: u32 = 10_000;
/// Yields before parking (backoff-park).
pub const YIELDS: u32 = 100;
/// Longest park.
pub const MAX_PARK: Duration = Duration::from_millis(1);

/// An idle strategy with its backoff state.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    kind: IdleKind,
    idle_iterations: u32,
    park: Duration,
}

impl Idle {
    /// A strategy.
    pub fn new(kind: IdleKind) -> Self {
        Idle {
            kind,
            idle_iterations: 0,
            park: Duration::from_micros(1),
        }
    }

    /// Called after every loop iteration with the amount of work it did.
    #[inline]
    pub fn idle(&mut self, work: usize) {
        if work > 0 {
            self.idle_iterations = 0;
            self.park = Duration::from_micros(1);
            return;
        }
        self.idle_iterations = self.idle_iterations.saturating_add(1);
        match self.kind {
            IdleKind::BusySpin => std::hint::spin_loop(),
            IdleKind::SpinThenYield => {
                if self.idle_iterations < SPINS {
                    std::hint::spin_loop()
                } else {
                    std::thread::yield_now()
                }
            }
            IdleKind::BackoffPark => {
                if self.idle_iterations < SPINS {
                    std::hint::spin_loop()
                } else if self.idle_iterations < SPINS + YIELDS {
                    std::thread::yield_now()
                } else {
                    std::thread::sleep(self.park);
                    self.park = (self.park * 2).min(MAX_PARK);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn every_strategy_returns_and_backoff_parks_at_most_a_millisecond() {
        for k in [
            IdleKind::BusySpin,
            IdleKind::SpinThenYield,
            IdleKind::BackoffPark,
        ] {
            let mut i = Idle::new(k);
            for _ in 0..(SPINS + YIELDS + 20) {
                i.idle(0);
            }
            let t0 = Instant::now();
            i.idle(0);
            // One parked iteration sleeps at most MAX_PARK (plus scheduling slack).
            assert!(t0.elapsed() < MAX_PARK * 50, "{k:?}");
            i.idle(1);
            assert_eq!(i.idle_iterations, 0, "work resets the backoff");
        }
    }
}
