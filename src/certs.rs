//! `schemagate gen-certs`: a development CA with a server and a client
//! certificate, for trying TLS locally. Not for production use: the CA key
//! sits next to the certificates it signs.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Organization written into every generated certificate's subject.
pub const ORGANIZATION: &str = "schemagate dev";
/// Common name of the generated client certificate.
pub const CLIENT_COMMON_NAME: &str = "migrator";

const CA_VALID_DAYS: i64 = 3650;
const LEAF_VALID_DAYS: i64 = 825;

/// Paths of the files [`generate`] writes.
#[derive(Debug, Clone)]
pub struct GeneratedFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{} already exists; pass --force to overwrite", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}", path = .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

impl GeneratedFiles {
    fn in_dir(out: &Path) -> Self {
        GeneratedFiles {
            ca_cert: out.join("ca.pem"),
            ca_key: out.join("ca.key"),
            server_cert: out.join("server.pem"),
            server_key: out.join("server.key"),
            client_cert: out.join("client.pem"),
            client_key: out.join("client.key"),
        }
    }

    fn all(&self) -> [&Path; 6] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ]
    }
}

/// Writes a development CA, a server certificate for `localhost`,
/// `127.0.0.1` and `hosts`, and a client certificate with CN `migrator`,
/// all ECDSA P-256. Private keys get mode 0600.
///
/// Unless `force` is set, nothing is written when any target file exists.
pub fn generate(out: &Path, hosts: &[String], force: bool) -> Result<GeneratedFiles, CertsError> {
    let files = GeneratedFiles::in_dir(out);
    if !force {
        if let Some(existing) = files.all().into_iter().find(|path| path.exists()) {
            return Err(CertsError::Exists(existing.to_path_buf()));
        }
    }
    std::fs::create_dir_all(out).map_err(|source| CertsError::Write {
        path: out.to_path_buf(),
        source,
    })?;

    let ca = CertifiedIssuer::self_signed(ca_params(), KeyPair::generate()?)?;
    write_file(&files.ca_cert, &ca.pem(), 0o644, force)?;
    write_file(&files.ca_key, &ca.key().serialize_pem(), 0o600, force)?;

    let server_key = KeyPair::generate()?;
    let server = server_params(hosts)?.signed_by(&server_key, &ca)?;
    write_file(&files.server_cert, &server.pem(), 0o644, force)?;
    write_file(&files.server_key, &server_key.serialize_pem(), 0o600, force)?;

    let client_key = KeyPair::generate()?;
    let client = client_params().signed_by(&client_key, &ca)?;
    write_file(&files.client_cert, &client.pem(), 0o644, force)?;
    write_file(&files.client_key, &client_key.serialize_pem(), 0o600, force)?;

    Ok(files)
}

/// Runs `schemagate gen-certs`: prints the files written, or the error.
/// Returns the process exit code.
pub fn run_gen_certs(out: &Path, hosts: &[String], force: bool) -> i32 {
    match generate(out, hosts, force) {
        Ok(files) => {
            for path in files.all() {
                println!("wrote {}", path.display());
            }
            println!("subject of client.pem: CN={CLIENT_COMMON_NAME},O={ORGANIZATION}");
            0
        }
        Err(err) => {
            eprintln!("schemagate gen-certs: {err}");
            1
        }
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject("schemagate dev CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, CA_VALID_DAYS);
    params
}

fn server_params(hosts: &[String]) -> Result<CertificateParams, rcgen::Error> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }

    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = subject("localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALID_DAYS);
    Ok(params)
}

fn client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(CLIENT_COMMON_NAME);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALID_DAYS);
    params
}

/// Builds `O=schemagate dev, CN=...` in encoding order, which RFC 4514
/// prints as `CN=...,O=schemagate dev`.
fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// Starts validity a day back, so clocks that lag slightly still accept it.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

fn write_file(path: &Path, contents: &str, mode: u32, force: bool) -> Result<(), CertsError> {
    let wrap = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };

    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    set_mode(&mut options, mode);
    let mut file = options.open(path).map_err(wrap)?;

    // An overwritten file keeps its old mode; narrow it before writing a key.
    restrict_existing(&file, mode).map_err(wrap)?;
    file.write_all(contents.as_bytes()).map_err(wrap)
}

#[cfg(unix)]
fn set_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_options: &mut OpenOptions, _mode: u32) {}

#[cfg(unix)]
fn restrict_existing(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict_existing(_file: &std::fs::File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
