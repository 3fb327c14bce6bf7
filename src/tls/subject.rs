//! Client certificate subjects as RFC 4514 strings, the form migrators'
//! `client_cert_subject` is written in.

use rustls::ServerConnection;
use x509_parser::der_parser::asn1_rs::ToDer;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// Returns the subject of the client's verified certificate, for example
/// `CN=migrator,O=schemagate dev`, or `None` when the client sent none.
///
/// rustls exposes peer certificates only after the client verifier accepted
/// them, so a subject returned here chains to `listen.tls.client_ca`.
pub fn peer_subject(conn: &ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    subject_of(leaf.as_ref())
}

/// Returns the RFC 4514 subject of a DER certificate, or `None` if it does
/// not parse.
pub fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(rfc4514(cert.subject()))
}

/// Formats a distinguished name as RFC 4514 section 2 describes: the last
/// RDN of the encoding first, RDNs joined by `,`, multi-valued RDNs by `+`.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute(atv: &AttributeTypeAndValue<'_>) -> String {
    let oid = atv.attr_type().to_id_string();
    let name = short_name(&oid).unwrap_or(&oid);

    let value = match atv.as_str() {
        Ok(text) => escape_value(text),
        Err(_) => match atv.attr_value().to_der_vec() {
            Ok(der) => format!("#{}", hex::encode(der)),
            Err(_) => format!("#{}", hex::encode(atv.as_slice())),
        },
    };
    format!("{name}={value}")
}

/// Attribute type names that RFC 4514 section 3 lists; others are written
/// as dotted OIDs.
fn short_name(oid: &str) -> Option<&'static str> {
    let name = match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    };
    Some(name)
}

/// Escapes a string attribute value per RFC 4514 section 2.4.
fn escape_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);

    for (index, ch) in text.chars().enumerate() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                escaped.push('\\');
                escaped.push(ch);
            }
            '#' if index == 0 => escaped.push_str("\\#"),
            ' ' if index == 0 || index == last => escaped.push_str("\\ "),
            '\0' => escaped.push_str("\\00"),
            _ => escaped.push(ch),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_value;

    #[test]
    fn escape_special_characters() {
        assert_eq!(escape_value("a,b"), "a\\,b");
        assert_eq!(escape_value("a+b"), "a\\+b");
        assert_eq!(escape_value("#tag"), "\\#tag");
        assert_eq!(escape_value(" padded "), "\\ padded\\ ");
        assert_eq!(escape_value("say \"hi\"; <x>"), "say \\\"hi\\\"\\; \\<x\\>");
        assert_eq!(escape_value("plain name"), "plain name");
    }
}
