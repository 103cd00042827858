//! End-to-end tests of how the real `pilot` binary treats values it must refuse or files it
//! must write right (issue 12): absurd loads, silent coercions, wrong files, misleading
//! messages. Each runs what an operator typed and checks what came back.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn pilot() -> Command {
    Command::cargo_bin("pilot").expect("the pilot binary builds")
}

/// Runs pilot: (exit code, stdout, stderr), after checking it did not panic.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = pilot().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "pilot {args:?} panicked: {err}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        err,
    )
}

/// Runs pilot, expecting exit code 2: its stderr.
fn fails(args: &[&str]) -> String {
    let (code, _, err) = run(args);
    assert_eq!(code, Some(2), "pilot {args:?} should exit 2; stderr: {err}");
    err
}

/// Runs pilot, expecting success: (stdout, stderr).
fn succeeds(args: &[&str]) -> (String, String) {
    let (code, out, err) = run(args);
    assert_eq!(code, Some(0), "pilot {args:?} failed: {err}");
    (out, err)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A file `name` in `dir` holding `text`.
fn written(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The words of `base`, then `extra`.
fn words(base: &str, extra: &[&str]) -> Vec<String> {
    base.split(' ')
        .chain(extra.iter().copied())
        .map(String::from)
        .collect()
}

/// `pilot recommend` for Mistral-7B with TTFT <= 200 ms and ITL <= 50 ms, then `extra`.
fn recommend(extra: &[&str]) -> Vec<String> {
    words(
        "recommend --model mistral-7b --slo ttft=200ms,itl=50ms",
        extra,
    )
}

/// `pilot predict` of Mistral-7B on one H100, then `extra`.
fn predict_one(extra: &[&str]) -> Vec<String> {
    words("predict --model mistral-7b --gpu H100-SXM-80GB", extra)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// An infinite rate is refused, not answered with 4,294,967,295 replicas marked feasible.
#[test]
fn absurd_loads_are_refused() {
    for rate in ["inf/s", "inf", "NaN", "1e400/s", "-3/s", "0"] {
        let flag = format!("--rate={rate}");
        let args = recommend(&[&flag, "--json", "--physics-only"]);
        let e = fails(&strs(&args));
        assert!(e.contains("--rate") && e.contains("10/s"), "{rate}: {e}");
    }
    let e = fails(&strs(&predict_one(&["--rate", "inf"])));
    assert!(e.contains("--rate"), "{e}");
}

/// A feasible row of `--json` is one whose prediction at its load meets every SLO.
#[test]
fn feasible_rows_meet_their_slos() {
    let args = recommend(&[
        "--rate",
        "500/s",
        "--json",
        "--physics-only",
        "--max-gpus",
        "2",
        "--gpus",
        "h100,l4",
    ]);
    let (out, _) = succeeds(&strs(&args));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for c in v["candidates"].as_array().unwrap() {
        if c["feasible"] == true {
            let m = &c["predicted_at_load"];
            assert!(m["ttft_ms_p50"].as_f64().unwrap() <= 200.0, "{c}");
            assert!(m["itl_ms_p50"].as_f64().unwrap() <= 50.0, "{c}");
            assert!(c["headroom"].as_f64().unwrap() >= 0.0, "{c}");
        }
    }
}

/// Zero counts are errors on every command, and name the flag.
#[test]
fn zero_counts_are_errors_everywhere() {
    for (flag, value) in [
        ("--users", "0"),
        ("--batch-size", "0"),
        ("--input-tokens", "0"),
        ("--output-tokens", "0"),
        ("--gpu-count", "0"),
    ] {
        let e = fails(&strs(&predict_one(&[flag, value])));
        assert!(e.contains(flag) && e.contains("at least 1"), "{flag}: {e}");
    }
    for (flag, value) in [
        ("--users", "0"),
        ("--input-tokens", "0"),
        ("--output-tokens", "0"),
        ("--max-gpus", "0"),
    ] {
        let args = recommend(&[flag, value, "--physics-only"]);
        let e = fails(&strs(&args));
        assert!(e.contains(flag) && e.contains("at least 1"), "{flag}: {e}");
    }
}

/// An engine typo is an error that suggests the engine meant.
#[test]
fn unknown_engines_are_errors_with_suggestions() {
    let e = fails(&strs(&recommend(&["--engine", "vlmm"])));
    assert!(e.contains("vlmm") && e.contains("did you mean vllm"), "{e}");
    let e = fails(&strs(&predict_one(&["--engine", "tgsi"])));
    assert!(e.contains("tgsi") && e.contains("tgis"), "{e}");
    // Known engines still work, in any case.
    succeeds(&strs(&recommend(&[
        "--engine",
        "VLLM,tgis",
        "--max-gpus",
        "1",
    ])));
}

/// A threshold without a unit is refused with both readings.
#[test]
fn unitless_slos_are_refused() {
    let e = fails(&["recommend", "--model", "mistral-7b", "--slo", "ttft=0.2"]);
    assert!(
        e.contains("ttft=0.2 has no unit; write 200ms or 0.2s"),
        "{e}"
    );
}

/// `pilot predict --scenarios` on a file holding `scenarios`, writing `out` in `dir`: (exit
/// code, stderr, the output path).
fn predict_file(
    dir: &tempfile::TempDir,
    scenarios: &str,
    out: &str,
) -> (Option<i32>, String, PathBuf) {
    let sc = written(dir, "s.csv", scenarios);
    let out = dir.path().join(out);
    let (code, _, err) = run(&["predict", "--scenarios", path(&sc), "--out", path(&out)]);
    (code, err, out)
}

/// Scenario files: bad cells are errors with their line; a missing engine column is noted.
#[test]
fn scenario_files_are_checked_and_assumptions_noted() {
    let dir = tempfile::tempdir().unwrap();
    let header =
        "model,gpu,gpu_count,users,input_tokens,output_tokens\nmistral-7b,H100,1,4,512,256\n";
    let bad = format!("{header}mistral-7b,H100,2.7,4,512,256\n");
    let (code, e, _) = predict_file(&dir, &bad, "p.csv");
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("line 3") && e.contains("gpu_count '2.7'"), "{e}");
    let (code, err, _) = predict_file(&dir, header, "p.csv");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("note:") && err.contains("no engine column") && err.contains("vLLM"),
        "{err}"
    );
}

/// `--out x.parquet` writes Parquet that pilot reads back; other extensions are refused.
#[test]
fn predictions_are_written_in_the_format_their_extension_names() {
    let dir = tempfile::tempdir().unwrap();
    let sc = "model,gpu,gpu_count,mode,users,input_tokens,output_tokens,engine\nmistral-7b,H100,1,closed,4,512,256,vllm\n";
    let (code, err, parquet) = predict_file(&dir, sc, "p.parquet");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(&std::fs::read(&parquet).unwrap()[..4], b"PAR1");
    let (_, err) = succeeds(&["dataset", "show", path(&parquet)]);
    assert!(err.contains(": 1 valid rows"), "{err}");
    let (code, e, txt) = predict_file(&dir, sc, "p.txt");
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains(".csv") && e.contains(".parquet"), "{e}");
    assert!(!txt.exists());
}

/// A file that is not LLM-Inference-Bench's fails the import, saying what was expected.
#[test]
fn importing_garbage_fails() {
    let dir = tempfile::tempdir().unwrap();
    let junk = written(&dir, "junk.csv", "this is not a benchmark\n");
    let out = dir.path().join("out.csv");
    let e = fails(&[
        "dataset",
        "import",
        "llm-inference-bench",
        path(&junk),
        "-o",
        path(&out),
    ]);
    assert!(e.contains("expected LLM-Inference-Bench"), "{e}");
    assert!(!out.exists());
}

/// Rows with infinite or NaN values are counted invalid by `dataset show`.
#[test]
fn non_finite_rows_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let f = written(
        &dir,
        "m.csv",
        "model,gpu,gpu_count,engine,mode,users,ttft_ms_p50\nm,H100,1,vllm,closed,1,120\nm,H100,1,vllm,closed,2,inf\nm,H100,1,vllm,closed,4,NaN\n",
    );
    let (_, err) = succeeds(&["dataset", "show", path(&f)]);
    assert!(err.contains("1 valid rows, 2 invalid"), "{err}");
    assert!(
        err.contains("row 2") && err.contains("ttft_ms_p50"),
        "{err}"
    );
}

/// `--prices` takes the JSON `catalog prices --json` prints, as its help says.
#[test]
fn prices_json_from_the_catalog_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (json, _) = succeeds(&["catalog", "prices", "--json", "--cloud", "lambda"]);
    let f = written(&dir, "prices.json", &json);
    let (shown, _) = succeeds(&["catalog", "prices", "--prices", path(&f)]);
    assert!(shown.contains("lambda"), "{shown}");
    let args = recommend(&[
        "--prices",
        path(&f),
        "--physics-only",
        "--max-gpus",
        "1",
        "--json",
    ]);
    let (text, _) = succeeds(&strs(&args));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let clouds: Vec<&str> = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["cloud"].as_str())
        .collect();
    assert!(
        !clouds.is_empty() && clouds.iter().all(|c| *c == "lambda"),
        "{clouds:?}"
    );
}

/// The empty-table message says what happened.
#[test]
fn empty_tables_say_why() {
    let args = recommend(&["--top", "0", "--physics-only", "--max-gpus", "1"]);
    let (text, _) = succeeds(&strs(&args));
    assert!(
        text.contains("--top 0 shows no rows") && !text.contains("No configuration meets"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let prices = written(
        &dir,
        "p.csv",
        "cloud,gpu,gpu_count,on_demand_usd_per_hour\nmine,H100,1,2.0\n",
    );
    let args = recommend(&[
        "--prices",
        path(&prices),
        "--spot",
        "--gpus",
        "h100",
        "--physics-only",
    ]);
    let (text, _) = succeeds(&strs(&args));
    assert!(
        text.contains("No spot prices for these GPUs: H100-SXM-80GB")
            && !text.contains("No configuration meets"),
        "{text}"
    );
}

/// An error's cause is not printed again when the message already says it.
#[test]
fn errors_do_not_repeat_their_cause() {
    let e = fails(&["predict", "--model", "mistral-7c", "--gpu", "H100-SXM-80GB"]);
    assert_eq!(e.matches("unknown model").count(), 1, "{e}");
}

/// A runaway name costs a moment and a line, not minutes and megabytes.
#[test]
fn huge_names_fail_fast_and_short() {
    let dir = tempfile::tempdir().unwrap();
    let name = "x".repeat(20_000_000);
    let sc =
        format!("model,gpu,users,input_tokens,output_tokens,engine\n{name},H100,4,512,256,vllm\n");
    let t = Instant::now();
    let (code, e, _) = predict_file(&dir, &sc, "p.csv");
    assert_eq!(code, Some(2));
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    assert!(e.len() < 2000, "{} bytes of stderr", e.len());
    assert!(
        e.contains("line 2") && e.contains("20000000 characters"),
        "{e}"
    );
}

/// A deployment no engine can start is refused, naming what disagrees, rather than predicted.
#[test]
fn undeployable_predictions_are_refused() {
    let e = fails(&strs(&predict_one(&[
        "--gpu-count",
        "3",
        "--engine",
        "vllm",
    ])));
    assert!(
        e.contains("tensor-parallel degree of 3") && e.contains("32 attention"),
        "{e}"
    );
    let e = fails(&strs(&predict_one(&[
        "--engine",
        "tensorrt-llm",
        "--quantization",
        "nvfp4",
    ])));
    assert!(
        e.contains("cannot serve nvfp4") && e.contains("Blackwell"),
        "{e}"
    );
    // The same format on a Blackwell GPU is a deployment, and is predicted.
    let (out, _) = succeeds(&[
        "predict",
        "--model",
        "mistral-7b",
        "--gpu",
        "b200_sxm",
        "--engine",
        "tensorrt-llm",
        "--quantization",
        "nvfp4",
    ]);
    assert!(out.contains("nvfp4"), "{out}");
}
