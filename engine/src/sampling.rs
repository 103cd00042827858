//! Per-request generation parameters and next-token sampling (on the host, over f32 logits).

use pilot_core::rng::SplitMix64;

/// How one request generates. `max_tokens` is exact: generation stops there and nowhere
/// earlier unless an end-of-sequence token is sampled after `min_tokens` with `ignore_eos`
/// false.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Tokens to generate at most (≥ 1).
    pub max_tokens: usize,
    /// Tokens to generate at least: end-of-sequence tokens are masked out until then.
    pub min_tokens: usize,
    /// 0 is greedy (argmax); otherwise logits are divided by it before softmax.
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p`.
    pub top_p: f32,
    /// Seed of this request's sampler; `None` derives one from the engine seed and request id.
    pub seed: Option<u64>,
    /// Keep generating after end-of-sequence tokens.
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: 16,
            min_tokens: 0,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of exactly `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            min_tokens: max_tokens,
            ignore_eos: true,
            ..Self::default()
        }
    }
}

/// Picks the next token from `logits` (modified in place). `suppress` lists tokens that must
/// not be picked (end-of-sequence tokens before `min_tokens`).
pub fn sample(
    logits: &mut [f32],
    params: &SamplingParams,
    suppress: &[u32],
    rng: &mut SplitMix64,
) -> u32 {
    for &t in suppress {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
    if params.temperature <= 0.0 {
        return argmax(logits);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let inv_t = 1.0 / params.temperature as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((l - max) as f64 * inv_t).exp()))
        .filter(|(_, p)| *p > 0.0)
        .collect();
    let mut total: f64 = probs.iter().map(|(_, p)| p).sum();
    if params.top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0.0;
        let cut = probs
            .iter()
            .position(|(_, p)| {
                kept += p;
                kept >= params.top_p as f64 * total
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(cut);
        total = kept.min(probs.iter().map(|(_, p)| p).sum());
    }
    let mut u = rng.next_f64() * total;
    for &(id, p) in &probs {
        if u < p {
            return id;
        }
        u -= p;
    }
    probs.last().map_or_else(|| argmax(logits), |(id, _)| *id)
}

/// Index of the largest logit; the lowest index wins ties (deterministic).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_suppression_and_sampling() {
        let mut rng = SplitMix64::new(1);
        let logits = vec![0.0, 3.0, 1.0, 2.9];
        let greedy = SamplingParams::default();
        assert_eq!(sample(&mut logits.clone(), &greedy, &[], &mut rng), 1);
        assert_eq!(sample(&mut logits.clone(), &greedy, &[1], &mut rng), 3);
        // top_p small keeps only the best token.
        let nucleus = SamplingParams {
            temperature: 1.0,
            top_p: 0.01,
            ..greedy.clone()
        };
        for _ in 0..20 {
            assert_eq!(sample(&mut logits.clone(), &nucleus, &[], &mut rng), 1);
        }
        // Temperature sampling visits more than one token and never a suppressed one.
        let hot = SamplingParams {
            temperature: 2.0,
            ..greedy
        };
        let mut seen = [0usize; 4];
        for _ in 0..400 {
            seen[sample(&mut logits.clone(), &hot, &[2], &mut rng) as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        assert!(seen[1] > 50 && seen[3] > 50 && seen[0] > 5, "{seen:?}");
    }
}
