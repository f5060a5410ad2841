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
    ///
    /// The listeners are registered here, once, before this returns: a signal is seen
    /// only by listeners that exist when it arrives, so listeners made anew after each
    /// signal could miss a second Ctrl-C sent right after the first was handled.
    pub fn install() -> Interrupts {
        let (sender, requested) = watch::channel(false);
        let signals = Signals::new();
        tokio::spawn(async move {
            let mut signals = match signals {
                Ok(signals) => signals,
                Err(error) => {
                    status!("warning: cannot listen for Ctrl-C: {error}");
                    return;
                }
            };
            let mut received = 0_u32;
            loop {
                if let Err(error) = signals.next().await {
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

/// SIGINT, SIGTERM and SIGHUP, listened for from creation on.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves at the next of the three signals.
    async fn next(&mut self) -> std::io::Result<()> {
        tokio::select! {
            _ = self.interrupt.recv() => Ok(()),
            _ = self.terminate.recv() => Ok(()),
            _ = self.hangup.recv() => Ok(()),
        }
    }
}

/// Ctrl-C, listened for from creation on.
#[cfg(not(unix))]
struct Signals {
    ctrl_c: tokio::signal::windows::CtrlC,
}

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            ctrl_c: tokio::signal::windows::ctrl_c()?,
        })
    }

    async fn next(&mut self) -> std::io::Result<()> {
        self.ctrl_c.recv().await;
        Ok(())
    }
}
