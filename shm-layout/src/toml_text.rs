//! Where a TOML error points, in the processes' own words: the 1-based line and column of a
//! byte offset, and the dotted key set there (`flow.edge_bps`). The hedger, the order gateway
//! and the feed handler each report a config error as one line naming the key (toml's own
//! `Display` quotes the source in several lines, which may hold a credential).
//!
//! Text only: no TOML parser here, so any crate can use it on `toml::de::Error::span`.
//!
//! ```
//! use shm_layout::toml_text::{key_at, line_col};
//! let text = "a = 1\n[flow]\nedge_bps = x\n";
//! let at = text.find('x').unwrap();
//! assert_eq!(line_col(text, at), (3, 12));
//! assert_eq!(key_at(text, at).as_deref(), Some("flow.edge_bps"));
//! ```

/// The 1-based line and column (in bytes) of byte `offset` in `text` (clamped to its end).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    (line, before.len() - line_start + 1)
}

/// The dotted key set on the line at byte `offset`: the last `[table]` header above it, then
/// the line's own key (`table.key`); on a header line, that table; on a line without a plain
/// key (a value that runs on, a malformed line), the table alone. `None` when there is neither,
/// or when the table's name is not plain (its key could not be named right).
///
/// Only plain names (ASCII letters, digits, `_ - . "`) are ever returned, never a fragment of
/// a malformed line, which might be a credential (`password hunter2 = x`).
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let (line, _) = line_col(text, offset);
    let mut lines = text.lines();
    let above = lines.by_ref().take(line - 1);
    let table = above.filter_map(header).last();
    let src = lines.next().unwrap_or("");
    if let Some(h) = header(src) {
        return plain(h).then(|| h.to_string());
    }
    if table.is_some_and(|t| !plain(t)) {
        return None;
    }
    let key = src
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| plain(k));
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k.to_string()),
        (t, None) => t.map(str::to_string),
    }
}

/// The name in a `[table]` or `[[array]]` header line.
fn header(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.trim_matches(['[', ']']).trim())
}

fn plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_dotted_by_their_table_and_fragments_are_never_named() {
        let text = "top = 1\n[a]\nb = 2\n[[c.d]]\ne=3\n\npassword hunter2 = x\n[\"x y\"]\nf = 4\n";
        let at = |s: &str| key_at(text, text.find(s).unwrap());
        assert_eq!(at("1").as_deref(), Some("top"));
        assert_eq!(at("[a]").as_deref(), Some("a"));
        assert_eq!(at("2").as_deref(), Some("a.b"));
        assert_eq!(at("3").as_deref(), Some("c.d.e"));
        assert_eq!(
            at("hunter2").as_deref(),
            Some("c.d"),
            "the table, never the line"
        );
        assert_eq!(
            at("4"),
            None,
            "under a table whose name is not plain, nothing is named"
        );
        assert_eq!(
            key_at("x = ", 99).as_deref(),
            Some("x"),
            "past the end: the last line"
        );
        assert_eq!(key_at("", 0), None);
    }

    #[test]
    fn line_and_column_are_one_based_bytes() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\n", 3), (2, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
