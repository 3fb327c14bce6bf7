//! The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802 with
//! the SHA-256 hash of RFC 7677), as PostgreSQL speaks it.
//!
//! The exchange is sans-IO: `ScramClient` builds the client-first-message,
//! `ScramClient::handle_server_first` turns the server-first-message into
//! the client-final-message, and `ServerSignature::verify` checks the
//! server-final-message.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::password::Password;

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// Highest iteration count accepted from a server. PostgreSQL uses 4096
/// unless `scram_iterations` raises it, and each iteration costs one
/// HMAC-SHA-256 of CPU time on the proxy.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Largest server-first or server-final message accepted. With a 16-byte
/// salt and 18-byte nonces, as PostgreSQL generates them, both are about 100 bytes.
pub const MAX_SERVER_MESSAGE_BYTES: usize = 2048;

/// Random bytes in the client nonce, before base64: the 18 that libpq uses.
const CLIENT_NONCE_BYTES: usize = 18;

const SHA256_LENGTH: usize = 32;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("the SCRAM message of {0} bytes exceeds the limit of {MAX_SERVER_MESSAGE_BYTES} bytes")]
    MessageTooLarge(usize),
    #[error("the SCRAM message is not valid UTF-8")]
    NotUtf8,
    #[error("the server-first-message requires an unsupported SCRAM extension")]
    MandatoryExtension,
    #[error("the server-first-message has no {0} attribute")]
    MissingAttribute(&'static str),
    #[error("the server nonce does not extend the client nonce")]
    NonceMismatch,
    #[error("the server nonce contains characters outside printable ASCII")]
    InvalidNonce,
    #[error("the salt is empty or not valid base64")]
    InvalidSalt,
    #[error("the iteration count is not a positive integer")]
    InvalidIterationCount,
    #[error("the iteration count {0} exceeds the limit of {MAX_ITERATIONS}")]
    TooManyIterations(u32),
    #[error("the server reported SCRAM error {0:?}")]
    ServerError(String),
    #[error("the server-final-message is malformed")]
    MalformedServerFinal,
    #[error("the server signature is invalid")]
    InvalidServerSignature,
}

/// Channel binding the client requests in its gs2 header.
#[derive(Debug, Clone)]
pub enum ChannelBinding {
    /// gs2 flag `n`: the client does not support channel binding. A server
    /// that offered SCRAM-SHA-256-PLUS accepts this flag, unlike `y`.
    Unsupported,
    /// gs2 flag `p=tls-server-end-point` with the hash of the server certificate.
    TlsServerEndPoint(Vec<u8>),
}

impl ChannelBinding {
    pub fn mechanism(&self) -> &'static str {
        match self {
            ChannelBinding::Unsupported => SCRAM_SHA_256,
            ChannelBinding::TlsServerEndPoint(_) => SCRAM_SHA_256_PLUS,
        }
    }

    fn gs2_header(&self) -> &'static str {
        match self {
            ChannelBinding::Unsupported => "n,,",
            ChannelBinding::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        }
    }

    /// Encodes the `c=` attribute value: base64 of the gs2 header and the binding data.
    fn channel_binding_attribute(&self) -> String {
        let mut input = self.gs2_header().as_bytes().to_vec();
        if let ChannelBinding::TlsServerEndPoint(data) = self {
            input.extend_from_slice(data);
        }
        BASE64.encode(input)
    }
}

/// A SCRAM exchange before the server-first-message.
pub struct ScramClient {
    password: Password,
    channel_binding: ChannelBinding,
    client_nonce: String,
    client_first_bare: String,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient").field("mechanism", &self.mechanism()).finish_non_exhaustive()
    }
}

/// The server signature the server-final-message must carry.
pub struct ServerSignature([u8; SHA256_LENGTH]);

impl fmt::Debug for ServerSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSignature([redacted])")
    }
}

impl ScramClient {
    /// Starts an exchange with a fresh random nonce.
    ///
    /// The user name is left empty, as libpq leaves it: PostgreSQL ignores
    /// it and authenticates the user of the StartupMessage.
    pub fn new(password: Password, channel_binding: ChannelBinding) -> Self {
        let nonce = BASE64.encode(rand::random::<[u8; CLIENT_NONCE_BYTES]>());
        Self::with_nonce("", nonce, password, channel_binding)
    }

    /// Starts an exchange with a given user name (already SCRAM-escaped) and nonce.
    fn with_nonce(user: &str, client_nonce: String, password: Password, channel_binding: ChannelBinding) -> Self {
        let client_first_bare = format!("n={user},r={client_nonce}");
        ScramClient { password, channel_binding, client_nonce, client_first_bare }
    }

    pub fn mechanism(&self) -> &'static str {
        self.channel_binding.mechanism()
    }

    pub fn client_first_message(&self) -> String {
        format!("{}{}", self.channel_binding.gs2_header(), self.client_first_bare)
    }

    /// Checks the server-first-message and returns the client-final-message
    /// with the signature expected back.
    ///
    /// This runs PBKDF2 with the server's iteration count (up to
    /// `MAX_ITERATIONS`), so async callers should run it on a blocking thread.
    pub fn handle_server_first(self, server_first: &[u8]) -> Result<(String, ServerSignature), ScramError> {
        let server_first = bounded_text(server_first)?;
        let parsed = parse_server_first(server_first, &self.client_nonce)?;

        let salted_password = salted_password(self.password.as_bytes(), &parsed.salt, parsed.iterations);
        let client_key = hmac(&salted_password, b"Client Key");
        let stored_key: [u8; SHA256_LENGTH] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted_password, b"Server Key");

        let without_proof = format!("c={},r={}", self.channel_binding.channel_binding_attribute(), parsed.nonce);
        let auth_message = format!("{},{},{}", self.client_first_bare, server_first, without_proof);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (byte, signature_byte) in proof.iter_mut().zip(client_signature) {
            *byte ^= signature_byte;
        }

        let client_final = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((client_final, ServerSignature(hmac(&server_key, auth_message.as_bytes()))))
    }
}

impl ServerSignature {
    /// Checks a server-final-message: `v=` must carry the expected
    /// signature, and `e=` is the server's error.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let server_final = bounded_text(server_final)?;
        let first = server_final.split(',').next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_string()));
        }
        let encoded = first.strip_prefix("v=").ok_or(ScramError::MalformedServerFinal)?;
        let signature = BASE64.decode(encoded).map_err(|_| ScramError::MalformedServerFinal)?;
        if bool::from(signature.as_slice().ct_eq(&self.0)) {
            Ok(())
        } else {
            Err(ScramError::InvalidServerSignature)
        }
    }
}

/// Attributes of a server-first-message.
#[derive(Debug)]
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

/// Parses `r=<nonce>,s=<salt>,i=<count>[,extensions]` and checks each value.
fn parse_server_first<'a>(message: &'a str, client_nonce: &str) -> Result<ServerFirst<'a>, ScramError> {
    let mut attributes = message.split(',');
    let mut next = |name: &'static str| {
        let attribute = attributes.next().unwrap_or_default();
        if attribute.starts_with("m=") {
            return Err(ScramError::MandatoryExtension);
        }
        attribute.strip_prefix(name).ok_or(ScramError::MissingAttribute(name))
    };
    let nonce = next("r=")?;
    let salt = next("s=")?;
    let iterations = next("i=")?;

    if !nonce.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ScramError::InvalidNonce);
    }
    if nonce.len() <= client_nonce.len() || !nonce.starts_with(client_nonce) {
        return Err(ScramError::NonceMismatch);
    }
    let salt = BASE64.decode(salt).map_err(|_| ScramError::InvalidSalt)?;
    if salt.is_empty() {
        return Err(ScramError::InvalidSalt);
    }
    let iterations = parse_iterations(iterations)?;
    Ok(ServerFirst { nonce, salt, iterations })
}

fn parse_iterations(text: &str) -> Result<u32, ScramError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScramError::InvalidIterationCount);
    }
    let Ok(iterations) = text.parse::<u32>() else {
        return Err(ScramError::TooManyIterations(u32::MAX));
    };
    match iterations {
        0 => Err(ScramError::InvalidIterationCount),
        n if n > MAX_ITERATIONS => Err(ScramError::TooManyIterations(n)),
        n => Ok(n),
    }
}

fn bounded_text(message: &[u8]) -> Result<&str, ScramError> {
    if message.len() > MAX_SERVER_MESSAGE_BYTES {
        return Err(ScramError::MessageTooLarge(message.len()));
    }
    std::str::from_utf8(message).map_err(|_| ScramError::NotUtf8)
}

/// SaltedPassword := Hi(Normalize(password), salt, i), with Hi being
/// PBKDF2-HMAC-SHA-256 for a single output block.
///
/// Normalize is SASLprep (RFC 4013), which libpq applies when the password
/// is valid UTF-8 and uses the raw bytes otherwise. SASLprep leaves ASCII
/// passwords unchanged, or rejects those with control characters, and then
/// the raw bytes are used too.
/// TODO: non-ASCII passwords are used without SASLprep, so one that
/// SASLprep would change (NFKC forms, non-ASCII spaces) fails to log in.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; SHA256_LENGTH] {
    let mut salted = [0u8; SHA256_LENGTH];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
    salted
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; SHA256_LENGTH] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
