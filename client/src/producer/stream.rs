//! [`ProduceStreams`]: one bidirectional `Produce` stream per broker for a producer, and
//! the routing of each answer back to the partition task that sent the request.
//!
//! A partition task registers a route for its `request_id` and writes the request into
//! the stream's queue; the stream's reader task looks the id up in the routes and
//! forwards the answer. The broker appends a stream's requests in the order sent, which
//! is what keeps a partition's in-flight batches in order.
//!
//! When the stream ends or fails, the reader marks it dead (under the routes lock) and
//! fails every registered route with a retriable "connection lost" error whose outcome is
//! unknown; a request registered after that is refused at once. The next send to that
//! broker opens a new stream. No task ever blocks on a partition task: answers go
//! through unbounded per-partition channels, each bounded in practice by the requests
//! that partition has outstanding (at most `max_in_flight` per stream it used).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_proto::api::v1 as wire;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::error::Error;

/// Requests queued for one stream before a partition task waits.
const STREAM_QUEUE_REQUESTS: usize = 64;

/// What a partition task hears about one of its requests.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    Response(wire::ProduceResponse),
    /// The stream failed before this request was answered; it may have been appended.
    Lost {
        request_id: u64,
        error: Error,
    },
}

/// Where the answer to one request goes.
pub(crate) type Route = mpsc::UnboundedSender<StreamEvent>;

#[derive(Debug)]
struct StreamHandle {
    requests: mpsc::Sender<wire::ProduceRequest>,
    routes: Arc<Mutex<Routes>>,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Routes {
    dead: bool,
    pending: HashMap<u64, Route>,
}

/// The produce streams of one producer, keyed by broker address.
#[derive(Debug)]
pub(crate) struct ProduceStreams {
    client: Client,
    request_timeout: Duration,
    next_request_id: AtomicU64,
    streams: Mutex<HashMap<String, StreamHandle>>,
}

impl ProduceStreams {
    pub(crate) fn new(client: Client, request_timeout: Duration) -> ProduceStreams {
        ProduceStreams {
            client,
            request_timeout,
            next_request_id: AtomicU64::new(1),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// A request id unique within this producer.
    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes `request` to the stream of `address`. With a `route` the answer (or the
    /// loss of the stream) is sent there; without one (acks=0) nothing comes back.
    /// `Ok` means the request is queued on a live stream.
    pub(crate) async fn send(
        &self,
        address: &str,
        request: wire::ProduceRequest,
        route: Option<Route>,
    ) -> Result<(), Error> {
        let request_id = request.request_id;
        let (requests, routes) = self.stream(address)?;
        if let Some(route) = route {
            let mut routes = lock(&routes);
            if routes.dead {
                drop(routes);
                self.forget(address);
                return Err(lost("produce stream closed"));
            }
            routes.pending.insert(request_id, route);
        }
        let queued = tokio::time::timeout(self.request_timeout, requests.send(request)).await;
        match queued {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => {
                lock(&routes).pending.remove(&request_id);
                self.forget(address);
                Err(lost("produce stream closed before the request was written"))
            }
        }
    }

    /// Drops the stream of `address` (after a timeout), so the next send opens a new one.
    pub(crate) fn forget(&self, address: &str) {
        lock(&self.streams).remove(address);
    }

    /// Ends every stream: the request side closes, the broker finishes what it received
    /// and closes its side. Waits up to the request timeout for that, so even `acks=0`
    /// requests have reached the broker when `close` returns.
    pub(crate) async fn close_all(&self) {
        let handles: Vec<StreamHandle> = lock(&self.streams)
            .drain()
            .map(|(_, handle)| handle)
            .collect();
        for handle in handles {
            drop(handle.requests);
            if tokio::time::timeout(self.request_timeout, handle.reader)
                .await
                .is_err()
            {
                tracing::debug!("produce stream did not close in time");
            }
        }
    }

    /// The live stream of `address`, opening one if needed.
    fn stream(
        &self,
        address: &str,
    ) -> Result<(mpsc::Sender<wire::ProduceRequest>, Arc<Mutex<Routes>>), Error> {
        let mut streams = lock(&self.streams);
        if let Some(handle) = streams.get(address) {
            if !lock(&handle.routes).dead && !handle.requests.is_closed() {
                return Ok((handle.requests.clone(), handle.routes.clone()));
            }
        }
        let channel = self.client.channel(address)?;
        let (requests, receiver) = mpsc::channel(STREAM_QUEUE_REQUESTS);
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader = tokio::spawn(read_answers(channel, receiver, routes.clone()));
        streams.insert(
            address.to_owned(),
            StreamHandle {
                requests: requests.clone(),
                routes: routes.clone(),
                reader,
            },
        );
        Ok((requests, routes))
    }
}

/// Opens the stream ([`crate::produce_call`]: batches are not copied into an encode
/// buffer) and forwards every answer to its route until the stream ends.
async fn read_answers(
    channel: tonic::transport::Channel,
    requests: mpsc::Receiver<wire::ProduceRequest>,
    routes: Arc<Mutex<Routes>>,
) {
    let error = match crate::produce_call::open(channel, requests).await {
        Err(status) => Error::from(status),
        Ok(mut answers) => {
            loop {
                match answers.message().await {
                    Ok(Some(answer)) => {
                        let route = lock(&routes).pending.remove(&answer.request_id);
                        match route {
                            Some(route) => {
                                // A partition task that ended has nothing left to learn.
                                let _ = route.send(StreamEvent::Response(answer));
                            }
                            None => tracing::debug!(
                                request_id = answer.request_id,
                                "produce answer for an unknown request id; ignored"
                            ),
                        }
                    }
                    Ok(None) => break lost("broker closed the produce stream"),
                    Err(status) => break Error::from(status),
                }
            }
        }
    };
    let orphans = {
        let mut routes = lock(&routes);
        routes.dead = true;
        std::mem::take(&mut routes.pending)
    };
    if !orphans.is_empty() {
        tracing::debug!(%error, requests = orphans.len(), "produce stream lost with requests outstanding");
    }
    for (request_id, route) in orphans {
        let error = error.duplicate();
        let _ = route.send(StreamEvent::Lost { request_id, error });
    }
}

/// A lost stream: retriable, outcome unknown.
fn lost(message: &str) -> Error {
    Error::Transport(tonic::Status::unavailable(message))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
