//! A client's cleartext password, kept out of logs.

use std::fmt;

/// Password bytes from a PasswordMessage. `Debug` prints `[redacted]`.
pub struct Password(Vec<u8>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordMessageError {
    #[error("the password is not terminated by a NUL byte")]
    Unterminated,
    #[error("the password contains a NUL byte")]
    EmbeddedNul,
    #[error("the password is empty")]
    Empty,
}

impl Password {
    pub fn new(bytes: Vec<u8>) -> Self {
        Password(bytes)
    }

    /// Parses a PasswordMessage body: one NUL-terminated string.
    ///
    /// An empty password is rejected as Postgres rejects it: libpq sends
    /// one only when the user typed nothing.
    pub fn from_message_body(body: &[u8]) -> Result<Self, PasswordMessageError> {
        let (last, text) = body.split_last().ok_or(PasswordMessageError::Unterminated)?;
        if *last != 0 {
            return Err(PasswordMessageError::Unterminated);
        }
        if text.contains(&0) {
            return Err(PasswordMessageError::EmbeddedNul);
        }
        if text.is_empty() {
            return Err(PasswordMessageError::Empty);
        }
        Ok(Password(text.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_body_parses() {
        let password = Password::from_message_body(b"app-pw\0").expect("valid");
        assert_eq!(password.as_bytes(), b"app-pw");
    }

    #[test]
    fn malformed_message_bodies_rejected() {
        assert_eq!(Password::from_message_body(b"").err(), Some(PasswordMessageError::Unterminated));
        assert_eq!(Password::from_message_body(b"app-pw").err(), Some(PasswordMessageError::Unterminated));
        assert_eq!(Password::from_message_body(b"app\0pw\0").err(), Some(PasswordMessageError::EmbeddedNul));
        assert_eq!(Password::from_message_body(b"\0").err(), Some(PasswordMessageError::Empty));
    }

    #[test]
    fn debug_is_redacted() {
        let password = Password::new(b"secret".to_vec());
        assert_eq!(format!("{password:?}"), "[redacted]");
    }
}
