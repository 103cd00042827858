//! What each request asks for: its input and output lengths, and (for trace replay) when it
//! arrives.
//!
//! - [`Workload::Fixed`]: every request has the same lengths (`--input-tokens`,
//!   `--output-tokens`).
//! - [`Workload::FmperfHistogram`]: fmperf's histogram CSV (`generated_token_count,
//!   input_token_count, ..., probability`). Whole cells are drawn with their probability as
//!   weight, so the correlation between input and output lengths is kept.
//! - [`Workload::AzureTrace`]: Azure LLM inference traces (`arrived_at, num_prefill_tokens,
//!   num_decode_tokens`). Lengths are drawn uniformly from its rows; with `replay` the trace
//!   is replayed by timestamp instead (open loop).
//! - [`Workload::ShareGpt`]: a ShareGPT JSON file (`[{"conversations": [{"from": "human",
//!   "value": ...}, {"from": "gpt", "value": ...}]}]`). Each conversation's first human turn
//!   is the input and the reply after it the output, as `vllm bench serve` samples it. Without
//!   the model's tokenizer, lengths are *estimated* as 4/3 tokens per whitespace-separated word
//!   (the usual ratio of BPE tokenizers on English); the exact prompt sent is then that many
//!   token ids.
//!
//! Every length is clamped so that input + output fits the model's context.

use crate::client::{Prompt, prompt_ids};
use crate::dataset::{self, Conversation, Counter, Dataset, ShareGptFile, TOKENS_PER_WORD};
use crate::tokenize::PromptTokenizer;
use rand::RngExt;
use rand::rngs::StdRng;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where request lengths come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// Every request: `input` prompt tokens, exactly `output` generated tokens.
    Fixed { input: u32, output: u32 },
    /// fmperf's histogram CSV.
    FmperfHistogram(PathBuf),
    /// An Azure LLM inference trace CSV.
    AzureTrace(PathBuf),
    /// A ShareGPT conversations JSON (lengths only: `--workload`).
    ShareGpt(PathBuf),
    /// `--dataset`: a kind that carries its prompts (see [`crate::dataset`]).
    Dataset(Dataset),
}

impl Default for Workload {
    fn default() -> Self {
        Workload::Fixed {
            input: 64,
            output: 32,
        }
    }
}

impl Workload {
    /// The workload a file holds, told by its extension and header: `.json` is ShareGPT; a
    /// CSV with a `probability` column is an fmperf histogram; one with `arrived_at` an Azure
    /// trace. Anything else is an error naming the three formats.
    pub fn detect(path: &Path) -> Result<Workload, WorkloadError> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            return Ok(Workload::ShareGpt(path.into()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| WorkloadError::unreadable(path, "cannot read it", e))?;
        let header = text.lines().next().unwrap_or_default();
        if header.contains("probability") {
            Ok(Workload::FmperfHistogram(path.into()))
        } else if header.contains("arrived_at") {
            Ok(Workload::AzureTrace(path.into()))
        } else {
            Err(WorkloadError {
                path: path.into(),
                reason: "not an fmperf histogram (needs a `probability` column), an Azure trace \
                         (`arrived_at`) or ShareGPT JSON"
                    .into(),
                source: None,
            })
        }
    }
}

/// The lengths of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub input: u32,
    pub output: u32,
}

/// Why a workload file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("workload {path}: {reason}")]
pub struct WorkloadError {
    pub path: PathBuf,
    pub reason: String,
    /// The reader's error (io, CSV, JSON) when one caused this; printed as "caused by".
    #[source]
    pub source: Option<pilot_core::BoxError>,
}

impl WorkloadError {
    /// The file could not be read or parsed: `what` says which, `e` is kept as the source.
    fn unreadable(path: &Path, what: &str, e: impl Into<pilot_core::BoxError>) -> WorkloadError {
        WorkloadError {
            path: path.into(),
            reason: what.into(),
            source: Some(e.into()),
        }
    }
}

/// A workload loaded into memory, ready to sample.
#[derive(Debug, Clone)]
pub struct LoadedWorkload {
    shapes: Vec<Shape>,
    /// Cumulative weights, same length as `shapes`; `None` is uniform.
    cumulative: Option<Vec<f64>>,
    /// Arrival offsets from the trace's first request (Azure traces only), in `shapes` order.
    arrivals: Option<Vec<Duration>>,
    /// How many shapes were shortened to fit the context.
    pub clamped: usize,
    /// Human-readable notes (estimates, clamping).
    pub notes: Vec<String>,
    /// What each request sends.
    prompts: Prompts,
    /// The model's context, which drawn lengths are clamped to.
    max_model_len: Option<u32>,
}

/// What a [`LoadedWorkload`]'s requests send.
#[derive(Debug, Clone)]
enum Prompts {
    /// Random token ids of the shape's length, different per request.
    Synthetic,
    /// Random ids, lengths drawn per request from these ranges (`--dataset random`).
    Random {
        input: std::ops::RangeInclusive<u32>,
        output: std::ops::RangeInclusive<u32>,
    },
    /// Real texts, one per shape (`--dataset sharegpt`).
    Texts(Vec<String>),
    /// `groups` shared prefixes of `prefix` ids, then the request's own ids up to its input
    /// length.
    Prefixed { prefix: u32, groups: u32 },
    /// Conversations, run turn after turn by one user (`--dataset multi-turn`).
    Conversations(Vec<Conversation>),
}

/// One drawn request: its lengths and which entry of the workload it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub shape: Shape,
    /// The entry (text, trace row, prefix group) the prompt comes from.
    entry: usize,
}

/// Salt of the shared prefixes' ids: a group's prefix is the same for every request.
const PREFIX_SALT: u64 = 0x7072_6566_6978_0001;

impl LoadedWorkload {
    /// Loads `w`, clamping every request to `max_model_len` tokens (prompt + output) if known.
    pub fn load(w: &Workload, max_model_len: Option<u32>) -> Result<LoadedWorkload, WorkloadError> {
        LoadedWorkload::load_with(w, max_model_len, None)
    }

    /// [`LoadedWorkload::load`], counting real texts' tokens with `tokenizer` (without one,
    /// the counts are word estimates, and a note says so).
    pub fn load_with(
        w: &Workload,
        max_model_len: Option<u32>,
        tokenizer: Option<&PromptTokenizer>,
    ) -> Result<LoadedWorkload, WorkloadError> {
        let mut loaded = match w {
            Workload::Fixed { input, output } => {
                if *input == 0 || *output == 0 {
                    return Err(WorkloadError {
                        path: "--input-tokens/--output-tokens".into(),
                        reason: format!(
                            "lengths must be at least 1 (got {input} in, {output} out)"
                        ),
                        source: None,
                    });
                }
                LoadedWorkload::of(
                    vec![Shape {
                        input: *input,
                        output: *output,
                    }],
                    None,
                    None,
                )
            }
            Workload::FmperfHistogram(p) => load_fmperf(p)?,
            Workload::AzureTrace(p) => load_azure(p)?,
            Workload::ShareGpt(p) => load_sharegpt(p)?,
            Workload::Dataset(d) => load_dataset(d, tokenizer)?,
        };
        if let (Some(max), Prompts::Texts(texts)) = (max_model_len, &mut loaded.prompts) {
            // A real text cannot be shortened: too long ones are left out, as vLLM does.
            let before = texts.len();
            let keep: Vec<bool> = loaded
                .shapes
                .iter()
                .map(|s| s.input + s.output <= max)
                .collect();
            let mut k = keep.iter();
            texts.retain(|_| *k.next().expect("one per shape"));
            let mut k = keep.iter();
            loaded.shapes.retain(|_| *k.next().expect("one per shape"));
            if texts.is_empty() {
                return Err(WorkloadError {
                    path: format!("{w:?}").into(),
                    reason: format!("no prompt fits the model's context of {max} tokens"),
                    source: None,
                });
            }
            if texts.len() < before {
                loaded.notes.push(format!(
                    "{} of {before} prompts left out: longer than the model's context of {max} tokens with their output",
                    before - texts.len()
                ));
            }
        }
        loaded.max_model_len = max_model_len;
        if let Some(max) = max_model_len {
            for s in &mut loaded.shapes {
                let c = clamp(*s, max);
                if c != *s {
                    loaded.clamped += 1;
                    *s = c;
                }
            }
            if loaded.clamped > 0 {
                let n = loaded.shapes.len();
                loaded.notes.push(format!(
                    "{} of {n} workload entries shortened to fit the model's context of {max} tokens",
                    loaded.clamped
                ));
            }
        }
        Ok(loaded)
    }

    fn of(
        shapes: Vec<Shape>,
        weights: Option<Vec<f64>>,
        arrivals: Option<Vec<Duration>>,
    ) -> LoadedWorkload {
        let cumulative = weights.map(|w| {
            let mut acc = 0.0;
            w.into_iter()
                .map(|x| {
                    acc += x;
                    acc
                })
                .collect()
        });
        LoadedWorkload {
            shapes,
            cumulative,
            arrivals,
            clamped: 0,
            notes: Vec::new(),
            prompts: Prompts::Synthetic,
            max_model_len: None,
        }
    }

    /// Draws one request's lengths.
    pub fn sample(&self, rng: &mut StdRng) -> Shape {
        self.pick(rng).shape
    }

    /// Draws one request: its lengths and the entry its prompt comes from.
    pub fn pick(&self, rng: &mut StdRng) -> Pick {
        let entry = match &self.cumulative {
            Some(c) => {
                let total = *c.last().expect("non-empty");
                let x = rng.random::<f64>() * total;
                c.partition_point(|&acc| acc <= x)
                    .min(self.shapes.len() - 1)
            }
            None if self.shapes.len() == 1 => 0,
            None => rng.random_range(0..self.shapes.len()),
        };
        match &self.prompts {
            Prompts::Random { input, output } => {
                let s = Shape {
                    input: rng.random_range(input.clone()),
                    output: rng.random_range(output.clone()),
                };
                Pick {
                    shape: self.max_model_len.map_or(s, |m| clamp(s, m)),
                    entry,
                }
            }
            Prompts::Prefixed { groups, .. } => Pick {
                shape: self.shapes[0],
                entry: rng.random_range(0..*groups as usize),
            },
            _ => Pick {
                shape: self.shapes[entry],
                entry,
            },
        }
    }

    /// The prompt of request `id` drawn as `pick`: its text, or ids from `ids` deterministic
    /// in `(seed, id)` (a prefix group's shared ids in `(seed, group)`).
    pub fn prompt(&self, pick: Pick, seed: u64, id: u64, ids: std::ops::Range<u32>) -> Prompt {
        match &self.prompts {
            Prompts::Texts(t) => Prompt::Text(t[pick.entry].clone()),
            Prompts::Prefixed { prefix, .. } => {
                // A prompt shortened to fit the context keeps its prefix, losing its suffix.
                let prefix = (*prefix).min(pick.shape.input);
                Prompt::Split(
                    prompt_ids(seed ^ PREFIX_SALT, pick.entry as u64, prefix, ids.clone()),
                    prompt_ids(seed, id, pick.shape.input - prefix, ids),
                )
            }
            _ => Prompt::Ids(prompt_ids(seed, id, pick.shape.input, ids)),
        }
    }

    /// The model's context, if known (what drawn lengths are clamped to).
    pub fn max_model_len(&self) -> Option<u32> {
        self.max_model_len
    }

    /// The conversations of a multi-turn workload.
    pub fn conversations(&self) -> Option<&[Conversation]> {
        match &self.prompts {
            Prompts::Conversations(c) => Some(c),
            _ => None,
        }
    }

    /// The trace's requests with their arrival offsets, if this workload is a trace.
    pub fn trace(&self) -> Option<impl Iterator<Item = (Duration, Pick)> + '_> {
        self.arrivals.as_ref().map(|a| {
            a.iter().copied().zip(
                self.shapes
                    .iter()
                    .enumerate()
                    .map(|(entry, &shape)| Pick { shape, entry }),
            )
        })
    }

    /// Mean input and output lengths (weighted), for notes.
    pub fn mean(&self) -> (f64, f64) {
        self.weighted().iter().fold((0.0, 0.0), |(i, o), (s, w)| {
            (i + w * s.input as f64, o + w * s.output as f64)
        })
    }

    /// Every request shape with its probability (summing to 1): the length distribution
    /// that recommend's `--mix` splits across GPU types.
    pub fn weighted(&self) -> Vec<(Shape, f64)> {
        let n = self.shapes.len() as f64;
        match &self.cumulative {
            None => self.shapes.iter().map(|&s| (s, 1.0 / n)).collect(),
            Some(c) => {
                let total = *c.last().expect("non-empty");
                let mut prev = 0.0;
                self.shapes
                    .iter()
                    .zip(c)
                    .map(|(&s, &acc)| {
                        let w = (acc - prev) / total;
                        prev = acc;
                        (s, w)
                    })
                    .collect()
            }
        }
    }
}

/// Fits `s` into `max` tokens: the output keeps what it can (at most half the context when
/// both are too long), the input takes the rest.
fn clamp(s: Shape, max: u32) -> Shape {
    if s.input + s.output <= max || max < 2 {
        return s;
    }
    let output = s
        .output
        .min((max / 2).max(max.saturating_sub(s.input)))
        .max(1);
    Shape {
        input: (max - output).max(1).min(s.input),
        output,
    }
}

fn read_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, WorkloadError> {
    csv::Reader::from_path(path)
        .map_err(|e| WorkloadError::unreadable(path, "cannot open it", pilot_core::csv_cause(e)))
}

fn column(headers: &csv::StringRecord, name: &str, path: &Path) -> Result<usize, WorkloadError> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| WorkloadError {
            path: path.into(),
            reason: format!(
                "no column '{name}' (columns: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
            source: None,
        })
}

fn number(
    rec: &csv::StringRecord,
    i: usize,
    row: usize,
    path: &Path,
) -> Result<f64, WorkloadError> {
    let text = rec.get(i).unwrap_or("").trim();
    text.parse::<f64>().map_err(|_| WorkloadError {
        path: path.into(),
        reason: format!("row {row}: '{text}' is not a number"),
        source: None,
    })
}

fn load_fmperf(path: &Path) -> Result<LoadedWorkload, WorkloadError> {
    let mut r = read_csv(path)?;
    let h = r
        .headers()
        .map_err(|e| WorkloadError::unreadable(path, "cannot read the CSV header", e))?
        .clone();
    let (out_i, in_i, p_i) = (
        column(&h, "generated_token_count", path)?,
        column(&h, "input_token_count", path)?,
        column(&h, "probability", path)?,
    );
    let (mut shapes, mut weights) = (Vec::new(), Vec::new());
    for (row, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| {
            WorkloadError::unreadable(path, &format!("row {} cannot be parsed", row + 1), e)
        })?;
        let p = number(&rec, p_i, row + 1, path)?;
        let (input, output) = (
            number(&rec, in_i, row + 1, path)?,
            number(&rec, out_i, row + 1, path)?,
        );
        if p > 0.0 && input >= 1.0 && output >= 1.0 {
            shapes.push(Shape {
                input: input as u32,
                output: output as u32,
            });
            weights.push(p);
        }
    }
    nonempty(path, &shapes)?;
    Ok(LoadedWorkload::of(shapes, Some(weights), None))
}

fn load_azure(path: &Path) -> Result<LoadedWorkload, WorkloadError> {
    let mut r = read_csv(path)?;
    let h = r
        .headers()
        .map_err(|e| WorkloadError::unreadable(path, "cannot read the CSV header", e))?
        .clone();
    let (t_i, in_i, out_i) = (
        column(&h, "arrived_at", path)?,
        column(&h, "num_prefill_tokens", path)?,
        column(&h, "num_decode_tokens", path)?,
    );
    let (mut shapes, mut times) = (Vec::new(), Vec::new());
    for (row, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| {
            WorkloadError::unreadable(path, &format!("row {} cannot be parsed", row + 1), e)
        })?;
        let t = number(&rec, t_i, row + 1, path)?;
        let (input, output) = (
            number(&rec, in_i, row + 1, path)?,
            number(&rec, out_i, row + 1, path)?,
        );
        shapes.push(Shape {
            input: (input as u32).max(1),
            output: (output as u32).max(1),
        });
        times.push(t);
    }
    nonempty(path, &shapes)?;
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let arrivals = times
        .iter()
        .map(|t| Duration::from_secs_f64((t - first).max(0.0)))
        .collect();
    let mut w = LoadedWorkload::of(shapes, None, Some(arrivals));
    // Replay sends requests in time order.
    let mut order: Vec<usize> = (0..w.shapes.len()).collect();
    let arr = w.arrivals.as_ref().expect("set above");
    order.sort_by_key(|&i| arr[i]);
    w.shapes = order.iter().map(|&i| w.shapes[i]).collect();
    w.arrivals = Some(order.iter().map(|&i| arr[i]).collect());
    Ok(w)
}

/// Loads a `--dataset` kind: its prompts, and its shapes for the notes and `weighted`.
fn load_dataset(
    d: &Dataset,
    tokenizer: Option<&PromptTokenizer>,
) -> Result<LoadedWorkload, WorkloadError> {
    let counter = tokenizer.map_or(Counter::Estimate, Counter::Tokenizer);
    let estimated = || {
        format!(
            "lengths of the dataset's texts are estimates ({TOKENS_PER_WORD:.2} tokens per whitespace word): no tokenizer (--tokenizer-fallback estimate)"
        )
    };
    let zero = |flags: &str| WorkloadError {
        path: flags.into(),
        reason: "lengths must be at least 1".into(),
        source: None,
    };
    let mut w = match d {
        Dataset::Random {
            input,
            output,
            range_ratio,
        } => {
            if *input == 0 || *output == 0 {
                return Err(zero("--random-input-len/--random-output-len"));
            }
            if !(0.0..1.0).contains(range_ratio) {
                return Err(WorkloadError {
                    path: "--random-range-ratio".into(),
                    reason: format!(
                        "{range_ratio} is outside [0, 1): lengths are uniform in [len*(1-R), len*(1+R)]"
                    ),
                    source: None,
                });
            }
            let mut w = LoadedWorkload::of(
                vec![Shape {
                    input: *input,
                    output: *output,
                }],
                None,
                None,
            );
            w.prompts = Prompts::Random {
                input: dataset::spread(*input, *range_ratio),
                output: dataset::spread(*output, *range_ratio),
            };
            w
        }
        Dataset::ShareGpt { file, output_len } => {
            let (texts, shapes): (Vec<String>, Vec<Shape>) =
                dataset::sharegpt_prompts(file, counter, *output_len)?
                    .into_iter()
                    .unzip();
            let mut w = LoadedWorkload::of(shapes, None, None);
            w.prompts = Prompts::Texts(texts);
            if tokenizer.is_none() {
                w.notes.push(estimated());
            }
            w
        }
        Dataset::Prefix {
            prefix,
            suffix,
            groups,
            output,
        } => {
            if *prefix + *suffix == 0 || *output == 0 || *groups == 0 {
                return Err(zero(
                    "--prefix-len + --suffix-len, --output-len, --num-prefixes",
                ));
            }
            let mut w = LoadedWorkload::of(
                vec![Shape {
                    input: prefix + suffix,
                    output: *output,
                }],
                None,
                None,
            );
            w.prompts = Prompts::Prefixed {
                prefix: *prefix,
                groups: *groups,
            };
            w
        }
        Dataset::MultiTurn {
            file,
            turns,
            input,
            output,
        } => {
            let convs = match file {
                Some(f) => dataset::sharegpt_conversations(f, counter, *output)?,
                None => {
                    if *turns == 0 || *input == 0 || output == &Some(0) {
                        return Err(zero("--turns, --random-input-len, --random-output-len"));
                    }
                    dataset::synthetic_conversations(*turns, *input, output.unwrap_or(128))
                }
            };
            let shapes = convs
                .iter()
                .flat_map(|c| {
                    c.turns.iter().map(|t| Shape {
                        input: t.input,
                        output: t.output,
                    })
                })
                .collect();
            let mut w = LoadedWorkload::of(shapes, None, None);
            if file.is_some() && tokenizer.is_none() {
                w.notes.push(estimated());
            }
            w.prompts = Prompts::Conversations(convs);
            w
        }
    };
    if tokenizer.is_some() && matches!(d, Dataset::ShareGpt { .. }) {
        w.notes
            .push("prompts: the dataset's texts; lengths counted by the given tokenizer".into());
    }
    Ok(w)
}

fn load_sharegpt(path: &Path) -> Result<LoadedWorkload, WorkloadError> {
    let shapes = dataset::sharegpt_prompts(&ShareGptFile::new(path), Counter::Estimate, None)?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let mut w = LoadedWorkload::of(shapes, None, None);
    w.notes.push(format!(
        "ShareGPT lengths are estimates ({TOKENS_PER_WORD:.2} tokens per whitespace word): no tokenizer is used"
    ));
    Ok(w)
}

fn nonempty(path: &Path, shapes: &[Shape]) -> Result<(), WorkloadError> {
    if shapes.is_empty() {
        return Err(WorkloadError {
            path: path.into(),
            reason: "no usable requests in the file".into(),
            source: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SHARED: &str = "/work/shared/data/workloads";

    #[test]
    fn clamps_to_the_context() {
        assert_eq!(
            clamp(
                Shape {
                    input: 10,
                    output: 5
                },
                512
            ),
            Shape {
                input: 10,
                output: 5
            }
        );
        assert_eq!(
            clamp(
                Shape {
                    input: 900,
                    output: 50
                },
                512
            ),
            Shape {
                input: 462,
                output: 50
            }
        );
        assert_eq!(
            clamp(
                Shape {
                    input: 900,
                    output: 900
                },
                512
            ),
            Shape {
                input: 256,
                output: 256
            }
        );
        assert_eq!(
            clamp(
                Shape {
                    input: 10,
                    output: 900
                },
                512
            ),
            Shape {
                input: 10,
                output: 502
            }
        );
    }

    #[test]
    fn fmperf_cells_are_drawn_by_weight() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.csv");
        std::fs::write(
            &p,
            "generated_token_count,input_token_count,probability\n10,100,0.9\n20,5,0.1\n",
        )
        .unwrap();
        let w = LoadedWorkload::load(&Workload::FmperfHistogram(p), None).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let draws: Vec<Shape> = (0..1000).map(|_| w.sample(&mut rng)).collect();
        let big = draws
            .iter()
            .filter(|s| {
                **s == Shape {
                    input: 100,
                    output: 10,
                }
            })
            .count();
        assert!((850..950).contains(&big), "{big}");
        assert!(draws.iter().all(|s| *s
            == Shape {
                input: 100,
                output: 10
            }
            || *s
                == Shape {
                    input: 5,
                    output: 20
                }));
        let (i, o) = w.mean();
        assert!((i - 90.5).abs() < 1e-9 && (o - 11.0).abs() < 1e-9);
    }

    #[test]
    fn shared_workload_files_load() {
        let f = Path::new(SHARED).join("fmperf_histogram.csv");
        if f.exists() {
            let w = LoadedWorkload::load(&Workload::FmperfHistogram(f), Some(512)).unwrap();
            assert!(w.shapes.len() > 1000 && w.shapes.iter().all(|s| s.input + s.output <= 512));
        }
        let a = Path::new(SHARED).join("azure_2023_conv.csv");
        if a.exists() {
            let w = LoadedWorkload::load(&Workload::AzureTrace(a), Some(512)).unwrap();
            let t: Vec<_> = w.trace().unwrap().take(3).collect();
            assert_eq!(t[0].0, Duration::ZERO);
            assert!(t[1].0 >= t[0].0 && t[2].0 >= t[1].0);
        }
    }

    #[test]
    fn sharegpt_takes_first_human_turn_and_reply() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let json = r#"[{"id":"a","conversations":[{"from":"human","value":"one two three"},
                        {"from":"gpt","value":"a b c d e f"}]},
                       {"id":"b","conversations":[{"from":"gpt","value":"orphan"}]}]"#;
        std::fs::write(&p, json).unwrap();
        let w = LoadedWorkload::load(&Workload::ShareGpt(p), None).unwrap();
        assert_eq!(
            w.shapes,
            vec![Shape {
                input: 4,
                output: 8
            }]
        );
        assert!(w.notes[0].contains("estimate"));
        let e = LoadedWorkload::load(&Workload::FmperfHistogram(dir.path().join("s.json")), None)
            .unwrap_err();
        assert!(e.to_string().contains("s.json"), "{e}");
        // A missing file: the io error is the source (csv::Error has no source of its own).
        let missing = dir.path().join("missing.csv");
        let e = LoadedWorkload::load(&Workload::FmperfHistogram(missing), None).unwrap_err();
        assert!(e.to_string().contains("missing.csv"), "{e}");
        let mut cause = std::error::Error::source(&e);
        let mut kinds = Vec::new();
        while let Some(c) = cause {
            kinds.extend(c.downcast_ref::<std::io::Error>().map(std::io::Error::kind));
            cause = c.source();
        }
        assert_eq!(kinds, [std::io::ErrorKind::NotFound], "{e:?}");
    }

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sharegpt_small.json"
    );

    fn tokenizer(dir: &Path) -> PromptTokenizer {
        PromptTokenizer::load(&crate::tokenize::tests::word_tokenizer(dir)).unwrap()
    }

    #[test]
    fn sharegpt_prompts_are_real_text_with_the_tokenizers_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokenizer(dir.path());
        // Checked (as the command does before contacting the server), then loaded from a
        // clone (as the run's options are): the file is not read again.
        let copy = dir.path().join("sharegpt.json");
        std::fs::copy(FIXTURE, &copy).unwrap();
        let file = ShareGptFile::new(&copy);
        file.check().unwrap();
        let d = Workload::Dataset(Dataset::ShareGpt {
            file,
            output_len: None,
        })
        .clone();
        std::fs::remove_file(&copy).unwrap();
        let w = LoadedWorkload::load_with(&d, None, Some(&t)).unwrap();
        assert_eq!(w.shapes.len(), 3, "the orphan reply is left out");
        let mut rng = StdRng::seed_from_u64(3);
        for id in 0..20 {
            let pick = w.pick(&mut rng);
            let Prompt::Text(text) = w.prompt(pick, 0, id, 10..100) else {
                panic!("not text")
            };
            assert_eq!(pick.shape.input as usize, t.count(&text), "{text}");
        }
        let first = Shape {
            input: 12,
            output: 18,
        };
        assert_eq!(w.shapes[0], first, "the first human turn and its reply");
        // --sharegpt-output-len, and a context too small for the story: left out, noted.
        let d = Workload::Dataset(Dataset::ShareGpt {
            file: ShareGptFile::new(FIXTURE),
            output_len: Some(7),
        });
        let w = LoadedWorkload::load_with(&d, Some(20), Some(&t)).unwrap();
        assert!(w.shapes.iter().all(|s| s.output == 7 && s.input + 7 <= 20));
        assert_eq!(w.shapes.len(), 2);
        assert!(
            w.notes
                .iter()
                .any(|n| n.contains("1 of 3 prompts left out")),
            "{:?}",
            w.notes
        );
    }

    #[test]
    fn random_lengths_spread_within_vllms_bounds() {
        let d = Workload::Dataset(Dataset::Random {
            input: 100,
            output: 20,
            range_ratio: 0.5,
        });
        let w = LoadedWorkload::load(&d, None).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let picks: Vec<Pick> = (0..2000).map(|_| w.pick(&mut rng)).collect();
        assert!(picks.iter().all(|p| (50..=150).contains(&p.shape.input)
            && (10..=30).contains(&p.shape.output)));
        let (lo, hi) = (
            picks.iter().map(|p| p.shape.input).min().unwrap(),
            picks.iter().map(|p| p.shape.input).max().unwrap(),
        );
        assert!(lo <= 55 && hi >= 145, "the whole range is used: {lo}..{hi}");
        let Prompt::Ids(ids) = w.prompt(picks[0], 0, 0, 10..500) else {
            panic!("ids")
        };
        assert_eq!(ids.len() as u32, picks[0].shape.input, "exact length");
        // Clamped to the context; a ratio of 1 or more is refused.
        let w = LoadedWorkload::load(&d, Some(64)).unwrap();
        assert!((0..200).all(|_| {
            let s = w.pick(&mut rng).shape;
            s.input + s.output <= 64
        }));
        let bad = Workload::Dataset(Dataset::Random {
            input: 100,
            output: 20,
            range_ratio: 1.5,
        });
        let e = LoadedWorkload::load(&bad, None).unwrap_err().to_string();
        assert!(
            e.contains("--random-range-ratio") && e.contains("1.5"),
            "{e}"
        );
    }

    #[test]
    fn prefix_groups_share_exactly_their_prefix() {
        let d = Workload::Dataset(Dataset::Prefix {
            prefix: 30,
            suffix: 10,
            groups: 3,
            output: 5,
        });
        let w = LoadedWorkload::load(&d, None).unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        // Each group's prompts, as (prefix, suffix) ids.
        type Groups = std::collections::HashMap<usize, Vec<(Vec<u32>, Vec<u32>)>>;
        let mut by_group: Groups = Default::default();
        for id in 0..60 {
            let pick = w.pick(&mut rng);
            assert_eq!(pick.shape.input, 40);
            let Prompt::Split(p, s) = w.prompt(pick, 9, id, 10..500) else {
                panic!("split")
            };
            assert_eq!((p.len(), s.len()), (30, 10));
            by_group.entry(pick.entry).or_default().push((p, s));
        }
        assert_eq!(by_group.len(), 3, "every group is used");
        let prefixes: std::collections::HashSet<_> =
            by_group.values().map(|g| g[0].0.clone()).collect();
        assert_eq!(prefixes.len(), 3, "groups differ");
        for g in by_group.values() {
            assert!(g.iter().all(|(p, _)| *p == g[0].0), "one prefix per group");
            assert_ne!(g[0].1, g[1].1, "suffixes differ");
        }
        // With a tokenizer, the prompts of a group start with the same text.
        let dir = tempfile::tempdir().unwrap();
        let t = std::sync::Arc::new(tokenizer(dir.path()));
        let client = crate::client::Client::new(crate::client::ClientOptions {
            base_url: "http://127.0.0.1:1/v1".into(),
            model: "m".into(),
            api: crate::client::Api::Completions,
            api_key: None,
            timeout: Duration::from_secs(1),
            exact_output: true,
            tokenizer: Some(t.clone()),
            extra_body: Default::default(),
            headers: Vec::new(),
        })
        .unwrap();
        let g = by_group.values().next().unwrap();
        let texts: Vec<String> = g
            .iter()
            .take(2)
            .map(|(p, s)| {
                let body: serde_json::Value =
                    serde_json::from_slice(&client.body(&Prompt::Split(p.clone(), s.clone()), 5))
                        .unwrap();
                body["prompt"].as_str().unwrap().to_string()
            })
            .collect();
        let prefix_text = t.text_of_length(&g[0].0).unwrap();
        assert!(
            texts.iter().all(|x| x.starts_with(&prefix_text)),
            "{texts:?}"
        );
        assert_eq!(t.count(&prefix_text), 30);
        assert!(texts.iter().all(|x| t.count(x) == 40), "{texts:?}");
    }

    #[test]
    fn multi_turn_conversations_come_from_the_file_or_are_synthetic() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokenizer(dir.path());
        let d = Workload::Dataset(Dataset::MultiTurn {
            file: Some(ShareGptFile::new(FIXTURE)),
            turns: 5,
            input: 10,
            output: None,
        });
        let w = LoadedWorkload::load_with(&d, None, Some(&t)).unwrap();
        let c = w.conversations().unwrap();
        assert_eq!(
            c.iter().map(|c| c.turns.len()).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert_eq!(
            c[0].turns[1].user.as_deref(),
            Some("and what about flowers that come back every year")
        );
        assert_eq!(c[0].turns[1].input, 9);
        let d = Workload::Dataset(Dataset::MultiTurn {
            file: None,
            turns: 4,
            input: 10,
            output: Some(6),
        });
        let w = LoadedWorkload::load(&d, None).unwrap();
        let c = w.conversations().unwrap();
        assert_eq!(c[0].turns.len(), 4);
        assert!(
            c[0].turns
                .iter()
                .all(|t| t.user.is_none() && t.input == 10 && t.output == 6)
        );
    }
}
