//! The entry points of `pilot dataset import`, `pilot train`, `pilot eval predict` and `pilot
//! analyze` (`pilot_predict::commands`) on the shipped datasets, without the CLI's build (no
//! burn, no engine). Run from the workspace root:
//!
//! ```text
//! cargo run --release -p pilot-predict --example predictor -- import   # datasets/predictor/*.csv
//! cargo run --release -p pilot-predict --example predictor -- train    # datasets/predictor/predictor.json
//! cargo run --release -p pilot-predict --example predictor -- eval model|gpu DATA.csv...
//! cargo run --release -p pilot-predict --example predictor -- analyze PLOTDIR DATA.csv...
//! ```
use pilot_core::schema::write_measurements;
use pilot_import::{aiconfigurator, llm_inference_bench, llm_pilot};
use pilot_predict::commands;
use std::path::{Path, PathBuf};

const DIR: &str = "datasets/predictor";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = || {
        vec![
            PathBuf::from(DIR).join("llm-pilot.csv"),
            PathBuf::from(DIR).join("llm-inference-bench.csv"),
            PathBuf::from(DIR).join("aiconfigurator.csv"),
        ]
    };
    match args.first().map(String::as_str) {
        Some("import") => {
            let a = llm_pilot::import(Path::new("../shared/data/llm-pilot/requests.parquet"))?;
            write_measurements(&a.rows, &Path::new(DIR).join("llm-pilot.csv"))?;
            let b = llm_inference_bench::import(Path::new(
                "../shared/data/llm-inference-bench/results.csv",
            ))?;
            write_measurements(&b.rows, &Path::new(DIR).join("llm-inference-bench.csv"))?;
            let c = aiconfigurator::import(Path::new(
                "../shared/data/aiconfigurator/silicon_sample.csv",
            ))?;
            write_measurements(&c.rows, &Path::new(DIR).join("aiconfigurator.csv"))?;
            for n in a.notes.iter().chain(&b.notes).chain(&c.notes) {
                println!("{n}");
            }
        }
        Some("train") => print!(
            "{}",
            commands::train_files(
                &data(),
                &Path::new(DIR).join("predictor.json"),
                &Default::default()
            )?
            .text
        ),
        Some("eval") => {
            let g = args.get(1).map_or("model", String::as_str).parse()?;
            let files: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            let published = Some(PathBuf::from("../shared/data/llm-pilot/published"));
            print!(
                "{}",
                commands::eval_files(
                    &if files.is_empty() { data() } else { files },
                    g,
                    published,
                    false,
                    None,
                    &pilot_predict::TrainOptions::default(),
                )?
            );
        }
        Some("analyze") => {
            let files: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            print!(
                "{}",
                commands::analyze_files(&files, None, args.get(1).map(PathBuf::from), false)?
            );
        }
        _ => eprintln!(
            "usage: predictor import | train | eval model|gpu [DATA...] | analyze PLOTDIR DATA..."
        ),
    }
    Ok(())
}
