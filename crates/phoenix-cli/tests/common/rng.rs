//! SplitMix64: small and deterministic, enough to draw a chaos test's faults from a printed
//! seed (`PHOENIX_CHAOS_SEED` replays a run). Shared by `chaos_lab` and `chaos_pve`.
#![allow(dead_code, clippy::expect_used)]

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// The seed from `PHOENIX_CHAOS_SEED`, else one from the clock; and the rounds from
    /// `PHOENIX_CHAOS_ROUNDS`, else `default_rounds`.
    pub fn from_env(default_rounds: usize) -> (u64, usize) {
        let seed = std::env::var("PHOENIX_CHAOS_SEED")
            .ok()
            .map(|s| s.parse::<u64>().expect("PHOENIX_CHAOS_SEED is a number"))
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("the clock is after 1970");
                now.as_nanos() as u64 ^ u64::from(std::process::id())
            });
        let rounds = std::env::var("PHOENIX_CHAOS_ROUNDS")
            .ok()
            .map(|s| s.parse().expect("PHOENIX_CHAOS_ROUNDS is a number"))
            .unwrap_or(default_rounds);
        (seed, rounds)
    }
}
