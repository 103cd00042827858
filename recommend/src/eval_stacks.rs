//! The recommendation benchmark on today's stacks (issue 15): LLM-Pilot's protocol
//! ([`crate::eval`]) on AIConfigurator's measured deployments of current LLMs on H100, H200
//! and B200 under vLLM, SGLang and TensorRT-LLM.
//!
//! **Data.** `datasets/predictor/aiconfigurator.csv`, pilot's own import of
//! `../shared/data/aiconfigurator/silicon_sample.csv` (`pilot dataset import aiconfigurator`:
//! one row per source row, `source` = `aiconfigurator:<id>`, closed loop, users = the
//! concurrency, the layout in the layout columns). The benchmark's rows are those whose
//! `source` starts with [`SOURCE_PREFIX`]; every file given trains.
//!
//! **Protocol** (LLM-Pilot's, as the issue states it for this data):
//!
//! - *Leave one LLM out.* For each LLM, a predictor trained on every training row except that
//!   LLM's (in every file: the shipped predictor trains on `llm-pilot.csv`,
//!   `llm-inference-bench.csv` and `aiconfigurator.csv`). An LLM is a model-catalog entry: a
//!   row belongs to the id its model name resolves to, and the catalog lists a base model's
//!   quantized re-publications and instruct variants as its aliases. So holding out
//!   `deepseek-ai/DeepSeek-R1` holds out `nvidia/DeepSeek-R1-NVFP4` too, `Qwen/Qwen3-32B`
//!   takes `nvidia/Qwen3-32B-NVFP4`, and `meta-llama/Llama-3.1-8B` takes
//!   `meta-llama/Llama-3.1-8B-Instruct` and `nvidia/Llama-3.1-8B-Instruct-FP8`: the same
//!   weights in another format are not an unseen LLM. Distinct checkpoints stay distinct LLMs
//!   even where they share an architecture (DeepSeek-V3, DeepSeek-R1 and DeepSeek-V3.1 are
//!   three LLMs; LLM-Inference-Bench's Llama 3 8B is not Llama 3.1 8B), as LLM-Pilot keeps
//!   llama-7b while holding out llama-13b: a new fine-tune of a known architecture is the
//!   common case in practice, and the score says so.
//! - *Cases.* A case is a held-out LLM x one of its measured (input, output) lengths x one of
//!   four SLO pairs: mean TTFT <= 500 ms or 2 s, and mean TPOT <= 20 or 50 ms (the source
//!   reports means only). The demand is 512 concurrent users.
//! - *Profiles.* The LLM's measured **aggregated** deployments at those lengths: GPU type, GPUs
//!   per deployment, engine, checkpoint, weight format, KV-cache format and layout (tensor,
//!   pipeline, expert parallel, attention data parallel). Disaggregated rows are not profiles,
//!   nor rows that training excludes ([`pilot_predict::rows::exclusion_reason`]: the importer's
//!   placeholder concurrency).
//! - *Levels.* A profile's measured concurrencies, ascending. Where the source repeats a point
//!   (several runs at one concurrency, e.g. two engine versions or two sweeps), the level's
//!   TTFT and TPOT are the medians of the repeats.
//! - *Capacity.* True: the highest level before the first level whose measurement violates
//!   either SLO (0 if the lowest does). Predicted: the same rule on the predictor's predictions
//!   at the same levels, with `--margin` as `pilot recommend` applies it; a level pilot cannot
//!   predict counts as a violation (and is counted).
//! - *Cost.* ceil(512 / capacity) x GPUs x price per GPU-hour, the price being the cheapest
//!   on-demand price per GPU of that GPU type at any instance size on any cloud of pilot's
//!   price catalog (LLM-Pilot's assumed prices excluded). A profile on a GPU without a price
//!   is excluded from both sides and counted.
//! - *Scores.* The recommendation is the cheapest profile by predicted capacity; the optimum
//!   the cheapest by true capacity. A case where no priced profile truly meets the SLOs at its
//!   lowest level has no optimum: it is skipped and counted. Success when the recommendation's
//!   replicas ceil(512 / predicted) times its true capacity serve 512 users; overspend =
//!   recommendation cost / optimum cost - 1, averaged over successes; S/O = harmonic mean of
//!   success and 1 - overspend ([`Scores`]).
//! - *Per engine.* The same cases with only one engine's profiles: what a user who runs that
//!   engine would be told, scored against that engine's own optimum.
//!
//! **Training.** Each held-out LLM's predictor trains as the shipped one does (`pilot train`'s
//! options, 5 cross-conformal folds), on the two SLO columns only. The folds matter even for
//! point predictions: their held-out residuals are how training picks, per engine, the
//! physics alone over the corrections where that errs less on unseen LLMs.
//! `--conformal-folds 0` turns that off (and the intervals become in-sample), for comparison.

use crate::eval::Scores;
use crate::search::{Margin, violation};
use pilot_core::layout::Serving;
use pilot_core::metrics::Summary;
use pilot_core::price::{LLM_PILOT_CLOUD, PriceCatalog};
use pilot_core::schema::{Measurement, Mode};
use pilot_core::slo::{Metric, Slo, Stat};
use pilot_core::units::Millis;
use pilot_predict::rows::exclusion_reason;
use pilot_predict::scenario::Resolver;
use pilot_predict::{LatencyModel, Load, PredictError, Scenario, TrainOptions, train};
use std::collections::{BTreeMap, HashMap};

/// The `source` prefix of the rows `pilot dataset import aiconfigurator` writes.
pub const SOURCE_PREFIX: &str = "aiconfigurator:";

/// One pair of objectives on the source's two columns (`ttft_ms_mean`, `tpot_ms_mean`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloPair {
    pub ttft_ms: f64,
    pub tpot_ms: f64,
}

impl SloPair {
    pub fn slos(self) -> [Slo; 2] {
        let slo = |metric, ms| Slo {
            metric,
            stat: Stat::Mean,
            threshold: Millis(ms),
        };
        [
            slo(Metric::Ttft, self.ttft_ms),
            slo(Metric::Tpot, self.tpot_ms),
        ]
    }

    /// `TTFT <= 500 ms, TPOT <= 20 ms`.
    pub fn label(self) -> String {
        let ms = |v: f64| {
            if v >= 1000.0 && v % 1000.0 == 0.0 {
                format!("{} s", v / 1000.0)
            } else {
                format!("{v} ms")
            }
        };
        format!("TTFT <= {}, TPOT <= {}", ms(self.ttft_ms), ms(self.tpot_ms))
    }
}

/// The benchmark's settings.
#[derive(Debug, Clone)]
pub struct StacksOptions {
    /// Concurrent users to serve.
    pub users: u32,
    pub slo_pairs: Vec<SloPair>,
    pub train: TrainOptions,
    /// [`Margin::None`]: point predictions (LLM-Pilot's protocol); [`Margin::Upper`]: the
    /// upper end of the cross-conformal interval (with at least 3 folds);
    /// [`Margin::Factor`]: the point prediction plus that fraction. Not [`Margin::Nested`].
    pub margin: Margin,
    /// Held-out LLMs to run (catalog ids or any name resolving to one); empty = all.
    pub models: Vec<String>,
}

impl StacksOptions {
    /// The options each fold trains with: [`StacksOptions::train`], with 5 conformal folds
    /// for [`Margin::Upper`] when it has fewer than 3 (the upper end needs intervals from
    /// models that never saw some LLMs).
    pub fn training(&self) -> TrainOptions {
        let mut t = self.train.clone();
        if self.margin == Margin::Upper && t.conformal_folds < 3 {
            t.conformal_folds = 5;
        }
        t
    }
}

impl Default for StacksOptions {
    fn default() -> Self {
        StacksOptions {
            users: 512,
            slo_pairs: [(500.0, 20.0), (500.0, 50.0), (2000.0, 20.0), (2000.0, 50.0)]
                .into_iter()
                .map(|(ttft_ms, tpot_ms)| SloPair { ttft_ms, tpot_ms })
                .collect(),
            // Only the two SLO columns are needed. The conformal folds stay (5, as shipped)
            // even for point predictions: their held-out residuals are also how training
            // chooses, per engine, the physics alone over the corrections where that errs
            // less on unseen LLMs, and without them the benchmark measured another predictor
            // (success 55% and overspend 130% instead of 66% and 41%). On two targets they
            // cost next to nothing: one held-out LLM trains in ~13 s in debug either way.
            train: TrainOptions {
                targets: Some(vec!["ttft_ms_mean".into(), "tpot_ms_mean".into()]),
                ..TrainOptions::default()
            },
            margin: Margin::None,
            models: Vec::new(),
        }
    }
}

/// A measured deployment, as the benchmark tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Profile {
    pub gpu: String,
    /// GPUs per deployment (one replica).
    pub gpus: u32,
    pub engine: String,
    /// The checkpoint as the source names it (`nvidia/Qwen3-32B-NVFP4`).
    pub checkpoint: String,
    pub quantization: String,
    /// Empty where the source leaves it to the engine.
    pub kv_cache: String,
    /// Tensor, pipeline, expert parallel, attention data parallel.
    pub layout: [u32; 4],
}

impl Profile {
    fn of(row: &Measurement, s: &Scenario) -> Profile {
        let l = s.serving.decode_layout();
        Profile {
            gpu: row.gpu.clone(),
            gpus: s.gpu_count,
            engine: row.engine.clone(),
            checkpoint: row.model.clone(),
            quantization: s.quantization.to_string(),
            kv_cache: row
                .kv_cache_dtype
                .map(|q| q.to_string())
                .unwrap_or_default(),
            layout: [l.tensor(), l.pipeline(), l.expert(), l.attention_dp()],
        }
    }

    /// [`Profile::label`], with the checkpoint where it is not `llm`'s own name.
    pub fn label_for(&self, llm: &str) -> String {
        if self.checkpoint == llm {
            self.label()
        } else {
            format!("{} ({})", self.label(), self.checkpoint)
        }
    }

    /// `8 x H200-SXM-141GB sglang fp8_block TP1 EP8 ADP8`: degrees of 1 left out, except TP.
    pub fn label(&self) -> String {
        let [t, p, e, a] = self.layout;
        let mut s = format!(
            "{} x {} {} {}",
            self.gpus, self.gpu, self.engine, self.quantization
        );
        if !self.kv_cache.is_empty() {
            s.push_str(&format!(" kv {}", self.kv_cache));
        }
        s.push_str(&format!(" TP{t}"));
        for (name, v) in [("PP", p), ("EP", e), ("ADP", a)] {
            if v > 1 {
                s.push_str(&format!(" {name}{v}"));
            }
        }
        s
    }
}

/// One measured concurrency of a profile.
#[derive(Debug, Clone)]
pub struct Level {
    pub users: u32,
    /// The medians of the repeats' mean TTFT and mean TPOT (nothing else is filled).
    pub metrics: Summary,
    /// Runs measured at this concurrency.
    pub repeats: usize,
}

/// A priced profile of a case with its measured levels.
#[derive(Debug, Clone)]
pub struct MeasuredProfile {
    pub profile: Profile,
    pub usd_per_gpu_hour: f64,
    /// Ascending, one per distinct concurrency.
    pub levels: Vec<Level>,
    /// The deployment to predict (its load is set per level).
    pub scenario: Scenario,
}

impl MeasuredProfile {
    /// USD per hour of one replica.
    pub fn usd_per_hour(&self) -> f64 {
        f64::from(self.profile.gpus) * self.usd_per_gpu_hour
    }
}

/// A held-out LLM at one measured (input, output) length: the SLO pairs are applied later.
#[derive(Debug, Clone)]
pub struct Case {
    /// The LLM (model-catalog id).
    pub llm: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Priced profiles, in [`Profile`] order.
    pub profiles: Vec<MeasuredProfile>,
    /// Profiles excluded for want of a price.
    pub unpriced: Vec<Profile>,
}

/// Why rows were not made into profiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowNotes {
    /// Rows that became a level of a profile (priced or not).
    pub used: usize,
    /// Rows of other sources (not `aiconfigurator:`).
    pub other_source: usize,
    pub disaggregated: usize,
    /// Not closed-loop with a user count.
    pub not_closed_loop: usize,
    /// Reason -> rows ([`exclusion_reason`], or a row that is no scenario).
    pub excluded: BTreeMap<String, usize>,
}

/// The cheapest on-demand price of one `gpu` on any real cloud, per GPU-hour, over every
/// instance size pilot's catalog lists (a 16-GPU deployment is two 8-GPU instances, so the
/// per-GPU price is what carries over). `None` when nobody in the catalog sells it.
pub fn usd_per_gpu_hour(prices: &PriceCatalog, gpu: &str) -> Option<f64> {
    prices
        .entries()
        .iter()
        .filter(|e| e.gpu.eq_ignore_ascii_case(gpu) && e.cloud != LLM_PILOT_CLOUD)
        .filter(|e| e.gpu_count > 0)
        .filter_map(|e| e.on_demand.map(|p| p.0 / f64::from(e.gpu_count)))
        .min_by(f64::total_cmp)
}

/// The median of the finite values (`None` for none): core's percentile at 50.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    pilot_core::metrics::percentile(&mut v, 50.0)
}

/// A level from its repeated runs: the medians of the two SLO columns.
fn level(users: u32, runs: &[&Measurement]) -> Level {
    let mut metrics = Summary::default();
    metrics.ttft.mean = median(
        runs.iter()
            .filter_map(|r| r.metrics.ttft.mean.map(|v| v.0))
            .collect(),
    )
    .map(Millis);
    metrics.tpot.mean = median(
        runs.iter()
            .filter_map(|r| r.metrics.tpot.mean.map(|v| v.0))
            .collect(),
    )
    .map(Millis);
    Level {
        users,
        metrics,
        repeats: runs.len(),
    }
}

/// Maps model names to LLMs (catalog ids), resolving each name once.
#[derive(Default)]
pub struct LlmOf {
    resolver: Resolver,
    ids: HashMap<String, String>,
}

impl LlmOf {
    /// The catalog id `name` resolves to; the name itself where it resolves to none.
    pub fn get(&mut self, name: &str) -> String {
        if let Some(id) = self.ids.get(name) {
            return id.clone();
        }
        let id = self
            .resolver
            .model(name)
            .map_or_else(|_| name.to_string(), |m| m.id);
        self.ids.insert(name.to_string(), id.clone());
        id
    }
}

/// The benchmark's cases from the AIConfigurator rows: one per LLM and measured length, with
/// its profiles (priced ones scored, unpriced ones listed), in order of LLM and lengths.
pub fn cases(
    rows: &[Measurement],
    price: &dyn Fn(&str) -> Option<f64>,
    llms: &mut LlmOf,
) -> (Vec<Case>, RowNotes) {
    let mut notes = RowNotes::default();
    let mut resolver = Resolver::default();
    // (LLM, input, output) -> profile -> (its first run's scenario, concurrency -> runs).
    type Key = (String, u64, u64);
    type Runs<'a> = (Scenario, BTreeMap<u32, Vec<&'a Measurement>>);
    let mut grouped: BTreeMap<Key, BTreeMap<Profile, Runs>> = BTreeMap::new();
    for r in rows {
        if !r.source.starts_with(SOURCE_PREFIX) {
            notes.other_source += 1;
            continue;
        }
        if r.serving.is_disaggregated() {
            notes.disaggregated += 1;
            continue;
        }
        let Some(users) = r.load.users().filter(|_| r.load.mode() == Mode::Closed) else {
            notes.not_closed_loop += 1;
            continue;
        };
        if let Some(why) = exclusion_reason(r) {
            *notes.excluded.entry(why.to_string()).or_default() += 1;
            continue;
        }
        let s = match Scenario::from_row(r, &mut resolver) {
            Ok(s) => s,
            Err(e) => {
                *notes
                    .excluded
                    .entry(format!("not a scenario: {e}"))
                    .or_default() += 1;
                continue;
            }
        };
        debug_assert!(matches!(s.serving, Serving::Aggregated(_)));
        notes.used += 1;
        let key = (llms.get(&r.model), s.input_tokens.0, s.output_tokens.0);
        let profile = Profile::of(r, &s);
        grouped
            .entry(key)
            .or_default()
            .entry(profile)
            .or_insert_with(|| (s, BTreeMap::new()))
            .1
            .entry(users)
            .or_default()
            .push(r);
    }
    let out = grouped
        .into_iter()
        .map(|((llm, input_tokens, output_tokens), profiles)| {
            let mut case = Case {
                llm,
                input_tokens,
                output_tokens,
                profiles: Vec::new(),
                unpriced: Vec::new(),
            };
            for (profile, (scenario, by_users)) in profiles {
                let Some(usd_per_gpu_hour) = price(&profile.gpu) else {
                    case.unpriced.push(profile);
                    continue;
                };
                let levels = by_users.iter().map(|(&u, runs)| level(u, runs)).collect();
                case.profiles.push(MeasuredProfile {
                    profile,
                    usd_per_gpu_hour,
                    levels,
                    scenario,
                });
            }
            case
        })
        .collect();
    (out, notes)
}

/// The capacity rule on both sides: the highest level before the first one that fails, from
/// `(level, passes)` in ascending order of level; 0 when the lowest fails (or there is none).
pub fn capacity(levels: impl IntoIterator<Item = (u32, bool)>) -> u32 {
    let mut cap = 0;
    for (users, ok) in levels {
        if !ok {
            break;
        }
        cap = users;
    }
    cap
}

/// Whether a measured level meets every SLO (a missing value does not).
fn meets(slos: &[Slo], l: &Level) -> bool {
    slos.iter()
        .all(|s| s.value_in(&l.metrics).is_some_and(|v| v <= s.threshold.0))
}

/// A profile's true capacity under `slos`.
pub fn true_capacity(p: &MeasuredProfile, slos: &[Slo]) -> u32 {
    capacity(p.levels.iter().map(|l| (l.users, meets(slos, l))))
}

/// One profile as a case scores it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub profile: Profile,
    /// USD per hour of one replica.
    pub usd_per_hour: f64,
    pub true_capacity: u32,
    pub predicted_capacity: u32,
}

/// A choice of profile and how many replicas of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub profile: Profile,
    pub replicas: u32,
    pub cost: f64,
    pub predicted_capacity: u32,
    pub true_capacity: u32,
}

/// A case scored under one SLO pair.
#[derive(Debug, Clone)]
pub struct CaseScore {
    /// The cheapest profile by predicted capacity (`None`: pilot predicts none meets the SLOs).
    pub chosen: Option<Pick>,
    /// The cheapest profile by true capacity.
    pub best: Pick,
    pub success: bool,
}

impl CaseScore {
    fn scored(&self) -> (bool, Option<f64>, Option<f64>) {
        (
            self.success,
            self.chosen.as_ref().map(|p| p.cost),
            Some(self.best.cost),
        )
    }
}

/// Scores one case: `None` when no candidate truly meets the SLOs at its lowest level (the
/// case has no optimum and is skipped). Ties in cost go to the earlier candidate.
pub fn score(candidates: &[Candidate], users: u32) -> Option<CaseScore> {
    let pick = |c: &Candidate, cap: u32| {
        let replicas = users.div_ceil(cap);
        Pick {
            profile: c.profile.clone(),
            replicas,
            cost: f64::from(replicas) * c.usd_per_hour,
            predicted_capacity: c.predicted_capacity,
            true_capacity: c.true_capacity,
        }
    };
    let cheapest = |cap: fn(&Candidate) -> u32| {
        candidates
            .iter()
            .filter(|c| cap(c) > 0)
            .map(|c| pick(c, cap(c)))
            .fold(None::<Pick>, |best, p| match best {
                Some(b) if b.cost <= p.cost => Some(b),
                _ => Some(p),
            })
    };
    let best = cheapest(|c| c.true_capacity)?;
    let chosen = cheapest(|c| c.predicted_capacity);
    let success = chosen
        .as_ref()
        .is_some_and(|p| u64::from(p.replicas) * u64::from(p.true_capacity) >= u64::from(users));
    Some(CaseScore {
        chosen,
        best,
        success,
    })
}

/// One scored case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub llm: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub slo: SloPair,
    /// `None`: every engine's profiles; else only that engine's.
    pub engine: Option<String>,
    pub score: CaseScore,
}

/// Scores over some outcomes.
pub fn scores(outcomes: &[&CaseOutcome]) -> Scores {
    Scores::of(
        &outcomes
            .iter()
            .map(|o| o.score.scored())
            .collect::<Vec<_>>(),
    )
}

/// One row of the per-LLM table.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSummary {
    pub llm: String,
    pub cases: usize,
    pub successes: usize,
    /// Mean over successes, percent (`None` without successes).
    pub mean_overspend: Option<f64>,
}

/// Cases, successes and mean overspend per LLM, in order of first appearance.
pub fn per_llm(outcomes: &[&CaseOutcome]) -> Vec<LlmSummary> {
    let mut out: Vec<LlmSummary> = Vec::new();
    let mut over: Vec<Vec<f64>> = Vec::new();
    for o in outcomes {
        let i = match out.iter().position(|s| s.llm == o.llm) {
            Some(i) => i,
            None => {
                out.push(LlmSummary {
                    llm: o.llm.clone(),
                    cases: 0,
                    successes: 0,
                    mean_overspend: None,
                });
                over.push(Vec::new());
                out.len() - 1
            }
        };
        out[i].cases += 1;
        if o.score.success {
            out[i].successes += 1;
            if let Some(c) = &o.score.chosen {
                over[i].push(100.0 * (c.cost / o.score.best.cost - 1.0));
            }
        }
    }
    for (s, v) in out.iter_mut().zip(over) {
        s.mean_overspend = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    }
    out
}

/// Cases that were not scored, by why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skipped {
    /// Every profile of the case is on a GPU without a price.
    pub unpriced: usize,
    /// No priced profile truly meets the SLOs at its lowest level.
    pub infeasible: usize,
}

/// The benchmark's outcome.
#[derive(Debug, Clone)]
pub struct StacksReport {
    /// Every scored case, all engines first (`engine == None`), then each engine's.
    pub outcomes: Vec<CaseOutcome>,
    /// Skipped cases, all engines (`None`) and per engine.
    pub skipped: BTreeMap<Option<String>, Skipped>,
    /// Profiles (one per case length) excluded for want of a price, per GPU.
    pub unpriced: BTreeMap<String, usize>,
    pub rows: RowNotes,
    /// Each held-out LLM and its predictor's training rows.
    pub trainings: Vec<(String, usize)>,
    /// Predictions that failed (counted as violations), and the first error.
    pub prediction_errors: usize,
    pub first_prediction_error: Option<String>,
}

impl StacksReport {
    /// The outcomes over every engine's profiles (`None`) or one engine's.
    pub fn of_engine(&self, engine: Option<&str>) -> Vec<&CaseOutcome> {
        self.outcomes
            .iter()
            .filter(|o| o.engine.as_deref() == engine)
            .collect()
    }

    /// The engines with a per-engine breakdown, in order.
    pub fn engines(&self) -> Vec<String> {
        self.skipped.keys().flatten().cloned().collect()
    }

    pub fn scores(&self) -> Scores {
        scores(&self.of_engine(None))
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum StacksError {
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error(
        "no rows of AIConfigurator's import (source '{SOURCE_PREFIX}...'); make them with `pilot dataset import aiconfigurator`"
    )]
    NoRows,
    #[error("--models: no held-out LLM '{name}' in the data; its LLMs: {llms}")]
    UnknownModel { name: String, llms: String },
    #[error(
        "--margin nested is LLM-Pilot's benchmark only (it would train once per pair of LLMs here); use none, upper or a fraction"
    )]
    Nested,
}

/// Runs the benchmark: `rows` hold the AIConfigurator import (the cases) and every training
/// row (the cases' own rows train too, when they belong to another LLM).
pub fn evaluate(
    rows: &[Measurement],
    opts: &StacksOptions,
    prices: &PriceCatalog,
) -> Result<StacksReport, StacksError> {
    if opts.margin == Margin::Nested {
        return Err(StacksError::Nested);
    }
    let mut llms = LlmOf::default();
    let price = |gpu: &str| usd_per_gpu_hour(prices, gpu);
    let (mut all, notes) = cases(rows, &price, &mut llms);
    if notes.used == 0 {
        return Err(StacksError::NoRows);
    }
    if !opts.models.is_empty() {
        let mut wanted = Vec::new();
        for name in &opts.models {
            let id = llms.get(name);
            if !all.iter().any(|c| c.llm.eq_ignore_ascii_case(&id)) {
                let mut known: Vec<&str> = all.iter().map(|c| c.llm.as_str()).collect();
                known.dedup();
                return Err(StacksError::UnknownModel {
                    name: name.clone(),
                    llms: known.join(", "),
                });
            }
            wanted.push(id.to_ascii_lowercase());
        }
        all.retain(|c| wanted.contains(&c.llm.to_ascii_lowercase()));
    }
    let mut report = StacksReport {
        outcomes: Vec::new(),
        skipped: BTreeMap::new(),
        unpriced: BTreeMap::new(),
        rows: notes,
        trainings: Vec::new(),
        prediction_errors: 0,
        first_prediction_error: None,
    };
    for c in &all {
        for p in &c.unpriced {
            *report.unpriced.entry(p.gpu.clone()).or_default() += 1;
        }
    }
    let topts = opts.training();
    let row_llm: Vec<String> = rows.iter().map(|r| llms.get(&r.model)).collect();
    let mut held_out: Vec<&str> = all.iter().map(|c| c.llm.as_str()).collect();
    held_out.dedup();
    let mut engines: Vec<String> = all
        .iter()
        .flat_map(|c| c.profiles.iter().map(|p| p.profile.engine.clone()))
        .collect();
    engines.sort();
    engines.dedup();
    for llm in held_out {
        let train_rows: Vec<Measurement> = rows
            .iter()
            .zip(&row_llm)
            .filter(|(_, l)| *l != llm)
            .map(|(r, _)| r.clone())
            .collect();
        report.trainings.push((llm.to_string(), train_rows.len()));
        let predictor = train(&train_rows, &topts)?;
        for c in all.iter().filter(|c| c.llm == llm) {
            score_case(c, &predictor, opts, &engines, &mut report);
        }
    }
    // All engines first, each engine's after: by scope, in case order within one.
    report.outcomes.sort_by(|a, b| a.engine.cmp(&b.engine));
    Ok(report)
}

/// Predicts one case's profiles once and scores the case under every SLO pair, over all
/// engines and per engine.
fn score_case(
    c: &Case,
    predictor: &dyn LatencyModel,
    opts: &StacksOptions,
    engines: &[String],
    report: &mut StacksReport,
) {
    // passes[profile][slo pair][level]
    let mut passes: Vec<Vec<Vec<bool>>> = Vec::new();
    for p in &c.profiles {
        let scenarios: Vec<Scenario> = p
            .levels
            .iter()
            .map(|l| Scenario {
                load: Load::Users(l.users),
                ..p.scenario.clone()
            })
            .collect();
        let preds = predictor.predict_many(&scenarios);
        for e in preds.iter().filter_map(|r| r.as_ref().err()) {
            report.prediction_errors += 1;
            report
                .first_prediction_error
                .get_or_insert_with(|| format!("{} ({}): {e}", p.profile.label(), c.llm));
        }
        passes.push(
            opts.slo_pairs
                .iter()
                .map(|pair| {
                    let slos = pair.slos();
                    preds
                        .iter()
                        .map(|r| {
                            r.as_ref()
                                .is_ok_and(|p| violation(&slos, p, opts.margin).is_none())
                        })
                        .collect()
                })
                .collect(),
        );
    }
    for (k, pair) in opts.slo_pairs.iter().enumerate() {
        let slos = pair.slos();
        let candidates: Vec<Candidate> = c
            .profiles
            .iter()
            .zip(&passes)
            .map(|(p, pass)| Candidate {
                profile: p.profile.clone(),
                usd_per_hour: p.usd_per_hour(),
                true_capacity: true_capacity(p, &slos),
                predicted_capacity: capacity(
                    p.levels
                        .iter()
                        .map(|l| l.users)
                        .zip(pass[k].iter().copied()),
                ),
            })
            .collect();
        let scopes = std::iter::once(None).chain(engines.iter().map(Some));
        for engine in scopes {
            let mine: Vec<Candidate> = candidates
                .iter()
                .filter(|x| engine.is_none_or(|e| &x.profile.engine == e))
                .cloned()
                .collect();
            let priced = c
                .profiles
                .iter()
                .any(|p| engine.is_none_or(|e| &p.profile.engine == e));
            let unpriced = c
                .unpriced
                .iter()
                .any(|p| engine.is_none_or(|e| &p.engine == e));
            if !priced && !unpriced {
                continue; // this engine has no profile at these lengths
            }
            let skipped = report.skipped.entry(engine.cloned()).or_default();
            match score(&mine, opts.users) {
                Some(score) => report.outcomes.push(CaseOutcome {
                    llm: c.llm.clone(),
                    input_tokens: c.input_tokens,
                    output_tokens: c.output_tokens,
                    slo: *pair,
                    engine: engine.cloned(),
                    score,
                }),
                None if !priced => skipped.unpriced += 1,
                None => skipped.infeasible += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilot_core::layout::{Layout, Workers};

    /// An AIConfigurator row of Qwen3-32B at `users`, with mean TTFT and TPOT.
    fn row(gpu: &str, tp: u32, engine: &str, users: u32, ttft: f64, tpot: f64) -> Measurement {
        let mut r = Measurement::new("Qwen/Qwen3-32B", gpu, tp, engine, Load::Users(users));
        r.serving = Serving::Aggregated(Layout::new(tp, 1, 1, 1).unwrap());
        r.quantization = Some("fp8".parse().unwrap());
        r.metrics.input_tokens_mean = Some(1024.0);
        r.metrics.output_tokens_mean = Some(128.0);
        r.metrics.ttft.mean = Some(Millis(ttft));
        r.metrics.tpot.mean = Some(Millis(tpot));
        r.source = format!("{SOURCE_PREFIX}{gpu}_{tp}_{engine}_{users}");
        r
    }

    const STRICT: SloPair = SloPair {
        ttft_ms: 500.0,
        tpot_ms: 20.0,
    };

    fn one_case(rows: &[Measurement], price: &dyn Fn(&str) -> Option<f64>) -> Case {
        let (cases, notes) = cases(rows, price, &mut LlmOf::default());
        assert_eq!(cases.len(), 1, "{notes:?}");
        cases.into_iter().next().unwrap()
    }

    fn h100(gpu: &str) -> Option<f64> {
        (gpu == "H100-SXM-80GB").then_some(2.0)
    }

    #[test]
    fn capacity_is_the_level_before_the_first_violation() {
        assert_eq!(capacity([(4, true), (8, true), (16, false), (32, true)]), 8);
        assert_eq!(capacity([(4, true), (8, true), (16, true)]), 16);
        assert_eq!(capacity([(4, false), (8, true)]), 0);
        assert_eq!(capacity([]), 0);
    }

    #[test]
    fn true_capacity_reads_both_slos_at_the_median_of_repeats() {
        let rows = [
            row("H100-SXM-80GB", 1, "vllm", 4, 100.0, 10.0),
            row("H100-SXM-80GB", 1, "vllm", 8, 200.0, 15.0),
            // TTFT breaks at the third level; 32 users pass again but come too late.
            row("H100-SXM-80GB", 1, "vllm", 16, 600.0, 18.0),
            row("H100-SXM-80GB", 1, "vllm", 32, 300.0, 19.0),
            // Never violating: the highest level.
            row("H100-SXM-80GB", 2, "vllm", 4, 100.0, 10.0),
            row("H100-SXM-80GB", 2, "vllm", 64, 400.0, 19.0),
            // Repeats at 8 users: TPOT 30, 18, 19 has median 19, which passes.
            row("H100-SXM-80GB", 4, "vllm", 4, 100.0, 10.0),
            row("H100-SXM-80GB", 4, "vllm", 8, 100.0, 30.0),
            row("H100-SXM-80GB", 4, "vllm", 8, 100.0, 18.0),
            row("H100-SXM-80GB", 4, "vllm", 8, 100.0, 19.0),
            row("H100-SXM-80GB", 4, "vllm", 16, 100.0, 21.0),
        ];
        let c = one_case(&rows, &h100);
        assert_eq!((c.input_tokens, c.output_tokens), (1024, 128));
        let caps: Vec<(u32, u32)> = c
            .profiles
            .iter()
            .map(|p| (p.profile.gpus, true_capacity(p, &STRICT.slos())))
            .collect();
        assert_eq!(caps, [(1, 8), (2, 64), (4, 8)]);
        let repeated = &c.profiles[2].levels[1];
        assert_eq!((repeated.users, repeated.repeats), (8, 3));
        // A looser TPOT: the 4-GPU profile now passes every level.
        let loose = SloPair {
            ttft_ms: 500.0,
            tpot_ms: 50.0,
        };
        assert_eq!(true_capacity(&c.profiles[2], &loose.slos()), 16);
    }

    #[test]
    fn cases_are_llm_and_lengths_with_aggregated_priced_profiles() {
        let mut rows = vec![
            row("H100-SXM-80GB", 1, "vllm", 4, 100.0, 10.0),
            row("B200-SXM-180GB", 1, "vllm", 4, 100.0, 10.0),
            row("H100-SXM-80GB", 1, "sglang", 4, 100.0, 10.0),
        ];
        // The quantized re-publication is the same LLM, in its own profile.
        let mut nv = row("H100-SXM-80GB", 1, "tensorrt-llm", 4, 100.0, 10.0);
        nv.model = "nvidia/Qwen3-32B-NVFP4".into();
        rows.push(nv);
        // Not profiles: disaggregated, a placeholder concurrency, another source.
        let mut dis = row("H100-SXM-80GB", 2, "vllm", 4, 100.0, 10.0);
        let one = Workers::new(1, Layout::tensor_parallel(1).unwrap()).unwrap();
        dis.serving = Serving::Disaggregated {
            prefill: one,
            decode: one,
        };
        rows.push(dis);
        let mut placeholder = row("H100-SXM-80GB", 8, "vllm", 1, 100.0, 10.0);
        // pilot_import::aiconfigurator::FLAG_CONCURRENCY (recommend does not depend on import).
        placeholder.add_flag("concurrency_unknown");
        rows.push(placeholder);
        let mut other = row("H100-SXM-80GB", 8, "vllm", 4, 100.0, 10.0);
        other.source = "llm-pilot:x".into();
        rows.push(other);
        // Another length is another case.
        let mut long = row("H100-SXM-80GB", 1, "vllm", 4, 100.0, 10.0);
        long.metrics.input_tokens_mean = Some(8192.0);
        rows.push(long);
        let (cs, notes) = cases(&rows, &h100, &mut LlmOf::default());
        assert_eq!(cs.len(), 2);
        let c = &cs[0];
        assert_eq!((c.llm.as_str(), c.input_tokens), ("Qwen/Qwen3-32B", 1024));
        let engines: Vec<&str> = c
            .profiles
            .iter()
            .map(|p| p.profile.engine.as_str())
            .collect();
        assert_eq!(engines, ["sglang", "tensorrt-llm", "vllm"]);
        assert_eq!(c.profiles[1].profile.checkpoint, "nvidia/Qwen3-32B-NVFP4");
        assert_eq!(c.unpriced.len(), 1);
        assert_eq!(c.unpriced[0].gpu, "B200-SXM-180GB");
        assert_eq!(cs[1].input_tokens, 8192);
        assert_eq!(
            (notes.used, notes.other_source, notes.disaggregated),
            (5, 1, 1)
        );
        assert_eq!(notes.excluded.values().sum::<usize>(), 1, "{notes:?}");
    }

    fn cand(name: &str, usd: f64, truth: u32, predicted: u32) -> Candidate {
        Candidate {
            profile: Profile {
                gpu: name.into(),
                gpus: 1,
                engine: "vllm".into(),
                checkpoint: "m".into(),
                quantization: "fp8".into(),
                kv_cache: String::new(),
                layout: [1, 1, 1, 1],
            },
            usd_per_hour: usd,
            true_capacity: truth,
            predicted_capacity: predicted,
        }
    }

    #[test]
    fn scoring_picks_by_prediction_and_judges_by_truth() {
        // A: 512/64 = 8 replicas x 1 = 8; B: 512/128 = 4 x 3 = 12. The optimum is A.
        let a = cand("A", 1.0, 64, 64);
        let b = cand("B", 3.0, 128, 128);
        let s = score(&[a.clone(), b.clone()], 512).unwrap();
        assert_eq!(s.best.profile.gpu, "A");
        assert_eq!(s.chosen.as_ref().unwrap().profile.gpu, "A");
        assert!(s.success);
        // Predicting A at 128 (truly 64): 4 replicas serve 256 users, a failure.
        let s = score(&[cand("A", 1.0, 64, 128), b.clone()], 512).unwrap();
        assert_eq!(s.chosen.as_ref().unwrap().replicas, 4);
        assert!(!s.success);
        // Predicting A at 32: 16 replicas cost 16, a success with 100% overspend.
        let s = score(&[cand("A", 1.0, 64, 32), cand("B", 3.0, 128, 0)], 512).unwrap();
        assert!(s.success);
        let sc = Scores::of(&[s.scored()]);
        assert!((sc.overspend - 100.0).abs() < 1e-9, "{}", sc.overspend);
        // Predicting nothing feasible: no recommendation, a failure.
        let s = score(&[cand("A", 1.0, 64, 0)], 512).unwrap();
        assert!(s.chosen.is_none() && !s.success);
        // Nothing truly feasible: the case is skipped.
        assert!(score(&[cand("A", 1.0, 0, 64)], 512).is_none());
        // 512 / 100 = 6 replicas (ceil), not 5.
        let s = score(&[cand("A", 1.0, 100, 100)], 512).unwrap();
        assert_eq!(s.best.replicas, 6);
    }

    /// Point predictions train as shipped, folds included (they choose physics or
    /// corrections per engine), on the two SLO columns; upper never trains without folds.
    #[test]
    fn folds_train_as_shipped_on_the_two_slo_columns() {
        let o = StacksOptions::default();
        let t = o.training();
        assert_eq!(t.conformal_folds, TrainOptions::default().conformal_folds);
        assert_eq!(
            t.targets.as_deref(),
            Some(&["ttft_ms_mean".to_string(), "tpot_ms_mean".to_string()][..])
        );
        let mut upper = StacksOptions {
            margin: Margin::Upper,
            ..o
        };
        upper.train.conformal_folds = 0;
        assert_eq!(upper.training().conformal_folds, 5);
    }

    #[test]
    fn prices_are_the_cheapest_per_gpu_hour_on_a_real_cloud() {
        let prices = PriceCatalog::builtin();
        let h100 = usd_per_gpu_hour(prices, "H100-SXM-80GB").unwrap();
        for e in prices.entries().iter().filter(|e| {
            e.gpu == "H100-SXM-80GB" && e.cloud != LLM_PILOT_CLOUD && e.on_demand.is_some()
        }) {
            assert!(h100 <= e.on_demand.unwrap().0 / f64::from(e.gpu_count) + 1e-12);
        }
        assert!(usd_per_gpu_hour(prices, "no-such-gpu").is_none());
    }

    #[test]
    fn per_llm_counts_cases_successes_and_overspend() {
        let outcome = |llm: &str, s: Option<CaseScore>| CaseOutcome {
            llm: llm.into(),
            input_tokens: 1,
            output_tokens: 1,
            slo: STRICT,
            engine: None,
            score: s.unwrap(),
        };
        let os = [
            outcome("x", score(&[cand("A", 1.0, 64, 64)], 512)),
            outcome("x", score(&[cand("A", 1.0, 64, 32)], 512)),
            outcome("y", score(&[cand("A", 1.0, 64, 128)], 512)),
        ];
        let refs: Vec<&CaseOutcome> = os.iter().collect();
        let t = per_llm(&refs);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].cases, t[0].successes), (2, 2));
        assert!((t[0].mean_overspend.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(
            (t[1].cases, t[1].successes, t[1].mean_overspend),
            (1, 0, None)
        );
        let s = scores(&refs);
        assert!((s.success_rate - 200.0 / 3.0).abs() < 1e-9);
    }
}
