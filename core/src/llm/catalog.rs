//! The built-in model catalog and name resolution: [`ModelCatalog`].
//!
//! `models/catalog.toml` lists each model's id, aliases and published parameter count; its
//! `config.json` sits under `models/<org>/<name>/`, and the whole folder is embedded with
//! `include_dir` so pilot works from any directory and offline. Resolution (catalog name,
//! local path, Hub id, else the closest catalog names) is one policy, kept here; the Hub
//! download itself is `hub`'s.

use super::hub::{fetch_config, is_hub_id};
use super::{HubOptions, LlmSpec, ModelError, Params};
use include_dir::{Dir, include_dir};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static MODELS_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../models");

#[derive(Debug, Deserialize)]
struct CatalogFile {
    model: Vec<CatalogEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogEntry {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    published_params: Option<f64>,
    params_source: Option<String>,
    config_source: Option<String>,
}

/// The built-in models (from `models/`, embedded at compile time) and the name resolver.
#[derive(Debug)]
pub struct ModelCatalog {
    entries: Vec<LlmSpec>,
    /// The `config.json` text of each entry, same order as `entries`.
    configs: Vec<&'static str>,
    /// Catalog models whose architecture pilot cannot model yet: their names resolve to the
    /// reason ([`ModelError::Unsupported`]), so `DeepSeek-V4` says what pilot does not know
    /// instead of "unknown model" or a guessed count.
    refused: Vec<Refused>,
}

#[derive(Debug)]
struct Refused {
    id: String,
    aliases: Vec<String>,
    feature: String,
}

impl ModelCatalog {
    /// The catalog embedded in this binary. Parsed once; the embedded files are checked by
    /// this module's tests, so a failure here is a build defect and panics with the reason.
    pub fn builtin() -> &'static ModelCatalog {
        static CATALOG: OnceLock<ModelCatalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            ModelCatalog::from_dir(&MODELS_DIR)
                .unwrap_or_else(|e| panic!("the embedded models/ catalog is broken: {e}"))
        })
    }

    fn from_dir(dir: &'static Dir<'static>) -> Result<ModelCatalog, ModelError> {
        let toml_text = dir
            .get_file("catalog.toml")
            .and_then(|f| f.contents_utf8())
            .ok_or_else(|| ModelError::NotFound {
                path: PathBuf::from("models/catalog.toml"),
            })?;
        let file: CatalogFile = toml::from_str(toml_text).map_err(|e| ModelError::Unparsable {
            source_name: "models/catalog.toml".to_string(),
            format: "TOML",
            source: e.into(),
        })?;
        let mut entries = Vec::with_capacity(file.model.len());
        let mut configs = Vec::with_capacity(file.model.len());
        let mut refused = Vec::new();
        for e in file.model {
            let path = format!("{}/config.json", e.id);
            let text = dir
                .get_file(&path)
                .and_then(|f| f.contents_utf8())
                .ok_or_else(|| ModelError::NotFound {
                    path: PathBuf::from("models").join(&path),
                })?;
            let quant = dir
                .get_file(format!("{}/hf_quant_config.json", e.id))
                .and_then(|f| f.contents_utf8());
            let mut spec = match LlmSpec::from_config_files(&e.id, text, quant) {
                Ok(spec) => spec,
                Err(ModelError::Unsupported { feature, .. }) => {
                    refused.push(Refused {
                        id: e.id,
                        aliases: e.aliases.iter().map(|a| a.to_ascii_lowercase()).collect(),
                        feature,
                    });
                    continue;
                }
                Err(other) => return Err(other),
            };
            spec.aliases = e.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
            spec.published_params = e.published_params.map(Params);
            spec.params_source = e.params_source;
            spec.config_source = e.config_source;
            entries.push(spec);
            configs.push(text);
        }
        Ok(ModelCatalog {
            entries,
            configs,
            refused,
        })
    }

    /// Every built-in model, in catalog order.
    pub fn entries(&self) -> &[LlmSpec] {
        &self.entries
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.matches(name))
    }

    /// Resolves a model name, with Hub settings from the environment ([`HubOptions::from_env`]):
    ///
    /// 1. a catalog id or alias, case-insensitive (`llama-2-7b`, `Mistralai/Mistral-7B-v0.1`);
    /// 2. a path to a `config.json`, or to a directory holding one;
    /// 3. a Hub id `org/name`: read from the cache, else fetched from
    ///    `<endpoint>/<id>/resolve/main/config.json` and cached;
    /// 4. otherwise [`ModelError::Unknown`] with the closest catalog names.
    pub fn resolve(&self, name: &str) -> Result<LlmSpec, ModelError> {
        self.resolve_with(name, &HubOptions::from_env())
    }

    /// [`ModelCatalog::resolve`] with explicit Hub settings.
    pub fn resolve_with(&self, name: &str, hub: &HubOptions) -> Result<LlmSpec, ModelError> {
        let name = name.trim();
        if let Some(i) = self.find(name) {
            return Ok(self.entries[i].clone());
        }
        if let Some(r) = self.find_refused(name) {
            return Err(ModelError::Unsupported {
                source_name: r.id.clone(),
                feature: r.feature.clone(),
            });
        }
        let (id, text) = self.locate(name, hub)?;
        // A local checkpoint's hf_quant_config.json (NVIDIA ModelOpt) sits beside config.json.
        let quant = Path::new(&id)
            .parent()
            .map(|dir| dir.join("hf_quant_config.json"))
            .filter(|p| Path::new(&id).exists() && p.is_file())
            .map(|p| {
                std::fs::read_to_string(&p).map_err(|_| ModelError::NotFound { path: p.clone() })
            })
            .transpose()?;
        LlmSpec::from_config_files(&id, &text, quant.as_deref())
    }

    fn find_refused(&self, name: &str) -> Option<&Refused> {
        self.refused.iter().find(|r| {
            r.id.eq_ignore_ascii_case(name)
                || r.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }

    /// Catalog models pilot refuses to model, with what it does not know about each.
    pub fn refused(&self) -> impl Iterator<Item = (&str, &str)> {
        self.refused
            .iter()
            .map(|r| (r.id.as_str(), r.feature.as_str()))
    }

    /// The raw `config.json` text for `name` (resolved as in [`ModelCatalog::resolve`]), for
    /// consumers that parse it themselves (the embedded inference engine).
    pub fn config_json(&self, name: &str) -> Result<String, ModelError> {
        self.config_json_with(name, &HubOptions::from_env())
    }

    /// [`ModelCatalog::config_json`] with explicit Hub settings.
    pub fn config_json_with(&self, name: &str, hub: &HubOptions) -> Result<String, ModelError> {
        let name = name.trim();
        if let Some(i) = self.find(name) {
            return Ok(self.configs[i].to_string());
        }
        Ok(self.locate(name, hub)?.1)
    }

    /// Steps 2-4 of `resolve`: returns (id, config text).
    fn locate(&self, name: &str, hub: &HubOptions) -> Result<(String, String), ModelError> {
        let path = Path::new(name);
        if path.exists() {
            let file = if path.is_dir() {
                path.join("config.json")
            } else {
                path.to_path_buf()
            };
            let text = std::fs::read_to_string(&file)
                .map_err(|_| ModelError::NotFound { path: file.clone() })?;
            return Ok((file.display().to_string(), text));
        }
        // Past here the name is matched against the Hub and the catalog's spellings, at a
        // cost that grows with its length: a runaway name stops now.
        crate::validate::name("name", name)?;
        if looks_like_path(name) {
            return Err(ModelError::NotFound {
                path: path.to_path_buf(),
            });
        }
        if is_hub_id(name) {
            return fetch_config(name, hub).map(|t| (name.to_string(), t));
        }
        Err(ModelError::Unknown {
            name: crate::validate::shorten(name),
            closest: self.closest(name, 3),
        })
    }

    /// The `n` catalog names (ids or aliases) most similar to `name`.
    pub fn closest(&self, name: &str, n: usize) -> Vec<String> {
        let needle = name.to_ascii_lowercase();
        let mut scored: Vec<(f64, String)> = self
            .entries
            .iter()
            .flat_map(|e| std::iter::once(&e.id).chain(&e.aliases))
            .map(|cand| {
                let lc = cand.to_ascii_lowercase();
                // Compare against the bare name too, so "Llama-2-7b" finds the org-qualified id.
                let bare = lc.rsplit('/').next().unwrap_or(&lc).to_string();
                let s =
                    strsim::jaro_winkler(&needle, &lc).max(strsim::jaro_winkler(&needle, &bare));
                (s, cand.clone())
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<String> = Vec::new();
        for (_, c) in scored {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&c)) {
                out.push(c);
            }
            if out.len() == n {
                break;
            }
        }
        out
    }
}

fn looks_like_path(name: &str) -> bool {
    name.ends_with(".json")
        || name.starts_with('/')
        || name.starts_with("./")
        || name.starts_with("../")
        || name.starts_with('~')
        || name.contains('\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::test_support::{cat, spec};
    use crate::units::Dtype;

    #[test]
    fn llm_catalog_covers_the_datasets_and_required_models() {
        for name in [
            "llama-2-7b",
            "llama-2-13b",
            "llama-2-70b",
            "llama-3-8b",
            "llama-3-70b",
            "llama-3.1-8b",
            "llama-3.1-70b",
            "llama-3.1-405b",
            "mistral-7b",
            "mixtral-8x7b",
            "mixtral-8x22b",
            "qwen2-7b",
            "qwen2-72b",
            "qwen2.5-7b",
            "qwen2.5-72b",
            "gemma-2-9b",
            "gemma-2-27b",
            "phi-3-mini",
            "falcon-40b",
            "bloom",
            "gpt-j-6b",
            "opt-6.7b",
            "gpt2",
            "flan-t5-xl",
            "google/flan-t5-xxl",
            "google/flan-ul2",
            "ibm/mpt-7b-instruct2",
            "bigscience/mt0-xxl",
            "Salesforce/codegen2-16B",
            "llama-7b",
            "llama-13b",
            "EleutherAI/gpt-neox-20b",
            "bigcode/starcoder",
            "Qwen/Qwen1.5-7B",
            "Deci/DeciLM-7B",
            "BAAI/Aquila-7B",
            "bigscience/bloom-7b1",
            "facebook/opt-6.7b",
            "huggyllama/llama-7b",
            "tiny-llama",
            "tiny-gpt2",
            "small-llama",
        ] {
            spec(name);
        }
        // Every alias is unique across the catalog.
        let mut seen = std::collections::HashSet::new();
        for e in cat().entries() {
            for n in std::iter::once(&e.id).chain(&e.aliases) {
                assert!(
                    seen.insert(n.to_ascii_lowercase()),
                    "duplicate catalog name {n}"
                );
            }
        }
    }

    #[test]
    fn llm_aliases_resolve_case_insensitively() {
        let a = spec("MISTRAL-7B");
        assert_eq!(a.id, "mistralai/Mistral-7B-v0.1");
        assert_eq!(spec("mistralai/mistral-7b-v0.1").id, a.id);
        assert_eq!(spec("  Llama-7B ").id, "huggyllama/llama-7b");
        assert_eq!(spec("gpt2").id, "openai-community/gpt2");
        let tiny = spec("tiny-llama");
        assert_eq!(
            (tiny.hidden, tiny.layers, tiny.heads, tiny.kv_heads),
            (64, 2, 4, 2.0)
        );
        assert_eq!(tiny.dtype, Dtype::F32);
        assert!(tiny.published_params.is_none());
        let raw = cat().config_json("tiny-gpt2").unwrap();
        assert!(raw.contains("\"n_embd\": 64"), "{raw}");
    }

    #[test]
    fn llm_unknown_name_lists_close_catalog_names() {
        let err = cat().resolve("lama-2-7b").unwrap_err();
        let ModelError::Unknown { closest, .. } = &err else {
            panic!("expected Unknown, got {err}")
        };
        assert!(closest.iter().any(|c| c == "llama-2-7b"), "{closest:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("'lama-2-7b'") && msg.contains("pilot catalog models"),
            "{msg}"
        );
    }

    #[test]
    fn llm_local_config_paths_load() {
        let dir = tempfile::tempdir().unwrap();
        let text = cat().config_json("llama-2-7b").unwrap();
        std::fs::write(dir.path().join("config.json"), &text).unwrap();
        for name in [dir.path().to_path_buf(), dir.path().join("config.json")] {
            let s = cat().resolve(name.to_str().unwrap()).unwrap();
            assert_eq!(s.params_total(), spec("llama-2-7b").params_total());
        }
        let missing = dir.path().join("nope").join("config.json");
        let err = cat().resolve(missing.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, ModelError::NotFound { .. }), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = cat().resolve(empty.path().to_str().unwrap()).unwrap_err();
        assert!(matches!(err, ModelError::NotFound { .. }), "{err}");
    }

    /// `shared/data/aiconfigurator` (or under `$PILOT_SHARED_DATA`); `None` when absent.
    fn aiconfigurator() -> Option<PathBuf> {
        crate::shared_data_with("aiconfigurator/model_configs").map(|d| d.join("aiconfigurator"))
    }

    #[test]
    fn llm_every_aiconfigurator_model_resolves_by_its_hub_id() {
        let Some(dir) = aiconfigurator() else { return };
        let mut names = Vec::new();
        for f in std::fs::read_dir(dir.join("model_configs")).unwrap() {
            let file = f.unwrap().file_name().into_string().unwrap();
            if let Some(stem) = file
                .strip_suffix("_config.json")
                .filter(|s| !s.ends_with("_hf_quant"))
            {
                names.push(stem.replacen("--", "/", 1));
            }
        }
        assert_eq!(names.len(), 86);
        let mut refused = 0;
        for name in &names {
            match cat().resolve(name) {
                Ok(s) => assert!(s.params_total().0 > 0.0, "{name}"),
                // Refused with the feature named: known, but not guessed at.
                Err(ModelError::Unsupported { feature, .. }) => {
                    assert!(feature.contains('\''), "{name}: {feature}");
                    refused += 1;
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert!(
            refused < names.len() / 3,
            "{refused} of {} refused",
            names.len()
        );
        // Every model the measurements name resolves to a spec pilot can size.
        let text = std::fs::read_to_string(dir.join("silicon_sample.csv")).unwrap();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let col = rows
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "model_path")
            .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for r in rows.records() {
            seen.insert(r.unwrap()[col].to_string());
        }
        for name in &seen {
            cat()
                .resolve(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(spec("zhipuai/GLM-5").id, "zai-org/GLM-5");
        assert_eq!(spec("nvidia/Qwen3-32B-NVFP4").id, "Qwen/Qwen3-32B");
    }

    #[test]
    fn llm_unmodelled_architectures_are_refused_by_name() {
        let err = cat().resolve("deepseek-ai/DeepSeek-V4-Pro").unwrap_err();
        assert!(matches!(err, ModelError::Unsupported { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("compress_ratios") && msg.contains("DeepSeek-V4-Pro"),
            "{msg}"
        );
        // An attention type pilot has never seen, in a config pilot otherwise reads.
        let mut cfg: serde_json::Value =
            serde_json::from_str(&cat().config_json("openai/gpt-oss-20b").unwrap()).unwrap();
        cfg["layer_types"][3] = "ring_attention".into();
        let err = LlmSpec::from_config_json("x", &cfg.to_string()).unwrap_err();
        assert!(
            matches!(err, ModelError::Unsupported { .. })
                && err.to_string().contains("ring_attention"),
            "{err}"
        );
        let mut cfg: serde_json::Value =
            serde_json::from_str(&cat().config_json("nvidia/Nemotron-H-56B-Base-8K").unwrap())
                .unwrap();
        let pattern = cfg["hybrid_override_pattern"]
            .as_str()
            .unwrap()
            .replacen('M', "Q", 1);
        cfg["hybrid_override_pattern"] = pattern.into();
        let err = LlmSpec::from_config_json("y", &cfg.to_string()).unwrap_err();
        assert!(err.to_string().contains("'Q'"), "{err}");
        // A pattern of the wrong length is malformed and says both numbers.
        cfg["hybrid_override_pattern"] = "M*".into();
        let err = LlmSpec::from_config_json("y", &cfg.to_string()).unwrap_err();
        assert!(
            err.to_string().contains("2 layers") && err.to_string().contains("118"),
            "{err}"
        );
    }

    #[test]
    fn llm_local_config_picks_up_hf_quant_config_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let text = cat().config_json("Qwen/Qwen3-32B").unwrap();
        std::fs::write(dir.path().join("config.json"), &text).unwrap();
        let plain = cat().resolve(dir.path().to_str().unwrap()).unwrap();
        assert!(plain.checkpoint.is_none());
        std::fs::write(
            dir.path().join("hf_quant_config.json"),
            r#"{"quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head"]}}"#,
        )
        .unwrap();
        for name in [dir.path().to_path_buf(), dir.path().join("config.json")] {
            let s = cat().resolve(name.to_str().unwrap()).unwrap();
            let c = s.checkpoint.as_ref().unwrap();
            assert_eq!(
                (c.weights, c.kv_cache, c.read_from),
                (
                    crate::quant::Quantization::Nvfp4,
                    Some(Dtype::Fp8),
                    "hf_quant_config.json"
                )
            );
            assert!(s.checkpoint_weight_bytes().0 < plain.checkpoint_weight_bytes().0 / 3.0);
        }
    }
}
