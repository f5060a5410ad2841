//! [`Connections`]: one lazily connected gRPC channel per broker address, shared by every
//! producer, consumer and admin handle of a [`Client`](crate::Client).
//!
//! A tonic `Channel` reconnects by itself after a broker restart, so a channel is created
//! once per address and kept; a call on a broken connection fails with a transport error
//! and the next call dials again. Addresses without a scheme get `http://`.
//!
//! No per-channel request timeout is set: it would also cut the long-lived produce stream.
//! Unary calls carry their own deadline (see [`Connections::unary_timeout`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use strata_proto::api::v1::client_api_client::ClientApiClient;
use tonic::transport::{Channel, Endpoint};

/// HTTP/2 flow-control window per stream (a produce stream carries many batches).
pub(crate) const HTTP2_STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// HTTP/2 flow-control window per connection.
const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// Largest HTTP/2 frame the broker may send us: HTTP/2's maximum (the default is 16 KiB).
/// Each socket read takes up to a frame (with 16 KiB frames a 1 GB/s consumer made
/// ~120,000 `recvfrom` calls a second), and a partition's fetched records then arrive in
/// one frame, which the consumer decodes in place instead of joining frames
/// ([`crate::fetch_call`]). A frame is buffered whole, within the 64 MiB answer limit.
const HTTP2_FRAME_BYTES_MAX: u32 = (1 << 24) - 1;

use crate::error::Error;

/// Largest response the client decodes: a fetch of up to `fetch.max.bytes` (50 MiB by
/// default) plus framing.
pub(crate) const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// A gRPC client for one broker.
pub(crate) type BrokerClient = ClientApiClient<Channel>;

/// The channel per broker address.
#[derive(Debug)]
pub(crate) struct Connections {
    channels: Mutex<HashMap<String, Channel>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Connections {
    pub(crate) fn new(connect_timeout: Duration, request_timeout: Duration) -> Connections {
        Connections {
            channels: Mutex::new(HashMap::new()),
            connect_timeout,
            request_timeout,
        }
    }

    /// The default deadline of one unary call.
    pub(crate) fn unary_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The client for `address` (`host:port` or a URI), creating its lazy channel on first
    /// use. Fails only when the address cannot be parsed.
    pub(crate) fn get(&self, address: &str) -> Result<BrokerClient, Error> {
        let channel = self.channel(address)?;
        Ok(ClientApiClient::new(channel).max_decoding_message_size(RESPONSE_BYTES_MAX))
    }

    /// The lazy channel for `address`, for calls made without the generated client
    /// ([`crate::fetch_call`], [`crate::produce_call`]).
    pub(crate) fn channel(&self, address: &str) -> Result<Channel, Error> {
        let uri = normalize_address(address);
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(&uri) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|source| Error::Connect {
                address: address.to_owned(),
                source,
            })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            // HTTP/2's default 64 KiB windows cap a stream at one window per round trip
            // (tens of MB/s on loopback); batches are up to MiBs.
            .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW_BYTES))
            .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW_BYTES))
            .max_frame_size(HTTP2_FRAME_BYTES_MAX)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false);
        let channel = endpoint.connect_lazy();
        channels.insert(uri, channel.clone());
        Ok(channel)
    }
}

/// `host:port` → `http://host:port`; anything with a scheme is kept as given.
pub(crate) fn normalize_address(address: &str) -> String {
    let address = address.trim();
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

/// Runs one unary call with a deadline, mapping a missed deadline to [`Error::Timeout`].
pub(crate) async fn with_deadline<T, F>(
    operation: &'static str,
    timeout: Duration,
    call: F,
) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(Error::from(status)),
        Err(_) => Err(Error::Timeout {
            operation,
            after: timeout,
            outcome: crate::error::WriteOutcome::Unknown,
            last_error: None,
        }),
    }
}

/// A request with a `grpc-timeout` header, so the broker gives up when the client does.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_scheme_get_http() {
        assert_eq!(normalize_address("127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(
            normalize_address(" https://broker:7070 "),
            "https://broker:7070"
        );
    }

    #[tokio::test]
    async fn one_channel_per_address() {
        let connections = Connections::new(Duration::from_secs(1), Duration::from_secs(1));
        assert!(connections.get("127.0.0.1:1").is_ok());
        assert!(connections.get("http://127.0.0.1:1").is_ok());
        assert_eq!(
            connections
                .channels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
            1
        );
        assert!(connections.get("not a uri at all\n").is_err());
    }
}
