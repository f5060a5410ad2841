//! The connection series of `GET /metrics`: `strata_connections{listener}`, the client
//! connections open on each gRPC listener (`internal`, `external`), and
//! `strata_connections_rejected_total{listener,reason}`, the connections closed before
//! they carried a call:
//!
//! - `max_connections_per_ip`: closed at the accept, their address already had
//!   `max_connections_per_ip` open (`super::connections::Incoming`);
//! - `handshake_timeout`: closed because the HTTP/2 preface did not come within
//!   `handshake_timeout_ms` (a half-open or slowloris connection).
//!
//! Connections closed by the idle timeout were served and are not counted as rejected.
//!
//! The open counts are kept here ([`ConnectionGauges`], one per server, shared by its
//! listeners) and set as gauges at each scrape, like the other state gauges, so a count
//! that has not changed for a while does not expire from the output. Rejections are
//! counters, counted where they happen; each listener's are shown from 0 on.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use metrics::{counter, gauge};

use crate::controller::Listener;

/// Client connections open, per listener.
pub const CONNECTIONS: &str = "strata_connections";
/// Connections closed before they carried a call, per listener and reason.
pub const CONNECTIONS_REJECTED_TOTAL: &str = "strata_connections_rejected_total";

/// Why a connection was closed before it carried a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Its address already had `max_connections_per_ip` connections open.
    MaxConnectionsPerIp,
    /// No HTTP/2 preface within the handshake timeout.
    HandshakeTimeout,
}

impl Rejection {
    pub const ALL: [Rejection; 2] = [Rejection::MaxConnectionsPerIp, Rejection::HandshakeTimeout];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MaxConnectionsPerIp => "max_connections_per_ip",
            Rejection::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// The `listener` label.
pub fn listener_label(listener: Listener) -> &'static str {
    match listener {
        Listener::Internal => "internal",
        Listener::External => "external",
    }
}

/// Counts one rejected connection of `listener`.
pub fn rejected(listener: Listener, reason: Rejection) {
    counter!(
        CONNECTIONS_REJECTED_TOTAL,
        "listener" => listener_label(listener),
        "reason" => reason.as_str()
    )
    .increment(1);
}

/// The connections open on each listener of one server.
#[derive(Debug, Default)]
pub struct ConnectionGauges {
    /// Only listeners that exist have an entry (from [`ConnectionGauges::listening`]).
    open: Mutex<BTreeMap<&'static str, usize>>,
}

impl ConnectionGauges {
    fn open(&self) -> MutexGuard<'_, BTreeMap<&'static str, usize>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `listener` accepts connections: its series are shown from now on, at 0.
    pub fn listening(&self, listener: Listener) {
        self.open().entry(listener_label(listener)).or_insert(0);
    }

    /// A connection of `listener` was admitted.
    pub fn opened(&self, listener: Listener) {
        *self.open().entry(listener_label(listener)).or_insert(0) += 1;
    }

    /// A connection of `listener` closed.
    pub fn closed(&self, listener: Listener) {
        if let Some(count) = self.open().get_mut(listener_label(listener)) {
            *count = count.saturating_sub(1);
        }
    }

    /// The connections open now, by `listener` label.
    pub fn snapshot(&self) -> BTreeMap<&'static str, usize> {
        self.open().clone()
    }

    /// Sets the gauges in the installed recorder (at each scrape), and shows each
    /// listener's rejection counters, at 0 until the first rejection.
    pub fn publish(&self) {
        for (listener, count) in self.snapshot() {
            // Counts far below 2^52 convert exactly.
            gauge!(CONNECTIONS, "listener" => listener).set(count as f64);
            for reason in Rejection::ALL {
                counter!(
                    CONNECTIONS_REJECTED_TOTAL,
                    "listener" => listener,
                    "reason" => reason.as_str()
                )
                .increment(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn open_connections_are_counted_per_listener_and_only_for_listeners_that_exist() {
        let gauges = ConnectionGauges::default();
        assert!(gauges.snapshot().is_empty());
        gauges.listening(Listener::Internal);
        gauges.opened(Listener::Internal);
        gauges.opened(Listener::Internal);
        gauges.closed(Listener::Internal);
        assert_eq!(gauges.snapshot(), BTreeMap::from([("internal", 1)]));
        gauges.listening(Listener::External);
        assert_eq!(
            gauges.snapshot(),
            BTreeMap::from([("external", 0), ("internal", 1)])
        );
    }

    #[test]
    fn the_series_render_with_their_labels() {
        let recorder = crate::admin::metrics::local_recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let gauges = ConnectionGauges::default();
            gauges.listening(Listener::Internal);
            gauges.listening(Listener::External);
            gauges.opened(Listener::External);
            gauges.opened(Listener::External);
            rejected(Listener::External, Rejection::MaxConnectionsPerIp);
            gauges.publish();
        });
        let text = handle.render();
        for line in [
            "strata_connections{listener=\"internal\"} 0",
            "strata_connections{listener=\"external\"} 2",
            "strata_connections_rejected_total{listener=\"external\",reason=\"max_connections_per_ip\"} 1",
            "strata_connections_rejected_total{listener=\"external\",reason=\"handshake_timeout\"} 0",
            "strata_connections_rejected_total{listener=\"internal\",reason=\"max_connections_per_ip\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
