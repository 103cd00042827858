//! A minimal server-sent-events decoder: bytes in, the `data` of each event out.
//!
//! Hand-written rather than a crate because the client's cost per token is a benchmark target:
//! this keeps one buffer per stream and hands out borrowed slices (no allocation per event
//! unless an event spans several `data:` lines). It follows the WHATWG rules the OpenAI-style
//! servers use: lines end in `\n` or `\r\n`, a blank line ends an event, `data:` lines (one
//! optional space after the colon) accumulate, other fields and `:` comments are ignored.

/// Incremental decoder for one stream.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of an incomplete line.
    partial: Vec<u8>,
    /// `data` of the event being read.
    data: Vec<u8>,
    has_data: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `on_event` with the data of each event they complete. Stops early
    /// (returning `false`) if `on_event` returns `false`.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(&[u8]) -> bool) -> bool {
        while let Some(nl) = memchr(b'\n', bytes) {
            let line: &[u8] = if self.partial.is_empty() {
                &bytes[..nl]
            } else {
                self.partial.extend_from_slice(&bytes[..nl]);
                &self.partial
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let keep_going = if line.is_empty() {
                let go = !self.has_data || on_event(&self.data);
                self.data.clear();
                self.has_data = false;
                go
            } else {
                if let Some(value) = line.strip_prefix(b"data:") {
                    let value = value.strip_prefix(b" ").unwrap_or(value);
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                }
                true
            };
            self.partial.clear();
            bytes = &bytes[nl + 1..];
            if !keep_going {
                return false;
            }
        }
        self.partial.extend_from_slice(bytes);
        true
    }

    /// Whether bytes of an unfinished event are buffered (a stream that ends here was cut).
    pub fn pending(&self) -> bool {
        self.has_data || !self.partial.is_empty()
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, |e| {
                out.push(String::from_utf8_lossy(e).into_owned());
                true
            });
        }
        out
    }

    #[test]
    fn splits_events_across_and_within_reads() {
        assert_eq!(
            events(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]),
            vec!["{\"a\":1}", "[DONE]"]
        );
        assert_eq!(
            events(&[b"da", b"ta: x", b"y\r\n", b"\r\n", b"data:z\n\n"]),
            vec!["xy", "z"]
        );
        assert_eq!(
            events(&[b": keep-alive\nevent: message\nid: 3\ndata: a\ndata: b\n\n\n"]),
            vec!["a\nb"]
        );
    }

    #[test]
    fn reports_unfinished_events_and_stops_on_request() {
        let mut d = SseDecoder::new();
        assert!(d.feed(b"data: half", |_| true));
        assert!(d.pending());
        let mut seen = 0;
        assert!(!d.feed(b"\n\ndata: b\n\n", |_| {
            seen += 1;
            false
        }));
        assert_eq!(seen, 1);
    }
}
