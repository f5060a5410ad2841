//! The coordinator task's calls to the group coordinator: `FindCoordinator`, the
//! heartbeat call, `OffsetFetch` (start offsets of new partitions) and `OffsetCommit`
//! with its retries. How each error is met is in the parent module's doc.

use strata_proto::api::v1 as wire;
use tokio::time::Instant;

use super::super::ledger::OffsetToCommit;
use super::super::ledger::{by_topic, commit_outcome, commit_request, committed_offset};
use super::super::reconcile::TopicPartition;
use super::super::{reaction, Reaction};
use super::{lost_partitions, Coordinator, RejoinAs};
use crate::connection::{request, with_deadline};
use crate::consumer::offsets::resolve_all;
use crate::error::Error;
use crate::group_coordinator::{find_coordinator, group_client, GroupClient};

impl Coordinator {
    /// Where each new partition starts: the group's committed offset, else
    /// `auto.offset.reset`.
    pub(super) async fn start_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(String, i32, i64)>, Error> {
        let response = self.offset_fetch(partitions).await?;
        let mut starts = Vec::new();
        let mut missing = Vec::new();
        for (topic, partition) in partitions {
            match committed_offset(&response, topic, *partition)? {
                Some((offset, _)) => {
                    self.ledger.known((topic.clone(), *partition), offset);
                    starts.push((topic.clone(), *partition, offset));
                }
                None => missing.push((topic.clone(), *partition)),
            }
        }
        let mut topics: Vec<String> = partitions.iter().map(|(topic, _)| topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let unknown = topics
            .iter()
            .any(|topic| self.client.metadata().partition_count(topic).is_none());
        if unknown || !missing.is_empty() {
            self.client.refresh_metadata(&topics).await?;
        }
        if !missing.is_empty() {
            let offsets = resolve_all(&self.client, &missing, self.settings.start).await?;
            starts.extend(
                missing
                    .into_iter()
                    .zip(offsets)
                    .map(|((topic, partition), offset)| (topic, partition, offset)),
            );
        }
        Ok(starts)
    }

    pub(super) async fn offset_fetch(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<wire::OffsetFetchResponse, Error> {
        let message = wire::OffsetFetchRequest {
            group_id: self.settings.group_id.clone(),
            topics: by_topic(partitions),
        };
        for attempt in 1..=5 {
            let address = self.coordinator().await?;
            let timeout = self.client.request_timeout();
            let mut group = self.group_client(&address)?;
            let answer = with_deadline(
                "offset fetch",
                timeout,
                group.offset_fetch(request(message.clone(), timeout)),
            )
            .await;
            let error = match answer {
                Ok(response) => match Error::from_wire(response.error.as_ref()) {
                    None => return Ok(response),
                    Some(error) => error,
                },
                Err(error) => error,
            };
            match reaction(&error) {
                Reaction::Rediscover => self.address = None,
                Reaction::Wait | Reaction::StaleEpoch => {}
                Reaction::Rejoin | Reaction::Fail => return Err(error),
            }
            if attempt == 5 {
                return Err(error);
            }
            tokio::time::sleep(self.retry_delay_at(attempt)).await;
        }
        Err(Error::Closed("group coordinator"))
    }

    /// Commits `offsets` (those that moved since the last commit) with the member's
    /// current epoch, retrying retriable errors until the request timeout passes.
    pub(super) async fn commit(
        &mut self,
        incarnation: u64,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<(), Error> {
        if incarnation != self.member.incarnation {
            return Err(lost_partitions());
        }
        let mut pending = self.ledger.changed(offsets);
        let deadline = Instant::now() + self.client.request_timeout();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let failed = match self.commit_once(&pending).await {
                Ok(response) => {
                    let (stored, failed) = commit_outcome(&response, pending);
                    self.ledger.acknowledge(&stored);
                    failed
                }
                Err(error) => pending
                    .into_iter()
                    .map(|offset| (offset, error.duplicate()))
                    .collect(),
            };
            let mut retry = Vec::new();
            let mut stale = false;
            let mut last_error = None;
            for (offset, error) in failed {
                match reaction(&error) {
                    Reaction::Rediscover => self.address = None,
                    Reaction::Wait => {}
                    Reaction::StaleEpoch => stale = true,
                    Reaction::Rejoin => {
                        self.lose_all(RejoinAs::after(&error));
                        return Err(error);
                    }
                    Reaction::Fail => return Err(error),
                }
                retry.push(offset);
                last_error = Some(error);
            }
            if let Some(error) = last_error {
                if Instant::now() >= deadline {
                    return Err(error);
                }
            }
            if stale {
                if let Err(error) = self.heartbeat().await {
                    self.heartbeat_failed(error);
                }
            } else if !retry.is_empty() {
                tokio::time::sleep(self.retry_delay_at(attempt)).await;
            }
            if incarnation != self.member.incarnation {
                return Err(lost_partitions());
            }
            pending = retry;
        }
        Ok(())
    }

    pub(super) async fn commit_once(
        &mut self,
        offsets: &[OffsetToCommit],
    ) -> Result<wire::OffsetCommitResponse, Error> {
        let address = self.coordinator().await?;
        let message = commit_request(
            &self.settings.group_id,
            &self.member.id,
            self.member.epoch,
            offsets,
        );
        let timeout = self.client.request_timeout();
        let mut group = self.group_client(&address)?;
        with_deadline(
            "offset commit",
            timeout,
            group.offset_commit(request(message, timeout)),
        )
        .await
    }

    pub(super) async fn call_heartbeat(
        &mut self,
        message: wire::ConsumerGroupHeartbeatRequest,
    ) -> Result<wire::ConsumerGroupHeartbeatResponse, Error> {
        let address = self.coordinator().await?;
        let timeout = self.client.request_timeout();
        let mut group = self.group_client(&address)?;
        let response = with_deadline(
            "group heartbeat",
            timeout,
            group.consumer_group_heartbeat(request(message, timeout)),
        )
        .await?;
        match Error::from_wire(response.error.as_ref()) {
            Some(error) => Err(error),
            None => Ok(response),
        }
    }

    /// The coordinator's address: the one known, else `FindCoordinator` to the known
    /// brokers and then the bootstrap ones, until one answers.
    pub(super) async fn coordinator(&mut self) -> Result<String, Error> {
        if let Some(address) = &self.address {
            return Ok(address.clone());
        }
        let timeout = self.client.request_timeout();
        let found = find_coordinator(&self.client, &self.settings.group_id, timeout).await?;
        self.address = Some(found.address.clone());
        Ok(found.address)
    }

    pub(super) fn group_client(&self, address: &str) -> Result<GroupClient, Error> {
        group_client(&self.client, address)
    }
}
