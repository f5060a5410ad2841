//! [`Client`]: the entry point. Holds the bootstrap addresses, one gRPC channel per broker
//! (`Connections`) and the `MetadataCache`; hands out producers, consumers and the
//! admin API, which all share them.
//!
//! `Client` is a cheap `Arc` handle: clone it freely across tasks.

use std::sync::Arc;
use std::time::Duration;

use strata_proto::api::v1 as wire;

use crate::admin::Admin;
use crate::connection::{normalize_address, request, with_deadline, BrokerClient, Connections};
use crate::consumer::ConsumerBuilder;
use crate::error::Error;
use crate::metadata::MetadataCache;
use crate::producer::ProducerBuilder;

/// Environment variable with comma-separated broker addresses, used when
/// [`ClientBuilder::brokers`] is not called.
pub const BROKERS_ENV: &str = "STRATA_BROKERS";
/// The address used when neither `brokers` nor `STRATA_BROKERS` is given.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7070";

/// How many brokers one metadata refresh asks at once.
const METADATA_FANOUT: usize = 5;
/// How long a metadata refresh waits, after the first answer, for a fresher one.
const METADATA_GRACE: Duration = Duration::from_millis(50);

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    brokers: Vec<String>,
    client_id: String,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            brokers: Vec::new(),
            client_id: "strata-client".to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl ClientBuilder {
    /// Bootstrap addresses (`host:port`, scheme optional). Default: `STRATA_BROKERS`, then
    /// `127.0.0.1:7070`.
    pub fn brokers<I, S>(mut self, brokers: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.brokers = brokers.into_iter().map(Into::into).collect();
        self
    }

    /// A name for this application in broker logs (Kafka's `client.id`).
    pub fn client_id(mut self, client_id: impl Into<String>) -> ClientBuilder {
        self.client_id = client_id.into();
        self
    }

    /// Deadline of one metadata or admin call (Kafka's `request.timeout.ms`); 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.request_timeout = timeout;
        self
    }

    /// How long dialling a broker may take; 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Connects to the first bootstrap broker that answers and loads the cluster metadata.
    pub async fn build(self) -> Result<Client, Error> {
        let brokers = self.bootstrap_brokers();
        if brokers.is_empty() {
            return Err(Error::InvalidConfig("no broker addresses given".to_owned()));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "request timeout must be above zero".to_owned(),
            ));
        }
        let client = Client {
            inner: Arc::new(ClientInner {
                bootstrap: brokers,
                client_id: self.client_id,
                connections: Connections::new(self.connect_timeout, self.request_timeout),
                metadata: MetadataCache::default(),
            }),
        };
        client.refresh_metadata(&[]).await?;
        Ok(client)
    }

    fn bootstrap_brokers(&self) -> Vec<String> {
        let from_env;
        let given = if self.brokers.is_empty() {
            from_env = std::env::var(BROKERS_ENV).unwrap_or_default();
            from_env.split(',').map(str::to_owned).collect()
        } else {
            self.brokers.clone()
        };
        let mut brokers: Vec<String> = given
            .iter()
            .map(|broker| broker.trim())
            .filter(|broker| !broker.is_empty())
            .map(str::to_owned)
            .collect();
        if brokers.is_empty() && self.brokers.is_empty() {
            brokers.push(DEFAULT_BROKER.to_owned());
        }
        brokers
    }
}

/// A connection to a Strata cluster. Cheap to clone; all clones share channels and
/// metadata.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    bootstrap: Vec<String>,
    client_id: String,
    connections: Connections,
    metadata: MetadataCache,
}

impl Client {
    /// Settings for a new client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A producer with default settings, to be adjusted and built.
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::new(self.clone())
    }

    /// A consumer builder: `.assign(..)` or `.topics(..)`, then `.build().await`.
    pub fn consumer(&self) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone())
    }

    /// Topic administration and cluster information.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The bootstrap addresses this client was built with.
    pub fn bootstrap_brokers(&self) -> &[String] {
        &self.inner.bootstrap
    }

    pub(crate) fn metadata(&self) -> &MetadataCache {
        &self.inner.metadata
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.connections.unary_timeout()
    }

    /// The gRPC client for one broker address.
    pub(crate) fn broker(&self, address: &str) -> Result<BrokerClient, Error> {
        self.inner.connections.get(address)
    }

    /// The channel to the broker at `address`, for calls without the generated client.
    pub(crate) fn channel(&self, address: &str) -> Result<tonic::transport::Channel, Error> {
        self.inner.connections.channel(address)
    }

    /// Asks the cluster for metadata of `topics` (all topics when empty) and merges the
    /// answer into the cache. Concurrent callers wait for one another's refresh.
    pub(crate) async fn refresh_metadata(
        &self,
        topics: &[String],
    ) -> Result<wire::MetadataResponse, Error> {
        let _refreshing = self.inner.metadata.refresh_lock.lock().await;
        let message = wire::MetadataRequest {
            topics: topics.to_vec(),
        };
        let response = self.freshest_metadata(message).await?;
        self.inner.metadata.apply(&response, topics.is_empty());
        Ok(response)
    }

    /// Asks up to [`METADATA_FANOUT`] brokers at once and keeps the freshest answer: the
    /// first one, or one with a higher metadata version that arrives within
    /// [`METADATA_GRACE`] after it. Asking one broker at a time, in a fixed order, kept a
    /// client on a paused broker (every refresh waited out the request timeout there) or
    /// on a leader cut off from the controller (it answered quickly, from an old image
    /// that still named it leader) for as long as the fault lasted.
    async fn freshest_metadata(
        &self,
        message: wire::MetadataRequest,
    ) -> Result<wire::MetadataResponse, Error> {
        let timeout = self.request_timeout();
        let mut last_error = None;
        // Dropping the set aborts the calls still running.
        let mut calls = tokio::task::JoinSet::new();
        for address in self.candidate_addresses().into_iter().take(METADATA_FANOUT) {
            match self.broker(&address) {
                Ok(mut broker) => {
                    let message = message.clone();
                    calls.spawn(async move {
                        let answer = with_deadline(
                            "metadata",
                            timeout,
                            broker.metadata(request(message, timeout)),
                        )
                        .await;
                        (address, answer)
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        let mut freshest: Option<wire::MetadataResponse> = None;
        let mut grace_ends = None;
        loop {
            let next = match grace_ends {
                None => calls.join_next().await,
                Some(deadline) => tokio::time::timeout_at(deadline, calls.join_next())
                    .await
                    .unwrap_or(None),
            };
            let Some(joined) = next else {
                break;
            };
            let Ok((address, answer)) = joined else {
                continue; // the call panicked or was aborted: no answer from it
            };
            match answer {
                Ok(response) => {
                    if freshest
                        .as_ref()
                        .is_none_or(|best| response.metadata_version > best.metadata_version)
                    {
                        freshest = Some(response);
                    }
                    grace_ends.get_or_insert_with(|| tokio::time::Instant::now() + METADATA_GRACE);
                }
                Err(error) => {
                    tracing::debug!(%address, %error, "metadata: no answer from this broker");
                    last_error = Some(error);
                }
            }
        }
        freshest.ok_or_else(|| {
            last_error.unwrap_or_else(|| Error::InvalidConfig("no broker addresses".to_owned()))
        })
    }

    /// Runs a unary call against the known brokers, then the bootstrap list, until one
    /// answers without a transport failure. Broker errors inside the answer are the
    /// caller's to inspect.
    pub(crate) async fn call_any<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, Error>
    where
        F: FnMut(BrokerClient) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last_error = None;
        for address in self.candidate_addresses() {
            let broker = match self.broker(&address) {
                Ok(broker) => broker,
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
            match with_deadline(operation, self.request_timeout(), call(broker)).await {
                Ok(response) => return Ok(response),
                Err(error @ (Error::Transport(_) | Error::Connect { .. })) => {
                    tracing::debug!(%address, %error, operation, "broker unreachable; trying the next");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::InvalidConfig("no broker addresses".to_owned())))
    }

    /// A client that has never connected, for unit tests of builders and tasks.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Client {
        Client {
            inner: Arc::new(ClientInner {
                bootstrap: vec!["127.0.0.1:1".to_owned()],
                client_id: "test".to_owned(),
                connections: Connections::new(
                    Duration::from_millis(100),
                    Duration::from_millis(100),
                ),
                metadata: MetadataCache::default(),
            }),
        }
    }

    /// Known brokers first (they are what the cluster advertises), then the bootstrap
    /// list, without duplicates.
    pub(crate) fn candidate_addresses(&self) -> Vec<String> {
        let mut addresses: Vec<String> = Vec::new();
        let known = self.inner.metadata.broker_addresses();
        for address in known.iter().chain(self.inner.bootstrap.iter()) {
            let normalized = normalize_address(address);
            if !addresses
                .iter()
                .any(|seen| normalize_address(seen) == normalized)
            {
                addresses.push(address.clone());
            }
        }
        addresses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_brokers_are_trimmed_and_kept_in_order() {
        let builder = Client::builder().brokers([" a:1", "b:2 ", ""]);
        assert_eq!(builder.bootstrap_brokers(), vec!["a:1", "b:2"]);
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_a_connect_error() {
        let result = Client::builder()
            .brokers(["127.0.0.1:1"])
            .connect_timeout(Duration::from_millis(200))
            .request_timeout(Duration::from_millis(500))
            .build()
            .await;
        let error = result.err().map(|error| error.code_name());
        assert!(
            matches!(error, Some("TRANSPORT" | "CONNECT" | "TIMEOUT")),
            "{error:?}"
        );
    }
}
