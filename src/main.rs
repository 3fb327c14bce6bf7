//! Command line: `serve` runs the proxy; the other subcommands check
//! configuration, make certificates and talk to the admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use schemagate::audit::AuditLog;
use schemagate::metrics::Metrics;
use schemagate::session::Shared;
use schemagate::window::WindowManager;

/// Version line: crate version, git commit, and the parser's grammar.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SCHEMAGATE_GIT_COMMIT"),
    ", pg_query ",
    env!("SCHEMAGATE_PG_QUERY_VERSION"),
    ", PostgreSQL 18 grammar)"
);

/// Exit code for an unusable configuration or invalid arguments.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(name = "schemagate", version = VERSION, about = "PostgreSQL proxy that enforces migration-time privileges")]
struct Cli {
    /// Log format for the proxy's own logs.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// Configuration file.
        #[arg(long, default_value = "rules.yaml")]
        config: PathBuf,
    },
    /// Validate a configuration file and print the effective policy.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "rules.yaml")]
        config: PathBuf,
    },
    /// Write a development CA, a server certificate and a client certificate.
    GenCerts {
        /// Directory for the PEM files; created when missing.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Extra DNS names or IP addresses for the server certificate (localhost and 127.0.0.1 are always included).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve { config } => runtime.block_on(serve(config)),
        Command::Check { config } => exit_code(schemagate::cli_check::run_check(&config)),
        Command::GenCerts { out, hosts, force } => exit_code(schemagate::certs::run_gen_certs(&out, &hosts, force)),
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCHEMAGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config_path: PathBuf) -> ExitCode {
    let config = match schemagate::config::load(&config_path) {
        Ok(config) => config,
        Err(error) => {
            for message in error.messages() {
                eprintln!("error: {message}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let windows = match WindowManager::new(&config) {
        Ok(windows) => windows,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let audit = match AuditLog::open(&config.audit) {
        Ok(audit) => audit,
        Err(error) => {
            eprintln!("error: audit.path: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let listen_address = config.listen.address;
    let metrics = Arc::new(Metrics::new());
    let shared = match Shared::new(config, windows, audit, metrics) {
        Ok(shared) => shared,
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen_address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {listen_address} (listen.address): {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address = %listen_address, "schemagate listening");

    let stop = CancellationToken::new();
    tokio::spawn(wait_for_signals(stop.clone()));
    schemagate::server::run(shared, listener, stop).await;
    tracing::info!("schemagate stopped");
    ExitCode::SUCCESS
}

async fn wait_for_signals(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    stop.cancel();
}
