//! The gRPC listener's defences against clients that hold connections open: caps per
//! client address, a handshake timeout and an idle timeout (hostile inputs 5, 6 and 11 of
//! `docs/RELIABILITY.md`).
//!
//! - [`Incoming`] accepts TCP connections. A connection from an address that already
//!   has `max_connections_per_ip` open is closed at once, before any byte is read, so one
//!   client cannot take the descriptors every other client needs.
//! - [`ClientSocket`] wraps each admitted connection. It closes the connection when the
//!   client has not sent the 24-byte HTTP/2 preface within `handshake_timeout` of the
//!   accept (a half-open or slowloris connection), and when the connection has had no
//!   call open for `idle_timeout` (Kafka's `connections.max.idle.ms`; HTTP/2 PINGs are
//!   not activity, as in Go's HTTP/2 server). A connection with a call open (an idle
//!   consumer's fetch session, a produce stream) is never idle. The close is abrupt (no
//!   GOAWAY): tonic gives no handle on one connection, and with no call open a client
//!   loses nothing; it reconnects on its next call.
//! - [`StreamLimitLayer`] counts the calls open per client address, across its
//!   connections, and refuses one beyond `max_streams_per_ip` with `RESOURCE_EXHAUSTED`.
//!   It also tells each connection when its last call ended, for the idle timeout.
//!
//! Counts per address live in [`Clients`], behind one mutex taken once per connection
//! and once per call. They are shared by the internal and the external listener: a
//! client's connections count the same on either.
//!
//! Each connection remembers which [`Listener`] accepted it ([`listener_of`]), so a
//! metadata answer can give a client the addresses of that listener. [`Clients`] also
//! counts the connections open per listener and the ones rejected
//! (`super::connection_metrics`, the `strata_connections…` series).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::transport::server::Connected;
use tonic::Status;

use super::connection_metrics::{self, ConnectionGauges, Rejection};
use crate::controller::Listener;

/// The HTTP/2 client connection preface (RFC 9113 §3.4) is this long.
const PREFACE_BYTES: usize = 24;

/// After an accept error (out of descriptors, for instance), the listener rests this
/// long instead of spinning on the same error.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Refused connections are logged at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The limits of the listener (from the broker's settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Open connections per client address.
    pub max_connections_per_ip: usize,
    /// Open calls (streams) per client address, across its connections.
    pub max_streams_per_ip: usize,
    /// How long a new connection may take to send the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// How long a connection may stay open with no call open.
    pub idle_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            max_connections_per_ip: 256,
            max_streams_per_ip: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// What one client address has open.
#[derive(Debug, Default)]
struct Counts {
    connections: usize,
    streams: usize,
    /// The open calls by name ([`super::request_metrics::call_name`]).
    calls: BTreeMap<&'static str, usize>,
}

/// Every client address with something open, and the limits.
#[derive(Debug)]
pub struct Clients {
    settings: ConnectionSettings,
    by_address: Mutex<HashMap<IpAddr, Counts>>,
    refused: AtomicU64,
    refusal_logged: Mutex<Option<Instant>>,
    gauges: Arc<ConnectionGauges>,
}

impl Clients {
    pub fn new(settings: ConnectionSettings) -> Arc<Clients> {
        Arc::new(Clients {
            settings,
            by_address: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            refusal_logged: Mutex::new(None),
            gauges: Arc::default(),
        })
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// The connections open per listener, for `GET /metrics`.
    pub fn gauges(&self) -> &Arc<ConnectionGauges> {
        &self.gauges
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<IpAddr, Counts>> {
        self.by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a connection slot of `peer`'s address, or `None` when it has none left.
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Arc<ConnectionState>> {
        {
            let mut counts = self.counts();
            let entry = counts.entry(peer.ip()).or_default();
            if entry.connections >= self.settings.max_connections_per_ip {
                if entry.connections == 0 && entry.streams == 0 {
                    counts.remove(&peer.ip());
                }
                return None;
            }
            entry.connections += 1;
        }
        Some(Arc::new(ConnectionState {
            clients: Arc::clone(self),
            peer,
            streams_open: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }))
    }

    /// Updates `ip`'s counts, forgetting the address once nothing of it is open.
    fn update(&self, ip: IpAddr, change: impl FnOnce(&mut Counts)) {
        let mut counts = self.counts();
        if let Some(entry) = counts.get_mut(&ip) {
            change(entry);
            if entry.connections == 0 && entry.streams == 0 {
                counts.remove(&ip);
            }
        }
    }

    /// Takes a call slot of `ip`'s address for a call named `call`; false when it has
    /// none left.
    fn open_stream(&self, ip: IpAddr, call: &'static str) -> bool {
        let mut counts = self.counts();
        let entry = counts.entry(ip).or_default();
        if entry.streams >= self.settings.max_streams_per_ip {
            return false;
        }
        entry.streams += 1;
        *entry.calls.entry(call).or_default() += 1;
        true
    }

    /// The calls open now, by client address and call name (a shutdown that waits for
    /// them says which they are).
    pub fn open_calls(&self) -> Vec<(IpAddr, &'static str, usize)> {
        let counts = self.counts();
        let mut open: Vec<_> = counts
            .iter()
            .flat_map(|(ip, entry)| {
                entry
                    .calls
                    .iter()
                    .map(move |(call, count)| (*ip, *call, *count))
            })
            .collect();
        open.sort_unstable();
        open
    }

    /// Logs a refused connection, at most once per [`REFUSAL_LOG_INTERVAL`].
    fn note_refused(&self, peer: SocketAddr) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self
            .refusal_logged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if logged.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
            *logged = Some(Instant::now());
            tracing::warn!(
                client = %peer.ip(),
                max_connections_per_ip = self.settings.max_connections_per_ip,
                refused_total = refused,
                "closed a new connection: its address has max_connections_per_ip open"
            );
        }
    }
}

/// One admitted connection, shared by its socket and its calls.
#[derive(Debug)]
pub struct ConnectionState {
    clients: Arc<Clients>,
    peer: SocketAddr,
    streams_open: AtomicUsize,
    /// When the last call ended (or the connection was accepted).
    idle_since: Mutex<Instant>,
}

impl ConnectionState {
    fn idle_since(&self) -> Instant {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A call named `call` starts on this connection, unless its address has no call
    /// slot left.
    fn open_stream(self: &Arc<Self>, call: &'static str) -> Option<StreamGuard> {
        if !self.clients.open_stream(self.peer.ip(), call) {
            return None;
        }
        self.streams_open.fetch_add(1, Ordering::AcqRel);
        Some(StreamGuard {
            connection: Arc::clone(self),
            call,
        })
    }
}

/// What tonic puts in each request's extensions for a connection accepted by
/// [`Incoming`].
#[derive(Debug, Clone)]
pub struct ClientConnection {
    state: Arc<ConnectionState>,
    listener: Listener,
}

impl ClientConnection {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.state.peer
    }

    /// The listener that accepted the connection.
    pub fn listener(&self) -> Listener {
        self.listener
    }
}

/// The listener a request arrived on (internal for a connection not accepted by
/// [`Incoming`], as in tests that serve a bare socket).
pub fn listener_of<T>(request: &tonic::Request<T>) -> Listener {
    request
        .extensions()
        .get::<ClientConnection>()
        .map_or(Listener::Internal, ClientConnection::listener)
}

/// An open call; dropping it (its response body ended or was dropped) frees the slot.
#[derive(Debug)]
struct StreamGuard {
    connection: Arc<ConnectionState>,
    call: &'static str,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let connection = &self.connection;
        // Before the count falls, so a socket that sees no call open never reads an
        // older idle start.
        *connection
            .idle_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        connection.streams_open.fetch_sub(1, Ordering::AcqRel);
        let call = self.call;
        connection.clients.update(connection.peer.ip(), |counts| {
            counts.streams -= 1;
            if let Some(open) = counts.calls.get_mut(call) {
                *open -= 1;
                if *open == 0 {
                    counts.calls.remove(call);
                }
            }
        });
    }
}

/// The listener's connections, each admitted by [`Clients`] and wrapped in a
/// [`ClientSocket`].
#[derive(Debug)]
pub struct Incoming {
    listener: TcpListener,
    /// Which listener this is, remembered by each connection.
    kind: Listener,
    clients: Arc<Clients>,
    /// Set after an accept error: the next accept waits for it.
    pause: Option<Pin<Box<Sleep>>>,
}

impl Incoming {
    pub fn new(listener: TcpListener, kind: Listener, clients: Arc<Clients>) -> Incoming {
        clients.gauges.listening(kind);
        Incoming {
            listener,
            kind,
            clients,
            pause: None,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<ClientSocket>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = &mut this.pause {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            match ready!(this.listener.poll_accept(cx)) {
                Ok((tcp, peer)) => {
                    let Some(connection) = this.clients.admit(peer) else {
                        connection_metrics::rejected(this.kind, Rejection::MaxConnectionsPerIp);
                        this.clients.note_refused(peer);
                        drop(tcp);
                        continue;
                    };
                    // `Server::tcp_nodelay` does not reach a caller's listener: without
                    // this, Nagle's algorithm holds small responses (~40 ms stalls).
                    if let Err(error) = tcp.set_nodelay(true) {
                        tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
                    }
                    let socket = ClientSocket::new(tcp, connection, this.kind);
                    return Poll::Ready(Some(Ok(socket)));
                }
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; trying again shortly");
                    this.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_RETRY)));
                }
            }
        }
    }
}

/// Errors of one connection that went away while it was being accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// When a quiet socket is next looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// Closed at this instant, for this reason, if still quiet.
    Close(Instant, &'static str),
    /// Calls are open: nothing to do but look again then.
    Check(Instant),
}

/// An admitted connection: the TCP stream, closed by a read error when the handshake or
/// idle timeout passes. Dropping it frees its address's connection slot.
#[derive(Debug)]
pub struct ClientSocket {
    tcp: TcpStream,
    connection: Arc<ConnectionState>,
    listener: Listener,
    accepted_at: Instant,
    /// Bytes read, counted up to the preface's length.
    preface_bytes: usize,
    timer: Pin<Box<Sleep>>,
    timer_at: Instant,
}

impl ClientSocket {
    fn new(tcp: TcpStream, connection: Arc<ConnectionState>, listener: Listener) -> ClientSocket {
        let accepted_at = Instant::now();
        let timer_at = accepted_at + connection.clients.settings.handshake_timeout;
        connection.clients.gauges.opened(listener);
        ClientSocket {
            tcp,
            connection,
            listener,
            accepted_at,
            preface_bytes: 0,
            timer: Box::pin(tokio::time::sleep_until(timer_at.into())),
            timer_at,
        }
    }

    fn deadline(&self, now: Instant) -> Deadline {
        let settings = &self.connection.clients.settings;
        if self.preface_bytes < PREFACE_BYTES {
            return Deadline::Close(
                self.accepted_at + settings.handshake_timeout,
                "no HTTP/2 preface within the handshake timeout",
            );
        }
        if self.connection.streams_open.load(Ordering::Acquire) == 0 {
            return Deadline::Close(
                self.connection.idle_since() + settings.idle_timeout,
                "no call open for the idle timeout",
            );
        }
        Deadline::Check(now + settings.idle_timeout)
    }

    /// After a read found nothing: the error that closes the connection when a deadline
    /// has passed; otherwise arms the timer that wakes this task to look again.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let now = Instant::now();
            let at = match self.deadline(now) {
                Deadline::Close(at, reason) if at <= now => {
                    tracing::debug!(peer = %self.connection.peer, reason, "closing a connection");
                    if self.preface_bytes < PREFACE_BYTES {
                        connection_metrics::rejected(self.listener, Rejection::HandshakeTimeout);
                    }
                    return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, reason));
                }
                Deadline::Close(at, _) => at,
                // Any time around then will do: skip moving the timer by less than a
                // second on every read.
                Deadline::Check(at) if self.timer_at > now && self.timer_at + ONE_SECOND >= at => {
                    self.timer_at
                }
                Deadline::Check(at) => at,
            };
            if at != self.timer_at {
                self.timer.as_mut().reset(at.into());
                self.timer_at = at;
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

const ONE_SECOND: Duration = Duration::from_secs(1);

impl Drop for ClientSocket {
    fn drop(&mut self) {
        self.connection.clients.gauges.closed(self.listener);
        self.connection
            .clients
            .update(self.connection.peer.ip(), |counts| counts.connections -= 1);
    }
}

impl Connected for ClientSocket {
    type ConnectInfo = ClientConnection;

    fn connect_info(&self) -> ClientConnection {
        ClientConnection {
            state: Arc::clone(&self.connection),
            listener: self.listener,
        }
    }
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if let Poll::Ready(result) = Pin::new(&mut this.tcp).poll_read(cx, buf) {
            let read = buf.filled().len() - before;
            this.preface_bytes = this.preface_bytes.saturating_add(read).min(PREFACE_BYTES);
            return Poll::Ready(result);
        }
        this.poll_deadline(cx).map(Err)
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Puts [`StreamLimit`] in front of a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamLimitLayer;

impl<S> tower::Layer<S> for StreamLimitLayer {
    type Service = StreamLimit<S>;

    fn layer(&self, inner: S) -> StreamLimit<S> {
        StreamLimit { inner }
    }
}

/// Counts each call against its client address's `max_streams_per_ip` for as long as
/// its response lasts, and refuses one beyond it.
#[derive(Debug, Clone)]
pub struct StreamLimit<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for StreamLimit<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(connection) = request.extensions().get::<ClientConnection>().cloned() else {
            return Box::pin(self.inner.call(request));
        };
        let call = super::request_metrics::call_name(request.uri().path());
        let Some(guard) = connection.state.open_stream(call) else {
            let status = Status::resource_exhausted(format!(
                "{} has {} calls open, the most one client address may have \
                 (max_streams_per_ip); end some before opening more",
                connection.peer().ip(),
                connection.state.clients.settings.max_streams_per_ip
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(GuardedBody {
                    body,
                    _guard: guard,
                })
            }))
        })
    }
}

/// A response body that holds its call's slot until it is dropped.
struct GuardedBody {
    body: Body,
    _guard: StreamGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn settings(connections: usize, streams: usize) -> ConnectionSettings {
        ConnectionSettings {
            max_connections_per_ip: connections,
            max_streams_per_ip: streams,
            ..ConnectionSettings::default()
        }
    }

    fn peer(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    #[test]
    fn connections_are_capped_per_address_and_a_closed_one_frees_its_slot() {
        let clients = Clients::new(settings(2, 10));
        let first = clients.admit(peer(1, 1)).unwrap();
        let second = clients.admit(peer(1, 2)).unwrap();
        assert!(clients.admit(peer(1, 3)).is_none(), "a third from 10.0.0.1");
        assert!(
            clients.admit(peer(2, 1)).is_some(),
            "another address is not held back"
        );
        // The socket's drop frees the slot (here by hand: no TCP stream in a unit test).
        clients.update(first.peer.ip(), |counts| counts.connections -= 1);
        assert!(clients.admit(peer(1, 4)).is_some());
        drop(second);
    }

    #[test]
    fn calls_are_capped_per_address_across_connections_and_the_last_one_marks_idle() {
        let clients = Clients::new(settings(10, 3));
        let one = clients.admit(peer(1, 1)).unwrap();
        let two = clients.admit(peer(1, 2)).unwrap();
        let guards = [
            one.open_stream("produce_stream").unwrap(),
            one.open_stream("produce_stream").unwrap(),
            two.open_stream("metadata").unwrap(),
        ];
        assert!(
            two.open_stream("metadata").is_none(),
            "a fourth call from 10.0.0.1"
        );
        assert_eq!(one.streams_open.load(Ordering::Acquire), 2);
        let ip = peer(1, 0).ip();
        assert_eq!(
            clients.open_calls(),
            [(ip, "metadata", 1), (ip, "produce_stream", 2)],
            "the refused call is not counted"
        );
        let before = one.idle_since();
        std::thread::sleep(Duration::from_millis(5));
        drop(guards);
        assert_eq!(one.streams_open.load(Ordering::Acquire), 0);
        assert!(
            one.idle_since() > before,
            "the last call's end starts the idle time"
        );
        assert_eq!(clients.open_calls(), []);
        assert!(two.open_stream("raft_vote").is_some());
        assert_eq!(clients.counts().get(&ip).unwrap().streams, 0);
        assert_eq!(clients.open_calls(), []);
    }
}
