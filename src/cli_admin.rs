//! The `window` and `session` commands of the CLI: a small client of the
//! admin HTTP API.
//!
//! Exit codes: 0 success, 1 the server rejected the request or could not be
//! reached, 2 invalid arguments, an unreadable token file or a malformed URL.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;

use crate::window::WindowView;

mod client;
mod output;
#[cfg(test)]
mod tests;

pub use client::CliError;

use client::AdminClient;

/// Options shared by every admin command.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Base URL of the admin API; only http:// is supported.
    #[arg(
        long = "admin",
        value_name = "URL",
        env = "SCHEMAGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:6433",
        global = true
    )]
    pub url: String,

    /// File containing the admin bearer token.
    #[arg(
        long,
        value_name = "PATH",
        env = "SCHEMAGATE_ADMIN_TOKEN_FILE",
        global = true
    )]
    pub token_file: Option<PathBuf>,

    /// Operator name recorded as the opener of new windows [default: $USER].
    #[arg(long, value_name = "NAME", env = "SCHEMAGATE_OPERATOR", global = true)]
    pub operator: Option<String>,
}

/// `schemagate window ...`
#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(subcommand)]
    pub command: WindowCommand,
}

/// `schemagate session ...`
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(subcommand)]
    pub command: SessionCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum WindowCommand {
    /// Open a migration window and print its id.
    Open(OpenArgs),
    /// Close a window; with `on_expiry: terminate` its sessions end too.
    Close {
        /// Window id, such as w-3f9a1c2b.
        id: String,
    },
    /// List open and recently ended windows.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct OpenArgs {
    /// Database the window applies to.
    #[arg(long)]
    pub database: String,
    /// How long the window stays open, such as 30m or 1h30m.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration_text)]
    pub duration: String,
    /// Reason for the window, recorded in the audit log.
    #[arg(long)]
    pub reason: String,
    /// Migrator user the window admits; repeat for several [default: every
    /// migrator configured for the database].
    #[arg(long = "user", value_name = "USER")]
    pub users: Vec<String>,
    /// Maximum sessions that may bind [default: windows.sessions_per_window].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub sessions: Option<u32>,
    /// Print the window as JSON instead of its id.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SessionCommand {
    /// List client sessions.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End a client session.
    Kill {
        /// Session id, as shown by `session list`.
        id: u64,
    },
}

/// A session as the admin API lists it.
pub use crate::server::SessionInfo as SessionRow;

/// Runs a `window` command, prints its output and returns the exit code.
pub async fn run_window(command: WindowCommand, admin: &AdminArgs) -> i32 {
    report(execute_window(command, admin).await)
}

/// Runs a `session` command, prints its output and returns the exit code.
pub async fn run_session(command: SessionCommand, admin: &AdminArgs) -> i32 {
    report(execute_session(command, admin).await)
}

/// Runs a `window` command and returns what it prints on success.
pub async fn execute_window(command: WindowCommand, admin: &AdminArgs) -> Result<String, CliError> {
    let client = AdminClient::from_args(admin)?;
    match command {
        WindowCommand::Open(open) => {
            let body = json!({
                "database": open.database,
                "for": open.duration,
                "reason": open.reason,
                "users": open.users,
                "sessions": open.sessions,
            });
            let window: WindowView = client.send(Method::POST, "/v1/windows", Some(body)).await?;
            Ok(if open.json {
                output::json(&window)?
            } else {
                window.id
            })
        }
        WindowCommand::Close { id } => {
            let path = format!("/v1/windows/{}", output::path_segment(&id)?);
            let window: WindowView = client.send(Method::DELETE, &path, None).await?;
            Ok(format!("closed window {}", window.id))
        }
        WindowCommand::List { json } => {
            let windows: Vec<WindowView> = client.send(Method::GET, "/v1/windows", None).await?;
            Ok(if json {
                output::json(&windows)?
            } else {
                output::window_table(&windows)
            })
        }
    }
}

/// Runs a `session` command and returns what it prints on success.
pub async fn execute_session(
    command: SessionCommand,
    admin: &AdminArgs,
) -> Result<String, CliError> {
    let client = AdminClient::from_args(admin)?;
    match command {
        SessionCommand::List { json } => {
            let sessions: Vec<SessionRow> = client.send(Method::GET, "/v1/sessions", None).await?;
            Ok(if json {
                output::json(&sessions)?
            } else {
                output::session_table(&sessions)
            })
        }
        SessionCommand::Kill { id } => {
            let path = format!("/v1/sessions/{id}");
            let _: serde_json::Value = client.send(Method::DELETE, &path, None).await?;
            Ok(format!("terminated session {id}"))
        }
    }
}

fn report(result: Result<String, CliError>) -> i32 {
    match result {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(error) => {
            eprintln!("schemagate: {error}");
            error.exit_code()
        }
    }
}

/// Checks a humantime duration and keeps its text for the request.
fn parse_duration_text(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("{error}; use a form such as 30m or 1h30m"))
}
