//! Printing that treats a closed pipe as a normal end, the one table style (core's), notes,
//! and a command's [`Output`].

use pilot_core::command::Output;
use std::io::Write;

pub use pilot_core::table::table;

/// Writes `text` and a newline to stdout; a broken pipe surfaces as an `io::Error` that
/// `main` treats as success.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Prints notes (assumptions made, data dropped) on stderr, one `note:` line each, so that
/// stdout stays the result a script reads.
pub fn notes<S: AsRef<str>>(notes: &[S]) {
    for n in notes {
        eprintln!("note: {}", n.as_ref());
    }
}

/// Prints what a command returned: notes and log lines on stderr, then the text on stdout;
/// a failure the output carries becomes the error (after the text, so a failed run still
/// shows what it measured).
pub fn printed(out: Output) -> anyhow::Result<()> {
    notes(&out.notes);
    for line in &out.log {
        eprintln!("{line}");
    }
    // `--quiet` leaves no text: print no empty line either.
    if !out.text.trim().is_empty() {
        emit(out.text.trim_end())?;
    }
    match out.failure {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}
