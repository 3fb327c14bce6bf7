//! `tls-server-end-point` channel binding data (RFC 5929, section 4.1): a
//! hash of the server's DER certificate, with the hash function chosen by
//! the certificate's signature algorithm.

use sha2::{Digest, Sha256, Sha384, Sha512};

#[derive(Debug, thiserror::Error)]
pub enum ChannelBindingError {
    #[error("the server certificate is not valid DER X.509: {0}")]
    InvalidCertificate(String),
    #[error("tls-server-end-point defines no hash for signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(String),
}

/// Hash function RFC 5929 assigns to a certificate signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPointHash {
    Sha256,
    Sha384,
    Sha512,
}

/// Computes the `tls-server-end-point` binding data of a DER certificate.
pub fn tls_server_end_point(certificate_der: &[u8]) -> Result<Vec<u8>, ChannelBindingError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| ChannelBindingError::InvalidCertificate(e.to_string()))?;
    let oid = certificate.signature_algorithm.algorithm.to_id_string();
    let hash = end_point_hash(&oid).ok_or(ChannelBindingError::UnsupportedSignatureAlgorithm(oid))?;

    let digest = match hash {
        EndPointHash::Sha256 => Sha256::digest(certificate_der).to_vec(),
        EndPointHash::Sha384 => Sha384::digest(certificate_der).to_vec(),
        EndPointHash::Sha512 => Sha512::digest(certificate_der).to_vec(),
    };
    Ok(digest)
}

/// Maps a signature algorithm OID to its hash. MD5 and SHA-1 are replaced
/// by SHA-256, as RFC 5929 requires.
///
/// NOTE: RSASSA-PSS (1.2.840.113549.1.1.10) carries its hash in the
/// algorithm parameters and Ed25519 has none, so both return `None`, and the
/// caller then logs in without channel binding.
pub fn end_point_hash(signature_algorithm_oid: &str) -> Option<EndPointHash> {
    match signature_algorithm_oid {
        // md5WithRSAEncryption, sha1WithRSAEncryption, sha256WithRSAEncryption
        "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.5" | "1.2.840.113549.1.1.11" => Some(EndPointHash::Sha256),
        // ecdsa-with-SHA1, ecdsa-with-SHA256
        "1.2.840.10045.4.1" | "1.2.840.10045.4.3.2" => Some(EndPointHash::Sha256),
        // dsa-with-sha1, dsa-with-sha256
        "1.2.840.10040.4.3" | "2.16.840.1.101.3.4.3.2" => Some(EndPointHash::Sha256),
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Some(EndPointHash::Sha384),
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Some(EndPointHash::Sha512),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(algorithm: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(algorithm).expect("key pair");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.self_signed(&key).expect("self-signed certificate").der().to_vec()
    }

    #[test]
    fn ecdsa_sha256_certificate_uses_sha256() {
        let der = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let hash = tls_server_end_point(&der).expect("binding data");
        assert_eq!(hash, Sha256::digest(&der).to_vec());
    }

    #[test]
    fn ecdsa_sha384_certificate_uses_sha384() {
        let der = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
        let hash = tls_server_end_point(&der).expect("binding data");
        assert_eq!(hash, Sha384::digest(&der).to_vec());
    }

    #[test]
    fn ed25519_certificate_has_no_binding() {
        let der = self_signed(&rcgen::PKCS_ED25519);
        let error = tls_server_end_point(&der).expect_err("no hash for Ed25519");
        assert!(matches!(error, ChannelBindingError::UnsupportedSignatureAlgorithm(oid) if oid == "1.3.101.112"));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(tls_server_end_point(b"not DER"), Err(ChannelBindingError::InvalidCertificate(_))));
    }

    #[test]
    fn weak_and_rsa_algorithms_map() {
        assert_eq!(end_point_hash("1.2.840.113549.1.1.5"), Some(EndPointHash::Sha256));
        assert_eq!(end_point_hash("1.2.840.113549.1.1.11"), Some(EndPointHash::Sha256));
        assert_eq!(end_point_hash("1.2.840.113549.1.1.13"), Some(EndPointHash::Sha512));
        assert_eq!(end_point_hash("1.2.840.113549.1.1.10"), None);
    }
}
