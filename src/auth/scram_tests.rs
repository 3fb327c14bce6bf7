use super::*;

// The SCRAM-SHA-256 example exchange of RFC 7677, section 3.
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// The same exchange with `p=tls-server-end-point` and SHA-256("server
// certificate") as binding data, computed with Python's hashlib and hmac.
const PLUS_CLIENT_FINAL: &str = "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwscyHo78RbJ+mpv4QIRdHaXfyUnntJpMFjk3Pfni7fMyo=,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=s35C22bTOwW20kKubMnAZEldpDsTgdWw+PVgd28NlKk=";
const PLUS_SERVER_FINAL: &str = "v=OL+KUcABxRh4D7Ga4rVlaKZtKRfcIMjoPGzVn+XZDhA=";

fn rfc_client(channel_binding: ChannelBinding) -> ScramClient {
    let password = Password::new(b"pencil".to_vec());
    ScramClient::with_nonce("user", CLIENT_NONCE.to_string(), password, channel_binding)
}

fn end_point_binding() -> ChannelBinding {
    ChannelBinding::TlsServerEndPoint(Sha256::digest(b"server certificate").to_vec())
}

#[test]
fn rfc7677_exchange() {
    let client = rfc_client(ChannelBinding::Unsupported);
    assert_eq!(client.mechanism(), "SCRAM-SHA-256");
    assert_eq!(client.client_first_message(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");

    let (client_final, signature) = client.handle_server_first(SERVER_FIRST.as_bytes()).expect("valid server-first");
    assert_eq!(client_final, CLIENT_FINAL);
    assert_eq!(signature.verify(SERVER_FINAL.as_bytes()), Ok(()));
}

#[test]
fn plus_exchange_binds_certificate_hash() {
    let client = rfc_client(end_point_binding());
    assert_eq!(client.mechanism(), "SCRAM-SHA-256-PLUS");
    assert_eq!(client.client_first_message(), "p=tls-server-end-point,,n=user,r=rOprNGfwEbeRWgbNEkqO");

    let (client_final, signature) = client.handle_server_first(SERVER_FIRST.as_bytes()).expect("valid server-first");
    assert_eq!(client_final, PLUS_CLIENT_FINAL);
    assert_eq!(signature.verify(PLUS_SERVER_FINAL.as_bytes()), Ok(()));
    assert_eq!(signature.verify(SERVER_FINAL.as_bytes()), Err(ScramError::InvalidServerSignature));
}

#[test]
fn new_client_sends_empty_user_and_random_nonce() {
    let first = ScramClient::new(Password::new(b"pw".to_vec()), ChannelBinding::Unsupported).client_first_message();
    let other = ScramClient::new(Password::new(b"pw".to_vec()), ChannelBinding::Unsupported).client_first_message();
    assert!(first.starts_with("n,,n=,r="), "{first}");
    assert_eq!(first.len(), "n,,n=,r=".len() + 24);
    assert_ne!(first, other);
}

#[test]
fn server_final_errors() {
    let (_, signature) = rfc_client(ChannelBinding::Unsupported).handle_server_first(SERVER_FIRST.as_bytes()).expect("valid");
    assert_eq!(signature.verify(b"e=invalid-proof"), Err(ScramError::ServerError("invalid-proof".into())));
    assert_eq!(signature.verify(b"v=AAAA"), Err(ScramError::InvalidServerSignature));
    assert_eq!(signature.verify(b"v=!!"), Err(ScramError::MalformedServerFinal));
    assert_eq!(signature.verify(b"x=1"), Err(ScramError::MalformedServerFinal));
    assert_eq!(signature.verify(b""), Err(ScramError::MalformedServerFinal));
}

fn server_first_error(server_first: &str) -> ScramError {
    rfc_client(ChannelBinding::Unsupported).handle_server_first(server_first.as_bytes()).expect_err(server_first)
}

#[test]
fn server_first_missing_fields_rejected() {
    let nonce = "r=rOprNGfwEbeRWgbNEkqOxyz";
    assert_eq!(server_first_error(""), ScramError::MissingAttribute("r="));
    assert_eq!(server_first_error(nonce), ScramError::MissingAttribute("s="));
    assert_eq!(server_first_error(&format!("{nonce},s=QSXCR+Q6sek8bf92")), ScramError::MissingAttribute("i="));
    assert_eq!(server_first_error(&format!("{nonce},i=4096,s=QSXCR+Q6sek8bf92")), ScramError::MissingAttribute("s="));
    assert_eq!(server_first_error(&format!("m=ext,{nonce},s=QSXCR+Q6sek8bf92,i=4096")), ScramError::MandatoryExtension);
}

#[test]
fn server_nonce_must_extend_client_nonce() {
    let tail = "s=QSXCR+Q6sek8bf92,i=4096";
    assert_eq!(server_first_error(&format!("r=otherNonce123,{tail}")), ScramError::NonceMismatch);
    assert_eq!(server_first_error(&format!("r={CLIENT_NONCE},{tail}")), ScramError::NonceMismatch);
    assert_eq!(server_first_error(&format!("r=rOprNGfwEbeRWgbNEk,{tail}")), ScramError::NonceMismatch);
    assert_eq!(server_first_error(&format!("r={CLIENT_NONCE}a b,{tail}")), ScramError::InvalidNonce);
}

#[test]
fn absurd_iteration_counts_rejected() {
    let head = "r=rOprNGfwEbeRWgbNEkqOxyz,s=QSXCR+Q6sek8bf92";
    assert_eq!(server_first_error(&format!("{head},i=0")), ScramError::InvalidIterationCount);
    assert_eq!(server_first_error(&format!("{head},i=-1")), ScramError::InvalidIterationCount);
    assert_eq!(server_first_error(&format!("{head},i=")), ScramError::InvalidIterationCount);
    assert_eq!(server_first_error(&format!("{head},i=1000001")), ScramError::TooManyIterations(1_000_001));
    assert_eq!(server_first_error(&format!("{head},i=99999999999")), ScramError::TooManyIterations(u32::MAX));
}

#[test]
fn bad_salts_and_sizes_rejected() {
    let nonce = "r=rOprNGfwEbeRWgbNEkqOxyz";
    assert_eq!(server_first_error(&format!("{nonce},s=,i=4096")), ScramError::InvalidSalt);
    assert_eq!(server_first_error(&format!("{nonce},s=***,i=4096")), ScramError::InvalidSalt);
    let long = format!("{nonce}{},s=QSXCR+Q6sek8bf92,i=4096", "a".repeat(MAX_SERVER_MESSAGE_BYTES));
    assert_eq!(server_first_error(&long), ScramError::MessageTooLarge(long.len()));

    let client = rfc_client(ChannelBinding::Unsupported);
    assert_eq!(client.handle_server_first(b"r=\xff").expect_err("not UTF-8"), ScramError::NotUtf8);
}

#[test]
fn debug_output_hides_secrets() {
    let client = rfc_client(ChannelBinding::Unsupported);
    let printed = format!("{client:?}");
    assert!(!printed.contains("pencil"), "{printed}");
    let (_, signature) = client.handle_server_first(SERVER_FIRST.as_bytes()).expect("valid");
    assert_eq!(format!("{signature:?}"), "ServerSignature([redacted])");
}
