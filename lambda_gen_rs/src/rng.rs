//! SplitMix64, exactly as `lambdascope/rng.py`.
//!
//! Every trace draws from its own stream, seeded from (seed, trace index) only:
//! `state(seed, index) = mix64(mix64(seed) + index)` (mod 2^64), where `mix64(x)` is one
//! SplitMix64 output for state `x`. `below(n)` is `next_u64() % n`.

/// The golden-ratio increment of SplitMix64.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The SplitMix64 output for state `x` (add the golden gamma, then finalise).
#[inline]
pub fn mix64(x: u64) -> u64 {
    finalise(x.wrapping_add(GOLDEN))
}

/// A SplitMix64 stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    pub state: u64,
}

impl SplitMix64 {
    pub fn new(state: u64) -> Self {
        SplitMix64 { state }
    }

    /// The stream of trace `index` of `seed`.
    pub fn for_trace(seed: u64, index: u64) -> Self {
        SplitMix64::new(mix64(mix64(seed).wrapping_add(index)))
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        finalise(self.state)
    }

    /// A number in `[0, n)`: `next_u64() % n` (with its small modulo bias, as in rng.py).
    #[inline(always)]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cross-language vectors, computed with lambdascope/rng.py.
    #[test]
    fn mix64_vectors() {
        assert_eq!(mix64(0), 0xe220a8397b1dcdaf);
        assert_eq!(mix64(1), 0x910a2dec89025cc1);
        assert_eq!(mix64(u64::MAX), 0xe4d971771b652c20);
    }

    #[test]
    fn stream_vectors() {
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220a8397b1dcdaf);
        assert_eq!(r.next_u64(), 0x6e789e6aa1b965f4);
        assert_eq!(r.next_u64(), 0x06c45d188009454f);
    }

    #[test]
    fn for_trace_vectors() {
        let mut r = SplitMix64::for_trace(0, 0);
        assert_eq!(r.state, 0xa706dd2f4d197e6f);
        assert_eq!(r.next_u64(), 0x238275bc38fcbe91);
        assert_eq!(r.next_u64(), 0xf89a2566b5822c54);

        let mut r = SplitMix64::for_trace(7, 12345);
        assert_eq!(r.state, 0x0729fcbe5b63ca5a);
        let draws: Vec<u64> = (0..5).map(|_| r.below(100)).collect();
        assert_eq!(draws, vec![5, 71, 28, 70, 30]);

        assert_eq!(SplitMix64::for_trace(u64::MAX, 3).state, 0x02e9f42f99dc9983);
    }
}
