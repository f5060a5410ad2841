//! Settings that take one of a few names (`log_format`, `log_io`).

use std::str::FromStr;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_choice(
            text,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )
    }
}

/// The value named `text` among `choices`, or an error that lists the names.
fn parse_choice<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    match choices.iter().find(|(name, _)| *name == text) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<String> = choices
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            Err(format!("expected {}, not {text:?}", names.join(" or ")))
        }
    }
}

/// How partition logs reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogIo {
    /// Through the page cache (Kafka's way).
    Buffered,
    /// With `O_DIRECT`, past the page cache.
    Direct,
}

impl LogIo {
    pub(crate) const NAMES: [(&'static str, LogIo); 2] =
        [("buffered", LogIo::Buffered), ("direct", LogIo::Direct)];

    pub fn name(self) -> &'static str {
        match self {
            LogIo::Buffered => "buffered",
            LogIo::Direct => "direct",
        }
    }
}

impl FromStr for LogIo {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_choice(text, &LogIo::NAMES)
    }
}
