//! How a deployment spreads an LLM over its GPUs: the parallel [`Layout`] of one worker and
//! the [`Serving`] mode (one kind of worker doing prefill and decode, or separate prefill and
//! decode workers).
//!
//! Why typed: today's serving stacks (vLLM, SGLang, TensorRT-LLM) run one LLM as tensor x
//! pipeline x attention-data-parallel GPUs per worker, spread the MoE experts over those GPUs
//! (expert parallelism), and may split prefill and decode onto different workers
//! (disaggregated serving, as NVIDIA Dynamo and SGLang's PD mode do). Latency depends on which:
//! eight GPUs as TP8 all-reduce every layer, as attention-DP8 each hold a whole KV cache. A
//! [`Layout`] and a [`Workers`] can only be built through their checks, so a layout whose
//! numbers disagree (expert parallelism wider than the worker, a zero) cannot exist.
//!
//! In the measurement schema ([`crate::schema`]) a layout is the columns [`COLUMNS`]:
//! `tensor_parallel`, `pipeline_parallel`, `expert_parallel`, `attention_dp` describe the
//! workers that decode (the only workers when aggregated); a disaggregated row adds
//! `prefill_workers`, `decode_workers`, the prefill workers' own layout
//! (`prefill_tensor_parallel`, ...) and, for readers that only want totals, `prefill_gpus` and
//! `decode_gpus` (GPUs per worker, checked against the layouts). A row without any of them
//! (every file before schema version 2) is one tensor-parallel group over `gpu_count`.

use crate::engine::Parallelism;
use std::fmt;

/// A layout whose numbers disagree; the message names them and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayoutError {
    #[error("{what} is 0; every parallel degree and worker count is at least 1")]
    Zero { what: &'static str },
    #[error(
        "expert_parallel {expert} is more than the {gpus} GPUs of a worker (tensor {tensor} x pipeline {pipeline} x attention-DP {attention_dp}); experts are spread over a worker's GPUs"
    )]
    ExpertsWiderThanWorker {
        expert: u32,
        gpus: u32,
        tensor: u32,
        pipeline: u32,
        attention_dp: u32,
    },
    #[error(
        "{what} {given} disagrees with the layout's {gpus} GPUs (tensor {tensor} x pipeline {pipeline} x attention-DP {attention_dp}); fix one of them or leave {what} empty"
    )]
    GpusDisagree {
        what: &'static str,
        given: u32,
        gpus: u32,
        tensor: u32,
        pipeline: u32,
        attention_dp: u32,
    },
    #[error(
        "gpu_count {given} disagrees with {prefill_workers} prefill workers of {prefill_gpus} GPUs plus {decode_workers} decode workers of {decode_gpus} GPUs; fix gpu_count or the worker counts"
    )]
    DisaggregatedGpus {
        given: u32,
        prefill_workers: u32,
        prefill_gpus: u32,
        decode_workers: u32,
        decode_gpus: u32,
    },
    #[error(
        "gpu_count {given} is not a multiple of pipeline {pipeline} x attention-DP {attention_dp}, so no tensor-parallel degree fills it; give tensor_parallel"
    )]
    Indivisible {
        given: u32,
        pipeline: u32,
        attention_dp: u32,
    },
    #[error(
        "disaggregated serving needs both prefill_workers and decode_workers (and the prefill workers' layout: prefill_tensor_parallel at least); {missing} is empty"
    )]
    HalfDisaggregated { missing: &'static str },
    #[error("a layout degree of {value} is not a whole count from 1 to {max}", max = u32::MAX)]
    OutOfRange { value: u64 },
}

/// The parallel layout of one worker (one engine instance). GPUs per worker = tensor x
/// pipeline x attention-DP; the MoE layers spread their experts over `expert` of those GPUs
/// (and split each expert over the rest, as the engines' MoE tensor parallelism does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    tensor: u32,
    pipeline: u32,
    expert: u32,
    attention_dp: u32,
}

impl Layout {
    /// A checked layout: every degree at least 1, and expert parallelism no wider than the
    /// worker's GPUs.
    pub fn new(
        tensor: u32,
        pipeline: u32,
        expert: u32,
        attention_dp: u32,
    ) -> Result<Layout, LayoutError> {
        for (what, v) in [
            ("tensor_parallel", tensor),
            ("pipeline_parallel", pipeline),
            ("expert_parallel", expert),
            ("attention_dp", attention_dp),
        ] {
            if v == 0 {
                return Err(LayoutError::Zero { what });
            }
        }
        let l = Layout {
            tensor,
            pipeline,
            expert,
            attention_dp,
        };
        let gpus = l.gpus_wide()?;
        if u64::from(expert) > gpus {
            return Err(LayoutError::ExpertsWiderThanWorker {
                expert,
                gpus: gpus as u32,
                tensor,
                pipeline,
                attention_dp,
            });
        }
        Ok(l)
    }

    /// One tensor-parallel group over `gpus` GPUs: what every row before layouts meant.
    pub fn tensor_parallel(gpus: u32) -> Result<Layout, LayoutError> {
        Layout::new(gpus, 1, 1, 1)
    }

    pub fn tensor(self) -> u32 {
        self.tensor
    }
    pub fn pipeline(self) -> u32 {
        self.pipeline
    }
    pub fn expert(self) -> u32 {
        self.expert
    }
    pub fn attention_dp(self) -> u32 {
        self.attention_dp
    }

    /// GPUs per worker: tensor x pipeline x attention-DP.
    pub fn gpus(self) -> u32 {
        self.tensor * self.pipeline * self.attention_dp
    }

    fn gpus_wide(self) -> Result<u64, LayoutError> {
        let g = u64::from(self.tensor) * u64::from(self.pipeline) * u64::from(self.attention_dp);
        if g > u64::from(u32::MAX) {
            return Err(LayoutError::OutOfRange { value: g });
        }
        Ok(g)
    }

    /// Checks a stated GPU count against the layout; `what` names the column.
    fn check_gpus(self, what: &'static str, given: u32) -> Result<(), LayoutError> {
        if given == self.gpus() {
            return Ok(());
        }
        Err(LayoutError::GpusDisagree {
            what,
            given,
            gpus: self.gpus(),
            tensor: self.tensor,
            pipeline: self.pipeline,
            attention_dp: self.attention_dp,
        })
    }
}

impl fmt::Display for Layout {
    /// `tp8`, `tp1 adp8 ep8`, `tp4 pp2`: the degrees above 1 (tensor always).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tp{}", self.tensor)?;
        for (name, v) in [
            ("pp", self.pipeline),
            ("adp", self.attention_dp),
            ("ep", self.expert),
        ] {
            if v > 1 {
                write!(f, " {name}{v}")?;
            }
        }
        Ok(())
    }
}

/// `count` identical workers of one layout (the prefill or the decode side of a
/// disaggregated deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Workers {
    count: u32,
    layout: Layout,
}

impl Workers {
    /// At least one worker.
    pub fn new(count: u32, layout: Layout) -> Result<Workers, LayoutError> {
        if count == 0 {
            return Err(LayoutError::Zero { what: "workers" });
        }
        if u64::from(count) * u64::from(layout.gpus()) > u64::from(u32::MAX) {
            return Err(LayoutError::OutOfRange {
                value: u64::from(count) * u64::from(layout.gpus()),
            });
        }
        Ok(Workers { count, layout })
    }
    pub fn count(self) -> u32 {
        self.count
    }
    pub fn layout(self) -> Layout {
        self.layout
    }
    /// GPUs of all these workers.
    pub fn gpus(self) -> u32 {
        self.count * self.layout.gpus()
    }
}

/// How prefill and decode are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serving {
    /// One worker does both prefill and decode (every engine's default).
    Aggregated(Layout),
    /// Prefill workers hand each request's KV cache to decode workers.
    Disaggregated { prefill: Workers, decode: Workers },
}

impl Serving {
    /// One tensor-parallel group over `gpus` GPUs: the meaning of every row without layout
    /// columns.
    pub fn tensor_parallel(gpus: u32) -> Result<Serving, LayoutError> {
        Layout::tensor_parallel(gpus).map(Serving::Aggregated)
    }

    /// All GPUs of the deployment.
    pub fn gpus(self) -> u32 {
        match self {
            Serving::Aggregated(l) => l.gpus(),
            Serving::Disaggregated { prefill, decode } => prefill.gpus() + decode.gpus(),
        }
    }

    /// The layout of the workers that decode (the only workers when aggregated).
    pub fn decode_layout(self) -> Layout {
        match self {
            Serving::Aggregated(l) => l,
            Serving::Disaggregated { decode, .. } => decode.layout,
        }
    }

    pub fn is_disaggregated(self) -> bool {
        matches!(self, Serving::Disaggregated { .. })
    }

    /// The kinds of parallelism the deployment uses (a degree above 1, or disaggregation), in
    /// the engine table's terms, so that `EngineTraits::supports_layout` can say whether an
    /// engine runs it.
    pub fn parallelism(self) -> Vec<Parallelism> {
        let workers = match self {
            Serving::Aggregated(l) => vec![l],
            Serving::Disaggregated { prefill, decode } => vec![prefill.layout, decode.layout],
        };
        let mut out: Vec<Parallelism> = Parallelism::ALL
            .into_iter()
            .filter(|p| {
                workers.iter().any(|l| match p {
                    Parallelism::Tensor => l.tensor > 1,
                    Parallelism::Pipeline => l.pipeline > 1,
                    Parallelism::Expert => l.expert > 1,
                    Parallelism::AttentionData => l.attention_dp > 1,
                    Parallelism::Data | Parallelism::Disaggregated => false,
                })
            })
            .collect();
        if self.is_disaggregated() {
            out.push(Parallelism::Disaggregated);
        }
        out
    }
}

impl fmt::Display for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Serving::Aggregated(l) => write!(f, "{l}"),
            Serving::Disaggregated { prefill, decode } => write!(
                f,
                "{} x prefill ({}) + {} x decode ({})",
                prefill.count, prefill.layout, decode.count, decode.layout
            ),
        }
    }
}

/// The layout columns of the measurement schema and of scenario files, in file order.
pub const COLUMNS: [&str; 12] = [
    "tensor_parallel",
    "pipeline_parallel",
    "expert_parallel",
    "attention_dp",
    "prefill_workers",
    "prefill_gpus",
    "prefill_tensor_parallel",
    "prefill_pipeline_parallel",
    "prefill_expert_parallel",
    "prefill_attention_dp",
    "decode_workers",
    "decode_gpus",
];

/// The layout columns of one row as read (empty = `None`), in [`COLUMNS`] order. The one
/// translation between columns and [`Serving`], used by the schema's reader and writer and
/// by predict's scenario reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayoutCells(pub [Option<u32>; 12]);

impl LayoutCells {
    /// The cell of a column of [`COLUMNS`]; `None` for another name.
    pub fn get(&self, column: &str) -> Option<u32> {
        COLUMNS
            .iter()
            .position(|c| *c == column)
            .and_then(|i| self.0[i])
    }

    /// Sets the cell of a column of [`COLUMNS`]; false for another name.
    pub fn set(&mut self, column: &str, v: Option<u32>) -> bool {
        match COLUMNS.iter().position(|c| *c == column) {
            Some(i) => {
                self.0[i] = v;
                true
            }
            None => false,
        }
    }

    /// The cells a deployment is written as: every degree of the decode (or only) layout,
    /// and the prefill/decode columns only when disaggregated.
    pub fn of(serving: Serving) -> LayoutCells {
        let mut c = LayoutCells::default();
        let put = |c: &mut LayoutCells, prefix: &str, l: Layout| {
            for (name, v) in [
                ("tensor_parallel", l.tensor),
                ("pipeline_parallel", l.pipeline),
                ("expert_parallel", l.expert),
                ("attention_dp", l.attention_dp),
            ] {
                c.set(&format!("{prefix}{name}"), Some(v));
            }
        };
        put(&mut c, "", serving.decode_layout());
        if let Serving::Disaggregated { prefill, decode } = serving {
            put(&mut c, "prefill_", prefill.layout);
            c.set("prefill_workers", Some(prefill.count));
            c.set("prefill_gpus", Some(prefill.layout.gpus()));
            c.set("decode_workers", Some(decode.count));
            c.set("decode_gpus", Some(decode.layout.gpus()));
        }
        c
    }

    /// The deployment the cells describe, checked against `gpu_count` (all GPUs) when given.
    ///
    /// Empty cells: no layout cell at all is one tensor-parallel group over `gpu_count` (what
    /// files before layouts mean); an empty pipeline, expert or attention-DP degree is 1; an
    /// empty `tensor_parallel` of an aggregated row is whatever fills `gpu_count`. Any of
    /// `prefill_workers` / `decode_workers` makes the row disaggregated, and then both and
    /// `prefill_tensor_parallel` and `tensor_parallel` are needed.
    pub fn serving(&self, gpu_count: Option<u32>) -> Result<Serving, LayoutError> {
        let degree = |name: &str| self.get(name).unwrap_or(1);
        let layout = |prefix: &str, tensor: u32| {
            Layout::new(
                tensor,
                degree(&format!("{prefix}pipeline_parallel")),
                degree(&format!("{prefix}expert_parallel")),
                degree(&format!("{prefix}attention_dp")),
            )
        };
        let disaggregated = self.get("prefill_workers").is_some()
            || self.get("decode_workers").is_some()
            || self.get("prefill_tensor_parallel").is_some();
        let serving = if disaggregated {
            let need = |name: &'static str| {
                self.get(name)
                    .ok_or(LayoutError::HalfDisaggregated { missing: name })
            };
            let p = layout("prefill_", need("prefill_tensor_parallel")?)?;
            let d = layout("", need("tensor_parallel")?)?;
            if let Some(g) = self.get("prefill_gpus") {
                p.check_gpus("prefill_gpus", g)?;
            }
            if let Some(g) = self.get("decode_gpus") {
                d.check_gpus("decode_gpus", g)?;
            }
            Serving::Disaggregated {
                prefill: Workers::new(need("prefill_workers")?, p)?,
                decode: Workers::new(need("decode_workers")?, d)?,
            }
        } else {
            let tensor = match (self.get("tensor_parallel"), gpu_count) {
                (Some(t), _) => t,
                (None, None) => 1,
                (None, Some(g)) => {
                    let (pp, adp) = (degree("pipeline_parallel"), degree("attention_dp"));
                    let rest = pp.saturating_mul(adp);
                    if rest == 0 || g % rest != 0 {
                        return Err(LayoutError::Indivisible {
                            given: g,
                            pipeline: pp,
                            attention_dp: adp,
                        });
                    }
                    g / rest
                }
            };
            Serving::Aggregated(layout("", tensor)?)
        };
        if let Some(g) = gpu_count
            && g != serving.gpus()
        {
            let l = serving.decode_layout();
            return Err(match serving {
                Serving::Aggregated(_) => LayoutError::GpusDisagree {
                    what: "gpu_count",
                    given: g,
                    gpus: l.gpus(),
                    tensor: l.tensor,
                    pipeline: l.pipeline,
                    attention_dp: l.attention_dp,
                },
                Serving::Disaggregated { prefill, decode } => LayoutError::DisaggregatedGpus {
                    given: g,
                    prefill_workers: prefill.count,
                    prefill_gpus: prefill.layout.gpus(),
                    decode_workers: decode.count,
                    decode_gpus: decode.layout.gpus(),
                },
            });
        }
        Ok(serving)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(pairs: &[(&str, u32)]) -> LayoutCells {
        let mut c = LayoutCells::default();
        for (k, v) in pairs {
            assert!(c.set(k, Some(*v)), "{k}");
        }
        c
    }

    #[test]
    fn no_layout_cells_mean_one_tensor_parallel_group() {
        let s = LayoutCells::default().serving(Some(4)).unwrap();
        assert_eq!(s, Serving::tensor_parallel(4).unwrap());
        assert_eq!(s.decode_layout().tensor(), 4);
        assert_eq!(s.to_string(), "tp4");
        // An empty tensor degree fills gpu_count.
        let s = cells(&[("attention_dp", 8), ("expert_parallel", 8)])
            .serving(Some(8))
            .unwrap();
        assert_eq!(s.decode_layout(), Layout::new(1, 1, 8, 8).unwrap());
        assert_eq!(s.to_string(), "tp1 adp8 ep8");
    }

    #[test]
    fn every_serving_round_trips_through_its_cells() {
        let agg = Serving::Aggregated(Layout::new(2, 2, 4, 2).unwrap());
        let dis = Serving::Disaggregated {
            prefill: Workers::new(1, Layout::new(1, 1, 4, 4).unwrap()).unwrap(),
            decode: Workers::new(4, Layout::new(8, 1, 8, 1).unwrap()).unwrap(),
        };
        for s in [agg, dis] {
            assert_eq!(LayoutCells::of(s).serving(Some(s.gpus())), Ok(s), "{s}");
            assert_eq!(LayoutCells::of(s).serving(None), Ok(s), "{s}");
        }
        assert_eq!(dis.gpus(), 4 + 32);
        assert!(dis.is_disaggregated() && !agg.is_disaggregated());
        use Parallelism::*;
        assert_eq!(agg.parallelism(), [Tensor, Pipeline, Expert, AttentionData]);
        assert_eq!(
            dis.parallelism(),
            [Tensor, Expert, AttentionData, Disaggregated]
        );
        assert_eq!(Serving::tensor_parallel(1).unwrap().parallelism(), []);
        // The engine table can then say whether an engine runs a deployment.
        let vllm = crate::engine::traits("vllm").unwrap();
        let trt = crate::engine::traits("trtllm").unwrap();
        assert!(vllm.supports_layout(&dis.parallelism()).is_ok());
        assert!(trt.supports_layout(&[Data]).is_err());
    }

    #[test]
    fn disagreeing_numbers_are_errors_that_name_them() {
        let e = Layout::new(2, 1, 4, 1).unwrap_err().to_string();
        assert!(
            e.contains("expert_parallel 4") && e.contains("2 GPUs"),
            "{e}"
        );
        let e = Layout::new(0, 1, 1, 1).unwrap_err().to_string();
        assert!(e.contains("tensor_parallel is 0"), "{e}");
        let e = cells(&[("tensor_parallel", 4)])
            .serving(Some(8))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpu_count 8") && e.contains("4 GPUs"), "{e}");
        let e = cells(&[("attention_dp", 3)])
            .serving(Some(8))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gpu_count 8") && e.contains("attention-DP 3"),
            "{e}"
        );
        let e = cells(&[
            ("tensor_parallel", 8),
            ("prefill_tensor_parallel", 4),
            ("decode_workers", 1),
        ])
        .serving(None)
        .unwrap_err()
        .to_string();
        assert!(e.contains("prefill_workers is empty"), "{e}");
        let dis = cells(&[
            ("tensor_parallel", 8),
            ("prefill_tensor_parallel", 4),
            ("prefill_workers", 2),
            ("decode_workers", 1),
        ]);
        assert_eq!(dis.serving(Some(16)).map(Serving::gpus), Ok(16));
        let e = dis.serving(Some(12)).unwrap_err().to_string();
        assert!(
            e.contains("gpu_count 12") && e.contains("2 prefill workers of 4 GPUs"),
            "{e}"
        );
        let mut wrong = dis;
        wrong.set("decode_gpus", Some(4));
        let e = wrong.serving(None).unwrap_err().to_string();
        assert!(e.contains("decode_gpus 4") && e.contains("8 GPUs"), "{e}");
        assert!(Workers::new(0, Layout::new(1, 1, 1, 1).unwrap()).is_err());
    }
}
