//! pilot's one seeded random number generator (SplitMix64) and its one stable hash (FNV-1a).
//!
//! The engine's random weights and sampling, the characterizer's prompt tokens and the
//! predictor's training folds all draw from here. Owning the generator keeps every stream the
//! same across platforms and `rand` releases: the same seed gives the same weights, prompts and
//! folds forever, which is what makes a benchmark repeatable and the shipped predictor
//! retrainable bit for bit. Changing any function here changes those streams.

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, passes BigCrush, trivially seedable.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// SplitMix64's increment (2^64 / golden ratio). Also spreads consecutive indices apart in
/// [`derive_seed`].
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The seed of the `index`-th independent stream under `seed` (a request's, a sequence's):
/// consecutive indices land far apart, so their streams do not overlap in practice.
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    seed ^ index.wrapping_mul(GOLDEN_GAMMA)
}

/// A deterministic permutation of `v` from `seed` (Fisher-Yates). The predictor's folds are
/// drawn with it, so this stream is part of the shipped predictor.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    SplitMix64::new(seed ^ GOLDEN_GAMMA).shuffle(v);
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator whose stream depends on both the seed and a name (e.g. a tensor name), so
    /// each tensor's values do not depend on the order tensors are created in.
    pub fn for_name(seed: u64, name: &str) -> Self {
        Self::new(seed ^ Fnv1a::hash(name.as_bytes()).rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` by modulo. The bias (at most n / 2^64) is far below anything pilot
    /// measures, and an exact method would change the existing streams.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Permutes `v` in place (Fisher-Yates, last position first).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }

    /// Fills `out` with normal samples of mean 0 and standard deviation `std` (Box-Muller).
    pub fn fill_normal(&mut self, out: &mut [f32], std: f32) {
        let mut chunks = out.chunks_exact_mut(2);
        for pair in &mut chunks {
            let (a, b) = self.normal_pair();
            pair[0] = a as f32 * std;
            pair[1] = b as f32 * std;
        }
        if let [last] = chunks.into_remainder() {
            *last = self.normal_pair().0 as f32 * std;
        }
    }

    fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        (r * t.cos(), r * t.sin())
    }
}

/// FNV-1a, 64 bits: a hash that, unlike std's `DefaultHasher`, is the same in every Rust
/// release, so seeds derived from names and keys stay put.
#[derive(Debug, Clone)]
pub struct Fnv1a(u64);

impl Fnv1a {
    /// The hash of `bytes`.
    pub fn hash(bytes: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = Fnv1a::default();
        h.write(bytes);
        h.finish()
    }
}

impl Default for Fnv1a {
    /// FNV's 64-bit offset basis.
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_the_requested_moments() {
        let mut rng = SplitMix64::new(7);
        let mut v = vec![0.0f32; 20_001];
        rng.fill_normal(&mut v, 0.02);
        let v: Vec<f64> = v.into_iter().map(f64::from).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let std = crate::metrics::std_dev(&v).unwrap();
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((std - 0.02).abs() < 1e-3, "std {std}");
        assert_eq!(
            SplitMix64::for_name(1, "a").next_u64(),
            SplitMix64::for_name(1, "a").next_u64()
        );
        assert_ne!(
            SplitMix64::for_name(1, "a").next_u64(),
            SplitMix64::for_name(1, "b").next_u64()
        );
    }

    /// The streams are pinned: weights, prompts and the predictor's folds depend on them.
    #[test]
    fn streams_are_pinned() {
        // SplitMix64's reference outputs for seed 0 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        // FNV-1a's published test vectors.
        assert_eq!(Fnv1a::hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv1a::hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        // What the predictor's own copy drew before it moved here.
        let mut v: Vec<u32> = (0..10).collect();
        shuffle(&mut v, 42);
        assert_eq!(v, [2, 3, 9, 7, 5, 8, 6, 4, 0, 1]);
    }
}
