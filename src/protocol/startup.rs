//! The untyped packets a client sends first: StartupMessage, SSLRequest,
//! GSSENCRequest and CancelRequest.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_STARTUP_PACKET_LENGTH, SSL_REQUEST_CODE};

/// The first packet of a connection, decoded.
#[derive(Debug)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel { pid: i32, key: Vec<u8> },
    Startup { version: u32, params: Vec<(String, String)> },
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid length of startup packet")]
    InvalidLength,
    #[error("invalid startup packet layout: {0}")]
    InvalidLayout(&'static str),
    #[error("duplicate startup parameter \"{0}\"")]
    DuplicateParameter(String),
    #[error("invalid byte sequence for encoding \"UTF8\" in startup packet")]
    InvalidUtf8,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one length-prefixed startup packet, refusing bad lengths before allocating.
pub async fn read_packet<R: AsyncRead + Unpin>(reader: &mut R) -> Result<StartupPacket, StartupError> {
    let length = reader.read_i32().await?;
    let length = usize::try_from(length).map_err(|_| StartupError::InvalidLength)?;
    if !(8..=MAX_STARTUP_PACKET_LENGTH).contains(&length) {
        return Err(StartupError::InvalidLength);
    }
    let mut body = vec![0u8; length - 4];
    reader.read_exact(&mut body).await?;
    decode(&body)
}

/// Decodes a startup packet body (everything after the length).
pub fn decode(body: &[u8]) -> Result<StartupPacket, StartupError> {
    if body.len() < 4 {
        return Err(StartupError::InvalidLength);
    }
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    match code {
        SSL_REQUEST_CODE if rest.is_empty() => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE if rest.is_empty() => Ok(StartupPacket::GssEncRequest),
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => Err(StartupError::InvalidLength),
        CANCEL_REQUEST_CODE => decode_cancel(rest),
        version => Ok(StartupPacket::Startup { version, params: decode_params(rest)? }),
    }
}

fn decode_cancel(rest: &[u8]) -> Result<StartupPacket, StartupError> {
    // Protocol 3.0 keys are 4 bytes; 3.2 allows up to 256.
    if rest.len() < 8 || rest.len() > 4 + 256 {
        return Err(StartupError::InvalidLength);
    }
    let pid = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    Ok(StartupPacket::Cancel { pid, key: rest[4..].to_vec() })
}

/// Decodes `name\0value\0...\0` exactly as Postgres does: a missing final
/// terminator or bytes after it are errors.
fn decode_params(mut rest: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        let (name, after) = split_cstring(rest).ok_or(StartupError::InvalidLayout("missing terminator"))?;
        if name.is_empty() {
            if !after.is_empty() {
                return Err(StartupError::InvalidLayout("data after the terminator"));
            }
            return Ok(params);
        }
        let (value, after) = split_cstring(after).ok_or(StartupError::InvalidLayout("missing value"))?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| StartupError::InvalidUtf8)?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| StartupError::InvalidUtf8)?;
        if params.iter().any(|(existing, _)| *existing == name) {
            return Err(StartupError::DuplicateParameter(name));
        }
        params.push((name, value));
        rest = after;
    }
}

fn split_cstring(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|b| *b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// Encodes a protocol 3.0 StartupMessage with `params`.
pub fn encode_startup(params: &[(String, String)]) -> BytesMut {
    let mut body = BytesMut::new();
    body.put_u32(super::PROTOCOL_3_0);
    for (name, value) in params {
        body.put_slice(name.as_bytes());
        body.put_u8(0);
        body.put_slice(value.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32((body.len() + 4) as i32);
    out.put_slice(&body);
    out
}

/// Encodes a CancelRequest for an upstream backend.
pub fn encode_cancel(pid: i32, key: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(12 + key.len());
    out.put_i32((12 + key.len()) as i32);
    out.put_u32(CANCEL_REQUEST_CODE);
    out.put_i32(pid);
    out.put_slice(key);
    out
}

/// Splits the `options` startup parameter into arguments the way Postgres
/// does (`pg_split_opts`): whitespace separates, a backslash escapes the next byte.
pub fn split_options(options: &str) -> Vec<String> {
    let mut arguments = Vec::new();
    let mut current = String::new();
    let mut chars = options.chars();
    let mut in_argument = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_whitespace() {
            if in_argument {
                arguments.push(std::mem::take(&mut current));
                in_argument = false;
            }
            continue;
        }
        in_argument = true;
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                current.push(escaped);
            }
        } else {
            current.push(c);
        }
    }
    if in_argument {
        arguments.push(current);
    }
    arguments
}

/// Reads `-c name=value`, `-cname=value` and `--name=value` settings from
/// split options; any other switch is returned as an error.
pub fn options_settings(arguments: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut settings = Vec::new();
    let mut iter = arguments.iter();
    while let Some(argument) = iter.next() {
        let assignment = if argument == "-c" {
            iter.next().ok_or_else(|| "option -c needs name=value".to_string())?.as_str()
        } else if let Some(rest) = argument.strip_prefix("--") {
            rest
        } else if let Some(rest) = argument.strip_prefix("-c") {
            rest
        } else {
            return Err(format!("unsupported option {argument:?} in startup options"));
        };
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("option {assignment:?} has no value"))?;
        settings.push((name.replace('-', "_").to_ascii_lowercase(), value.to_string()));
    }
    Ok(settings)
}

/// Quotes a setting back into `options` form, escaping spaces and backslashes.
pub fn escape_option_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_ascii_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_need_final_terminator() {
        let body = b"\0\x03\0\0user\0app\0database\0app\0";
        assert!(matches!(decode(body), Err(StartupError::InvalidLayout(_))));
    }

    #[test]
    fn empty_key_in_middle_rejected() {
        let body = b"\0\x03\0\0user\0app\0\0database\0migrator\0\0";
        assert!(matches!(decode(body), Err(StartupError::InvalidLayout(_))));
    }

    #[test]
    fn duplicate_user_rejected() {
        let body = b"\0\x03\0\0user\0app\0database\0app\0user\0migrator\0\0";
        assert!(matches!(decode(body), Err(StartupError::DuplicateParameter(name)) if name == "user"));
    }

    #[test]
    fn options_split_like_postgres() {
        let arguments = split_options(r"-c search_path=a\ b  -c DateStyle=ISO,\ MDY --work-mem=4MB");
        assert_eq!(arguments, vec!["-c", "search_path=a b", "-c", "DateStyle=ISO, MDY", "--work-mem=4MB"]);
        let settings = options_settings(&arguments).unwrap();
        assert_eq!(settings[0], ("search_path".to_string(), "a b".to_string()));
        assert_eq!(settings[1], ("datestyle".to_string(), "ISO, MDY".to_string()));
        assert_eq!(settings[2], ("work_mem".to_string(), "4MB".to_string()));
    }

    #[test]
    fn escape_round_trips() {
        let value = r"ISO, MDY\x";
        let arguments = split_options(&format!("-c datestyle={}", escape_option_value(value)));
        assert_eq!(arguments[1], format!("datestyle={value}"));
    }
}

/// Encodes an SSLRequest.
pub fn encode_ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8i32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    out
}
