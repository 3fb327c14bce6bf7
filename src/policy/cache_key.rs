//! Cache keys that ignore numeric literals, so `WHERE id = 1` and
//! `WHERE id = 2` share one analysis.
//!
//! No fact the policy reads comes from a numeric literal: relations,
//! functions, settings and bodies are names and strings. The lexer below is
//! deliberately small. It returns `None`, so that the exact text is the key,
//! whenever lexing depends on context it does not track. That covers
//! backslashes, prefixed strings (`E'..'`, `B'..'`, `X'..'`, `N'..'`),
//! Unicode escapes (`U&`), dollar quoting, non-ASCII bytes, and
//! unterminated strings or comments.

/// Returns `sql` with every numeric literal replaced by `?`, or `None` when the
/// text contains anything this lexer does not fully understand.
///
/// This runs on every statement, so it copies runs of ordinary bytes at once
/// and looks closer only at bytes that can start a token it cares about.
pub fn numeric_literal_key(sql: &str) -> Option<Vec<u8>> {
    let bytes = sql.as_bytes();
    if !bytes.is_ascii() || bytes.contains(&b'\\') {
        return None;
    }
    let mut key = Vec::with_capacity(bytes.len());
    let mut copied = 0;
    let mut i = 0;
    loop {
        i = next_token_start(bytes, i);
        let Some(&byte) = bytes.get(i) else { break };

        let next = bytes.get(i + 1).copied();
        i = match byte {
            b'\'' | b'"' => {
                if is_prefixed_quote(bytes, i) {
                    return None;
                }
                quoted_end(bytes, i, byte)?
            }
            b'-' if next == Some(b'-') => line_comment_end(bytes, i),
            b'/' if next == Some(b'*') => block_comment_end(bytes, i)?,
            b'$' if !next.is_some_and(|b| b.is_ascii_digit()) => return None,
            b'0'..=b'9' if i == 0 || !is_identifier_byte(bytes[i - 1]) => {
                key.extend_from_slice(&bytes[copied..i]);
                key.push(b'?');
                copied = digits_end(bytes, i);
                copied
            }
            _ => i + 1,
        };
    }
    key.extend_from_slice(&bytes[copied..]);
    Some(key)
}

/// Index of the first byte at or after `from` that may begin a token, or
/// the length of `bytes`. `bytes` must be ASCII.
fn next_token_start(bytes: &[u8], mut from: usize) -> usize {
    while let Some(chunk) = bytes.get(from..from + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else { break };
        if may_start_token(u64::from_le_bytes(word)) {
            if let Some(offset) = chunk.iter().position(|&byte| starts_token(byte)) {
                return from + offset;
            }
        }
        from += 8;
    }
    let tail = bytes.get(from..).unwrap_or_default();
    tail.iter().position(|&byte| starts_token(byte)).map_or(bytes.len(), |offset| from + offset)
}

/// Returns whether any of eight ASCII bytes lies in 0x22..=0x39, the range that
/// contains every byte [`starts_token`] accepts. Each byte is below 0x80, so
/// the additions cannot carry into the next byte.
fn may_start_token(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let at_least_low = word + (0x80 - 0x22) * ONES;
    let above_high = word + (0x80 - 0x3A) * ONES;
    at_least_low & !above_high & HIGH_BITS != 0
}

/// Bytes that may begin a quote, a comment, a parameter or a number.
fn starts_token(byte: u8) -> bool {
    TOKEN_STARTS[usize::from(byte)]
}

/// [`starts_token`] as a table, so the scan costs one load per byte.
static TOKEN_STARTS: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = matches!(byte as u8, b'\'' | b'"' | b'-' | b'/' | b'$' | b'0'..=b'9');
        byte += 1;
    }
    table
};

/// Returns whether the quote at `i` opens a prefixed string or identifier
/// (`E'`, `B'`, `U&'`, `U&"`), whose lexing this module does not follow.
fn is_prefixed_quote(bytes: &[u8], i: usize) -> bool {
    let Some(&previous) = i.checked_sub(1).and_then(|p| bytes.get(p)) else {
        return false;
    };
    previous == b'&' || (bytes[i] == b'\'' && is_identifier_byte(previous))
}

/// Removes `--` and `/* */` comments, which normalization keeps and which may
/// carry secrets. Returns `None` when a quote or comment is unterminated or a
/// dollar quote appears, so the caller can leave the text out.
pub fn without_comments(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        let end = match bytes[i] {
            b'\'' | b'"' => quoted_end(bytes, i, bytes[i])?,
            b'$' if !next.is_some_and(|b| b.is_ascii_digit()) => return None,
            b'-' if next == Some(b'-') => {
                i = line_comment_end(bytes, i);
                out.push(' ');
                continue;
            }
            b'/' if next == Some(b'*') => {
                i = block_comment_end(bytes, i)?;
                out.push(' ');
                continue;
            }
            _ => i + 1,
        };
        out.push_str(sql.get(i..end)?);
        i = end;
    }
    Some(out.trim().to_string())
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$'
}

fn digits_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    end
}

/// End (exclusive) of a quoted string or identifier; a doubled quote is part of it.
fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn line_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
        i += 1;
    }
    i
}

/// End (exclusive) of a block comment; Postgres nests them.
fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::numeric_literal_key;

    #[test]
    fn numbers_replaced_outside_strings_and_names() {
        let key = numeric_literal_key("SELECT a1, 2 FROM t3 WHERE x = 45 AND y = '67' AND \"8\" = $9 -- 10\n/* 11 /* 12 */ */").unwrap();
        assert_eq!(key, b"SELECT a1, ? FROM t3 WHERE x = ? AND y = '67' AND \"8\" = $9 -- 10\n/* 11 /* 12 */ */");
    }

    #[test]
    fn same_key_for_different_numbers() {
        let first = numeric_literal_key("SELECT abalance FROM pgbench_accounts WHERE aid = 1;");
        let second = numeric_literal_key("SELECT abalance FROM pgbench_accounts WHERE aid = 987654;");
        assert_eq!(first, second);
        assert!(first.is_some());
    }

    #[test]
    fn gives_up_on_context_dependent_lexing() {
        for text in [
            "SELECT E'a\\'' ; DELETE FROM alembic_version",
            "SELECT 'a\\'' ; DELETE FROM alembic_version; --'",
            "SELECT $$1$$",
            "SELECT $tag$ 1 $tag$",
            "SELECT U&'\\0031'",
            "SELECT U&\"d\\0061ta\"",
            "SELECT x'1F'",
            "SELECT N'1'",
            "SELECT 'unterminated 1",
            "SELECT 1 /* unterminated",
            "SELECT 'é' , 1",
        ] {
            assert_eq!(numeric_literal_key(text), None, "{text}");
        }
    }

    #[test]
    fn comments_removed_outside_quotes() {
        let text = "UPDATE t SET a = $1 /* api_key=secret */ WHERE b = '--kept' -- token=x\n AND c = 1";
        let stripped = super::without_comments(text).unwrap();
        assert!(!stripped.contains("secret"));
        assert!(!stripped.contains("token"));
        assert!(stripped.contains("'--kept'"));
        assert_eq!(super::without_comments("SELECT $$ -- $$"), None);
    }

    proptest::proptest! {
        #[test]
        fn word_scan_matches_byte_scan(text in "[ -~]{0,40}", from in 0usize..41) {
            let bytes = text.as_bytes();
            let from = from.min(bytes.len());
            let expected = bytes[from..].iter().position(|&b| super::starts_token(b)).map_or(bytes.len(), |k| from + k);
            proptest::prop_assert_eq!(super::next_token_start(bytes, from), expected);
        }
    }

    #[test]
    fn strings_with_doubled_quotes_kept_whole() {
        let key = numeric_literal_key("SELECT 'it''s 5', 6").unwrap();
        assert_eq!(key, b"SELECT 'it''s 5', ?");
    }
}
