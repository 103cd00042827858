//! End-to-end tests of `pilot report` and `pilot recommend --report`: real runs on the
//! embedded engine, the HTML written from them, and a screenshot of it in a real headless
//! browser (Debian's Chromium, which `./scripts/setup.sh` installs) checked for the plots'
//! pixels, so that an SVG the browser cannot draw fails here.

use assert_cmd::Command;
use pilot_report::plot::{PALETTE, Rgb};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs `pilot` with `args`; returns its output, whatever its exit.
fn pilot(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("pilot")
        .unwrap()
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap()
}

/// Runs `pilot` with `args`, which must succeed; returns its stdout and stderr.
fn succeeds(args: &[&str]) -> (String, String) {
    let o = pilot(args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "pilot {args:?}: {err}");
    (out, err)
}

/// One short run on the embedded engine under `out`; returns its directory, as the run
/// prints it (`run dir:  PATH` on stderr).
fn short_run(out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["characterize", "--out", out.to_str().unwrap()];
    args.extend(["--users", "1,2", "--num-prompts", "4", "--duration", "60s"]);
    args.extend([
        "--warmup",
        "0s",
        "--input-tokens",
        "8",
        "--output-tokens",
        "6",
    ]);
    args.extend(extra);
    let (_, err) = succeeds(&args);
    let dir = err
        .lines()
        .find_map(|l| l.strip_prefix("run dir:"))
        .unwrap_or_else(|| panic!("no run dir in: {err}"));
    PathBuf::from(dir.trim())
}

/// The path of Chromium; fails (never skips) when it is missing.
fn chromium() -> PathBuf {
    ["chromium", "chromium-browser"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
        .expect("chromium is not installed: run ./scripts/setup.sh (it installs Debian's chromium package)")
}

/// A screenshot of `html` as Chromium draws it: (width, height, RGB pixels).
fn screenshot(html: &Path, dir: &Path) -> (u32, u32, Vec<Rgb>) {
    let png_path = dir.join("shot.png");
    let o = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--screenshot={}", png_path.display()))
        .arg("--window-size=1280,4000")
        .arg(format!("file://{}", html.canonicalize().unwrap().display()))
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        png_path.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let file = std::io::BufReader::new(std::fs::File::open(&png_path).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.line_size / info.width as usize;
    assert!(bpp >= 3, "a colour screenshot: {:?}", info.color_type);
    let pixels = buf[..info.line_size * info.height as usize]
        .chunks(bpp)
        .map(|p| (p[0], p[1], p[2]))
        .collect();
    (info.width, info.height, pixels)
}

/// Pixels of exactly `c` (each series' lines and markers have solid cores in its colour).
fn count(pixels: &[Rgb], c: Rgb) -> usize {
    pixels.iter().filter(|p| **p == c).count()
}

/// The page is not blank: much of it is neither white nor near-white.
fn assert_drawn(pixels: &[Rgb]) {
    let inked = pixels
        .iter()
        .filter(|p| p.0 < 200 || p.1 < 200 || p.2 < 200)
        .count();
    assert!(
        inked > pixels.len() / 200,
        "the screenshot is nearly blank: {inked} of {} pixels drawn",
        pixels.len()
    );
}

/// Nothing in the page is fetched: no external script, style, image or font.
fn assert_self_contained(html: &str) {
    for bad in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(http",
        "@import",
        "<script",
        "<link",
    ] {
        assert!(!html.contains(bad), "the report fetches something ({bad})");
    }
}

#[test]
fn two_runs_overlay_in_one_self_contained_page_that_a_browser_draws() {
    let dir = tempfile::tempdir().unwrap();
    let a = short_run(&dir.path().join("a"), &["--slo", "ttft=60s"]);
    let b = short_run(&dir.path().join("b"), &[]);
    let out = dir.path().join("report.html");
    let (stdout, _) = succeeds(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains(out.to_str().unwrap()), "{stdout}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert_self_contained(&html);
    // Four latency plots, throughput vs latency, goodput (run a has an SLO), and per run the
    // TTFT and ITL distributions.
    assert_eq!(html.matches("<svg").count(), 4 + 1 + 1 + 2 * 2);
    for run in [&a, &b] {
        let name = run.file_name().unwrap().to_str().unwrap();
        assert!(html.contains(name), "{name} is not named");
    }
    for text in [
        "Latency vs load",
        "Throughput vs latency",
        "Goodput vs load",
        "TTFT p99",
        "users=2",
        "finished",
    ] {
        assert!(html.contains(text), "{text} missing");
    }

    let (w, h, pixels) = screenshot(&out, dir.path());
    assert_eq!((w, h), (1280, 4000));
    assert_drawn(&pixels);
    // Each run's colour is drawn, in series, not just in its legend swatch (14 x 14 pixels).
    for (i, c) in PALETTE[..2].iter().enumerate() {
        let n = count(&pixels, *c);
        assert!(
            n > 1500,
            "run #{} colour {c:?}: {n} pixels, its series did not render",
            i + 1
        );
    }
}

#[test]
fn a_directory_that_is_no_run_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = pilot(&["report", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(dir.path().to_str().unwrap()), "{e}");
    assert!(e.contains("run.json") && e.contains("summary.csv"), "{e}");
    assert!(
        e.contains("pilot characterize") && !e.contains("panicked"),
        "{e}"
    );
}

#[test]
fn an_interrupted_run_reports_what_it_measured() {
    let dir = tempfile::tempdir().unwrap();
    let run = short_run(&dir.path().join("a"), &[]);
    // As a run killed in its second level leaves it: run.json still "running", the summary
    // with the first level only, the second level's requests in levels/ alone.
    let info = std::fs::read_to_string(run.join("run.json")).unwrap();
    let info = info.replace("\"finished\"", "\"running\"");
    std::fs::write(run.join("run.json"), info).unwrap();
    let summary = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    let first_level: Vec<&str> = summary.lines().take(2).collect();
    std::fs::write(run.join("summary.csv"), first_level.join("\n") + "\n").unwrap();
    std::fs::remove_file(run.join("requests.parquet")).unwrap();
    std::fs::remove_file(run.join("levels/users-1.parquet")).unwrap();
    let (_, err) = succeeds(&["report", run.to_str().unwrap()]);
    assert!(err.contains("incomplete run"), "{err}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("Incomplete run (status: running)"), "{html}");
    assert!(html.contains("users=1") && html.contains("users=2") && html.contains("partial"));
}

#[test]
fn recommend_writes_its_frontier_as_a_page_a_browser_draws() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.html");
    succeeds(&[
        "recommend",
        "--model",
        "mistral-7b",
        "--slo",
        "ttft=200ms",
        "--gpus",
        "a100,l4,h100",
        "--max-gpus",
        "2",
        "--report",
        out.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&out).unwrap();
    assert_self_contained(&html);
    assert_eq!(html.matches("<svg").count(), 1, "one frontier per SLO");
    for text in [
        "Cost vs latency frontier",
        "Pareto frontier",
        "Chosen:",
        "Rejected alternatives",
        "SLO ttft",
    ] {
        assert!(html.contains(text), "{text} missing");
    }
    let (_, _, pixels) = screenshot(&out, dir.path());
    assert_drawn(&pixels);
    // The feasible points and the chosen one, in their colours.
    use pilot_recommend::html_report::{CHOSEN, FEASIBLE};
    for role in [FEASIBLE, CHOSEN] {
        let n = count(&pixels, PALETTE[role]);
        assert!(n > 50, "colour {:?}: {n} pixels", PALETTE[role]);
    }
}
