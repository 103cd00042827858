//! The per-request table: every request of a run with every token's arrival time, its
//! status and the server's error text. It is the raw evidence behind a measurement row;
//! [`aggregate`] turns it into rows with the one metric definition of [`crate::metrics`].
//!
//! Parquet stores `token_times_ms` as a list column; CSV stores it as `;`-separated numbers.

use crate::load::{Load, Mode};
use crate::metrics::{FailureKind, RequestTimings, summarize};
use crate::schema::{Measurement, SchemaError, read_frame, write_frame};
use crate::units::{Dtype, Millis, RequestsPerSec};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The operating point a request belonged to: the identifying columns of a measurement row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PointKey {
    pub model: String,
    pub gpu: String,
    pub gpu_count: u32,
    pub engine: String,
    /// The load, with a rate to the milli-request per second ([`PointKey::keyed`]).
    pub load: Load,
    pub max_batch: Option<u32>,
    pub quantization: Option<Dtype>,
}

impl PointKey {
    /// A load as a key holds it: a rate rounded to the milli-request per second, users and
    /// batch sizes as they are. Why round: a key names a level across files (a run's
    /// request file and summary, `--resume`, `pilot dataset aggregate`), and a rate written
    /// and read back, or computed from a trace, can differ in its last bits; rounded, the
    /// requests of one level still group together and a resumed level is still found.
    pub fn keyed(load: Load) -> Load {
        match load {
            Load::Rate(r) => Load::Rate(RequestsPerSec((r.0 * 1000.0).round() / 1000.0)),
            other => other,
        }
    }

    /// The measurement row this key identifies, with nothing measured yet.
    pub fn to_row(&self) -> Measurement {
        let mut row = Measurement::new(
            &self.model,
            &self.gpu,
            self.gpu_count,
            &self.engine,
            self.load,
        );
        row.max_batch = self.max_batch;
        row.quantization = self.quantization.map(crate::quant::Quantization::from);
        row
    }
}

/// One request as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub point: PointKey,
    pub request_id: u64,
    /// Sent during warm-up: kept in the file, excluded from metrics.
    pub warmup: bool,
    /// When it was sent, in milliseconds since the Unix epoch.
    pub start_unix_ms: f64,
    pub e2e: Millis,
    pub input_tokens: u64,
    /// Arrival of each output token, measured from `start`.
    pub token_times: Vec<Millis>,
    pub failure: Option<FailureKind>,
    pub http_status: Option<u16>,
    /// The server's or client's error text (never contains credentials).
    pub error: String,
    /// Length of the measurement window of its level, for throughput.
    pub window: Option<Duration>,
    /// Multi-turn datasets: the conversation this request is a turn of (`None` otherwise, and
    /// in files written before the column existed).
    pub conversation: Option<u64>,
    /// Multi-turn datasets: the turn's index in its conversation, from 0.
    pub turn: Option<u32>,
}

impl RequestRecord {
    /// The timings the metric definitions work on.
    pub fn timings(&self) -> RequestTimings {
        RequestTimings::from_token_times(
            self.input_tokens,
            &self.token_times,
            self.e2e,
            self.failure,
        )
    }
}

/// Writes request records to `.parquet` or `.csv`.
pub fn write_requests(records: &[RequestRecord], path: &Path) -> Result<(), SchemaError> {
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut df = requests_frame(records, csv).map_err(|e| SchemaError::Write {
        path: path.into(),
        source: e.into(),
    })?;
    write_frame(&mut df, path)
}

fn requests_frame(r: &[RequestRecord], csv: bool) -> PolarsResult<DataFrame> {
    let s = |name: &str, f: &dyn Fn(&RequestRecord) -> Option<String>| {
        Column::new(name.into(), r.iter().map(f).collect::<Vec<_>>())
    };
    let u = |name: &str, f: &dyn Fn(&RequestRecord) -> Option<u64>| {
        Column::new(name.into(), r.iter().map(f).collect::<Vec<_>>())
    };
    let x = |name: &str, f: &dyn Fn(&RequestRecord) -> Option<f64>| {
        Column::new(name.into(), r.iter().map(f).collect::<Vec<_>>())
    };
    let times: Column = if csv {
        s("token_times_ms", &|q| {
            Some(
                q.token_times
                    .iter()
                    .map(|t| t.0.to_string())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
        })
    } else {
        let series: Vec<Series> = r
            .iter()
            .map(|q| {
                Series::new(
                    "".into(),
                    q.token_times.iter().map(|t| t.0).collect::<Vec<f64>>(),
                )
            })
            .collect();
        Column::new("token_times_ms".into(), series)
    };
    DataFrame::new_infer_height(vec![
        s("model", &|q| Some(q.point.model.clone())),
        s("gpu", &|q| Some(q.point.gpu.clone())),
        u("gpu_count", &|q| Some(q.point.gpu_count as u64)),
        s("engine", &|q| Some(q.point.engine.clone())),
        s("mode", &|q| Some(q.point.load.mode().name().into())),
        u("users", &|q| q.point.load.users().map(u64::from)),
        x("rate_rps", &|q| q.point.load.rate().map(|r| r.0)),
        u("batch_size", &|q| q.point.load.batch_size().map(u64::from)),
        u("max_batch", &|q| q.point.max_batch.map(u64::from)),
        s("quantization", &|q| {
            q.point.quantization.map(|d| d.name().into())
        }),
        u("request_id", &|q| Some(q.request_id)),
        u("warmup", &|q| Some(q.warmup as u64)),
        x("start_unix_ms", &|q| Some(q.start_unix_ms)),
        x("e2e_ms", &|q| Some(q.e2e.0)),
        u("input_tokens", &|q| Some(q.input_tokens)),
        u("output_tokens", &|q| Some(q.token_times.len() as u64)),
        times,
        s("status", &|q| {
            Some(q.failure.map_or("ok", |f| f.name()).into())
        }),
        u("http_status", &|q| q.http_status.map(u64::from)),
        s("error", &|q| Some(q.error.clone())),
        x("window_s", &|q| q.window.map(|w| w.as_secs_f64())),
        u("conversation_id", &|q| q.conversation),
        u("turn", &|q| q.turn.map(u64::from)),
    ])
}

/// Reads request records written by [`write_requests`] (or by hand, with the same columns).
pub fn read_requests(path: &Path) -> Result<Vec<RequestRecord>, SchemaError> {
    let df = read_frame(path)?;
    let bad = |column: &str, row: usize, reason: String| SchemaError::BadValue {
        path: path.into(),
        column: column.into(),
        row,
        reason,
    };
    let column_type =
        |column: &str, expected: &'static str, e: PolarsError| SchemaError::ColumnType {
            path: path.into(),
            column: column.into(),
            expected,
            source: e,
        };
    let required = [
        "model",
        "gpu",
        "gpu_count",
        "engine",
        "mode",
        "request_id",
        "e2e_ms",
        "input_tokens",
        "token_times_ms",
        "status",
    ];
    for c in required {
        if df.column(c).is_err() {
            return Err(SchemaError::MissingColumn {
                path: path.into(),
                column: c.into(),
                required: required.join(", "),
            });
        }
    }
    let strs = |name: &str| -> Result<Vec<Option<String>>, SchemaError> {
        match df.column(name) {
            Err(_) => Ok(vec![None; df.height()]),
            Ok(c) => {
                let c = c
                    .cast(&DataType::String)
                    .map_err(|e| column_type(name, "text", e))?;
                let ca = c.str().map_err(|e| column_type(name, "text", e))?;
                Ok(ca.iter().map(|v| v.map(String::from)).collect())
            }
        }
    };
    let nums = |name: &str| -> Result<Vec<Option<f64>>, SchemaError> {
        match df.column(name) {
            Err(_) => Ok(vec![None; df.height()]),
            Ok(c) => {
                let c = c
                    .strict_cast(&DataType::Float64)
                    .map_err(|e| column_type(name, "numbers", e))?;
                Ok(c.f64()
                    .map_err(|e| column_type(name, "numbers", e))?
                    .iter()
                    .collect())
            }
        }
    };
    let times_col = df
        .column("token_times_ms")
        .map_err(|e| column_type("token_times_ms", "lists of numbers", e))?;
    let times: Vec<Vec<Millis>> = match times_col.dtype() {
        DataType::List(_) => {
            let c = times_col
                .cast(&DataType::List(Box::new(DataType::Float64)))
                .map_err(|e| column_type("token_times_ms", "lists of numbers", e))?;
            let ca = c
                .list()
                .map_err(|e| column_type("token_times_ms", "lists of numbers", e))?;
            let mut out = Vec::with_capacity(df.height());
            for s in ca.amortized_iter() {
                out.push(match s {
                    Some(s) => s
                        .as_ref()
                        .f64()
                        .map_err(|e| column_type("token_times_ms", "lists of numbers", e))?
                        .iter()
                        .flatten()
                        .map(Millis)
                        .collect(),
                    None => Vec::new(),
                });
            }
            out
        }
        _ => strs("token_times_ms")?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.unwrap_or_default()
                    .split(';')
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| {
                        t.trim()
                            .parse::<f64>()
                            .map(Millis)
                            .map_err(|_| bad("token_times_ms", i, format!("'{t}' is not a number")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?,
    };
    let (model, gpu, engine, mode, quant, status, error) = (
        strs("model")?,
        strs("gpu")?,
        strs("engine")?,
        strs("mode")?,
        strs("quantization")?,
        strs("status")?,
        strs("error")?,
    );
    let (gpu_count, users, rate, batch, max_batch, id, warm, start, e2e, input, http, window) = (
        nums("gpu_count")?,
        nums("users")?,
        nums("rate_rps")?,
        nums("batch_size")?,
        nums("max_batch")?,
        nums("request_id")?,
        nums("warmup")?,
        nums("start_unix_ms")?,
        nums("e2e_ms")?,
        nums("input_tokens")?,
        nums("http_status")?,
        nums("window_s")?,
    );
    // Optional (multi-turn runs only; absent from older files).
    let (conversation, turn) = (nums("conversation_id")?, nums("turn")?);
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let need = |v: &Option<String>, c: &str| v.clone().ok_or_else(|| bad(c, i, "empty".into()));
        let mode = need(&mode[i], "mode")?
            .parse::<Mode>()
            .map_err(|e| bad("mode", i, e))?;
        let load = Load::from_columns(
            mode,
            users[i].map(|u| u as u32),
            rate[i].map(RequestsPerSec),
            batch[i].map(|b| b as u32),
        )
        .ok_or_else(|| bad(mode.column(), i, mode.missing_load()))?;
        let quantization = match quant[i].as_deref().filter(|q| !q.is_empty()) {
            Some(q) => Some(q.parse::<Dtype>().map_err(|e| bad("quantization", i, e))?),
            None => None,
        };
        let status_text = need(&status[i], "status")?;
        let failure = match status_text.as_str() {
            "ok" => None,
            s => Some(FailureKind::from_name(s).ok_or_else(|| {
                bad(
                    "status",
                    i,
                    format!("'{s}' is not ok, out_of_memory, timeout, connection, http_status, stream_cut, malformed or other"),
                )
            })?),
        };
        out.push(RequestRecord {
            point: PointKey {
                model: need(&model[i], "model")?,
                gpu: need(&gpu[i], "gpu")?,
                gpu_count: gpu_count[i].ok_or_else(|| bad("gpu_count", i, "empty".into()))? as u32,
                engine: need(&engine[i], "engine")?,
                load: PointKey::keyed(load),
                max_batch: max_batch[i].map(|b| b as u32),
                quantization,
            },
            request_id: id[i].unwrap_or(i as f64) as u64,
            warmup: warm[i].is_some_and(|w| w != 0.0),
            start_unix_ms: start[i].unwrap_or(0.0),
            e2e: Millis(e2e[i].ok_or_else(|| bad("e2e_ms", i, "empty".into()))?),
            input_tokens: input[i].unwrap_or(0.0) as u64,
            token_times: times[i].clone(),
            failure,
            http_status: http[i].map(|h| h as u16),
            error: error[i].clone().unwrap_or_default(),
            window: window[i].map(Duration::from_secs_f64),
            conversation: conversation[i].map(|c| c as u64),
            turn: turn[i].map(|t| t as u32),
        });
    }
    Ok(out)
}

/// Aggregates request records into one measurement row per operating point, in key order.
/// Warm-up requests are excluded. The window is the recorded `window_s`, else the span from
/// the first send to the last completion.
pub fn aggregate(records: &[RequestRecord], source: &str) -> Vec<Measurement> {
    let mut groups: BTreeMap<&PointKey, Vec<&RequestRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.warmup) {
        groups.entry(&r.point).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(key, reqs)| {
            let window = reqs.iter().find_map(|r| r.window).unwrap_or_else(|| {
                let first = reqs
                    .iter()
                    .map(|r| r.start_unix_ms)
                    .fold(f64::INFINITY, f64::min);
                let last = reqs
                    .iter()
                    .map(|r| r.start_unix_ms + r.e2e.0)
                    .fold(0.0, f64::max);
                Duration::from_secs_f64(((last - first) / 1e3).max(0.0))
            });
            let timings: Vec<RequestTimings> = reqs.iter().map(|r| r.timings()).collect();
            let mut row = key.to_row();
            row.metrics = summarize(&timings, window);
            row.duration = Some(window);
            row.source = source.to_string();
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, users: u32, times: &[f64], failure: Option<FailureKind>) -> RequestRecord {
        RequestRecord {
            point: PointKey {
                model: "gpt2".into(),
                gpu: "cpu".into(),
                gpu_count: 1,
                engine: "pilot".into(),
                load: Load::Users(users),
                max_batch: Some(8),
                quantization: Some(Dtype::F32),
            },
            request_id: id,
            warmup: id == 0,
            start_unix_ms: 1000.0 * id as f64,
            e2e: Millis(times.last().copied().unwrap_or(5.0)),
            input_tokens: 4,
            token_times: times.iter().copied().map(Millis).collect(),
            failure,
            http_status: failure.map(|_| 500),
            error: failure.map(|_| "boom".to_string()).unwrap_or_default(),
            window: Some(Duration::from_secs(10)),
            conversation: (id == 1).then_some(7),
            turn: (id == 1).then_some(2),
        }
    }

    fn records() -> Vec<RequestRecord> {
        vec![
            record(0, 1, &[1.0, 2.0], None),
            record(1, 1, &[10.0, 12.0, 15.0], None),
            record(2, 1, &[20.0, 30.0], None),
            record(3, 2, &[5.0], Some(FailureKind::StreamCut)),
            record(4, 2, &[8.0, 9.0], None),
        ]
    }

    #[test]
    fn requests_round_trip_through_parquet_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records();
        for name in ["r.parquet", "r.csv"] {
            let p = dir.path().join(name);
            write_requests(&recs, &p).unwrap();
            assert_eq!(read_requests(&p).unwrap(), recs, "{name}");
        }
    }

    #[test]
    fn aggregate_groups_by_point_and_skips_warmup() {
        let rows = aggregate(&records(), "t");
        assert_eq!(rows.len(), 2);
        let one = rows.iter().find(|r| r.load == Load::Users(1)).unwrap();
        assert_eq!(one.metrics.requests_ok, 2, "warm-up excluded");
        assert_eq!(one.metrics.ttft.p50, Some(Millis(15.0)));
        // ITLs pooled: 2, 3, 10.
        assert_eq!(one.metrics.itl.p50, Some(Millis(3.0)));
        assert_eq!(one.max_batch, Some(8));
        let two = rows.iter().find(|r| r.load == Load::Users(2)).unwrap();
        assert_eq!(
            (two.metrics.requests_ok, two.metrics.requests_failed),
            (1, 1)
        );
    }

    /// Every record names its load: a closed-loop request without users is an error naming
    /// the file, the row, the column and the fix.
    #[test]
    fn a_request_without_its_load_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        write_requests(&records(), &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let j = header.iter().position(|h| *h == "users").unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut cells: Vec<&str> = lines[3].split(',').collect();
        cells[j] = "";
        lines[3] = cells.join(",");
        std::fs::write(&p, lines.join("\n")).unwrap();
        let e = read_requests(&p).unwrap_err().to_string();
        assert!(
            e.contains("r.csv")
                && e.contains("column 'users', row 2")
                && e.contains("fill in users"),
            "{e}"
        );
    }

    /// Keys hold rates to the milli-request per second, so a rate that lost its last bits on
    /// the way through a file still names the same level.
    #[test]
    fn keys_round_rates_to_milli_requests() {
        let rate = |x: f64| Load::Rate(RequestsPerSec(x));
        assert_eq!(PointKey::keyed(rate(0.1 + 0.2)), rate(0.3));
        assert_eq!(PointKey::keyed(rate(2.0004)), rate(2.0));
        assert_eq!(PointKey::keyed(Load::Users(3)), Load::Users(3));
    }

    #[test]
    fn bad_status_names_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        write_requests(&records(), &p).unwrap();
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replacen("stream_cut", "exploded", 1);
        std::fs::write(&p, text).unwrap();
        let e = read_requests(&p).unwrap_err().to_string();
        assert!(e.contains("exploded") && e.contains("row 3"), "{e}");
    }
}
