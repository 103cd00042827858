//! The HTML document a report is: a title, sections of headings, text, tables and figures,
//! with the style inline so that the file opens offline and looks the same anywhere.
//!
//! Every piece of text goes through [`escape`]: a model name, an endpoint or an error read
//! from a run's files could hold `<` or `&`, and must show as text, not become markup. Only
//! [`Page::figure`] takes markup, the SVG [`crate::plot::svg`] drew.

use crate::plot::{Rgb, hex};

/// `text` safe in HTML text and in double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The style of every report: readable without any font the system may lack (generic
/// families only), wide tables scroll rather than squeeze.
const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1240px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}\
h3{font-size:15px}table{border-collapse:collapse;font-size:12px;margin:8px 0}\
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}\
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}\
.scroll{overflow-x:auto}.warn{background:#fff4e0;border-left:4px solid #e69500;padding:6px 10px}\
.note{color:#555}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}\
dt{font-weight:bold}dd{margin:0;word-break:break-all}\
.swatch{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle}\
figure{margin:12px 0}figure svg{max-width:100%;height:auto}";

/// An HTML document being built, piece by piece, in reading order.
#[derive(Debug, Clone)]
pub struct Page {
    title: String,
    body: String,
}

impl Page {
    pub fn new(title: &str) -> Page {
        let mut page = Page {
            title: title.to_string(),
            body: String::new(),
        };
        page.heading(1, title);
        page
    }

    /// A heading, `level` 1 to 3.
    pub fn heading(&mut self, level: u8, text: &str) -> &mut Page {
        let level = level.clamp(1, 3);
        self.body
            .push_str(&format!("<h{level}>{}</h{level}>\n", escape(text)));
        self
    }

    pub fn paragraph(&mut self, text: &str) -> &mut Page {
        self.body.push_str(&format!("<p>{}</p>\n", escape(text)));
        self
    }

    /// Text in a muted style: how to read what follows.
    pub fn note(&mut self, text: &str) -> &mut Page {
        self.body
            .push_str(&format!("<p class=\"note\">{}</p>\n", escape(text)));
        self
    }

    /// Text that must not be missed: an incomplete run, a missing input.
    pub fn warning(&mut self, text: &str) -> &mut Page {
        self.body
            .push_str(&format!("<p class=\"warn\">{}</p>\n", escape(text)));
        self
    }

    /// Name-value pairs (a run's metadata).
    pub fn definitions(&mut self, pairs: &[(String, String)]) -> &mut Page {
        self.body.push_str("<dl>\n");
        for (k, v) in pairs {
            self.body
                .push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", escape(k), escape(v)));
        }
        self.body.push_str("</dl>\n");
        self
    }

    /// A colour key: what each colour of the figures stands for. Drawn with CSS, not SVG,
    /// so that the page's `<svg>` elements are its plots alone.
    pub fn legend(&mut self, entries: &[(Rgb, String)]) -> &mut Page {
        self.body.push_str("<ul class=\"legend\">\n");
        for (color, name) in entries {
            self.body.push_str(&format!(
                "<li><span class=\"swatch\" style=\"background:{}\"></span>{}</li>\n",
                hex(*color),
                escape(name)
            ));
        }
        self.body.push_str("</ul>\n");
        self
    }

    /// A table; wide ones scroll sideways.
    pub fn table(&mut self, header: &[String], rows: &[Vec<String>]) -> &mut Page {
        self.body.push_str("<div class=\"scroll\"><table>\n<tr>");
        for h in header {
            self.body.push_str(&format!("<th>{}</th>", escape(h)));
        }
        self.body.push_str("</tr>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                self.body.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table></div>\n");
        self
    }

    /// A figure: `svg` is markup from [`crate::plot::svg`], whose text plotters escapes.
    pub fn figure(&mut self, svg: &str) -> &mut Page {
        self.body.push_str("<figure>");
        self.body.push_str(svg);
        self.body.push_str("</figure>\n");
        self
    }

    /// The whole document.
    pub fn to_html(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(&self.title),
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_run_files_cannot_become_markup() {
        assert_eq!(
            escape("<script>a&b\"c'</script>"),
            "&lt;script&gt;a&amp;b&quot;c&#39;&lt;/script&gt;"
        );
        let mut page = Page::new("model <x>");
        page.table(&["a<b".into()], &[vec!["<img src=x>".into()]])
            .definitions(&[("endpoint".into(), "http://h/<p>".into())]);
        let html = page.to_html();
        assert!(!html.contains("<img") && !html.contains("<x>") && !html.contains("/<p>"));
        assert!(html.contains("model &lt;x&gt;"));
    }
}
