//! `schemagate tunnel`: the local developer mode. The proxy listens on
//! loopback only and reaches a remote database over verified TLS, with the
//! project's `rules.yaml` when there is one and the defaults otherwise.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, UpstreamTlsMode};

/// Options of `schemagate tunnel`.
#[derive(Debug, Clone, clap::Args)]
pub struct TunnelArgs {
    /// Remote PostgreSQL server as HOST:PORT.
    #[arg(long)]
    pub upstream: String,
    /// Loopback address the tunnel listens on.
    #[arg(long, default_value = "127.0.0.1:6432")]
    pub listen: SocketAddr,
    /// Loopback address of the admin API, for `schemagate window open`.
    #[arg(long, default_value = "127.0.0.1:6433")]
    pub admin: SocketAddr,
    /// Configuration to apply; used when the file exists, documented defaults otherwise.
    #[arg(long, default_value = "rules.yaml")]
    pub config: PathBuf,
    /// CA certificate (PEM) that signs the server's certificate; the public web roots when omitted.
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,
    /// Upstream TLS mode: verify-full (default), verify-ca, require or disable.
    #[arg(long, default_value = "verify-full", value_parser = ["verify-full", "verify-ca", "require", "disable"])]
    pub upstream_tls: String,
}

/// A tunnel configuration and the files it depends on.
pub struct Tunnel {
    pub config: Config,
    /// The rules file to reload on SIGHUP, when one was found.
    pub rules: Option<PathBuf>,
    /// Admin token file the tunnel wrote for this run, removed at exit.
    pub generated_token: Option<PathBuf>,
}

/// Builds the tunnel's configuration; each error names what to fix.
pub fn tunnel_config(args: &TunnelArgs) -> Result<Tunnel, Vec<String>> {
    let mut errors = Vec::new();
    for (name, address) in [("--listen", args.listen), ("--admin", args.admin)] {
        if !address.ip().is_loopback() {
            errors.push(format!("{name} {address}: the tunnel listens on loopback addresses only"));
        }
    }
    if config::split_host_port(&args.upstream).is_none() {
        errors.push(format!("--upstream {:?}: expected HOST:PORT", args.upstream));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let (mut config, reload_path) = if args.config.exists() {
        (config::load(&args.config).map_err(|e| e.messages())?, Some(args.config.clone()))
    } else {
        (Config::default(), None)
    };
    config.listen.address = args.listen;
    config.admin.address = args.admin;
    config.upstream.address = args.upstream.clone();
    config.upstream.tls.mode = tls_mode(&args.upstream_tls);
    if let Some(ca) = &args.upstream_ca {
        config.upstream.tls.ca = Some(ca.clone());
    }
    let mut generated_token = None;
    if config.admin.token_file.is_none() {
        let path = write_token_file().map_err(|e| vec![format!("admin token file: {e}")])?;
        config.admin.token_file = Some(path.clone());
        generated_token = Some(path);
    }
    let problems = config::validate(&config);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Tunnel { config, rules: reload_path, generated_token })
}

fn tls_mode(name: &str) -> UpstreamTlsMode {
    match name {
        "disable" => UpstreamTlsMode::Disable,
        "require" => UpstreamTlsMode::Require,
        "verify-ca" => UpstreamTlsMode::VerifyCa,
        _ => UpstreamTlsMode::VerifyFull,
    }
}

/// Writes a random admin token to a new private file and returns its path.
/// The tunnel removes the file when it exits.
fn write_token_file() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let path = std::env::temp_dir().join(format!("schemagate-tunnel-{}.token", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    file.write_all(token.as_bytes())?;
    Ok(path)
}

/// Tells the developer how to connect and how to open a window.
pub fn print_instructions(config: &Config, rules: Option<&Path>) {
    let listen = config.listen.address;
    let token_file = config.admin.token_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
    let rules = match rules {
        Some(path) => format!("rules from {}", path.display()),
        None => "built-in defaults (no rules.yaml found: every DDL statement is denied)".to_string(),
    };
    println!("schemagate tunnel: {listen} -> {} ({:?} TLS), {rules}", config.upstream.address, config.upstream.tls.mode);
    println!("connect with:  postgresql://USER@{}:{}/DATABASE", listen.ip(), listen.port());
    println!("open a window: schemagate window open --admin http://{} --token-file {token_file} --database DATABASE --for 30m --reason TEXT", config.admin.address);
}
