//! The byte-level fallback tokenizer.
//!
//! No tokenizer files can be downloaded, and latency does not depend on which ids a prompt
//! holds, only on how many. So text is tokenized one id per UTF-8 byte (`byte % vocab`), and
//! prompts may also be sent as token-id arrays (`"prompt": [1, 2, 3]`, as vLLM accepts), which
//! is how a benchmark controls prompt length exactly. Output ids decode to short printable
//! placeholders: the ASCII character for printable ASCII ids, otherwise `<id>`. Text is for
//! display only; `usage` counts ids.

/// Text to ids, one per UTF-8 byte.
pub fn encode(text: &str, vocab_size: usize) -> Vec<u32> {
    text.bytes()
        .map(|b| (b as usize % vocab_size) as u32)
        .collect()
}

/// One id to its placeholder text.
pub fn decode_token(id: u32) -> String {
    match u8::try_from(id) {
        Ok(b) if b.is_ascii_graphic() || b == b' ' => char::from(b).to_string(),
        _ => format!("<{id}>"),
    }
}

/// A chat as one prompt: `role: content` lines, then `assistant:` (no model's real template
/// is known without its tokenizer files).
pub fn chat_prompt<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::new();
    for (role, content) in messages {
        text.push_str(role);
        text.push_str(": ");
        text.push_str(content);
        text.push('\n');
    }
    text.push_str("assistant:");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_map_to_ids_and_back_to_placeholders() {
        assert_eq!(encode("hé", 512), vec![104, 0xc3, 0xa9]);
        assert_eq!(encode("\u{ff}", 100), vec![0xc3 % 100, 0xbf % 100]);
        assert_eq!(decode_token(104), "h");
        assert_eq!(decode_token(300), "<300>");
        assert_eq!(chat_prompt([("user", "hi")]), "user: hi\nassistant:");
    }
}
