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
            let v = x[self.feature[n] as usize];
            node = if goes_left(self.decision[n], self.threshold[n], v) {
                self.left[n]
            } else {
                self.right[n]
            };
        }
        self.leaf[!node as usize]
    }
}

/// Whether a node's value `v` goes left (LightGBM's `NumericalDecision`, as the module doc
/// says).
#[inline]
fn goes_left(decision: u8, threshold: f64, v: f64) -> bool {
    let missing = (decision >> 2) & 3;
    let v = if v.is_nan() && missing != 2 { 0.0 } else { v };
    let go_default = (missing == 1 && v.abs() <= 1e-35) || (missing == 2 && v.is_nan());
    if go_default {
        decision & 2 != 0
    } else {
        v <= threshold
    }
}

/// A sum of trees (one LightGBM regression booster).
///
/// Evaluation runs on a compiled copy of the trees ([`Flat`]), built on the first
/// prediction: change `trees` only before predicting with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Ensemble {
    pub trees: Vec<Tree>,
    #[serde(skip)]
    flat: FlatCache,
}

/// The compiled trees, built once; not part of the file, nor of equality.
#[derive(Clone, Default)]
struct FlatCache(std::sync::OnceLock<Flat>);

impl PartialEq for FlatCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for FlatCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlatCache")
    }
}

/// A node of [`Flat`]: an internal node's children sit side by side (`left`, `left + 1`), and
/// a leaf is a node whose children are itself, so that every tree can take the same number
/// of steps (its depth) with no test for having arrived.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The split threshold; +inf for a leaf.
    threshold: f64,
    left: u32,
    feature: u16,
    decision: u8,
    /// [`SLOW`] when a value must go through [`goes_left`] even when it is a number (missing
    /// type "zero"), [`LEAF`] for a leaf.
    flags: u8,
}

const SLOW: u8 = 1;
const LEAF: u8 = 2;

/// Every tree of an ensemble in one array, evaluated four trees at a time: the four walks
/// are independent, so their memory loads overlap instead of waiting on one another. The
/// leaf values are summed in tree order, as [`Tree::eval`]'s sum is, so the prediction is
/// the same to the bit.
#[derive(Debug, Clone, Default)]
struct Flat {
    nodes: Vec<Node>,
    /// A leaf node's value (0 for internal nodes).
    values: Vec<f64>,
    /// Per tree: its root node and its depth (steps from the root to its deepest leaf).
    roots: Vec<(u32, u32)>,
}

impl Flat {
    fn new(trees: &[Tree]) -> Flat {
        let mut f = Flat::default();
        for t in trees {
            // Breadth first from the root; `(slot, child)`: `child` as in `Tree`, placed at
            // `slot`, at depth `d`.
            let root = f.nodes.len() as u32;
            f.push_placeholder();
            let mut queue = std::collections::VecDeque::from([(root, 0i32, 0u32)]);
            let mut depth = 0;
            while let Some((slot, child, d)) = queue.pop_front() {
                depth = depth.max(d);
                let slot_ = slot as usize;
                if child < 0 || t.feature.is_empty() {
                    let leaf = if t.feature.is_empty() {
                        0
                    } else {
                        !child as usize
                    };
                    f.nodes[slot_] = Node {
                        threshold: f64::INFINITY,
                        left: slot,
                        feature: 0,
                        decision: 0,
                        flags: LEAF,
                    };
                    f.values[slot_] = t.leaf[leaf];
                    continue;
                }
                let n = child as usize;
                let left = f.nodes.len() as u32;
                f.push_placeholder();
                f.push_placeholder();
                let decision = t.decision[n];
                f.nodes[slot_] = Node {
                    threshold: t.threshold[n],
                    left,
                    feature: t.feature[n],
                    decision,
                    flags: if (decision >> 2) & 3 == 1 { SLOW } else { 0 },
                };
                queue.push_back((left, t.left[n], d + 1));
                queue.push_back((left + 1, t.right[n], d + 1));
            }
            f.roots.push((root, depth));
        }
        f
    }

    fn push_placeholder(&mut self) {
        self.nodes.push(Node {
            threshold: f64::INFINITY,
            left: 0,
            feature: 0,
            decision: 0,
            flags: LEAF,
        });
        self.values.push(0.0);
    }

    /// One step down from `node`.
    #[inline(always)]
    fn step(&self, node: u32, x: &[f64]) -> u32 {
        let n = &self.nodes[node as usize];
        let v = x[n.feature as usize];
        // A leaf's threshold is +inf: a number never goes right of it.
        let right = if n.flags & SLOW == 0 && !v.is_nan() {
            v > n.threshold
        } else {
            n.flags & LEAF == 0 && !goes_left(n.decision, n.threshold, v)
        };
        n.left + right as u32
    }

    fn predict(&self, x: &[f64]) -> f64 {
        // The same sum as `Iterator::sum` of the trees' values: its identity, then each
        // tree's value in order.
        let mut sum: f64 = std::iter::empty::<f64>().sum();
        let mut groups = self.roots.chunks_exact(4);
        for g in &mut groups {
            let mut n = [g[0].0, g[1].0, g[2].0, g[3].0];
            let depth = g.iter().map(|r| r.1).max().unwrap_or(0);
            for _ in 0..depth {
                for k in &mut n {
                    *k = self.step(*k, x);
                }
            }
            for k in n {
                sum += self.values[k as usize];
            }
        }
        for &(root, depth) in groups.remainder() {
            let mut k = root;
            for _ in 0..depth {
                k = self.step(k, x);
            }
            sum += self.values[k as usize];
        }
        sum
    }
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
        Ok(Ensemble {
            trees,
            flat: FlatCache::default(),
        })
    }

    /// The prediction for one row: the sum of each tree's [`Tree::eval`], in tree order.
    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.flat
            .0
            .get_or_init(|| Flat::new(&self.trees))
            .predict(x)
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

    /// The sum the compiled trees replace: each tree's own walk, in order.
    fn tree_by_tree(e: &Ensemble, x: &[f64]) -> f64 {
        e.trees.iter().map(|t| t.eval(x)).sum()
    }

    #[test]
    fn compiled_trees_sum_to_the_same_bits() {
        // Missing values as zeros (missing type 1) and as NaN (type 2), on rows with both,
        // and single-leaf trees (a constant target after the first).
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..600 {
            let a = if i % 5 == 0 {
                0.0
            } else {
                (i % 23) as f64 / 3.0 - 4.0
            };
            let b = if i % 11 == 0 {
                f64::NAN
            } else {
                (i / 23) as f64
            };
            let c = (i % 4) as f64;
            xs.extend([a, b, c]);
            ys.push((a * b.max(1.0) + c) as f32);
        }
        let mut checked = 0;
        for zero_as_missing in [false, true] {
            let ds = Dataset::from_slice(&xs, &ys, 3, true).unwrap();
            let params = serde_json::json!({"objective": "regression", "num_iterations": 41,
                "num_leaves": 9, "min_data_in_leaf": 3, "verbose": -1, "seed": 2,
                "num_threads": 1, "deterministic": true, "zero_as_missing": zero_as_missing});
            let b = Booster::train(ds, &params).unwrap();
            let e = Ensemble::from_lightgbm(&b.save_string().unwrap()).unwrap();
            let mut rows: Vec<[f64; 3]> = xs.chunks(3).map(|r| [r[0], r[1], r[2]]).collect();
            rows.extend([[f64::NAN; 3], [0.0; 3], [-0.0, 1e-40, f64::INFINITY]]);
            for r in rows {
                let (a, b) = (e.predict(&r), tree_by_tree(&e, &r));
                assert_eq!(a.to_bits(), b.to_bits(), "{r:?}: {a} vs {b}");
                checked += 1;
            }
        }
        assert_eq!(checked, 1206);
        // Missing type 1 ("zero", decision 4 and 6 = default left), 0 (2) and 2 (8, 10) by
        // hand, in a tree whose leaves lie at depths 1 to 3.
        let text = "Tree=0\nsplit_feature=0 1 2\nthreshold=0.5 -1 2\ndecision_type=4 6 10\n\
            left_child=1 -1 -3\nright_child=-2 2 -4\nleaf_value=1 2 4 8\n\
            Tree=1\nsplit_feature=1\nthreshold=0\ndecision_type=2\nleft_child=-1\n\
            right_child=-2\nleaf_value=16 32\nTree=2\nsplit_feature=2\nthreshold=3\n\
            decision_type=8\nleft_child=-1\nright_child=-2\nleaf_value=64 128\n";
        let e = Ensemble::from_lightgbm(text).unwrap();
        let vals = [
            0.0,
            -0.0,
            1e-40,
            -1e-36,
            0.3,
            0.7,
            -2.0,
            5.0,
            f64::NAN,
            f64::INFINITY,
        ];
        let mut leaves = std::collections::BTreeSet::new();
        for a in vals {
            for b in vals {
                for c in vals {
                    let x = [a, b, c];
                    let (p, q) = (e.predict(&x), tree_by_tree(&e, &x));
                    assert_eq!(p.to_bits(), q.to_bits(), "{x:?}: {p} vs {q}");
                    leaves.insert(p as u32);
                }
            }
        }
        assert!(leaves.len() >= 10, "{leaves:?}");
        let constant =
            Ensemble::from_lightgbm("Tree=0\nleaf_value=0.5\nTree=1\nleaf_value=-0.25\n").unwrap();
        assert_eq!(constant.predict(&[]), 0.25);
    }

    #[test]
    fn compiled_trees_match_the_shipped_predictor() {
        let p = crate::Predictor::shipped().unwrap();
        let n = p.feature_names.len();
        for (i, t) in p.targets.iter().enumerate() {
            for row in 0..40 {
                let x: Vec<f64> = (0..n)
                    .map(|j| ((i * 31 + row * 17 + j * 7) % 29) as f64 / 4.0 - 2.0)
                    .collect();
                let (a, b) = (t.ensemble.predict(&x), tree_by_tree(&t.ensemble, &x));
                assert_eq!(a.to_bits(), b.to_bits(), "{}: {a} vs {b}", t.target);
            }
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
