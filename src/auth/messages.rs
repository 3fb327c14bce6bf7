//! Authentication messages the proxy builds or reads when it logs in to the
//! server on a client's behalf.

use bytes::{BufMut, BytesMut};

/// Authentication request code of AuthenticationCleartextPassword.
pub const CLEARTEXT_PASSWORD: i32 = 3;
/// Authentication request code of AuthenticationSASL.
pub const SASL: i32 = 10;
/// Authentication request code of AuthenticationSASLContinue.
pub const SASL_CONTINUE: i32 = 11;
/// Authentication request code of AuthenticationSASLFinal.
pub const SASL_FINAL: i32 = 12;

/// AuthenticationCleartextPassword, sent to the client.
pub fn authentication_cleartext_password() -> BytesMut {
    let mut out = BytesMut::with_capacity(9);
    out.put_u8(b'R');
    out.put_i32(8);
    out.put_i32(CLEARTEXT_PASSWORD);
    out
}

/// Mechanism names of an AuthenticationSASL body (the part after the request code).
pub fn sasl_mechanisms(payload: &[u8]) -> Vec<&[u8]> {
    payload.split(|b| *b == 0).filter(|name| !name.is_empty()).collect()
}

/// SASLInitialResponse carrying `data` for `mechanism`.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> BytesMut {
    let body_length = mechanism.len() + 1 + 4 + data.len();
    let mut out = BytesMut::with_capacity(1 + 4 + body_length);
    out.put_u8(b'p');
    out.put_i32(message_length(body_length));
    out.put_slice(mechanism.as_bytes());
    out.put_u8(0);
    out.put_i32(i32::try_from(data.len()).unwrap_or(i32::MAX));
    out.put_slice(data);
    out
}

/// SASLResponse carrying `data`.
pub fn sasl_response(data: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(1 + 4 + data.len());
    out.put_u8(b'p');
    out.put_i32(message_length(data.len()));
    out.put_slice(data);
    out
}

/// Self-inclusive length of a message body the proxy built. SCRAM messages
/// are a few hundred bytes, far below `i32::MAX`.
fn message_length(body_length: usize) -> i32 {
    i32::try_from(body_length + 4).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_password_request_encoding() {
        assert_eq!(&authentication_cleartext_password()[..], b"R\0\0\0\x08\0\0\0\x03");
    }

    #[test]
    fn sasl_mechanisms_split() {
        let payload = b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
        assert_eq!(sasl_mechanisms(payload), vec![b"SCRAM-SHA-256-PLUS".as_slice(), b"SCRAM-SHA-256".as_slice()]);
    }

    #[test]
    fn sasl_initial_response_encoding() {
        let message = sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc");
        let expected = b"p\0\0\0\x21SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc";
        assert_eq!(&message[..], expected.as_slice());
    }

    #[test]
    fn sasl_response_encoding() {
        assert_eq!(&sasl_response(b"c=biws")[..], b"p\0\0\0\x0ac=biws");
    }
}
