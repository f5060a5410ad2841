//! Ctrl-C, SIGTERM and SIGHUP (docs/CLI.md, "Ctrl-C").
//!
//! The first signal asks the running command to stop cleanly: consume stops fetching,
//! flushes stdout, prints its summary and exits 0; produce stops reading input and waits for
//! the records already sent. A second signal exits at once with 130 (128 + SIGINT), without
//! flushing or committing anything. Commands that have nothing to finish (admin requests)
//! are simply abandoned on the first signal, also with 130.

use tokio::sync::watch;

use crate::exit::ExitStatus;
use crate::output::status;

/// A handle on the "stop requested" flag; cheap to clone.
#[derive(Debug, Clone)]
pub struct Interrupts {
    requested: watch::Receiver<bool>,
}

impl Interrupts {
    /// Starts listening for signals. Must be called inside the tokio runtime.
    pub fn install() -> Interrupts {
        let (sender, requested) = watch::channel(false);
        tokio::spawn(async move {
            let mut received = 0_u32;
            loop {
                if let Err(error) = next_signal().await {
                    status!("warning: cannot listen for Ctrl-C: {error}");
                    return;
                }
                received += 1;
                if received == 1 {
                    let _ = sender.send(true);
                } else {
                    status!("interrupted again: exiting without cleanup");
                    std::process::exit(i32::from(ExitStatus::Interrupted.code()));
                }
            }
        });
        Interrupts { requested }
    }

    /// Whether a stop has been requested.
    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once a stop has been requested (immediately if it already was).
    pub async fn requested(&mut self) {
        // An error means the listener task ended; then no signal will ever come.
        if self
            .requested
            .wait_for(|requested| *requested)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(unix)]
async fn next_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
        _ = hangup.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn next_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
