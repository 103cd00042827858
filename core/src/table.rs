//! The one style of the tables pilot prints (comfy-table's `UTF8_FULL_CONDENSED`), so that
//! every command's tables look alike and a style change is made once.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

/// A table with a header row; each row has one cell per header.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_has_its_header_and_rows() {
        let t = table(&["a", "b"], [vec!["1".to_string(), "2".to_string()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[1].contains('a') && lines[3].contains('2'), "{t}");
    }
}
