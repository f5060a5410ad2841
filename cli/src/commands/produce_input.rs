//! Where `strata produce` reads its records: `--value` arguments, or FILEs in order, or
//! stdin (when no file is given, and wherever `-` is given), each cut into records by the
//! `-f` input format (default `%v\n`, one record per line).
//!
//! Files and stdin are read on a plain thread (not tokio's blocking pool, which would keep
//! the process alive on a stdin read that never returns after Ctrl-C) and handed over a
//! bounded channel, so memory stays bounded however fast the input is. Every file is opened
//! before anything is produced ([`Input::open`]), so a typo in a name fails at once and
//! sends nothing. Record numbers in error messages count from 1 in each source.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::args::ProduceArgs;
use crate::exit::CliError;
use crate::format::Format;
use crate::format_input::{InputError, InputFormat, ParsedRecord};

/// Parsed input records waiting to be produced; bounds memory when the input is fast.
const INPUT_QUEUE_RECORDS: usize = 1024;

/// A record of the input, or why one could not be read.
pub type InputItem = Result<ParsedRecord, SourceError>;

/// An input record that did not match the format, or a read that failed.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} {error}")]
pub struct SourceError {
    /// `stdin` or the file name as given.
    pub source_name: String,
    #[source]
    pub error: InputError,
}

/// One place records come from.
#[derive(Debug)]
pub enum Source {
    Stdin,
    File { path: PathBuf, file: File },
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".to_owned(),
            Source::File { path, .. } => path.display().to_string(),
        }
    }
}

/// The checked input of one produce command, ready to [`Input::start`].
#[derive(Debug)]
pub enum Input {
    Values(Vec<String>),
    Sources {
        format: InputFormat,
        sources: Vec<Source>,
    },
}

impl Input {
    /// Checks the format and opens every file; nothing is read yet.
    pub fn open(args: &ProduceArgs) -> Result<Input, CliError> {
        if !args.values.is_empty() {
            if args.input_format.is_some() {
                return Err(CliError::usage(
                    "-f cuts records out of files and stdin; it cannot be combined with --value",
                ));
            }
            return Ok(Input::Values(args.values.clone()));
        }
        let source = args.input_format.as_deref().unwrap_or("%v\\n");
        let format = Format::parse(source)
            .and_then(|format| format.for_input(source))
            .map_err(CliError::usage)?;
        let sources = match args.files.as_slice() {
            [] => vec![Source::Stdin],
            files => files
                .iter()
                .map(|path| open_source(path))
                .collect::<Result<_, _>>()?,
        };
        Ok(Input::Sources { format, sources })
    }

    /// Starts reading; records arrive on the returned channel in input order, and the
    /// channel closes after the last one (or after a read error, which ends the input).
    pub fn start(self) -> mpsc::Receiver<InputItem> {
        let (sender, receiver) = mpsc::channel(INPUT_QUEUE_RECORDS);
        match self {
            Input::Values(values) => {
                tokio::spawn(async move {
                    for value in values {
                        let parsed = ParsedRecord {
                            value: value.into_bytes(),
                            ..ParsedRecord::default()
                        };
                        if sender.send(Ok(parsed)).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Input::Sources { format, sources } => {
                std::thread::spawn(move || read_sources(&format, sources, &sender));
            }
        }
        receiver
    }
}

fn open_source(path: &Path) -> Result<Source, CliError> {
    if path == Path::new("-") {
        return Ok(Source::Stdin);
    }
    let file = File::open(path).map_err(|error| {
        let error = CliError::io(format!("opening {}", path.display()), &error);
        match path.to_str() {
            Some(text) if !text.contains(['/', '.']) => error.with_hint(format!(
                "FILE arguments are read as files; to send the text itself use --value {text:?}"
            )),
            _ => error,
        }
    })?;
    Ok(Source::File {
        path: path.to_owned(),
        file,
    })
}

/// The reader thread: every source in order, each with the format's record count from 1.
fn read_sources(format: &InputFormat, sources: Vec<Source>, sender: &mpsc::Sender<InputItem>) {
    for source in sources {
        let name = source.name();
        let reader: Box<dyn Read> = match source {
            Source::Stdin => Box::new(std::io::stdin().lock()),
            Source::File { file, .. } => Box::new(file),
        };
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut records = format.clone();
        loop {
            let item = match records.read_record(&mut reader) {
                Ok(Some(parsed)) => Ok(parsed),
                Ok(None) => break,
                Err(error) => Err(SourceError {
                    source_name: name.clone(),
                    error,
                }),
            };
            let stop = matches!(
                &item,
                Err(SourceError {
                    error: InputError::Io(_),
                    ..
                })
            );
            if sender.blocking_send(item).is_err() || stop {
                return;
            }
        }
    }
}
