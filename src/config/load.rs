//! Reading and validating `rules.yaml`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{validate, Config};

/// A configuration that cannot be used, with the key or YAML line at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid YAML or does not match the configuration model.
    #[error("{path}{location}: {message}")]
    Parse {
        path: String,
        location: Location,
        message: String,
    },
    /// The file parsed, but some values cannot be used; one entry per problem.
    #[error("{}", join_prefixed(path, errors))]
    Invalid { path: String, errors: Vec<String> },
}

impl ConfigError {
    /// Returns one line per problem, each starting with the file name.
    pub fn messages(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { path, errors } => errors
                .iter()
                .map(|error| format!("{path}: {error}"))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Line and column (both 1-based) of a YAML error, when the parser reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

/// Reads, parses and validates the configuration file at `path`.
///
/// Every semantic problem is reported at once in [`ConfigError::Invalid`].
/// Tag lists under `ddl` are checked by the policy engine, not here.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let config = parse(path)?;

    let errors = validate(&config);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid {
            path: path.display().to_string(),
            errors,
        });
    }
    Ok(config)
}

/// Reads and parses the file at `path` without semantic validation.
///
/// Relative paths inside the file are resolved against the file's directory.
pub fn parse(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;

    let mut config = parse_str(&text).map_err(|(location, message)| ConfigError::Parse {
        path: path.display().to_string(),
        location,
        message,
    })?;

    let base = path.parent().unwrap_or_else(|| Path::new(""));
    resolve_paths(&mut config, base);
    Ok(config)
}

/// Parses YAML text; the error carries the location and a message that names
/// the key path but never the file's content beyond the offending scalar.
fn parse_str(text: &str) -> Result<Config, (Location, String)> {
    serde_norway::from_str(text).map_err(|err| {
        let message = err.to_string();
        match err.location() {
            Some(location) => {
                let suffix = format!(" at line {} column {}", location.line(), location.column());
                let location = Location {
                    line: Some(location.line()),
                    column: Some(location.column()),
                };
                (location, message.replacen(&suffix, "", 1))
            }
            None => (Location::default(), message),
        }
    })
}

/// Makes every relative path in `config` relative to `base` instead of the
/// process's working directory.
fn resolve_paths(config: &mut Config, base: &Path) {
    let paths: [&mut Option<PathBuf>; 7] = [
        &mut config.listen.tls.cert,
        &mut config.listen.tls.key,
        &mut config.listen.tls.client_ca,
        &mut config.upstream.tls.ca,
        &mut config.windows.state_file,
        &mut config.admin.token_file,
        &mut config.audit.path,
    ];
    for path in paths.into_iter().flatten() {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
}

fn join_prefixed(path: &str, errors: &[String]) -> String {
    errors
        .iter()
        .map(|error| format!("{path}: {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
