//! `--dataset`: workloads as `vllm bench serve` builds them, with the prompts themselves (not
//! only their lengths).
//!
//! - [`Dataset::Random`]: random token ids (exact-length text with `--tokenizer`), lengths
//!   uniform in `[len·(1−R), len·(1+R)]` (`--random-range-ratio R`, vLLM's definition).
//! - [`Dataset::ShareGpt`]: each conversation's first human turn, as text; its length is the
//!   tokenizer's count, the output length the reference reply's (or `--sharegpt-output-len`).
//! - [`Dataset::Prefix`]: `--num-prefixes` groups whose prompts share exactly the same first
//!   `--prefix-len` tokens (vLLM's `prefix_repetition`), so a prefix cache can help.
//! - [`Dataset::MultiTurn`]: conversations sent over the chat API, each turn carrying the
//!   history so far including the server's actual replies (see [`Talk`]).
//!
//! Trace files (`--dataset trace`) are [`crate::workload::Workload::detect`]'s kinds.

use crate::client::{Message, Prompt};
use crate::tokenize::PromptTokenizer;
use crate::workload::{Shape, WorkloadError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A `--dataset` kind that carries its prompts.
#[derive(Debug, Clone, PartialEq)]
pub enum Dataset {
    /// `--random-input-len`, `--random-output-len`, `--random-range-ratio`.
    Random {
        input: u32,
        output: u32,
        range_ratio: f64,
    },
    /// A ShareGPT JSON file; `output_len` (`--sharegpt-output-len`) overrides the replies'.
    ShareGpt {
        file: ShareGptFile,
        output_len: Option<u32>,
    },
    /// `--prefix-len`, `--suffix-len`, `--num-prefixes`, `--output-len`.
    Prefix {
        prefix: u32,
        suffix: u32,
        groups: u32,
        output: u32,
    },
    /// Conversations of a ShareGPT file (`file`), or synthetic ones of `turns` turns of
    /// `input` tokens each; `output` tokens per reply (synthetic, or `--sharegpt-output-len`).
    MultiTurn {
        file: Option<ShareGptFile>,
        turns: u32,
        input: u32,
        output: Option<u32>,
    },
}

/// The inclusive range `len·(1−r) ..= len·(1+r)`, at least 1 (vLLM's random dataset).
pub fn spread(len: u32, r: f64) -> std::ops::RangeInclusive<u32> {
    let lo = ((len as f64) * (1.0 - r)).floor().max(1.0) as u32;
    let hi = ((len as f64) * (1.0 + r)).ceil().max(lo as f64) as u32;
    lo..=hi
}

/// One turn of a conversation: the user's text (`None`: random text of `input` tokens) and
/// how many tokens the reply is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub user: Option<String>,
    pub input: u32,
    pub output: u32,
}

/// A conversation: its turns, sent one after another by one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub turns: Vec<Turn>,
}

/// A ShareGPT file's entries: (index, the turns as (from, value)).
type Entries = Vec<(usize, Vec<(String, String)>)>;

const SHAREGPT_SHAPE: &str = r#"expected a JSON array of {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}, ...]}"#;

/// Reads a ShareGPT file, checking every entry's shape: an entry that is not one is an error
/// naming its index (a wrong file otherwise yields "no usable requests" and no hint why).
fn read_sharegpt(path: &Path) -> Result<Entries, WorkloadError> {
    let err = |reason: String| WorkloadError {
        path: path.into(),
        reason,
        source: None,
    };
    let text = std::fs::read_to_string(path).map_err(|e| WorkloadError {
        path: path.into(),
        reason: "cannot read it".into(),
        source: Some(e.into()),
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| WorkloadError {
        path: path.into(),
        reason: format!("not JSON ({e}); {SHAREGPT_SHAPE}"),
        source: None,
    })?;
    let entries = v
        .as_array()
        .ok_or_else(|| err(format!("the top level is not an array; {SHAREGPT_SHAPE}")))?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let turns = e
            .get("conversations")
            .and_then(|c| c.as_array())
            .ok_or_else(|| {
                err(format!(
                    "entry {i} has no \"conversations\" array; {SHAREGPT_SHAPE}"
                ))
            })?;
        let mut pairs = Vec::with_capacity(turns.len());
        for (j, t) in turns.iter().enumerate() {
            let field = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
            match (field("from"), field("value")) {
                (Some(f), Some(v)) => pairs.push((f, v)),
                _ => {
                    return Err(err(format!(
                        "entry {i}, turn {j}: needs string fields \"from\" and \"value\"; {SHAREGPT_SHAPE}"
                    )));
                }
            }
        }
        out.push((i, pairs));
    }
    Ok(out)
}

/// A ShareGPT file, parsed at most once. [`ShareGptFile::check`] parses it before a run
/// starts (a wrong file is then refused before any server is contacted) and keeps its
/// entries, which the workload's loading then uses: the real ShareGPT file is about 600 MB,
/// and parsing it again cost as long as the first time. Clones share the parsed entries.
#[derive(Clone)]
pub struct ShareGptFile {
    path: PathBuf,
    entries: Arc<OnceLock<Entries>>,
}

impl ShareGptFile {
    /// The file at `path`, not read yet.
    pub fn new(path: impl Into<PathBuf>) -> ShareGptFile {
        ShareGptFile {
            path: path.into(),
            entries: Arc::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and checks the file's shape (see [`read_sharegpt`]), keeping its entries.
    pub fn check(&self) -> Result<(), WorkloadError> {
        self.entries().map(|_| ())
    }

    /// The file's entries: parsed on the first call, kept for the next.
    fn entries(&self) -> Result<&Entries, WorkloadError> {
        if let Some(e) = self.entries.get() {
            return Ok(e);
        }
        let parsed = read_sharegpt(&self.path)?;
        Ok(self.entries.get_or_init(|| parsed))
    }
}

/// The path only (run.json shows the workload as its `Debug`; the entries are the file's).
impl std::fmt::Debug for ShareGptFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.path.fmt(f)
    }
}

/// The same file, parsed or not.
impl PartialEq for ShareGptFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

/// How token counts are made: the tokenizer's, or the word estimate (`--tokenizer-fallback
/// estimate`).
#[derive(Clone, Copy)]
pub enum Counter<'a> {
    Tokenizer(&'a PromptTokenizer),
    Estimate,
}

/// Tokens per whitespace word, when no tokenizer is used.
pub const TOKENS_PER_WORD: f64 = 4.0 / 3.0;

impl Counter<'_> {
    pub fn count(&self, text: &str) -> u32 {
        match self {
            Counter::Tokenizer(t) => t.count(text).min(u32::MAX as usize) as u32,
            Counter::Estimate => {
                (text.split_whitespace().count() as f64 * TOKENS_PER_WORD).round() as u32
            }
        }
        .max(1)
    }
}

/// ShareGPT's first human turn and the reply after it, as `vllm bench serve` samples them:
/// (prompt text, its shape).
pub fn sharegpt_prompts(
    file: &ShareGptFile,
    counter: Counter,
    output_len: Option<u32>,
) -> Result<Vec<(String, Shape)>, WorkloadError> {
    let mut out = Vec::new();
    for (_, turns) in file.entries()? {
        let Some(q) = turns.iter().position(|(f, _)| f == "human") else {
            continue;
        };
        let Some((_, reply)) = turns.get(q + 1).filter(|(f, _)| f == "gpt") else {
            continue;
        };
        let prompt = turns[q].1.clone();
        let shape = Shape {
            input: counter.count(&prompt),
            output: output_len.unwrap_or_else(|| counter.count(reply)),
        };
        out.push((prompt, shape));
    }
    nonempty(file.path(), out.len())?;
    Ok(out)
}

/// Every ShareGPT conversation with at least one human turn followed by a reply, as turns
/// (the human's text; the reference reply's length, or `output_len`).
pub fn sharegpt_conversations(
    file: &ShareGptFile,
    counter: Counter,
    output_len: Option<u32>,
) -> Result<Vec<Conversation>, WorkloadError> {
    let mut out = Vec::new();
    for (_, turns) in file.entries()? {
        let mut conv = Vec::new();
        for w in turns.windows(2) {
            if w[0].0 == "human" && w[1].0 == "gpt" {
                conv.push(Turn {
                    input: counter.count(&w[0].1),
                    user: Some(w[0].1.clone()),
                    output: output_len.unwrap_or_else(|| counter.count(&w[1].1)),
                });
            }
        }
        if !conv.is_empty() {
            out.push(Conversation { turns: conv });
        }
    }
    nonempty(file.path(), out.len())?;
    Ok(out)
}

fn nonempty(path: &Path, n: usize) -> Result<(), WorkloadError> {
    if n == 0 {
        return Err(WorkloadError {
            path: path.into(),
            reason: format!(
                "no conversation has a human turn followed by a gpt reply; {SHAREGPT_SHAPE}"
            ),
            source: None,
        });
    }
    Ok(())
}

/// Synthetic conversations: `count` of `turns` turns of random text.
pub fn synthetic_conversations(turns: u32, input: u32, output: u32) -> Vec<Conversation> {
    vec![Conversation {
        turns: (0..turns)
            .map(|_| Turn {
                user: None,
                input,
                output,
            })
            .collect(),
    }]
}

/// One user's conversation in progress: what the next turn sends, and the history it
/// carries (the user's turns and the server's actual replies).
#[derive(Debug)]
pub struct Talk {
    /// The conversation's id in the request table: its first request's id.
    pub id: u64,
    turns: Vec<Turn>,
    next: usize,
    history: Vec<Message>,
    /// Tokens of the history (turns' lengths, replies' usage): the next request's input
    /// length when the server reports none.
    history_tokens: u32,
}

impl Talk {
    pub fn new(id: u64, conversation: &Conversation) -> Talk {
        Talk {
            id,
            turns: conversation.turns.clone(),
            next: 0,
            history: Vec::new(),
            history_tokens: 0,
        }
    }

    /// Whether every turn was sent (or the conversation was cut by a failure).
    pub fn done(&self) -> bool {
        self.next >= self.turns.len()
    }

    /// Whether the next turn, with the history so far, fits a context of `max` tokens (with a
    /// tenth to spare for the chat template, which pilot cannot count). A conversation that
    /// no longer fits ends there: its next turn would only be refused by the server.
    pub fn fits(&self, max: Option<u32>) -> bool {
        let (Some(max), Some(turn)) = (max, self.turns.get(self.next)) else {
            return true;
        };
        let input = f64::from(self.history_tokens + turn.input) * 1.1;
        input + f64::from(turn.output) <= f64::from(max)
    }

    /// The next turn's request: the history plus the user's turn (`random_text` makes text of
    /// a synthetic turn's length); its shape (input: the history's tokens and the new turn's)
    /// and its turn index.
    pub fn next_request(
        &mut self,
        random_text: impl FnOnce(u32) -> String,
    ) -> (Shape, Prompt, u32) {
        let turn = &self.turns[self.next];
        let text = turn.user.clone().unwrap_or_else(|| random_text(turn.input));
        self.history.push(Message::user(text));
        let shape = Shape {
            input: turn.input + self.history_tokens,
            output: turn.output,
        };
        self.history_tokens += turn.input;
        let index = self.next as u32;
        self.next += 1;
        (shape, Prompt::Chat(self.history.clone()), index)
    }

    /// Records the server's reply to the last turn; a failed turn ends the conversation
    /// (its next turn would carry a history the server never produced).
    /// `reply` is the text and its token count.
    pub fn answered(&mut self, reply: Option<(&str, u32)>) {
        match reply {
            Some((r, tokens)) => {
                self.history.push(Message::assistant(r.to_string()));
                self.history_tokens += tokens;
            }
            None => self.next = self.turns.len(),
        }
    }

    /// The history so far.
    pub fn history(&self) -> &[Message] {
        &self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_vllms_range() {
        assert_eq!(spread(100, 0.0), 100..=100);
        assert_eq!(spread(100, 0.5), 50..=150);
        assert_eq!(spread(3, 1.0), 1..=6);
    }

    #[test]
    fn a_wrong_sharegpt_file_names_the_entry_and_the_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        std::fs::write(
            &p,
            r#"[{"conversations":[{"from":"human","value":"hi"}]}, {"id": 3}]"#,
        )
        .unwrap();
        let e = sharegpt_prompts(&ShareGptFile::new(&p), Counter::Estimate, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("entry 1") && e.contains("\"conversations\""),
            "{e}"
        );
        std::fs::write(&p, "[{\"conversations\": [\n  {\"from\": 1}\n").unwrap();
        let e = sharegpt_prompts(&ShareGptFile::new(&p), Counter::Estimate, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("expected a JSON array"),
            "{e}"
        );
        std::fs::write(&p, r#"[{"conversations":[{"from":"human","value":5}]}]"#).unwrap();
        let e = sharegpt_prompts(&ShareGptFile::new(&p), Counter::Estimate, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry 0, turn 0"), "{e}");
    }

    #[test]
    fn a_checked_sharegpt_file_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        std::fs::write(
            &p,
            r#"[{"conversations":[{"from":"human","value":"hi there"},{"from":"gpt","value":"hello"}]}]"#,
        )
        .unwrap();
        let file = ShareGptFile::new(&p);
        file.check().unwrap();
        // Gone after the check: the prompts come from the entries it parsed, also in a clone.
        std::fs::remove_file(&p).unwrap();
        let prompts = sharegpt_prompts(&file.clone(), Counter::Estimate, Some(7)).unwrap();
        assert_eq!(prompts.len(), 1);
        assert_eq!(prompts[0].0, "hi there");
        assert_eq!(
            sharegpt_conversations(&file, Counter::Estimate, None)
                .unwrap()
                .len(),
            1
        );
        // Unchecked, the file is read when first needed.
        let e = sharegpt_prompts(&ShareGptFile::new(&p), Counter::Estimate, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read it"), "{e}");
        assert_eq!(format!("{file:?}"), format!("{p:?}"));
    }

    #[test]
    fn conversations_carry_the_servers_replies() {
        let conv = Conversation {
            turns: vec![
                Turn {
                    user: Some("first question".into()),
                    input: 2,
                    output: 5,
                },
                Turn {
                    user: None,
                    input: 3,
                    output: 5,
                },
            ],
        };
        let mut t = Talk::new(9, &conv);
        let (s0, p0, i0) = t.next_request(|_| unreachable!());
        assert_eq!((s0.input, i0), (2, 0));
        assert_eq!(
            p0,
            Prompt::Chat(vec![Message::user("first question".into())])
        );
        t.answered(Some(("the server said this", 5)));
        let (s1, p1, i1) = t.next_request(|n| format!("random {n}"));
        assert_eq!((s1.input, i1), (10, 1));
        assert_eq!(
            p1,
            Prompt::Chat(vec![
                Message::user("first question".into()),
                Message::assistant("the server said this".into()),
                Message::user("random 3".into()),
            ])
        );
        assert!(t.done());
        // Too long for the context: the conversation ends before the turn is sent.
        let mut t = Talk::new(2, &conv);
        assert!(t.fits(Some(8)) && !t.fits(Some(7)));
        t.next_request(|_| String::new());
        t.answered(Some(("reply", 20)));
        assert!(
            t.fits(Some(33)) && !t.fits(Some(32)),
            "(2 + 20 + 3) * 1.1 + 5"
        );
        assert!(t.fits(None));
        // A failure ends the conversation.
        let mut t = Talk::new(1, &conv);
        t.next_request(|_| String::new());
        t.answered(None);
        assert!(t.done());
    }
}
