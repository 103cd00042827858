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
    /// A ShareGPT conversations JSON.
    ShareGpt(PathBuf),
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
}

impl LoadedWorkload {
    /// Loads `w`, clamping every request to `max_model_len` tokens (prompt + output) if known.
    pub fn load(w: &Workload, max_model_len: Option<u32>) -> Result<LoadedWorkload, WorkloadError> {
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
        };
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
        }
    }

    /// Draws one request's lengths.
    pub fn sample(&self, rng: &mut StdRng) -> Shape {
        match &self.cumulative {
            Some(c) => {
                let total = *c.last().expect("non-empty");
                let x = rng.random::<f64>() * total;
                let i = c
                    .partition_point(|&acc| acc <= x)
                    .min(self.shapes.len() - 1);
                self.shapes[i]
            }
            None if self.shapes.len() == 1 => self.shapes[0],
            None => self.shapes[rng.random_range(0..self.shapes.len())],
        }
    }

    /// The trace's requests with their arrival offsets, if this workload is a trace.
    pub fn trace(&self) -> Option<impl Iterator<Item = (Duration, Shape)> + '_> {
        self.arrivals
            .as_ref()
            .map(|a| a.iter().copied().zip(self.shapes.iter().copied()))
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

/// Tokens per whitespace word, for ShareGPT without a tokenizer.
const TOKENS_PER_WORD: f64 = 4.0 / 3.0;

fn load_sharegpt(path: &Path) -> Result<LoadedWorkload, WorkloadError> {
    let err = |reason: String| WorkloadError {
        path: path.into(),
        reason,
        source: None,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| WorkloadError::unreadable(path, "cannot read it", e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        WorkloadError::unreadable(path, "not JSON (ShareGPT files are a JSON array)", e)
    })?;
    let entries = v
        .as_array()
        .ok_or_else(|| err("expected a JSON array of conversations".into()))?;
    let estimate =
        |s: &str| ((s.split_whitespace().count() as f64 * TOKENS_PER_WORD).round() as u32).max(1);
    let mut shapes = Vec::new();
    for e in entries {
        let Some(turns) = e.get("conversations").and_then(|c| c.as_array()) else {
            continue;
        };
        let text_of = |t: &serde_json::Value| {
            t.get("value")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let from = |t: &serde_json::Value| {
            t.get("from")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let Some(q) = turns.iter().position(|t| from(t) == "human") else {
            continue;
        };
        let Some(a) = turns.get(q + 1).filter(|t| from(t) == "gpt") else {
            continue;
        };
        let (input, output) = (estimate(&text_of(&turns[q])), estimate(&text_of(a)));
        shapes.push(Shape { input, output });
    }
    nonempty(path, &shapes)?;
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
}
