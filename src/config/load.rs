//! Reading and validating `rules.yaml`.

use std::path::Path;

use super::Config;

/// A configuration that cannot be used, with the key or YAML line at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let config: Config = serde_norway::from_str(&text).map_err(|err| ConfigError::Invalid {
        path: path.display().to_string(),
        message: err.to_string(),
    })?;
    Ok(config)
}
