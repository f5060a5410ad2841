//! The cluster calls of [`Admin`]: describe the brokers and the controller quorum, elect
//! preferred leaders, reassign partitions (issue 19).
//!
//! Any broker answers `DescribeCluster` from its own view. `ElectLeaders` and
//! `ReassignPartitions` go to any broker, which forwards them to the active controller.
//! While the quorum elects a leader the answer is `NOT_CONTROLLER` (retriable, nothing
//! applied), so these calls retry it with back-off until the request timeout has passed
//! since the first attempt; every other error is returned at once, as in the rest of
//! [`Admin`].

use std::time::{Duration, Instant};

use strata_proto::api::v1 as wire;

use super::cluster_types::{
    ClusterDescription, ElectionResult, ElectionSelection, PartitionReassignment,
    ReassignmentResult,
};
use super::Admin;
use crate::connection::{request, BrokerClient};
use crate::error::{Error, ErrorCode};
use crate::retry::backoff;

/// First wait after `NOT_CONTROLLER`; a Raft election takes a few hundred milliseconds.
const NOT_CONTROLLER_BACKOFF_BASE: Duration = Duration::from_millis(100);
const NOT_CONTROLLER_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Admin {
    /// The brokers (with their state) and the controller quorum (leader, term, voters and
    /// their lag), as the broker that answers sees them.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, Error> {
        let timeout = self.client.request_timeout();
        let response = self
            .call_cluster("describe cluster", |mut broker: BrokerClient| async move {
                broker
                    .describe_cluster(request(wire::DescribeClusterRequest {}, timeout))
                    .await
            })
            .await?;
        Ok(ClusterDescription::from_wire(&response))
    }

    /// Moves leadership of the selected partitions to their preferred replica (the first
    /// in the replica list) where it is alive and in the ISR, like Kafka's
    /// `kafka-leader-election --election-type preferred`. One result per partition, sorted
    /// by topic and partition; see [`ElectionResult::is_failure`] for which count as
    /// failures. `Err` only when the whole request failed.
    pub async fn elect_leaders(
        &self,
        selection: ElectionSelection,
    ) -> Result<Vec<ElectionResult>, Error> {
        let topics = match selection {
            ElectionSelection::AllTopics => Vec::new(),
            ElectionSelection::Topics(topics) if topics.is_empty() => return Ok(Vec::new()),
            ElectionSelection::Topics(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| wire::TopicPartitions { topic, partitions })
                .collect(),
        };
        let message = wire::ElectLeadersRequest { topics };
        let timeout = self.client.request_timeout();
        let response = self
            .call_cluster("elect leaders", |mut broker: BrokerClient| {
                let message = message.clone();
                async move { broker.elect_leaders(request(message, timeout)).await }
            })
            .await?;
        let mut results: Vec<ElectionResult> = response
            .results
            .iter()
            .map(ElectionResult::from_wire)
            .collect();
        results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let topics: Vec<String> = results.iter().map(|result| result.topic.clone()).collect();
        if !topics.is_empty() {
            self.refresh(&dedup(topics)).await;
        }
        Ok(results)
    }

    /// Gives partitions new replica lists (preferred leader first), all or nothing: if any
    /// partition is refused, none changes and the error names it. With `dry_run` the
    /// controller checks the request and answers what would change, writing nothing.
    /// Accepts `(topic, partition, replicas)` tuples or [`PartitionReassignment`]s.
    pub async fn reassign_partitions<I>(
        &self,
        reassignments: I,
        dry_run: bool,
    ) -> Result<Vec<ReassignmentResult>, Error>
    where
        I: IntoIterator,
        I::Item: Into<PartitionReassignment>,
    {
        let reassignments: Vec<PartitionReassignment> =
            reassignments.into_iter().map(Into::into).collect();
        if reassignments.is_empty() {
            return Ok(Vec::new());
        }
        let message = wire::ReassignPartitionsRequest {
            reassignments: reassignments
                .iter()
                .map(PartitionReassignment::to_wire)
                .collect(),
            dry_run,
        };
        let timeout = self.client.request_timeout();
        let response = self
            .call_cluster("reassign partitions", |mut broker: BrokerClient| {
                let message = message.clone();
                async move { broker.reassign_partitions(request(message, timeout)).await }
            })
            .await?;
        let mut results = response
            .results
            .iter()
            .map(ReassignmentResult::from_wire)
            .collect::<Result<Vec<_>, Error>>()?;
        results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        if !dry_run {
            let topics = reassignments.into_iter().map(|r| r.topic).collect();
            self.refresh(&dedup(topics)).await;
        }
        Ok(results)
    }

    /// One call to any broker whose whole-request error, if any, becomes `Err`;
    /// `NOT_CONTROLLER` is retried until the request timeout has passed.
    async fn call_cluster<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, Error>
    where
        T: WholeRequestError,
        F: FnMut(BrokerClient) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.client.request_timeout();
        let mut attempt = 0;
        loop {
            let answer = self
                .client
                .call_any(operation, &mut call)
                .await
                .and_then(
                    |response| match Error::from_wire(response.whole_request_error()) {
                        Some(error) => Err(error),
                        None => Ok(response),
                    },
                );
            match answer {
                Err(error) if error.code() == Some(ErrorCode::NotController) => {
                    attempt += 1;
                    let wait = backoff(
                        NOT_CONTROLLER_BACKOFF_BASE,
                        NOT_CONTROLLER_BACKOFF_MAX,
                        attempt,
                    );
                    if Instant::now() + wait >= deadline {
                        return Err(error);
                    }
                    tracing::debug!(%error, operation, attempt, "no controller leader yet; retrying");
                    tokio::time::sleep(wait).await;
                }
                answer => return answer,
            }
        }
    }
}

/// A response that may carry an error for the whole request (its results are empty then).
trait WholeRequestError {
    fn whole_request_error(&self) -> Option<&wire::Error>;
}

impl WholeRequestError for wire::DescribeClusterResponse {
    fn whole_request_error(&self) -> Option<&wire::Error> {
        self.error.as_ref()
    }
}

impl WholeRequestError for wire::ElectLeadersResponse {
    fn whole_request_error(&self) -> Option<&wire::Error> {
        self.error.as_ref()
    }
}

impl WholeRequestError for wire::ReassignPartitionsResponse {
    fn whole_request_error(&self) -> Option<&wire::Error> {
        self.error.as_ref()
    }
}

fn dedup(mut topics: Vec<String>) -> Vec<String> {
    topics.sort();
    topics.dedup();
    topics
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
