//! A reader and evaluator of LightGBM regression models (numerical splits only).
//!
//! LightGBM's `Booster` is an FFI handle: not `Sync`, one C call per prediction batch, and a
//! model text of ~20 lines per tree that prediction mostly ignores. pilot trains with
//! LightGBM, then keeps only what evaluation needs (`split_feature`, `threshold`,
//! `decision_type`, `left_child`, `right_child`, `leaf_value` of each tree) in [`Ensemble`],
//! which evaluates natively and is what the shipped predictor file stores. The tests check
//! that it reproduces LightGBM's own predictions.
//!
//! Decision semantics follow LightGBM's `Tree::NumericalDecision`: `decision_type` bit 1 is
//! "default left", bits 2-3 the missing type (0 none, 1 zero, 2 NaN); a NaN with missing type
//! other than NaN is treated as 0; a value `<= threshold` goes left. A child index `< 0` is
//! leaf `!child`. LightGBM folds the initial score into the first tree, so the prediction is
//! the sum of one leaf per tree.

use serde::{Deserialize, Serialize};

/// One regression tree, as parallel arrays over internal nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub feature: Vec<u16>,
    pub threshold: Vec<f64>,
    pub decision: Vec<u8>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    pub leaf: Vec<f64>,
}

impl Tree {
    /// The leaf value for one row of features.
    #[inline]
    pub fn eval(&self, x: &[f64]) -> f64 {
        if self.feature.is_empty() {
            return self.leaf[0];
        }
        let mut node = 0i32;
        while node >= 0 {
            let n = node as usize;
            let mut v = x[self.feature[n] as usize];
            let d = self.decision[n];
            let missing = (d >> 2) & 3;
            if v.is_nan() && missing != 2 {
                v = 0.0;
            }
            let go_default = (missing == 1 && v.abs() <= 1e-35) || (missing == 2 && v.is_nan());
            let left = if go_default {
                d & 2 != 0
            } else {
                v <= self.threshold[n]
            };
            node = if left { self.left[n] } else { self.right[n] };
        }
        self.leaf[!node as usize]
    }
}

/// A sum of trees (one LightGBM regression booster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Ensemble {
    pub trees: Vec<Tree>,
}

impl Ensemble {
    /// Parses LightGBM's model text (`Booster::save_string`).
    pub fn from_lightgbm(text: &str) -> Result<Ensemble, String> {
        let mut trees = Vec::new();
        let mut cur: Option<std::collections::HashMap<&str, &str>> = None;
        let finish = |m: std::collections::HashMap<&str, &str>,
                      trees: &mut Vec<Tree>|
         -> Result<(), String> {
            let nums = |k: &str| -> Result<Vec<f64>, String> {
                match m.get(k) {
                    None => Ok(Vec::new()),
                    Some(s) => s
                        .split_whitespace()
                        .map(|t| t.parse::<f64>().map_err(|e| format!("{k}: '{t}': {e}")))
                        .collect(),
                }
            };
            let leaf = nums("leaf_value")?;
            if leaf.is_empty() {
                return Err("a tree without leaf_value".into());
            }
            if m.get("num_cat").is_some_and(|c| c.trim() != "0") {
                return Err("categorical splits are not supported".into());
            }
            let feature = nums("split_feature")?
                .into_iter()
                .map(|f| f as u16)
                .collect::<Vec<_>>();
            let tree = Tree {
                threshold: nums("threshold")?,
                decision: nums("decision_type")?
                    .into_iter()
                    .map(|f| f as u8)
                    .collect(),
                left: nums("left_child")?.into_iter().map(|f| f as i32).collect(),
                right: nums("right_child")?.into_iter().map(|f| f as i32).collect(),
                feature,
                leaf,
            };
            let n = tree.feature.len();
            if [
                tree.threshold.len(),
                tree.decision.len(),
                tree.left.len(),
                tree.right.len(),
            ]
            .iter()
            .any(|&l| l != n)
                || tree.leaf.len() != n + 1
            {
                return Err(format!("tree {} has inconsistent node arrays", trees.len()));
            }
            trees.push(tree);
            Ok(())
        };
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("Tree=") {
                if let Some(m) = cur.take() {
                    finish(m, &mut trees)?;
                }
                cur = Some(Default::default());
            } else if line.starts_with("end of trees") {
                if let Some(m) = cur.take() {
                    finish(m, &mut trees)?;
                }
                break;
            } else if let (Some(m), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                m.insert(k, v);
            }
        }
        if let Some(m) = cur.take() {
            finish(m, &mut trees)?;
        }
        Ok(Ensemble { trees })
    }

    /// The prediction for one row.
    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.trees.iter().map(|t| t.eval(x)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightgbm3::{Booster, Dataset};

    #[test]
    fn native_evaluation_matches_lightgbm() {
        // y = x0^2 + 3 x1 (with zeros and NaNs mixed in) on a small grid.
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..400 {
            let a = (i % 20) as f64 / 4.0 - 2.0;
            let b = (i / 20) as f64 / 5.0;
            let c = if i % 7 == 0 { f64::NAN } else { (i % 3) as f64 };
            xs.extend([a, b, c]);
            ys.push((a * a + 3.0 * b + if c.is_nan() { 1.0 } else { c }) as f32);
        }
        let ds = Dataset::from_slice(&xs, &ys, 3, true).unwrap();
        let params = serde_json::json!({"objective": "regression", "num_iterations": 30, "num_leaves": 7,
            "min_data_in_leaf": 5, "verbose": -1, "seed": 1, "num_threads": 1, "deterministic": true});
        let b = Booster::train(ds, &params).unwrap();
        let text = b.save_string().unwrap();
        let e = Ensemble::from_lightgbm(&text).unwrap();
        assert_eq!(e.trees.len(), 30);
        let ours: Vec<f64> = xs.chunks(3).map(|r| e.predict(r)).collect();
        let theirs = b.predict(&xs, 3, true).unwrap();
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!((a - b).abs() < 1e-9, "row {i}: ours {a}, LightGBM {b}");
        }
    }

    #[test]
    fn rejects_junk() {
        assert!(Ensemble::from_lightgbm("Tree=0\nleaf_value=abc\n").is_err());
        assert_eq!(
            Ensemble::from_lightgbm("nothing here").unwrap().trees.len(),
            0
        );
    }
}
