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
//! broker opens a new stream.
//!
//! Each stream has a [`StreamId`] (address and a generation number). The broker serves
//! two streams concurrently, so a partition's requests must never be split across two
//! of them: a partition whose outstanding requests went on one stream sends the next
//! only on that same stream ([`Sent::StreamReplaced`] otherwise), and moves to a new one
//! by resending everything it has outstanding, in order, with the same sequence numbers.
//! A stream dropped by one partition ([`ProduceStreams::forget`], after a timeout) is
//! only half-closed: the broker still answers what it read from it. No task ever blocks on a partition task: answers go
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

/// Which stream a request went on: the broker's address and the stream's generation
/// (unique within the producer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamId {
    pub(crate) address: String,
    pub(crate) generation: u64,
}

/// What [`ProduceStreams::send`] did with a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Queued on this live stream.
    On(StreamId),
    /// Not sent: the stream the caller's earlier requests went on is no longer the live
    /// one. The caller resends its outstanding requests on the new stream first.
    StreamReplaced,
}

#[derive(Debug)]
struct StreamHandle {
    generation: u64,
    requests: mpsc::Sender<wire::ProduceRequest>,
    routes: Arc<Mutex<Routes>>,
    reader: tokio::task::JoinHandle<()>,
}

/// What a send needs of the live stream of an address.
struct LiveStream {
    id: StreamId,
    requests: mpsc::Sender<wire::ProduceRequest>,
    routes: Arc<Mutex<Routes>>,
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
    next_generation: AtomicU64,
    streams: Mutex<HashMap<String, StreamHandle>>,
}

impl ProduceStreams {
    pub(crate) fn new(client: Client, request_timeout: Duration) -> ProduceStreams {
        ProduceStreams {
            client,
            request_timeout,
            next_request_id: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// A request id unique within this producer.
    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes `request` to the live stream of `address`, opening one if needed. With
    /// `only_on` set (the stream of the caller's outstanding requests) it writes only to
    /// that stream, and answers [`Sent::StreamReplaced`] when it is no longer the live one.
    /// With a `route` the answer (or the loss of the stream) is sent there; without one
    /// (acks=0) nothing comes back.
    pub(crate) async fn send(
        &self,
        address: &str,
        request: wire::ProduceRequest,
        route: Option<Route>,
        only_on: Option<u64>,
    ) -> Result<Sent, Error> {
        let request_id = request.request_id;
        let Some(LiveStream {
            id,
            requests,
            routes,
        }) = self.stream(address, only_on)?
        else {
            return Ok(Sent::StreamReplaced);
        };
        if let Some(route) = route {
            let mut routes = lock(&routes);
            if routes.dead {
                drop(routes);
                self.forget(&id);
                return Err(lost("produce stream closed"));
            }
            routes.pending.insert(request_id, route);
        }
        let queued = tokio::time::timeout(self.request_timeout, requests.send(request)).await;
        match queued {
            Ok(Ok(())) => Ok(Sent::On(id)),
            Ok(Err(_)) | Err(_) => {
                lock(&routes).pending.remove(&request_id);
                self.forget(&id);
                Err(lost("produce stream closed before the request was written"))
            }
        }
    }

    /// Drops stream `id` if it is still the live one for its address (after a timeout), so
    /// the next send opens a new one. Its request side closes; answers still arrive.
    pub(crate) fn forget(&self, id: &StreamId) {
        let mut streams = lock(&self.streams);
        if streams
            .get(&id.address)
            .is_some_and(|handle| handle.generation == id.generation)
        {
            streams.remove(&id.address);
        }
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

    /// The live stream of `address`, opening one if needed; `None` when `only_on` names
    /// a generation that is not the live stream's.
    fn stream(&self, address: &str, only_on: Option<u64>) -> Result<Option<LiveStream>, Error> {
        let mut streams = lock(&self.streams);
        if let Some(handle) = streams.get(address) {
            let live = !lock(&handle.routes).dead && !handle.requests.is_closed();
            if live && only_on.is_none_or(|generation| generation == handle.generation) {
                let id = StreamId {
                    address: address.to_owned(),
                    generation: handle.generation,
                };
                return Ok(Some(LiveStream {
                    id,
                    requests: handle.requests.clone(),
                    routes: handle.routes.clone(),
                }));
            }
        }
        if only_on.is_some() {
            return Ok(None);
        }
        let channel = self.client.channel(address)?;
        let (requests, receiver) = mpsc::channel(STREAM_QUEUE_REQUESTS);
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader = tokio::spawn(read_answers(channel, receiver, routes.clone()));
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        streams.insert(
            address.to_owned(),
            StreamHandle {
                generation,
                requests: requests.clone(),
                routes: routes.clone(),
                reader,
            },
        );
        let id = StreamId {
            address: address.to_owned(),
            generation,
        };
        Ok(Some(LiveStream {
            id,
            requests,
            routes,
        }))
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
                    // The broker took the requests already sent, so whatever the status,
                    // each may have been appended: retriable, outcome unknown. (Kept as a
                    // final error, a batch was failed as "not written" and the later ones
                    // took its sequence numbers although it was in the log.)
                    Err(status) => break stream_failed(status),
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

/// The error for the requests outstanding on a stream that ended with `status` after it
/// was opened: `status` itself when retriable, else a lost stream naming it.
fn stream_failed(status: tonic::Status) -> Error {
    let error = Error::from(status);
    if error.is_retriable() {
        error
    } else {
        lost(&format!("the produce stream failed: {error}"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;

    use super::*;
    use crate::test_broker::TestBroker;

    fn request(request_id: u64) -> wire::ProduceRequest {
        wire::ProduceRequest {
            request_id,
            topic: "t".to_owned(),
            partition: 0,
            acks: 1,
            timeout_ms: 1000,
            records: Bytes::from_static(&[0; 70]),
        }
    }

    /// A partition with requests on one stream never sends on another: once that stream
    /// is dropped (by any partition's timeout), it hears `StreamReplaced` and resends.
    /// A late `forget` of an old stream leaves the new one alone.
    #[tokio::test]
    async fn a_partition_sends_only_on_the_stream_of_its_outstanding_requests() {
        let broker = TestBroker::start(&[("t", 1)]).await;
        let client = Client::builder()
            .brokers([broker.address.clone()])
            .build()
            .await
            .unwrap();
        let streams = ProduceStreams::new(client, Duration::from_secs(5));
        let address = broker.address.as_str();
        let Sent::On(first) = streams.send(address, request(1), None, None).await.unwrap() else {
            panic!("a first send opens a stream");
        };
        let same = streams.send(address, request(2), None, Some(first.generation));
        assert_eq!(same.await.unwrap(), Sent::On(first.clone()));

        streams.forget(&first);
        let moved = streams.send(address, request(3), None, Some(first.generation));
        assert_eq!(moved.await.unwrap(), Sent::StreamReplaced);
        let Sent::On(second) = streams.send(address, request(4), None, None).await.unwrap() else {
            panic!("a send without a stream opens a new one");
        };
        assert_ne!(second.generation, first.generation);

        streams.forget(&first);
        let kept = streams.send(address, request(5), None, Some(second.generation));
        assert_eq!(kept.await.unwrap(), Sent::On(second));
    }
}
