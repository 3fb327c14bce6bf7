//! Command line: `serve` runs the proxy; the other subcommands check
//! configuration, make certificates and talk to the admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use schemagate::cli_admin::{self, SessionArgs, WindowArgs};
use schemagate::server::app::StartError;
use schemagate::server::tunnel::{self, TunnelArgs};

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
    /// Threads that run sessions, each with its own event loop; 0 means one per CPU, each pinned to its CPU unless a CPU quota is smaller.
    #[arg(long, global = true, env = "SCHEMAGATE_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
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
    /// Run a local tunnel: listen on loopback, reach a remote database over verified TLS.
    Tunnel(TunnelArgs),
    /// Validate a configuration file and print the effective policy.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "rules.yaml")]
        config: PathBuf,
    },
    /// Open, close and list migration windows through the admin API.
    Window(WindowArgs),
    /// List or end client sessions through the admin API.
    Session(SessionArgs),
    /// Check audit log files.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of audit log files, oldest first; one path also checks its rotated files.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The proxy logs to stdout: libpg_query briefly redirects the process's
    // stderr while it parses, so lines written to stderr then would be lost.
    let log_to_stdout = matches!(cli.command, Command::Serve { .. } | Command::Tunnel(_));
    init_tracing(&cli.log_format, log_to_stdout);
    // The main thread runs the admin API, signals and timers; sessions run on worker threads.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve { config } => runtime.block_on(serve(config, cli.worker_threads)),
        Command::Tunnel(args) => runtime.block_on(tunnel(args, cli.worker_threads)),
        Command::Window(args) => exit_code(runtime.block_on(cli_admin::run_window(args.command, &args.admin))),
        Command::Session(args) => exit_code(runtime.block_on(cli_admin::run_session(args.command, &args.admin))),
        Command::Audit { command: AuditCommand::Verify { files } } => exit_code(verify_audit(files)),
        Command::Check { config } => exit_code(schemagate::cli_check::run_check(&config)),
        Command::GenCerts { out, hosts, force } => exit_code(schemagate::certs::run_gen_certs(&out, &hosts, force)),
    }
}

fn verify_audit(files: Vec<PathBuf>) -> i32 {
    let files = if files.len() == 1 { schemagate::audit::rotated_files(&files[0]) } else { files };
    schemagate::audit::run_verify(&files)
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn init_tracing(format: &str, to_stdout: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCHEMAGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
        if to_stdout {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::io::stderr())
        }
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn tunnel(args: TunnelArgs, workers: usize) -> ExitCode {
    let tunnel = match tunnel::tunnel_config(&args) {
        Ok(tunnel) => tunnel,
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tunnel::print_instructions(&tunnel.config, tunnel.rules.as_deref());
    let result = schemagate::server::app::serve_config(tunnel.config, tunnel.rules, workers).await;
    if let Some(path) = tunnel.generated_token {
        let _ = std::fs::remove_file(path);
    }
    started(result)
}

async fn serve(config_path: PathBuf, workers: usize) -> ExitCode {
    started(schemagate::server::app::serve(config_path, workers).await)
}

fn started(result: Result<(), StartError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(errors)) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            ExitCode::from(EXIT_USAGE)
        }
        Err(StartError::Io(error)) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
