//! `pilot report`: one self-contained HTML page of one or more runs, overlaid for comparison.
//!
//! A run directory ([`crate::run`]) is read with the readers that wrote it: `run.json`
//! ([`crate::runinfo::read_run_json`]), `summary.csv` ([`crate::summary::read_summary`]),
//! `requests.parquet` and `levels/*.parquet` ([`pilot_core::requests::read_requests`]). A
//! run cut short (killed, interrupted, failed) is reported as far as it got: its finished
//! levels from `summary.csv`, and the level it was in, from the requests saved while it ran,
//! aggregated with the one metric definition ([`pilot_core::requests::aggregate`]) and marked
//! partial.
//!
//! The page: each run's metadata, latency against load at p50/p90/p99 (TTFT, ITL, TPOT,
//! E2E), output throughput against latency, goodput against load (with SLOs), each run's
//! TTFT and ITL distributions per level, and a table of every metric at every statistic. One
//! colour per run throughout; the plots are `pilot_report`'s, shared with
//! `pilot recommend --report`.

use crate::report::{LevelResult, key_of, level_label, millis_text};
use crate::runinfo::{RunInfo, RunJsonError, read_run_json};
use crate::summary::read_summary;
use pilot_core::metrics::{Metric, Stat};
use pilot_core::requests::{PointKey, RequestRecord, aggregate, read_requests};
use pilot_core::schema::{Load, Measurement, SchemaError};
use pilot_core::units::Millis;
use pilot_report::html::Page;
use pilot_report::plot::{self, Chart, Marker, PlotError, Rgb, Series};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{dir} is not a run directory: {why}. A run directory is what `pilot characterize` \
         makes under --out, `<out>/<UTC time>-<id>/`, holding run.json, summary.csv, \
         requests.parquet and levels/; make one with `pilot characterize --model tiny-llama \
         --out runs` (the embedded engine) or `pilot characterize --endpoint URL --model M \
         --out runs`{hint}"
    )]
    NotARunDir {
        dir: PathBuf,
        why: String,
        /// The runs found inside, when `dir` is an `--out` directory.
        hint: String,
    },
    #[error("no run directory given: pass one or more, e.g. `pilot report runs/<run>`")]
    NoRuns,
    #[error(transparent)]
    RunJson(#[from] RunJsonError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Characterize(#[from] crate::error::CharacterizeError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("cannot write the report to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a run directory holds, read back.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    /// `None` when the directory has no `run.json` (a run from before it was written).
    pub info: Option<RunInfo>,
    /// Finished levels, from `summary.csv`.
    pub levels: Vec<LevelResult>,
    /// Levels cut short, aggregated from the requests saved while they ran.
    pub partial: Vec<Measurement>,
    /// Every saved request, warm-up included (marked).
    pub requests: Vec<RequestRecord>,
}

impl RunData {
    /// Reads a run directory; an error names the directory and says what one holds.
    pub fn load(dir: &Path) -> Result<RunData, ReportError> {
        let not_run = |why: &str| ReportError::NotARunDir {
            dir: dir.to_path_buf(),
            why: why.to_string(),
            hint: runs_inside(dir),
        };
        if !dir.is_dir() {
            return Err(not_run(if dir.exists() {
                "it is a file, not a directory"
            } else {
                "it does not exist"
            }));
        }
        let (run_json, summary) = (dir.join("run.json"), dir.join("summary.csv"));
        if !run_json.exists() && !summary.exists() {
            return Err(not_run("it holds neither run.json nor summary.csv"));
        }
        let info = if run_json.exists() {
            Some(read_run_json(&run_json)?)
        } else {
            None
        };
        let levels = if summary.exists() {
            read_summary(&summary)?
                .into_iter()
                .map(|l| LevelResult {
                    resumed: false,
                    ..l
                })
                .collect()
        } else {
            Vec::new()
        };
        let requests_path = dir.join("requests.parquet");
        let mut requests = if requests_path.exists() {
            read_requests(&requests_path)?
        } else {
            Vec::new()
        };
        // The level a run was in when it stopped is only in its own file under levels/.
        let mut saved: BTreeSet<PointKey> = requests.iter().map(|r| r.point.clone()).collect();
        for file in level_files(dir) {
            let records = read_requests(&file)?;
            let new: BTreeSet<PointKey> = records
                .iter()
                .map(|r| r.point.clone())
                .filter(|k| !saved.contains(k))
                .collect();
            requests.extend(records.into_iter().filter(|r| new.contains(&r.point)));
            saved.extend(new);
        }
        let finished: BTreeSet<PointKey> = levels.iter().map(|l| key_of(&l.row)).collect();
        let unfinished: Vec<RequestRecord> = requests
            .iter()
            .filter(|r| !finished.contains(&r.point))
            .cloned()
            .collect();
        let source = dir.display().to_string();
        let partial = aggregate(&unfinished, &source);
        Ok(RunData {
            dir: dir.to_path_buf(),
            info,
            levels,
            partial,
            requests,
        })
    }

    /// Whether the run ended normally; a run with no `run.json` counts as finished when its
    /// summary has every level its requests belong to.
    pub fn complete(&self) -> bool {
        match &self.info {
            Some(info) => info.finished() && self.partial.is_empty(),
            None => self.partial.is_empty(),
        }
    }

    /// Every measured row, finished levels then partial ones, with whether each is partial.
    fn rows(&self) -> impl Iterator<Item = (&Measurement, bool)> {
        self.levels
            .iter()
            .map(|l| (&l.row, false))
            .chain(self.partial.iter().map(|r| (r, true)))
    }

    /// The run's name in legends: its model, where it ran, its engine and start time, and its
    /// directory's name.
    pub fn name(&self) -> String {
        let first = self.rows().next().map(|(r, _)| r);
        let info = self.info.as_ref();
        let model = info
            .and_then(|i| i.options.get("model").and_then(|m| m.as_str()))
            .map(String::from)
            .or_else(|| first.map(|r| r.model.clone()));
        let endpoint = info.and_then(|i| {
            i.endpoint.clone().or_else(|| {
                i.embedded_engine
                    .filter(|e| *e)
                    .map(|_| "embedded engine".to_string())
            })
        });
        let engine = first.map(|r| r.engine.clone());
        let started = info.and_then(|i| i.started.clone());
        let dir_name = self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut parts: Vec<String> = [
            model,
            endpoint,
            engine,
            started.map(|s| format!("started {s}")),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect();
        parts.push(format!("({dir_name})"));
        parts.join(", ")
    }
}

/// `levels/*.parquet`, in name order.
fn level_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("levels"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

/// For an `--out` directory passed by mistake: the runs in it, newest last.
fn runs_inside(dir: &Path) -> String {
    let mut runs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("run.json").exists() || e.path().join("summary.csv").exists())
        .map(|e| e.path().display().to_string())
        .collect();
    runs.sort();
    match runs.len() {
        0 => String::new(),
        n => format!(
            ". It holds {n} run(s); the latest is {}",
            runs.last().expect("one run at least")
        ),
    }
}

/// The latency metrics plotted against load: (metric, title).
const LATENCY_PLOTS: [(Metric, &str); 4] = [
    (Metric::Ttft, "TTFT (time to first token)"),
    (Metric::Itl, "ITL (inter-token latency)"),
    (Metric::Tpot, "TPOT (time per output token)"),
    (Metric::E2e, "End-to-end latency"),
];

/// The percentiles plotted, each with its marker.
const PERCENTILES: [(Stat, Marker); 3] = [
    (Stat::P50, Marker::Circle),
    (Stat::P90, Marker::Triangle),
    (Stat::P99, Marker::Cross),
];

/// A grey, for legend entries that explain markers rather than name a run.
const KEY_GREY: Rgb = (110, 110, 110);

/// The load axis's name, from the loads the runs swept.
fn load_axis(runs: &[RunData]) -> &'static str {
    let modes: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.rows().map(|(row, _)| row.load.mode().name()))
        .collect();
    let loads: Vec<Load> = runs
        .iter()
        .flat_map(|r| r.rows().map(|(row, _)| row.load))
        .collect();
    if modes.len() > 1 {
        "load (users, req/s or batch size)"
    } else if loads.iter().all(|l| l.users().is_some()) {
        "concurrent users"
    } else if loads.iter().all(|l| l.rate().is_some()) {
        "request rate (req/s)"
    } else {
        "batch size"
    }
}

/// A run's rows as lines: one per engine batch limit (a `--tune` run sweeps the load at each),
/// each sorted by load, so that a line never jumps between settings.
fn lines(run: &RunData) -> Vec<Vec<&Measurement>> {
    let limits: BTreeSet<Option<u32>> = run.rows().map(|(r, _)| r.max_batch).collect();
    limits
        .into_iter()
        .map(|mb| {
            let mut rows: Vec<&Measurement> = run
                .rows()
                .map(|(r, _)| r)
                .filter(|r| r.max_batch == mb)
                .collect();
            rows.sort_by(|a, b| a.load.level().total_cmp(&b.load.level()));
            rows
        })
        .collect()
}

/// Legend entries for the markers: which percentile each is.
fn marker_key(stats: &[(Stat, Marker)]) -> Vec<Series> {
    stats
        .iter()
        .map(|(s, m)| Series::line(Some(s.name().to_string()), KEY_GREY, Vec::new(), *m))
        .collect()
}

/// Series per run, line and percentile: `point(row, stat)` gives (x, y).
fn overlay(
    runs: &[RunData],
    stats: &[(Stat, Marker)],
    point: impl Fn(&Measurement, Stat) -> Option<(f64, f64)>,
) -> Vec<Series> {
    let mut series = marker_key(stats);
    for (i, run) in runs.iter().enumerate() {
        for rows in lines(run) {
            for (stat, marker) in stats {
                let points = rows.iter().filter_map(|r| point(r, *stat)).collect();
                series.push(Series::line(None, plot::color(i), points, *marker));
            }
        }
    }
    series
}

/// The empirical cumulative distribution of `values` as a staircase of (value, percent of
/// requests at or below it), thinned to at most 400 steps (800 points).
fn cdf(mut values: Vec<f64>) -> Vec<(f64, f64)> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let step = n.div_ceil(400).max(1);
    let mut below = 0.0;
    let mut points = Vec::with_capacity(2 * n.div_ceil(step));
    for i in (0..n).step_by(step) {
        // The step's last value: every value up to it is at or below.
        let last = (i + step).min(n) - 1;
        let at = 100.0 * (last + 1) as f64 / n as f64;
        points.extend([(values[last], below), (values[last], at)]);
        below = at;
    }
    points
}

/// One chart per run and metric: the distribution of each level's measured, successful
/// requests, one line per level, darker for heavier load (the heaviest in the run's colour).
fn distribution(
    run: &RunData,
    index: usize,
    what: &str,
    per_request: impl Fn(&RequestRecord) -> Vec<f64>,
) -> Chart {
    let keys: Vec<PointKey> = {
        let mut k: Vec<PointKey> = run
            .requests
            .iter()
            .map(|r| r.point.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        k.sort_by(|a, b| {
            (a.max_batch, a.load.level())
                .partial_cmp(&(b.max_batch, b.load.level()))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        k
    };
    let n = keys.len();
    let series = keys
        .iter()
        .enumerate()
        .map(|(j, key)| {
            let values = run
                .requests
                .iter()
                .filter(|r| &r.point == key && !r.warmup && r.failure.is_none())
                .flat_map(&per_request)
                .collect();
            let lighter = if n > 1 {
                0.65 * (n - 1 - j) as f64 / (n - 1) as f64
            } else {
                0.0
            };
            Series::line(
                Some(level_label(key)),
                plot::shade(plot::color(index), lighter),
                cdf(values),
                Marker::None,
            )
        })
        .collect();
    Chart {
        title: format!("#{} {what}: distribution per level", index + 1),
        x_label: format!("{what} (ms)"),
        y_label: "requests at or below (%)".into(),
        series,
        ..Chart::default()
    }
}

/// A number for a table cell, `-` when missing.
fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.digits$}"))
}

/// Every metric at every statistic, one row per level.
fn level_table(run: &RunData) -> (Vec<String>, Vec<Vec<String>>) {
    const METRICS: [Metric; 5] = [
        Metric::Ttft,
        Metric::Itl,
        Metric::Tpot,
        Metric::E2e,
        Metric::Nttft,
    ];
    let mut header: Vec<String> = ["level", "state", "ok", "failed"]
        .map(String::from)
        .to_vec();
    for m in METRICS {
        for s in Stat::ALL {
            header.push(format!("{} {s}", m.name().to_uppercase()));
        }
    }
    header.extend(
        [
            "out tok/s",
            "total tok/s",
            "req/s",
            "goodput req/s",
            "SLOs met",
            "window s",
            "flags",
        ]
        .map(String::from),
    );
    let goodput = |row: &Measurement| run.levels.iter().find(|l| &l.row == row);
    let rows = run
        .rows()
        .map(|(row, partial)| {
            let m = &row.metrics;
            let mut cells = vec![
                level_label(&key_of(row)),
                if partial { "partial" } else { "finished" }.to_string(),
                m.requests_ok.to_string(),
                m.requests_failed.to_string(),
            ];
            for metric in METRICS {
                for s in Stat::ALL {
                    let v = metric.stat(m, s);
                    cells.push(if metric == Metric::Nttft {
                        num(v, 3)
                    } else {
                        millis_text(v.map(Millis))
                    });
                }
            }
            let level = goodput(row);
            cells.extend([
                num(m.output_throughput.map(|x| x.0), 1),
                num(m.total_throughput.map(|x| x.0), 1),
                num(m.request_throughput.map(|x| x.0), 2),
                num(level.and_then(|l| l.goodput).map(|g| g.0), 2),
                level
                    .and_then(|l| l.slo_met)
                    .map_or("-".into(), |b| if b { "yes".into() } else { "no".into() }),
                num(row.duration.map(|d| d.as_secs_f64()), 1),
                row.flags.clone(),
            ]);
            cells
        })
        .collect();
    (header, rows)
}

/// A run's metadata, from `run.json`.
fn metadata(run: &RunData) -> Vec<(String, String)> {
    let mut pairs = vec![("directory".to_string(), run.dir.display().to_string())];
    let Some(i) = &run.info else {
        pairs.push(("run.json".into(), "missing (an older run?)".into()));
        return pairs;
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    pairs.extend([
        ("status".to_string(), opt(&i.status)),
        ("started".into(), opt(&i.started)),
        ("ended".into(), opt(&i.ended)),
        (
            "duration".into(),
            i.duration_s.map_or("-".into(), |d| format!("{d:.1} s")),
        ),
        (
            "endpoint".into(),
            i.endpoint.clone().unwrap_or_else(|| {
                if i.embedded_engine == Some(true) {
                    "pilot's embedded engine".into()
                } else {
                    "-".into()
                }
            }),
        ),
        (
            "server models".into(),
            if i.server.models.is_empty() {
                "-".into()
            } else {
                i.server.models.join(", ")
            },
        ),
        ("server version".into(), opt(&i.server.version)),
        ("pilot version".into(), opt(&i.pilot_version)),
        ("flags".into(), i.flags().join(" ")),
    ]);
    if let Some(s) = &i.stopped_early {
        pairs.push(("stopped early".into(), s.clone()));
    }
    if let Some(f) = &i.failure {
        pairs.push(("failure".into(), f.clone()));
    }
    pairs
}

/// Why a run is incomplete, for its warning; `None` when it is complete.
fn incomplete(run: &RunData) -> Option<String> {
    if run.complete() {
        return None;
    }
    let status = run
        .info
        .as_ref()
        .and_then(|i| i.status.clone())
        .unwrap_or_else(|| "no run.json".into());
    let mut text = format!(
        "Incomplete run (status: {status}): this report shows what it measured before it stopped, {} finished level(s)",
        run.levels.len()
    );
    if !run.partial.is_empty() {
        let labels: Vec<String> = run
            .partial
            .iter()
            .map(|r| level_label(&key_of(r)))
            .collect();
        text.push_str(&format!(
            " and {} level(s) cut short ({}), aggregated from the requests saved while they ran",
            labels.len(),
            labels.join(", ")
        ));
    }
    text.push('.');
    Some(text)
}

/// The report of `runs` as one HTML document.
pub fn runs_html(runs: &[RunData]) -> Result<String, ReportError> {
    let title = if runs.len() == 1 {
        "pilot report: one run".to_string()
    } else {
        format!("pilot report: {} runs compared", runs.len())
    };
    let mut page = Page::new(&title);
    page.heading(2, "Runs");
    page.legend(
        &runs
            .iter()
            .enumerate()
            .map(|(i, r)| (plot::color(i), format!("#{} {}", i + 1, r.name())))
            .collect::<Vec<_>>(),
    );
    for (i, run) in runs.iter().enumerate() {
        page.heading(3, &format!("#{} {}", i + 1, run.name()));
        if let Some(w) = incomplete(run) {
            page.warning(&w);
        }
        if run.levels.is_empty() && run.partial.is_empty() {
            page.warning("Nothing was measured: no level finished and no request was saved.");
        }
        page.definitions(&metadata(run));
    }

    let load = load_axis(runs);
    page.heading(2, "Latency vs load");
    page.note("One colour per run (see Runs); markers: circle p50, triangle p90, cross p99.");
    for (metric, title) in LATENCY_PLOTS {
        let chart = Chart {
            title: format!("{title} vs load"),
            x_label: load.into(),
            y_label: format!("{} (ms)", metric.name().to_uppercase()),
            series: overlay(runs, &PERCENTILES, |r, s| {
                metric.stat(&r.metrics, s).map(|v| (r.load.level(), v))
            }),
            ..Chart::default()
        };
        page.figure(&plot::svg(&chart)?);
    }

    page.heading(2, "Throughput vs latency");
    let tail = [(Stat::P50, Marker::Circle), (Stat::P99, Marker::Cross)];
    let chart = Chart {
        title: "Output throughput vs end-to-end latency".into(),
        x_label: "output throughput (tok/s)".into(),
        y_label: "E2E latency (ms)".into(),
        series: overlay(runs, &tail, |r, s| {
            Some((
                r.metrics.output_throughput?.0,
                Metric::E2e.stat(&r.metrics, s)?,
            ))
        }),
        ..Chart::default()
    };
    page.figure(&plot::svg(&chart)?);

    page.heading(2, "Goodput vs load");
    let with_slos = runs
        .iter()
        .any(|r| r.levels.iter().any(|l| l.goodput.is_some()));
    if with_slos {
        page.note("Goodput: requests per second that met every SLO of the run (--slo).");
        let series = runs
            .iter()
            .enumerate()
            .flat_map(|(i, run)| {
                lines(run).into_iter().map(move |rows| {
                    let points = rows
                        .iter()
                        .filter_map(|r| {
                            let level = run.levels.iter().find(|l| &l.row == *r)?;
                            Some((r.load.level(), level.goodput?.0))
                        })
                        .collect();
                    Series::line(None, plot::color(i), points, Marker::Circle)
                })
            })
            .collect();
        let chart = Chart {
            title: "Goodput vs load".into(),
            x_label: load.into(),
            y_label: "goodput (req/s)".into(),
            series,
            ..Chart::default()
        };
        page.figure(&plot::svg(&chart)?);
    } else {
        page.paragraph("No SLOs: no run was given --slo, so there is no goodput to plot.");
    }

    page.heading(2, "Distributions");
    page.note(
        "Per run: the share of successful measured requests (warm-up excluded) at or below each \
         value, one line per level, the heaviest load darkest. ITL counts every gap between tokens.",
    );
    for (i, run) in runs.iter().enumerate() {
        let ttft = distribution(run, i, "TTFT", |r| vec![r.timings().ttft.0]);
        let itl = distribution(run, i, "ITL", |r| {
            r.timings().itls.iter().map(|m| m.0).collect()
        });
        page.figure(&plot::svg(&ttft)?);
        page.figure(&plot::svg(&itl)?);
    }

    page.heading(2, "Levels");
    for (i, run) in runs.iter().enumerate() {
        page.heading(3, &format!("#{} {}", i + 1, run.name()));
        let (header, rows) = level_table(run);
        page.table(&header, &rows);
    }
    Ok(page.to_html())
}

/// Reads `dirs` and writes their report to `out` (default: `report.html` in the first).
/// Returns where it went.
pub fn write_report(
    dirs: &[PathBuf],
    out: Option<&Path>,
) -> Result<(PathBuf, Vec<RunData>), ReportError> {
    let first = dirs.first().ok_or(ReportError::NoRuns)?;
    let runs = dirs
        .iter()
        .map(|d| RunData::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let html = runs_html(&runs)?;
    let path = out.map_or_else(|| first.join("report.html"), Path::to_path_buf);
    std::fs::write(&path, html).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok((path, runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_is_no_run_says_what_a_run_holds() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("20260101T000000Z-ab12");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        let err = RunData::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(
            err.contains("run.json") && err.contains("summary.csv"),
            "{err}"
        );
        assert!(err.contains("pilot characterize"), "{err}");
        assert!(
            err.contains("the latest is") && err.contains("20260101T000000Z-ab12"),
            "{err}"
        );
        let missing = RunData::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
    }

    #[test]
    fn a_run_that_never_ended_still_reports_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("run.json"),
            r#"{"status": "running", "started": "2026-01-01T00:00:00Z", "options": {"model": "m<b>"}}"#,
        )
        .unwrap();
        let run = RunData::load(dir.path()).unwrap();
        assert!(!run.complete());
        assert!(run.name().contains("m<b>"), "{}", run.name());
        let html = runs_html(&[run]).unwrap();
        assert!(html.contains("Incomplete run (status: running)"), "{html}");
        assert!(html.contains("m&lt;b&gt;") && !html.contains("m<b>"));
        assert!(html.contains("No SLOs"));
    }

    #[test]
    fn the_cdf_ends_at_every_request() {
        let points = cdf((1..=1000).map(f64::from).collect());
        assert!(points.len() <= 800);
        assert_eq!(points.last(), Some(&(1000.0, 100.0)));
        assert_eq!(points[..2], [(3.0, 0.0), (3.0, 0.3)]);
        assert_eq!(
            cdf(vec![2.0, 1.0]),
            [(1.0, 0.0), (1.0, 50.0), (2.0, 50.0), (2.0, 100.0)]
        );
        assert!(cdf(vec![f64::NAN]).is_empty());
    }
}
