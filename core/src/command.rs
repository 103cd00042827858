//! What a clap-free command returns to the binary.
//!
//! Each stage crate has a `commands` module: one function per `pilot` subcommand, taking
//! paths and options (no clap) and returning an [`Output`]. The binary parses flags, calls
//! it and prints the output, so every command's behaviour can be tested without a process
//! and the binary stays a list of flags.

/// What a command prints: `text` on stdout; on stderr, `notes` (assumptions made, data
/// dropped) as `note:` lines and then `log` lines as they are (what was written where), so
/// that a pipeline reading the text never mistakes a warning for a result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub text: String,
    pub notes: Vec<String>,
    pub log: Vec<String>,
    /// Why the command failed although it has a result to show (a benchmark that measured
    /// nothing still prints its table and keeps its files): the binary prints the output
    /// first, then this as the error, and exits non-zero.
    pub failure: Option<String>,
}

impl Output {
    /// Text alone, with nothing to say on stderr.
    pub fn text(text: impl Into<String>) -> Output {
        Output {
            text: text.into(),
            ..Output::default()
        }
    }
}
