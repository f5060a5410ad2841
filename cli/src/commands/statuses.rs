//! The answer of a command that acts on several topics or groups at once (`topic
//! create`/`delete`, `group delete`): one `NAME STATUS` row per item (`OK` or the error
//! code), then one error line per failure; exit 1 if any failed.

use serde_json::{Map, Value};

use super::Context;
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::table::Table;

/// What the items are: `"topic"` or `"group"` (the JSON key; the column is its upper case).
pub(super) fn report_statuses(
    context: &mut Context,
    kind: &str,
    outcomes: Vec<(String, Result<(), CliError>)>,
    verb: &str,
) -> Result<ExitStatus, CliError> {
    let total = outcomes.len();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(()) => rows.push((name, "OK".to_owned(), None)),
            Err(error) => {
                rows.push((
                    name.clone(),
                    error.code.clone(),
                    Some(error.message.clone()),
                ));
                errors.push(error.context(format!("{verb} {name:?}")));
            }
        }
    }
    match context.format() {
        OutputFormat::Json => {
            let statuses: Vec<Value> = rows
                .iter()
                .map(|(name, code, message)| {
                    let mut entry = Map::new();
                    entry.insert(kind.to_owned(), Value::from(name.as_str()));
                    entry.insert("status".to_owned(), Value::from(code.as_str()));
                    if let Some(message) = message {
                        entry.insert("message".to_owned(), Value::from(message.as_str()));
                    }
                    Value::Object(entry)
                })
                .collect();
            context.print_json(&statuses)?;
        }
        OutputFormat::Text => {
            let mut table = Table::new([kind.to_uppercase(), "STATUS".to_owned()]);
            for (name, code, _) in &rows {
                table.row([name.clone(), code.clone()]);
            }
            context.print(&table.to_string())?;
        }
    }
    let failed = errors.len();
    for error in errors {
        error.report(context.format());
    }
    if failed == 0 {
        return Ok(ExitStatus::Success);
    }
    if total > 1 {
        status!("{failed} of {total} {kind}s failed");
    }
    Ok(ExitStatus::Failure)
}
