//! Where output goes (docs/CLI.md, "Output"): results on stdout, everything else on stderr.
//!
//! Rust ignores SIGPIPE, so writing to a closed pipe returns `BrokenPipe` instead of killing
//! the process, and `println!` would panic on it. [`Output`] turns `BrokenPipe` into
//! [`OutputError::Closed`], which commands treat as a clean stop: `strata consume t | head`
//! exits 0 without a message. After the first `Closed` every later write is refused without
//! touching the writer again. A command that follows a log may have nothing to write for a
//! long time; it polls [`stdout_reader_gone`] while idle so `consume | head` still ends.
//! [`status!`] writes progress and summaries to stderr and ignores a closed stderr for the
//! same reason.

use std::io::{self, BufWriter, Stdout, Write};

/// `--format`: how listings, reports and errors are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned tables and plain lines.
    #[default]
    Text,
    /// One JSON document per listing; JSON Lines for streams.
    Json,
}

/// Why a write to stdout did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader went away (`| head`): stop quietly and exit 0.
    #[error("stdout was closed by the reader")]
    Closed,
    #[error("writing to stdout: {0}")]
    Io(#[source] io::Error),
}

/// A buffered result writer; stdout unless a test hands it something else.
#[derive(Debug)]
pub struct Output<W: Write = Stdout> {
    writer: BufWriter<W>,
    closed: bool,
}

impl Output<Stdout> {
    pub fn stdout() -> Output<Stdout> {
        Output::new(io::stdout())
    }
}

impl<W: Write> Output<W> {
    pub fn new(writer: W) -> Output<W> {
        Output {
            writer: BufWriter::new(writer),
            closed: false,
        }
    }

    /// Buffers `bytes`; call [`Output::flush`] when the reader should see them.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        if self.closed {
            return Err(OutputError::Closed);
        }
        let result = self.writer.write_all(bytes);
        self.check(result)
    }

    /// Writes a whole text (a table, a JSON document) and flushes it.
    pub fn print(&mut self, text: &str) -> Result<(), OutputError> {
        self.write(text.as_bytes())?;
        self.flush()
    }

    pub fn flush(&mut self) -> Result<(), OutputError> {
        if self.closed {
            return Err(OutputError::Closed);
        }
        let result = self.writer.flush();
        self.check(result)
    }

    fn check(&mut self, result: io::Result<()>) -> Result<(), OutputError> {
        match result {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Err(OutputError::Closed)
            }
            Err(error) => Err(OutputError::Io(error)),
        }
    }
}

/// Whether stdout is a pipe whose reader has gone away, checked without writing:
/// `poll(2)` reports `POLLERR` on the write end of a pipe that has no reader left.
/// Always `false` where that cannot be asked (non-Unix) or for terminals and files.
#[cfg(unix)]
pub fn stdout_reader_gone() -> bool {
    let mut poll_fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: `poll_fd` is a valid, exclusively borrowed array of one `pollfd` for the whole
    // call, and the timeout of 0 makes `poll` return at once without retaining the pointer.
    let ready = unsafe { libc::poll(std::ptr::from_mut(&mut poll_fd), 1, 0) };
    ready > 0 && poll_fd.revents & libc::POLLERR != 0
}

#[cfg(not(unix))]
pub fn stdout_reader_gone() -> bool {
    false
}

/// Writes a line to stderr, ignoring failure (a closed stderr must not panic or change the
/// exit code). Use for progress, warnings and summaries, never for results.
macro_rules! status {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use status;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A writer whose reader has gone away after `accepted` bytes.
    struct ClosedPipe {
        accepted: usize,
        writes_after_close: usize,
    }

    impl Write for ClosedPipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.accepted == 0 {
                self.writes_after_close += 1;
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            let taken = buf.len().min(self.accepted);
            self.accepted -= taken;
            Ok(taken)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn broken_pipe_is_a_clean_stop_and_sticks() {
        let pipe = ClosedPipe {
            accepted: 4,
            writes_after_close: 0,
        };
        let mut output = Output::new(pipe);
        output.write(b"line one\n").unwrap(); // buffered
        assert!(matches!(output.flush(), Err(OutputError::Closed)));
        assert!(matches!(output.write(b"more"), Err(OutputError::Closed)));
        assert!(matches!(output.flush(), Err(OutputError::Closed)));
        assert_eq!(output.writer.get_ref().writes_after_close, 1);
    }

    #[test]
    fn other_errors_are_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::StorageFull))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut output = Output::new(Full);
        assert!(matches!(output.print("x"), Err(OutputError::Io(_))));
    }

    #[test]
    fn print_writes_through() {
        let mut output = Output::new(Vec::new());
        output.print("a\n").unwrap();
        output.print("b\n").unwrap();
        assert_eq!(output.writer.get_ref(), b"a\nb\n");
    }
}
