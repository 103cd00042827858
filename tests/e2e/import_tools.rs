//! `pilot dataset import <tool> FILE...` end to end: a benchmark tool's result file becomes a
//! measurement file that pilot reads back.

use assert_cmd::Command;
use pilot_core::schema::{Load, read_measurements};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("import/tests/fixtures")
        .join(rel);
    p.display().to_string()
}

fn pilot(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("pilot")
        .expect("the pilot binary builds")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_vllm_bench_result_imports_into_a_dataset_pilot_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vllm.csv");
    let out_s = out.display().to_string();
    let detailed = fixture("vllm-bench/detailed.json");
    let summary = fixture("vllm-bench/summary.json");
    let run = pilot(&[
        "dataset",
        "import",
        "vllm-bench",
        &detailed,
        &summary,
        "--gpu",
        "H100",
        "--gpus",
        "1",
        "--engine",
        "pilot",
        "-o",
        &out_s,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 2 rows"), "{stderr}");
    let rows = read_measurements(&out).unwrap();
    assert_eq!(rows.len(), 2);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&detailed).unwrap()).unwrap();
    let row = &rows[0];
    assert_eq!(
        (
            row.model.as_str(),
            row.gpu.as_str(),
            row.gpu_count,
            row.engine.as_str()
        ),
        ("pilot/tiny-llama", "H100-SXM-80GB", 1, "pilot")
    );
    assert_eq!(row.load, Load::Users(4));
    assert_eq!(row.source, "vllm-bench:detailed.json");
    let median = file["median_ttft_ms"].as_f64().unwrap();
    let got = row.metrics.ttft.p50.unwrap().0;
    assert!((got - median).abs() < 1e-6 * median, "{got} vs {median}");
    assert_eq!(rows[1].source, "vllm-bench:summary.json");

    // `dataset show` reads it back.
    let show = pilot(&["dataset", "show", &out_s]);
    assert!(show.status.success());
    assert!(String::from_utf8_lossy(&show.stderr).contains("2 valid rows"));
}

#[test]
fn a_fact_the_file_lacks_names_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.csv").display().to_string();
    let summary = fixture("vllm-bench/summary.json");
    let run = pilot(&["dataset", "import", "vllm-bench", &summary, "-o", &out]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--gpu NAME") && stderr.contains("summary.json"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!Path::new(&out).exists(), "nothing written on error");
    // The public datasets say their hardware: the flags are refused there.
    let run = pilot(&[
        "dataset",
        "import",
        "llm-pilot",
        &summary,
        "--gpu",
        "H100",
        "-o",
        &out,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--gpu"), "{stderr}");
}

/// An import never replaces an existing file: it may hold measurements.
#[test]
fn an_import_into_an_existing_file_is_refused_and_the_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mine.csv");
    std::fs::write(&out, "my measurements\n").unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("import/tests/fixtures/vllm-bench/summary.json");
    let o = assert_cmd::Command::cargo_bin("pilot")
        .unwrap()
        .args(["dataset", "import", "vllm-bench"])
        .arg(&fixture)
        .args(["--gpu", "H100", "--gpus", "1", "--engine", "vllm", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "my measurements\n");
}
