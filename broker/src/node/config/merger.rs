//! The precedence of settings: flag or environment variable (told apart by clap), then
//! the TOML file, then the default; each value remembers where it came from.

use std::collections::BTreeMap;
use std::path::Path;

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::{ConfigError, FileConfig, Source};

/// Picks flag/env (told apart by clap's value source), then file, then default.
pub(super) struct Merger<'a> {
    pub(super) matches: &'a ArgMatches,
    pub(super) sources: BTreeMap<&'static str, Source>,
}

impl Merger<'_> {
    pub(super) fn pick<T>(
        &mut self,
        key: &'static str,
        arg_id: &str,
        cli: Option<T>,
        file: Option<T>,
        default: T,
    ) -> T {
        let (value, source) = match (cli, file) {
            (Some(value), _) => {
                let source = match self.matches.value_source(arg_id) {
                    Some(ValueSource::EnvVariable) => Source::Env,
                    _ => Source::Flag,
                };
                (value, source)
            }
            (None, Some(value)) => (value, Source::File),
            (None, None) => (default, Source::Default),
        };
        self.sources.insert(key, source);
        value
    }

    pub(super) fn source_name(&self, key: &'static str) -> &'static str {
        self.sources
            .get(key)
            .map_or("default", |source| source.name())
    }
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::ParseFile {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}
