//! What a shutdown is waiting for. Once the server's shutdown future resolves it stops
//! accepting connections and waits for every open call to end (streams are told to end
//! by [`crate::node::Node::stopping`]). A call that does not end holds the whole drain
//! until `shutdown_grace_ms` runs out, so while calls stay open the broker logs which
//! ones, by client address and call name, every [`REPORT_INTERVAL`]:
//!
//! ```text
//! WARN draining: calls still open open_calls="127.0.0.1 produce_stream x1" drain_ms=5000
//! ```
//!
//! The report ends when nothing is open any more, or with the process.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::connections::Clients;

/// How often a drain that is still waiting says so.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Logs the calls still open every [`REPORT_INTERVAL`] until there are none.
pub(super) async fn report_open_calls(clients: Arc<Clients>) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(REPORT_INTERVAL).await;
        let open = clients.open_calls();
        if open.is_empty() {
            return;
        }
        let mut summary = String::new();
        for (address, call, count) in open {
            let separator = if summary.is_empty() { "" } else { ", " };
            let _ = write!(summary, "{separator}{address} {call} x{count}");
        }
        tracing::warn!(
            open_calls = %summary,
            drain_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "draining: calls still open"
        );
    }
}
