//! The coordinator task of a group consumer: finds the coordinator, joins, heartbeats,
//! reconciles the assignment with the consumer, and sends commits. One task per
//! consumer; every group call of the consumer goes through it, one at a time, so commits
//! reach the coordinator in the order they were asked for.
//!
//! Errors (`super::reaction`): `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE` and lost
//! connections find the coordinator again; `COORDINATOR_LOAD_IN_PROGRESS` waits; a
//! commit refused with `STALE_MEMBER_EPOCH` sends a heartbeat to learn the member's
//! current epoch and commits again; `FENCED_MEMBER_EPOCH` and `UNKNOWN_MEMBER_ID` lose
//! every partition (no commit) and join again with epoch 0 (a fenced member under its
//! id, so the coordinator resets it). A member none of whose heartbeats got through for
//! the session timeout gives up its partitions the same way: the coordinator has expelled
//! it by then. Retries back off from `retry.backoff.ms` up to 1 s; commits give up after
//! the client's request timeout.

mod calls;

use std::sync::Arc;
use std::time::Duration;

use strata_proto::api::v1 as wire;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ledger::{by_topic, flatten};
use super::ledger::{CommitLedger, OffsetToCommit};
use super::member::MemberView;
use super::poll_clock::PollClock;
use super::reconcile::{Reconciler, TopicPartition};
use super::{reaction, CommitReply, Control, Reaction, Request};
use crate::client::Client;
use crate::consumer::builder::CommitMode;
use crate::consumer::offsets::resolve_all;
use crate::error::{Error, ErrorCode};
use crate::record::Offset;
use crate::retry::backoff;

/// Member epochs with a meaning of their own (`group_api.proto`).
const JOIN_EPOCH: i32 = 0;
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;

/// The heartbeat interval until the coordinator names one (Kafka's 5 s default).
const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);

/// What a group consumer was built with.
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub(crate) group_id: String,
    /// `group.instance.id`: static membership.
    pub(crate) instance_id: Option<String>,
    pub(crate) topics: Vec<String>,
    pub(crate) topic_regex: Option<String>,
    /// `group.remote.assignor`: `uniform` or `range`; the group's own when `None`.
    pub(crate) assignor: Option<String>,
    pub(crate) commit: CommitMode,
    /// `auto.offset.reset`: where a partition without a committed offset starts.
    pub(crate) start: Offset,
    /// `max.poll.interval`: the member leaves when the application holds a record this
    /// long without asking for the next; also its rebalance timeout.
    pub(crate) max_poll_interval: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
}

/// Who this member is to the coordinator.
#[derive(Debug)]
struct Member {
    id: String,
    epoch: i32,
    /// Counted up at each join from epoch 0 (see the module doc of `group`).
    incarnation: u64,
    heartbeat_interval: Duration,
    /// The next heartbeat carries the subscription (after a join).
    send_subscription: bool,
}

/// Whether a member that lost its partitions joins again under its member id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RejoinAs {
    /// Fenced (`FENCED_MEMBER_EPOCH`) or presumed expelled: the coordinator may still know
    /// the id, and resets that member when it joins with it at epoch 0.
    SameMember,
    /// Unknown to the coordinator (`UNKNOWN_MEMBER_ID`), or it left on purpose.
    NewMember,
}

impl RejoinAs {
    fn after(error: &Error) -> RejoinAs {
        match error.code() {
            Some(ErrorCode::FencedMemberEpoch) => RejoinAs::SameMember,
            _ => RejoinAs::NewMember,
        }
    }
}

/// The state of the coordinator task.
#[derive(Debug)]
struct Coordinator {
    client: Client,
    settings: GroupSettings,
    /// The coordinator's address, once found.
    address: Option<String>,
    member: Member,
    reconciler: Reconciler,
    ledger: CommitLedger,
    control: mpsc::UnboundedSender<Control>,
    next_heartbeat: Instant,
    /// Consecutive failed heartbeats, for the back-off.
    failures: u32,
    /// The code of the last unretriable error reported to the application.
    reported: Option<Option<ErrorCode>>,
    clock: Arc<PollClock>,
    /// The coordinator's session timeout, once it named one.
    session_timeout: Option<Duration>,
    last_heartbeat_ok: Instant,
    /// The member left because the application stopped polling (`max.poll.interval`);
    /// it joins again once the application polls again (the poll count moves on from
    /// this one).
    idle_since: Option<u64>,
}

/// How often a member that left for want of polls looks whether the application is back.
const IDLE_RECHECK: Duration = Duration::from_millis(100);

/// Joins the group (finding its coordinator, retrying until the client's request timeout
/// passes), then leaves the task running in the background. Errors that retrying cannot
/// fix (`INVALID_GROUP_ID`, `UNRELEASED_INSTANCE_ID`, …) are returned at once.
pub(crate) async fn join(client: Client, settings: GroupSettings) -> Result<MemberView, Error> {
    let (control_sender, control) = mpsc::unbounded_channel();
    let (requests, request_receiver) = mpsc::unbounded_channel();
    let mode = settings.commit;
    let clock = Arc::new(PollClock::new());
    let mut coordinator = Coordinator {
        client,
        settings,
        address: None,
        member: Member {
            id: String::new(),
            epoch: JOIN_EPOCH,
            incarnation: 0,
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            send_subscription: true,
        },
        reconciler: Reconciler::default(),
        ledger: CommitLedger::default(),
        control: control_sender,
        next_heartbeat: Instant::now(),
        failures: 0,
        reported: None,
        clock: clock.clone(),
        session_timeout: None,
        last_heartbeat_ok: Instant::now(),
        idle_since: None,
    };
    let deadline = Instant::now() + coordinator.client.request_timeout();
    loop {
        match coordinator.heartbeat().await {
            Ok(()) => break,
            Err(error) if reaction(&error) == Reaction::Fail => return Err(error),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(error) => {
                tracing::debug!(%error, "joining the group; retrying");
                coordinator.failures += 1;
                tokio::time::sleep(coordinator.retry_delay()).await;
            }
        }
    }
    tokio::spawn(coordinator.run(request_receiver));
    Ok(MemberView::new(mode, control, requests, clock))
}

impl Coordinator {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let commit_interval = match self.settings.commit {
            CommitMode::Auto { interval } | CommitMode::Marked { interval } => Some(interval),
            CommitMode::Manual => None,
        };
        let mut next_commit = commit_interval.map(|interval| Instant::now() + interval);
        loop {
            let heartbeat_at = self.next_heartbeat;
            let commit_at = next_commit;
            let poll_deadline = match self.idle_since {
                Some(_) => None,
                None => self.clock.deadline(self.settings.max_poll_interval),
            };
            tokio::select! {
                request = requests.recv() => match request {
                    None => {
                        self.leave().await;
                        return;
                    }
                    Some(Request::Close { incarnation, offsets, reply }) => {
                        self.close(incarnation, offsets, reply).await;
                        return;
                    }
                    Some(request) => self.handle(request).await,
                },
                () = tokio::time::sleep_until(heartbeat_at) => {
                    if self.still_idle() {
                        continue;
                    }
                    if let Err(error) = self.heartbeat().await {
                        self.heartbeat_failed(error);
                    }
                }
                () = sleep_until_some(poll_deadline) => self.leave_if_not_polled().await,
                () = sleep_until_some(commit_at) => {
                    // The consumer answers with a `Request::Commit` when the application
                    // next polls (or at once if it is waiting for records).
                    let _ = self.control.send(Control::CommitDue);
                    next_commit = commit_interval.map(|interval| Instant::now() + interval);
                }
            }
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Released {
                incarnation,
                partitions,
                offsets,
            } => {
                if incarnation != self.member.incarnation {
                    return;
                }
                if let Err(error) = self.commit(incarnation, offsets).await {
                    tracing::warn!(%error, group = %self.settings.group_id,
                        "commit before giving up revoked partitions failed");
                }
                if incarnation == self.member.incarnation {
                    self.reconciler.released(&partitions);
                    self.ledger.forget(&partitions);
                    self.next_heartbeat = Instant::now();
                }
            }
            Request::Commit {
                incarnation,
                offsets,
                reply,
            } => {
                let result = self.commit(incarnation, offsets).await;
                answer(reply, result, &self.settings.group_id);
            }
            Request::Close {
                incarnation,
                offsets,
                reply,
            } => self.close(incarnation, offsets, reply).await,
            Request::Reset {
                incarnation,
                partition,
            } => self.reset(incarnation, partition).await,
        }
    }

    /// A partition's position is out of range: where `auto.offset.reset` says. When the
    /// lookup fails, the partition is reset to the same place later (the consumer asks
    /// again at the next out-of-range answer).
    async fn reset(&mut self, incarnation: u64, partition: TopicPartition) {
        if incarnation != self.member.incarnation || !self.reconciler.is_owned(&partition) {
            return;
        }
        let wanted = [partition.clone()];
        match resolve_all(&self.client, &wanted, self.settings.start).await {
            Ok(offsets) => {
                if let Some(offset) = offsets.first().copied() {
                    tracing::warn!(group = %self.settings.group_id, topic = %partition.0,
                        partition = partition.1, offset,
                        "position out of range; reset by auto.offset.reset");
                    let _ = self.control.send(Control::Reset {
                        incarnation,
                        partition,
                        offset,
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, topic = %partition.0, partition = partition.1,
                    "looking up auto.offset.reset failed");
                let _ = self.control.send(Control::Failed(error));
            }
        }
    }

    async fn close(&mut self, incarnation: u64, offsets: Vec<OffsetToCommit>, reply: CommitReply) {
        let result = self.commit(incarnation, offsets).await;
        self.leave().await;
        answer(reply, result, &self.settings.group_id);
    }

    /// The application held a record for `max.poll.interval` without asking for the
    /// next: leave the group (its partitions go to members that make progress; the
    /// consumer drops them as lost, without a commit) until it polls again.
    async fn leave_if_not_polled(&mut self) {
        let interval = self.settings.max_poll_interval;
        let passed = self
            .clock
            .deadline(interval)
            .is_some_and(|deadline| deadline <= Instant::now());
        if !passed || self.member.id.is_empty() {
            return;
        }
        tracing::warn!(group = %self.settings.group_id, ?interval,
            "the application did not ask for a record within max.poll.interval; \
             leaving the group until it does");
        // Counted before the consumer hears of the loss: a poll that applies it counts.
        self.idle_since = Some(self.clock.polls());
        self.leave().await;
        self.lose_all(RejoinAs::NewMember);
        self.next_heartbeat = Instant::now() + IDLE_RECHECK;
    }

    /// Whether the member stays out of the group (left for want of polls, and the
    /// application has not polled since); schedules the next look if so.
    fn still_idle(&mut self) -> bool {
        let Some(since) = self.idle_since else {
            return false;
        };
        if self.clock.polls() != since {
            self.idle_since = None;
            return false;
        }
        self.next_heartbeat = Instant::now() + IDLE_RECHECK;
        true
    }

    /// One heartbeat, and the reconciliation its answer asks for.
    async fn heartbeat(&mut self) -> Result<(), Error> {
        let epoch = self.member.epoch;
        let message = self.heartbeat_request(epoch);
        let response = match self.call_heartbeat(message).await {
            Ok(response) => response,
            Err(error) => return Err(self.on_error(error)),
        };
        self.member.id = response.member_id;
        self.member.epoch = response.member_epoch;
        if let Ok(interval_ms) = u64::try_from(response.heartbeat_interval_ms) {
            if interval_ms > 0 {
                self.member.heartbeat_interval = Duration::from_millis(interval_ms);
            }
        }
        self.member.send_subscription = false;
        self.last_heartbeat_ok = Instant::now();
        if let Ok(timeout_ms) = u64::try_from(response.session_timeout_ms) {
            if timeout_ms > 0 {
                self.session_timeout = Some(Duration::from_millis(timeout_ms));
            }
        }
        self.failures = 0;
        self.reported = None;
        self.next_heartbeat = Instant::now() + self.member.heartbeat_interval;
        if response.has_assignment {
            self.reconciler.set_target(flatten(&response.assignment));
        }
        self.reconcile().await;
        Ok(())
    }

    fn heartbeat_request(&self, member_epoch: i32) -> wire::ConsumerGroupHeartbeatRequest {
        let settings = &self.settings;
        let subscribe = self.member.send_subscription;
        let owned: Vec<&TopicPartition> = self.reconciler.owned().collect();
        wire::ConsumerGroupHeartbeatRequest {
            group_id: settings.group_id.clone(),
            member_id: self.member.id.clone(),
            member_epoch,
            instance_id: settings.instance_id.clone().unwrap_or_default(),
            has_subscription: subscribe,
            subscribed_topic_names: if subscribe {
                settings.topics.clone()
            } else {
                Vec::new()
            },
            subscribed_topic_regex: if subscribe {
                settings.topic_regex.clone().unwrap_or_default()
            } else {
                String::new()
            },
            server_assignor: if subscribe {
                settings.assignor.clone().unwrap_or_default()
            } else {
                String::new()
            },
            // Always sent: what the member owns is the one thing the coordinator must
            // never guess, and the list is short.
            has_owned: true,
            owned_partitions: by_topic(owned),
            client_id: self.client.client_id().to_owned(),
            rebalance_timeout_ms: i32::try_from(settings.max_poll_interval.as_millis())
                .unwrap_or(i32::MAX),
        }
    }

    /// Asks the consumer to give up what the target dropped, and takes up what it added
    /// once their start offsets are known. A failed lookup is tried again at the next
    /// heartbeat.
    async fn reconcile(&mut self) {
        let revoke = self.reconciler.start_revoking();
        if !revoke.is_empty() {
            let _ = self.control.send(Control::Revoke {
                incarnation: self.member.incarnation,
                partitions: revoke,
            });
        }
        let assign = self.reconciler.to_assign();
        if assign.is_empty() {
            return;
        }
        let incarnation = self.member.incarnation;
        match self.start_offsets(&assign).await {
            Ok(starts) if incarnation == self.member.incarnation => {
                let taken = self.reconciler.assigned(
                    starts
                        .iter()
                        .map(|(topic, partition, _)| (topic.clone(), *partition)),
                );
                let partitions: Vec<(String, i32, i64)> = starts
                    .into_iter()
                    .filter(|(topic, partition, _)| {
                        taken.iter().any(|(t, p)| t == topic && p == partition)
                    })
                    .collect();
                if !partitions.is_empty() {
                    let _ = self.control.send(Control::Assign {
                        incarnation,
                        partitions,
                    });
                    // Tell the coordinator right away that they are owned now.
                    self.next_heartbeat = Instant::now();
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "looking up start offsets of assigned partitions failed");
                let retry_at = Instant::now() + self.retry_delay_at(1);
                self.next_heartbeat = self.next_heartbeat.min(retry_at);
            }
        }
    }

    /// Leaves the group: epoch -1, or -2 for a static member (its partitions wait for it
    /// until the session times out). Best effort: one retry after finding the
    /// coordinator again.
    async fn leave(&mut self) {
        if self.member.id.is_empty() && self.settings.instance_id.is_none() {
            return;
        }
        let epoch = if self.settings.instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        for _ in 0..2 {
            let message = self.heartbeat_request(epoch);
            match self.call_heartbeat(message).await {
                Ok(_) => return,
                Err(error) => {
                    tracing::debug!(%error, group = %self.settings.group_id, "leaving the group failed");
                    if reaction(&error) != Reaction::Rediscover {
                        return;
                    }
                    self.address = None;
                }
            }
        }
    }

    /// What an error of a call to the coordinator changes here; returns it.
    fn on_error(&mut self, error: Error) -> Error {
        match reaction(&error) {
            Reaction::Rediscover => self.address = None,
            Reaction::Rejoin => self.lose_all(RejoinAs::after(&error)),
            Reaction::Wait | Reaction::StaleEpoch | Reaction::Fail => {}
        }
        error
    }

    fn heartbeat_failed(&mut self, error: Error) {
        self.failures = self.failures.saturating_add(1);
        let mut delay = self.retry_delay();
        let reaction = reaction(&error);
        if reaction == Reaction::Fail {
            // Retrying cannot fix it soon (e.g. another member holds our instance id):
            // tell the application once per kind, and try again at the heartbeat pace.
            delay = delay.max(self.member.heartbeat_interval);
            let code = Some(error.code());
            if self.reported != code {
                self.reported = code;
                let _ = self.control.send(Control::Failed(error.duplicate()));
            }
        } else {
            tracing::debug!(%error, group = %self.settings.group_id, "group heartbeat failed");
        }
        let session_lapsed = self.session_timeout.is_some_and(|timeout| {
            self.member.epoch > JOIN_EPOCH && self.last_heartbeat_ok.elapsed() >= timeout
        });
        if reaction != Reaction::Rejoin && session_lapsed {
            // The coordinator has expelled this member by now and may have given its
            // partitions to others: stop reading them rather than read them twice.
            tracing::warn!(%error, group = %self.settings.group_id,
                "no heartbeat got through for the session timeout; giving up the partitions");
            self.lose_all(RejoinAs::SameMember);
        }
        self.next_heartbeat = if reaction == Reaction::Rejoin {
            // `lose_all` ran: join again at once.
            Instant::now()
        } else {
            Instant::now() + delay
        };
    }

    /// The member lost its partitions: no commit, a new incarnation, a join from epoch 0.
    /// With `RejoinAs::SameMember` the join keeps the member id, so the coordinator resets
    /// that member rather than keeping it beside a new one until its session lapses (a
    /// member fenced at epoch 0 already joins as a new one, so this cannot loop).
    fn lose_all(&mut self, rejoin: RejoinAs) {
        let lost = self.reconciler.lose_all();
        self.ledger = CommitLedger::default();
        if rejoin == RejoinAs::NewMember || self.member.epoch == JOIN_EPOCH {
            self.member.id.clear();
        }
        self.member.epoch = JOIN_EPOCH;
        self.member.incarnation += 1;
        self.member.send_subscription = true;
        self.next_heartbeat = Instant::now();
        let _ = self.control.send(Control::Lost {
            incarnation: self.member.incarnation,
            partitions: lost,
        });
    }

    fn retry_delay(&self) -> Duration {
        self.retry_delay_at(self.failures.max(1))
    }

    fn retry_delay_at(&self, attempt: u32) -> Duration {
        backoff(
            self.settings.retry_backoff,
            self.settings.retry_backoff_max,
            attempt,
        )
    }
}

/// The error a commit gets when the member lost its partitions before it was sent.
fn lost_partitions() -> Error {
    Error::broker(
        ErrorCode::FencedMemberEpoch,
        "the member lost its partitions (fenced or expelled) before this commit was sent; \
         it was not applied",
    )
}

fn answer(reply: CommitReply, result: Result<(), Error>, group: &str) {
    match reply {
        Some(reply) => {
            let _ = reply.send(result);
        }
        None => {
            if let Err(error) = result {
                tracing::warn!(%error, %group, "offset commit failed");
            }
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
