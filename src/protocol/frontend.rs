//! Frontend messages the proxy reads: Query, Parse, Bind, Close.
//!
//! Every decoder checks the whole body: a string must end inside the message
//! and nothing may follow the last field, as Postgres requires.

use std::ffi::CStr;

#[derive(Debug, thiserror::Error)]
#[error("invalid message format: {0}")]
pub struct FormatError(pub &'static str);

/// Text of a Query message.
pub fn query_text(body: &[u8]) -> Result<&[u8], FormatError> {
    let (text, rest) = cstring(body)?;
    if !rest.is_empty() {
        return Err(FormatError("data after the query string"));
    }
    Ok(text)
}

/// A Parse message: statement name and query text.
pub struct Parse<'a> {
    pub name: &'a [u8],
    pub query: &'a [u8],
}

pub fn parse(body: &[u8]) -> Result<Parse<'_>, FormatError> {
    let (name, rest) = cstring(body)?;
    let (query, rest) = cstring(rest)?;
    if rest.len() < 2 {
        return Err(FormatError("missing parameter type count"));
    }
    let count = i16::from_be_bytes([rest[0], rest[1]]);
    let count = usize::try_from(count).map_err(|_| FormatError("negative parameter type count"))?;
    if rest.len() != 2 + count * 4 {
        return Err(FormatError("parameter type count does not match the message length"));
    }
    Ok(Parse { name, query })
}

/// Portal and statement names of a Bind message; the rest is left to the server.
pub fn bind_names(body: &[u8]) -> Result<(&[u8], &[u8]), FormatError> {
    let (portal, rest) = cstring(body)?;
    let (statement, _) = cstring(rest)?;
    Ok((portal, statement))
}

/// Kind (`S` or `P`) and name of a Close or Describe message.
pub fn target(body: &[u8]) -> Result<(u8, &[u8]), FormatError> {
    let (&kind, rest) = body.split_first().ok_or(FormatError("empty message"))?;
    if kind != b'S' && kind != b'P' {
        return Err(FormatError("target kind must be S or P"));
    }
    let (name, rest) = cstring(rest)?;
    if !rest.is_empty() {
        return Err(FormatError("data after the name"));
    }
    Ok((kind, name))
}

/// Portal name of an Execute message.
pub fn execute_portal(body: &[u8]) -> Result<&[u8], FormatError> {
    let (portal, rest) = cstring(body)?;
    if rest.len() != 4 {
        return Err(FormatError("invalid Execute row limit"));
    }
    Ok(portal)
}

fn cstring(bytes: &[u8]) -> Result<(&[u8], &[u8]), FormatError> {
    // `CStr` finds the terminator with a word-at-a-time search.
    let text = CStr::from_bytes_until_nul(bytes).map_err(|_| FormatError("unterminated string"))?.to_bytes();
    Ok((text, &bytes[text.len() + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_with_two_strings_rejected() {
        assert!(query_text(b"SELECT 1\0DELETE FROM alembic_version\0").is_err());
        assert_eq!(query_text(b"SELECT 1\0").unwrap(), b"SELECT 1");
    }

    #[test]
    fn parse_counts_checked() {
        assert!(parse(b"s\0SELECT $1\0\0\x01\0\0\0\x17").is_ok());
        assert!(parse(b"s\0SELECT $1\0\xff\xff").is_err());
        assert!(parse(b"s\0SELECT $1\0\0\x02\0\0\0\x17").is_err());
    }
}
