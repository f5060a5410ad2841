//! The consumer's side of group membership: [`MemberView`] (the channels to the
//! coordinator task, the rebalance listeners, the marks) and the `Consumer` methods that
//! apply the task's controls and compute what to commit.
//!
//! What each commit mode commits (`docs/CLIENT.md`, "Consumer groups"):
//!
//! | when | `Auto` | `Marked` | `Manual` |
//! |---|---|---|---|
//! | every interval | processed positions | marks | — |
//! | a partition is revoked | its processed position | its mark | — |
//! | `commit()` | positions | marks | positions |
//! | `close()` | positions | marks | — |
//! | dropped without `close` | processed positions | marks | — |
//!
//! *Position*: the offset after the last record yielded. *Processed position*: the
//! offset after the last record whose successor the application asked for.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use super::ledger::OffsetToCommit;
use super::poll_clock::PollClock;
use super::{Control, RebalanceEvent, RebalanceEvents, Request};
use crate::consumer::builder::CommitMode;
use crate::consumer::stream::Slot;
use crate::consumer::Consumer;
use crate::error::Error;
use crate::record::{ConsumedRecord, Offset};

/// The consumer's end of its coordinator task.
#[derive(Debug)]
pub(crate) struct MemberView {
    mode: CommitMode,
    /// The member incarnation the consumer last heard of.
    incarnation: u64,
    control: mpsc::UnboundedReceiver<Control>,
    requests: mpsc::UnboundedSender<Request>,
    listeners: Vec<mpsc::UnboundedSender<RebalanceEvent>>,
    marks: Arc<Marks>,
    clock: Arc<PollClock>,
}

impl MemberView {
    pub(crate) fn new(
        mode: CommitMode,
        control: mpsc::UnboundedReceiver<Control>,
        requests: mpsc::UnboundedSender<Request>,
        clock: Arc<PollClock>,
    ) -> MemberView {
        MemberView {
            mode,
            incarnation: 0,
            control,
            requests,
            listeners: Vec::new(),
            marks: Arc::new(Marks::default()),
            clock,
        }
    }

    fn emit(&mut self, event: RebalanceEvent) {
        self.listeners
            .retain(|listener| listener.send(event.clone()).is_ok());
    }

    fn send(&self, request: Request) -> Result<(), Error> {
        self.requests
            .send(request)
            .map_err(|_| Error::Closed("group coordinator task"))
    }
}

/// A partition's mark: the offset after the record marked, and its leader epoch.
type Mark = (i64, i32);

/// Offsets passed to `mark`, by topic and partition. Shared with every [`Marker`].
#[derive(Debug, Default)]
pub(crate) struct Marks {
    by_topic: Mutex<HashMap<Arc<str>, HashMap<i32, Mark>>>,
}

impl Marks {
    fn mark(&self, record: &ConsumedRecord) {
        let mut by_topic = self
            .by_topic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let partitions = by_topic.entry(record.topic.clone()).or_default();
        let next = (record.offset + 1, record.leader_epoch);
        partitions
            .entry(record.partition)
            .and_modify(|marked| {
                if next.0 > marked.0 {
                    *marked = next;
                }
            })
            .or_insert(next);
    }

    fn get(&self, topic: &str, partition: i32) -> Option<(i64, i32)> {
        let by_topic = self
            .by_topic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        by_topic.get(topic)?.get(&partition).copied()
    }

    fn forget(&self, topic: &str, partition: i32) {
        let mut by_topic = self
            .by_topic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(partitions) = by_topic.get_mut(topic) {
            partitions.remove(&partition);
        }
    }
}

/// Marks records as processed for `CommitMode::Marked`, from any task: a cheap clone of
/// the consumer's marks, from [`Consumer::marker`]. A mark commits the offset after the
/// record at the next interval, revocation or close; mark a partition's records in offset
/// order (a mark never moves a partition's commit backwards).
#[derive(Debug, Clone)]
pub struct Marker {
    marks: Arc<Marks>,
}

impl Marker {
    pub fn mark(&self, record: &ConsumedRecord) {
        self.marks.mark(record);
    }
}

/// A commit sent without waiting ([`Consumer::commit_nowait`]). Await it for the result,
/// or drop it: the commit goes ahead, and a failure is logged.
#[derive(Debug)]
#[must_use = "await it for the commit's result, or drop it to have failures logged only"]
pub struct PendingCommit {
    result: Option<oneshot::Receiver<Result<(), Error>>>,
}

impl Future for PendingCommit {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let Some(receiver) = this.result.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(receiver).poll(cx) {
            Poll::Ready(Ok(result)) => {
                this.result = None;
                Poll::Ready(result)
            }
            Poll::Ready(Err(_)) => {
                this.result = None;
                Poll::Ready(Err(Error::Closed("group coordinator task")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for PendingCommit {
    fn drop(&mut self) {
        // Nobody waits any more: the task logs a failure instead of answering.
        if let Some(receiver) = self.result.as_mut() {
            receiver.close();
        }
    }
}

/// Which offsets to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// After every record yielded.
    Positions,
    /// After the records whose successor was asked for.
    Processed,
    Marks,
}

impl Consumer {
    /// The group events of this consumer from now on: partitions assigned, revoked and
    /// lost, in the order the consumer applies them. `None` for a consumer without a group.
    /// Each call gives a new receiver; every receiver sees every event.
    pub fn rebalance_events(&mut self) -> Option<RebalanceEvents> {
        let group = self.group.as_mut()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        group.listeners.push(sender);
        Some(RebalanceEvents::new(receiver))
    }

    /// Marks `record` processed (`CommitMode::Marked`): its offset + 1 is committed at
    /// the next interval, revocation or close. See [`Marker`] for marking from other
    /// tasks. Does nothing without a group.
    pub fn mark(&self, record: &ConsumedRecord) {
        if let Some(group) = &self.group {
            group.marks.mark(record);
        }
    }

    /// A handle that marks records from any task (`CommitMode::Marked`); `None` without
    /// a group.
    pub fn marker(&self) -> Option<Marker> {
        self.group.as_ref().map(|group| Marker {
            marks: group.marks.clone(),
        })
    }

    /// Commits now and waits for the coordinator's answer: the position after every
    /// record yielded (`Marked`: the marks), for each partition assigned. A commit
    /// refused because the member was fenced or expelled fails with
    /// `FENCED_MEMBER_EPOCH` or `UNKNOWN_MEMBER_ID`: the partitions are lost and the
    /// consumer joins again. Unsupported without a group.
    pub async fn commit(&mut self) -> Result<(), Error> {
        self.commit_nowait().await
    }

    /// Sends the same commit as [`Consumer::commit`] without waiting: the returned
    /// [`PendingCommit`] resolves to its result (Kafka's `commitAsync`). Commits are sent
    /// in the order they were asked for.
    pub fn commit_nowait(&mut self) -> PendingCommit {
        let Some(group) = self.group.as_ref() else {
            return PendingCommit {
                result: Some(closed_with(Error::Unsupported(
                    "commit without a group (build the consumer with .group(..))".to_owned(),
                ))),
            };
        };
        let source = match group.mode {
            CommitMode::Marked { .. } => Source::Marks,
            CommitMode::Auto { .. } | CommitMode::Manual => Source::Positions,
        };
        let (reply, result) = oneshot::channel();
        let request = Request::Commit {
            incarnation: group.incarnation,
            offsets: self.offsets(source),
            reply: Some(reply),
        };
        if let Err(error) = group.send(request) {
            return PendingCommit {
                result: Some(closed_with(error)),
            };
        }
        PendingCommit {
            result: Some(result),
        }
    }

    /// Applies the controls the coordinator task has sent; an error to yield if one of
    /// them is one.
    pub(crate) fn poll_group(&mut self, cx: &mut Context<'_>) -> Option<Error> {
        if let Some(group) = &self.group {
            group.clock.polled();
        }
        loop {
            let group = self.group.as_mut()?;
            match group.control.poll_recv(cx) {
                Poll::Ready(Some(control)) => {
                    if let Some(error) = self.apply(control) {
                        return Some(error);
                    }
                }
                Poll::Ready(None) | Poll::Pending => return None,
            }
        }
    }

    /// The poll found nothing to yield: the application waits (`max.poll.interval`
    /// does not run).
    pub(crate) fn note_waiting(&self) {
        if let Some(group) = &self.group {
            group.clock.waiting();
        }
    }

    fn apply(&mut self, control: Control) -> Option<Error> {
        match control {
            Control::Assign {
                incarnation,
                partitions,
            } => self.take_up(incarnation, partitions),
            Control::Revoke {
                incarnation,
                partitions,
            } => self.revoke(incarnation, partitions),
            Control::Lost {
                incarnation,
                partitions,
            } => {
                let lost = self.give_up(&partitions);
                if let Some(group) = self.group.as_mut() {
                    group.incarnation = incarnation;
                    if !lost.is_empty() {
                        group.emit(RebalanceEvent::Lost(lost));
                    }
                }
            }
            Control::Reset {
                incarnation,
                partition,
                offset,
            } => self.reset(incarnation, &partition, offset),
            Control::CommitDue => self.commit_due(),
            Control::Failed(error) => return Some(error),
        }
        None
    }

    fn take_up(&mut self, incarnation: u64, partitions: Vec<(String, i32, i64)>) {
        let mut assigned = Vec::new();
        for (topic, partition, offset) in partitions {
            let (index, generation) = self.shared.assign(&topic, partition, offset);
            if index >= self.slots.len() {
                self.slots
                    .push(Slot::new(Arc::from(topic.as_str()), partition, offset));
            }
            if let Some(slot) = self.slots.get_mut(index) {
                *slot = Slot {
                    generation,
                    ..Slot::new(slot.topic.clone(), partition, offset)
                };
            }
            self.drop_buffered(index);
            if let Some(group) = &self.group {
                group.marks.forget(&topic, partition);
            }
            assigned.push((topic, partition));
        }
        if let Some(group) = self.group.as_mut() {
            group.incarnation = incarnation;
            group.emit(RebalanceEvent::Assigned(assigned));
        }
    }

    /// Whether an error item of slot `index` is an out-of-range position that a group
    /// consumer resets by `auto.offset.reset` (`Earliest` or `Latest`; an exact start
    /// would only be out of range again) instead of yielding it. The coordinator task
    /// looks the offset up and answers `Control::Reset`.
    pub(crate) fn resets_out_of_range(&self, index: usize, error: &Error) -> bool {
        let Some(group) = &self.group else {
            return false;
        };
        if error.code() != Some(crate::error::ErrorCode::OffsetOutOfRange)
            || !matches!(self.shared.config.start, Offset::Earliest | Offset::Latest)
        {
            return false;
        }
        let Some(slot) = self.slots.get(index).filter(|slot| slot.assigned) else {
            return false;
        };
        group
            .send(Request::Reset {
                incarnation: group.incarnation,
                partition: (slot.topic.to_string(), slot.partition),
            })
            .is_ok()
    }

    fn reset(&mut self, incarnation: u64, partition: &(String, i32), offset: i64) {
        let current = self.group.as_ref().map(|group| group.incarnation);
        if current != Some(incarnation) {
            return;
        }
        let Some(index) = self.index_of(&partition.0, partition.1) else {
            return;
        };
        let (_, generation) = self.shared.assign(&partition.0, partition.1, offset);
        if let Some(slot) = self.slots.get_mut(index) {
            slot.generation = generation;
            slot.position = offset;
        }
        self.drop_buffered(index);
    }

    /// Stops the revoked partitions, then hands the task what to commit for them.
    fn revoke(&mut self, incarnation: u64, partitions: Vec<(String, i32)>) {
        let source = match self.group.as_ref().map(|group| group.mode) {
            Some(CommitMode::Auto { .. }) => Some(Source::Processed),
            Some(CommitMode::Marked { .. }) => Some(Source::Marks),
            Some(CommitMode::Manual) | None => None,
        };
        let offsets: Vec<OffsetToCommit> = source
            .map(|source| {
                self.offsets(source)
                    .into_iter()
                    .filter(|offset| {
                        partitions.iter().any(|(topic, number)| {
                            *topic == offset.topic && *number == offset.partition
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let revoked = self.give_up(&partitions);
        let Some(group) = self.group.as_mut() else {
            return;
        };
        if incarnation != group.incarnation {
            // Lost since: nothing to commit or release.
            return;
        }
        let released = group.send(Request::Released {
            incarnation,
            partitions,
            offsets,
        });
        if let Err(error) = released {
            tracing::debug!(%error, "revoked partitions not reported released");
        }
        if !revoked.is_empty() {
            group.emit(RebalanceEvent::Revoked(revoked));
        }
    }

    /// Stops reading `partitions`; returns those that were assigned.
    fn give_up(&mut self, partitions: &[(String, i32)]) -> Vec<(String, i32)> {
        let mut given_up = Vec::new();
        for (topic, partition) in partitions {
            let Some(index) = self.index_of(topic, *partition) else {
                continue;
            };
            if let Some(generation) = self.shared.unassign(index) {
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.assigned = false;
                    slot.generation = generation;
                }
            }
            self.drop_buffered(index);
            if let Some(group) = &self.group {
                group.marks.forget(topic, *partition);
            }
            given_up.push((topic.clone(), *partition));
        }
        given_up
    }

    fn commit_due(&mut self) {
        let Some(group) = self.group.as_ref() else {
            return;
        };
        let source = match group.mode {
            CommitMode::Auto { .. } => Source::Processed,
            CommitMode::Marked { .. } => Source::Marks,
            CommitMode::Manual => return,
        };
        let offsets = self.offsets(source);
        if offsets.is_empty() {
            return;
        }
        let request = Request::Commit {
            incarnation: group.incarnation,
            offsets,
            reply: None,
        };
        if let Err(error) = group.send(request) {
            tracing::debug!(%error, "periodic commit not sent");
        }
    }

    /// The offsets `source` gives for every assigned partition that has one.
    fn offsets(&self, source: Source) -> Vec<OffsetToCommit> {
        let marks = self.group.as_ref().map(|group| &group.marks);
        self.slots
            .iter()
            .filter(|slot| slot.assigned)
            .filter_map(|slot| {
                let (offset, leader_epoch) = match source {
                    Source::Positions => Some((slot.position, slot.leader_epoch)),
                    Source::Processed => slot.processed,
                    Source::Marks => marks?.get(&slot.topic, slot.partition),
                }?;
                // A failed record's hand-off is outstanding: nothing past it yet.
                let offset = slot.commit_cap.map_or(offset, |cap| offset.min(cap));
                Some(OffsetToCommit {
                    topic: slot.topic.to_string(),
                    partition: slot.partition,
                    offset,
                    leader_epoch,
                })
            })
            .collect()
    }

    /// Applies controls already sent without waiting (before the final commit, so a
    /// pending revocation or loss is honoured first).
    fn drain_controls(&mut self) {
        loop {
            let Some(group) = self.group.as_mut() else {
                return;
            };
            let Ok(control) = group.control.try_recv() else {
                return;
            };
            if let Some(error) = self.apply(control) {
                tracing::debug!(%error, "group error while closing");
            }
        }
    }

    /// `close()`'s group part: final commit by the commit mode, leave, wait for both.
    pub(crate) async fn close_group(&mut self) -> Result<(), Error> {
        let Some((offsets, group)) = self.take_group(Source::Positions) else {
            return Ok(());
        };
        let (reply, result) = oneshot::channel();
        group.send(Request::Close {
            incarnation: group.incarnation,
            offsets,
            reply: Some(reply),
        })?;
        result
            .await
            .unwrap_or(Err(Error::Closed("group coordinator task")))
    }

    /// Dropped without `close()`: the task commits the processed positions (or marks) and
    /// leaves, if the runtime lets it run.
    pub(crate) fn abandon_group(&mut self) {
        let Some((offsets, group)) = self.take_group(Source::Processed) else {
            return;
        };
        let _ = group.send(Request::Close {
            incarnation: group.incarnation,
            offsets,
            reply: None,
        });
    }

    /// The final offsets by the commit mode (`Auto` from `auto_source`) and the group,
    /// taken out of the consumer, after the controls already sent were applied. The
    /// offsets are read before the group is taken: the marks live in it.
    fn take_group(&mut self, auto_source: Source) -> Option<(Vec<OffsetToCommit>, MemberView)> {
        self.drain_controls();
        let source = match self.group.as_ref()?.mode {
            CommitMode::Auto { .. } => Some(auto_source),
            CommitMode::Marked { .. } => Some(Source::Marks),
            CommitMode::Manual => None,
        };
        let offsets = source
            .map(|source| self.offsets(source))
            .unwrap_or_default();
        let group = self.group.take()?;
        Some((offsets, group))
    }
}

fn closed_with(error: Error) -> oneshot::Receiver<Result<(), Error>> {
    let (sender, receiver) = oneshot::channel();
    let _ = sender.send(Err(error));
    receiver
}

#[cfg(test)]
#[path = "member_tests.rs"]
mod tests;
