//! Printing that treats a closed pipe as a normal end, and the one table style.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::io::Write;

/// Writes `text` and a newline to stdout; a broken pipe surfaces as an `io::Error` that
/// `main` treats as success.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// A table with a header row.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}
