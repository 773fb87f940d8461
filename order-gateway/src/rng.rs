//! A small deterministic PRNG (SplitMix64 seeding a xoshiro256++), so that a run with the same
//! seed produces the same latencies and the same client flow. Algorithms from
//! <https://prng.di.unimi.it/> (Blackman and Vigna), public domain.

/// Deterministic, fast, not cryptographic.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed` through SplitMix64 (any seed, including 0, is fine).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// Next 64 random bits (xoshiro256++).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n]` (inclusive); `n == 0` gives 0.
    #[inline]
    pub fn upto(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else if n == u64::MAX {
            self.next_u64()
        } else {
            // Lemire's multiply-shift; the tiny bias is irrelevant for latencies and flow.
            ((self.next_u64() as u128 * (n as u128 + 1)) >> 64) as u64
        }
    }

    /// Exponentially distributed with the given mean (inverse transform sampling).
    #[inline]
    pub fn exp(&mut self, mean: f64) -> f64 {
        // 1 - u is in (0, 1], so ln is finite.
        -mean * (1.0 - self.next_f64()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rng::new(3);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let u = r.next_f64();
            assert!((0.0..1.0).contains(&u));
            assert!(r.upto(5) <= 5);
            let e = r.exp(2.0);
            assert!(e >= 0.0 && e.is_finite());
            sum += e;
        }
        let mean = sum / 10_000.0;
        assert!((mean - 2.0).abs() < 0.2, "mean {mean}");
    }
}
