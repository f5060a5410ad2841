//! Reaching a group's coordinator: the broker that leads the group's partition of
//! `__consumer_offsets` (DESIGN §7). `FindCoordinator` may go to any broker; every other
//! group call must reach the coordinator, and any other broker answers `NOT_COORDINATOR`.
//!
//! [`call_coordinator`] finds the coordinator and makes one call against it. The answers
//! that mean "ask again" are retried with back-off, each time finding the coordinator
//! anew, until the client's request timeout has passed since the first attempt:
//! `NOT_COORDINATOR` (leadership of the partition moved), `COORDINATOR_LOAD_IN_PROGRESS`
//! (the new coordinator is still reading the partition), `COORDINATOR_NOT_AVAILABLE`
//! (`__consumer_offsets` is being created, or its partition has no leader), and a
//! coordinator that cannot be reached (it may have just died). Nothing is cached: admin
//! calls are rare, and a fresh lookup can never be stale.

use std::future::Future;
use std::time::{Duration, Instant};

use strata_proto::api::v1 as wire;
use strata_proto::api::v1::group_api_client::GroupApiClient;
use tonic::transport::Channel;

use crate::client::Client;
use crate::connection::{request, with_deadline, RESPONSE_BYTES_MAX};
use crate::error::{Error, ErrorCode};
use crate::retry::backoff;

/// A gRPC client of one broker's group API.
pub(crate) type GroupClient = GroupApiClient<Channel>;

/// Longest group id the broker accepts, in bytes (Kafka's topic-name limit, reused).
pub(crate) const GROUP_ID_BYTES_MAX: usize = 249;

/// First wait after a retriable coordinator answer; loading a group's state takes a read
/// of its `__consumer_offsets` partition.
const COORDINATOR_BACKOFF_BASE: Duration = Duration::from_millis(50);
const COORDINATOR_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The broker that coordinates a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coordinator {
    pub(crate) node_id: i32,
    pub(crate) address: String,
}

/// The broker's rule for group ids, checked before anything is sent: not empty, at most
/// [`GROUP_ID_BYTES_MAX`] bytes.
pub(crate) fn check_group_id(group_id: &str) -> Result<(), Error> {
    if group_id.is_empty() {
        return Err(Error::broker(
            ErrorCode::InvalidGroupId,
            "the group id is empty",
        ));
    }
    if group_id.len() > GROUP_ID_BYTES_MAX {
        return Err(Error::broker(
            ErrorCode::InvalidGroupId,
            format!(
                "the group id is {} bytes long; at most {GROUP_ID_BYTES_MAX} are allowed",
                group_id.len()
            ),
        ));
    }
    Ok(())
}

/// Whether `error` means: find the coordinator again and retry.
pub(crate) fn is_coordinator_retriable(error: &Error) -> bool {
    match error {
        Error::Broker { code, .. } => matches!(
            code,
            ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::CoordinatorNotAvailable
        ),
        Error::Connect { .. } => true,
        Error::Transport(_) => error.is_retriable(),
        _ => false,
    }
}

/// The group API client for the broker at `address`, on the client's shared channel.
pub(crate) fn group_client(client: &Client, address: &str) -> Result<GroupClient, Error> {
    let channel = client.channel(address)?;
    Ok(GroupApiClient::new(channel).max_decoding_message_size(RESPONSE_BYTES_MAX))
}

/// Asks the known brokers, then the bootstrap list, which broker coordinates `group_id`;
/// an unreachable or silent broker passes the question to the next. Used by the admin
/// calls and by group consumers. One attempt: a retriable
/// answer is returned as the error (see [`call_coordinator`]).
pub(crate) async fn find_coordinator(
    client: &Client,
    group_id: &str,
    timeout: Duration,
) -> Result<Coordinator, Error> {
    let message = wire::FindCoordinatorRequest {
        group_id: group_id.to_owned(),
    };
    let mut last_error = None;
    for address in client.candidate_addresses() {
        let mut broker = match group_client(client, &address) {
            Ok(broker) => broker,
            Err(error) => {
                last_error = Some(error);
                continue;
            }
        };
        let call = broker.find_coordinator(request(message.clone(), timeout));
        match with_deadline("find coordinator", timeout, call).await {
            Ok(response) => {
                if let Some(error) = Error::from_wire(response.error.as_ref()) {
                    return Err(error);
                }
                if response.address.is_empty() {
                    return Err(Error::broker(
                        ErrorCode::CoordinatorNotAvailable,
                        format!("broker at {address} named no coordinator for group {group_id}"),
                    ));
                }
                return Ok(Coordinator {
                    node_id: response.node_id,
                    address: response.address,
                });
            }
            // A broker that is down, or paused (it keeps the connection and never
            // answers): ask the next.
            Err(error @ (Error::Transport(_) | Error::Connect { .. } | Error::Timeout { .. })) => {
                tracing::debug!(%address, %error, "broker unreachable; asking the next for the coordinator");
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::InvalidConfig("no broker addresses".to_owned())))
}

/// Finds `group_id`'s coordinator and runs `call` against it with the time left; retries
/// what [`is_coordinator_retriable`] accepts until the request timeout has passed since the
/// first attempt, then returns the last error. `call` gets the coordinator's client and
/// the deadline for its one request, and turns the answer's error fields into `Err`.
pub(crate) async fn call_coordinator<T, F, Fut>(
    client: &Client,
    operation: &'static str,
    group_id: &str,
    mut call: F,
) -> Result<T, Error>
where
    F: FnMut(GroupClient, Duration) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    check_group_id(group_id)?;
    let budget = client.request_timeout();
    let deadline = Instant::now() + budget;
    let mut attempt = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let answer = match find_coordinator(client, group_id, remaining).await {
            Ok(coordinator) => match group_client(client, &coordinator.address) {
                Ok(broker) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    call(broker, remaining).await
                }
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        match answer {
            Err(error) if is_coordinator_retriable(&error) => {
                attempt += 1;
                let wait = backoff(COORDINATOR_BACKOFF_BASE, COORDINATOR_BACKOFF_MAX, attempt);
                if Instant::now() + wait >= deadline {
                    return Err(error);
                }
                tracing::debug!(%error, operation, group_id, attempt, "coordinator not ready; retrying");
                tokio::time::sleep(wait).await;
            }
            answer => return answer,
        }
    }
}
