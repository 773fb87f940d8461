//! The one clock every process on the host shares: `CLOCK_MONOTONIC`, in nanoseconds.
//!
//! On Linux x86_64 and aarch64 `clock_gettime(CLOCK_MONOTONIC)` is served by the vDSO: no
//! system call, about 20 ns, so it is allowed on the hot path. Stage latencies are differences
//! of these readings taken in different processes.

/// Nanoseconds of `CLOCK_MONOTONIC`.
#[inline]
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`); for exchange-style timestamps and
/// segment creation times, not for latency.
#[inline]
pub fn wall_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Nanoseconds of `clock` (one of the two clocks above, both always supported on Linux).
#[inline]
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; `clock` is CLOCK_MONOTONIC or CLOCK_REALTIME,
    // which Linux always supports.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_clock_does_not_go_backwards() {
        let a = super::now_ns();
        let b = super::now_ns();
        assert!(b >= a);
        assert!(super::wall_ns() > 1_600_000_000_000_000_000);
    }
}
