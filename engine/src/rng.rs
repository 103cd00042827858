//! A small, seeded, dependency-free random number generator (SplitMix64).
//!
//! Used for the dummy weights and for sampling. Owning it keeps both deterministic across
//! platforms and `rand` releases: the same seed gives the same weights forever, which is what
//! makes a benchmark repeatable.

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, passes BigCrush, trivially seedable.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator whose stream depends on both the seed and a name (e.g. a tensor name), so
    /// each tensor's values do not depend on the order tensors are created in.
    pub fn for_name(seed: u64, name: &str) -> Self {
        // FNV-1a of the name, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self::new(seed ^ h.rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_the_requested_moments() {
        let mut rng = SplitMix64::new(7);
        let mut v = vec![0.0f32; 20_001];
        rng.fill_normal(&mut v, 0.02);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "std {}", var.sqrt());
        assert_eq!(
            SplitMix64::for_name(1, "a").next_u64(),
            SplitMix64::for_name(1, "a").next_u64()
        );
        assert_ne!(
            SplitMix64::for_name(1, "a").next_u64(),
            SplitMix64::for_name(1, "b").next_u64()
        );
    }
}
