//! Exit codes and error reports (docs/CLI.md, "Exit codes").
//!
//! Every command returns `Result<ExitStatus, CliError>`. A [`CliError`] carries the exit
//! status, a SCREAMING_SNAKE code (the broker's Kafka name such as `INVALID_TOPIC`, or a
//! client-side kind such as `CONNECT`), a one-line message with context, whether a retry
//! could help, and an optional hint. It is reported on stderr as
//!
//! ```text
//! error: creating topic "bad/name": topic name contains '/' (INVALID_TOPIC)
//! hint: topic names use only ASCII letters, digits, '.', '_' and '-'
//! ```
//!
//! or, with `--format json`, as `{"error":{"code":..,"message":..,"retriable":..}}` (plus
//! `"hint"` when there is one).

use std::fmt::Display;
use std::io::Write as _;

use serde::Serialize;

use crate::output::OutputFormat;

/// The process exit codes of docs/CLI.md, "Exit codes".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Success, including a consume stopped by Ctrl-C or by a closed pipe.
    Success,
    /// The operation failed, also partially (some records not delivered, some topics not
    /// created).
    Failure,
    /// Bad flags or arguments, or a confirmation refused on a non-TTY.
    Usage,
    /// `cluster health` found the cluster unhealthy.
    Unhealthy,
    /// A second Ctrl-C forced an immediate exit (128 + SIGINT).
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Unhealthy => 10,
            ExitStatus::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// A failed command, ready to be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub exit: ExitStatus,
    pub code: String,
    pub message: String,
    pub retriable: bool,
    pub hint: Option<String>,
}

#[derive(Serialize)]
struct JsonError<'a> {
    error: JsonErrorBody<'a>,
}

#[derive(Serialize)]
struct JsonErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    retriable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

impl CliError {
    /// An operation that failed (exit 1).
    pub fn failure(code: impl Into<String>, message: impl Display) -> CliError {
        CliError {
            exit: ExitStatus::Failure,
            code: code.into(),
            message: message.to_string(),
            retriable: false,
            hint: None,
        }
    }

    /// A usage error (exit 2), e.g. a value clap cannot check by itself.
    pub fn usage(message: impl Display) -> CliError {
        CliError {
            exit: ExitStatus::Usage,
            code: "INVALID_ARGUMENT".to_owned(),
            ..CliError::failure("", message)
        }
    }

    /// An I/O error on local input or output (exit 1).
    pub fn io(context: impl Display, error: &std::io::Error) -> CliError {
        CliError::failure("IO_ERROR", format!("{context}: {error}"))
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    pub fn retriable(mut self, retriable: bool) -> CliError {
        self.retriable = retriable;
        self
    }

    /// Prefixes the message with what the command was doing: `creating topic "x": ...`.
    pub fn context(mut self, context: impl Display) -> CliError {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The report as it goes to stderr, newline-terminated.
    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Text => {
                let mut text = format!("error: {} ({})\n", self.message, self.code);
                if let Some(hint) = &self.hint {
                    text.push_str(&format!("hint: {hint}\n"));
                }
                text
            }
            OutputFormat::Json => {
                let json = JsonError {
                    error: JsonErrorBody {
                        code: &self.code,
                        message: &self.message,
                        retriable: self.retriable,
                        hint: self.hint.as_deref(),
                    },
                };
                // Serialising strings and a bool cannot fail; fall back to text if it does.
                match serde_json::to_string(&json) {
                    Ok(line) => line + "\n",
                    Err(_) => self.render(OutputFormat::Text),
                }
            }
        }
    }

    /// Writes the report to stderr; a closed stderr is ignored (there is nowhere left to
    /// report to, and the exit code still tells).
    pub fn report(&self, format: OutputFormat) {
        let _ = std::io::stderr().write_all(self.render(format).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn exit_codes_match_the_table() {
        let codes: Vec<u8> = [
            ExitStatus::Success,
            ExitStatus::Failure,
            ExitStatus::Usage,
            ExitStatus::Unhealthy,
            ExitStatus::Interrupted,
        ]
        .into_iter()
        .map(ExitStatus::code)
        .collect();
        assert_eq!(codes, [0, 1, 2, 10, 130]);
    }

    #[test]
    fn text_report_is_one_error_line_and_an_optional_hint() {
        let error = CliError::failure("INVALID_TOPIC", "topic name contains '/'")
            .context("creating topic \"bad/name\"");
        assert_eq!(
            error.render(OutputFormat::Text),
            "error: creating topic \"bad/name\": topic name contains '/' (INVALID_TOPIC)\n"
        );
        let error = error.with_hint("use [a-zA-Z0-9._-]");
        assert_eq!(
            error.render(OutputFormat::Text).lines().nth(1),
            Some("hint: use [a-zA-Z0-9._-]")
        );
        assert_eq!(error.exit, ExitStatus::Failure);
    }

    #[test]
    fn json_report_has_the_documented_shape() {
        let error =
            CliError::failure("UNKNOWN_TOPIC_OR_PARTITION", "no topic \"x\"").retriable(true);
        let text = error.render(OutputFormat::Json);
        assert!(text.ends_with("}\n") && text.lines().count() == 1);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["error"]["code"], "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(parsed["error"]["message"], "no topic \"x\"");
        assert_eq!(parsed["error"]["retriable"], true);
        assert!(parsed["error"].get("hint").is_none());
    }

    #[test]
    fn usage_errors_exit_2() {
        let error = CliError::usage("bad offset");
        assert_eq!(error.exit, ExitStatus::Usage);
        assert_eq!(error.exit.code(), 2);
        assert_eq!(error.code, "INVALID_ARGUMENT");
    }
}
