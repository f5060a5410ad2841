#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Seeded simulation: one [`LeaderPartition`] (broker 1) and two followers (2, 3) driven
//! by [`FollowerPartition`], a controller that commits or refuses ISR proposals (and
//! sometimes removes a follower on its own), answers delivered late or through metadata,
//! random appends, fetches, pauses longer than `replica_lag_max`, and `acks=all` checks.
//! A manual clock; every run replays from its seed.
//!
//! Checked after every step: `hw_never_decreases`, `hw_within_committed_isr` (the HW is ≤
//! the real LEO of every member of the controller's ISR), `leader_in_isr`; whenever an
//! `acks=all` batch is declared ready, `acked_never_lost` (every committed ISR member
//! holds it, so a failover to any of them keeps it). At the end, with every follower
//! resumed, the ISR grows back to all three and every waiting batch is acknowledged.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_proto::types::{BrokerId, LeaderEpoch, Offset};

use super::follower::{FetchAnswer, FollowerPartition, FollowerRequest};
use super::leader::*;
use crate::controller::PartitionImage;

const LEADER: BrokerId = BrokerId(1);
const EPOCH: LeaderEpoch = LeaderEpoch(1);
const LAG: Duration = Duration::from_secs(10);

struct Follower {
    id: BrokerId,
    /// The real log end offset of its log.
    log_end_offset: i64,
    paused: bool,
    state: FollowerPartition,
}

enum Answer {
    Committed { isr: Vec<BrokerId>, epoch: i32 },
    Refused,
}

struct Controller {
    isr: Vec<BrokerId>,
    partition_epoch: i32,
    requests: VecDeque<IsrProposal>,
    answers: VecDeque<(IsrProposal, Answer)>,
}

struct Cluster {
    seed: u64,
    now: Instant,
    leader: LeaderPartition,
    leader_log_end_offset: i64,
    followers: Vec<Follower>,
    controller: Controller,
    waiting_acks: Vec<Offset>,
    last_high_watermark: Offset,
    acknowledged: usize,
}

impl Cluster {
    fn new(seed: u64) -> Cluster {
        let all = vec![LEADER, BrokerId(2), BrokerId(3)];
        let now = Instant::now();
        let start = LeaderStart {
            local: LEADER,
            replicas: all.clone(),
            isr: all.clone(),
            leader_epoch: EPOCH,
            partition_epoch: 0,
            log_end_offset: Offset(0),
            high_watermark: Offset(0),
        };
        let config = LeaderConfig {
            min_insync_replicas: 2,
            replica_lag_max: LAG,
        };
        let follower = |id| Follower {
            id: BrokerId(id),
            log_end_offset: 0,
            paused: false,
            state: FollowerPartition::new(LEADER, EPOCH),
        };
        Cluster {
            seed,
            now,
            leader: LeaderPartition::new(start, config, now),
            leader_log_end_offset: 0,
            followers: vec![follower(2), follower(3)],
            controller: Controller {
                isr: all,
                partition_epoch: 0,
                requests: VecDeque::new(),
                answers: VecDeque::new(),
            },
            waiting_acks: Vec::new(),
            last_high_watermark: Offset(0),
            acknowledged: 0,
        }
    }

    fn append(&mut self, records: i64) {
        if self.leader.check_append_allowed().is_err() {
            return;
        }
        self.leader_log_end_offset += records;
        self.leader
            .on_leader_append(Offset(self.leader_log_end_offset));
        self.waiting_acks
            .push(Offset(self.leader_log_end_offset - 1));
    }

    fn fetch(&mut self, index: usize, records_max: i64) {
        let follower = &mut self.followers[index];
        if follower.paused {
            return;
        }
        let request = follower
            .state
            .next_request(&[], Offset(follower.log_end_offset));
        let FollowerRequest::Fetch {
            current_leader_epoch,
            fetch_offset,
        } = request
        else {
            panic!("seed {}: an empty follower log asks nothing", self.seed);
        };
        let fetch = FollowerFetch {
            follower: follower.id,
            fetch_offset,
            current_leader_epoch,
        };
        let decision = self.leader.on_follower_fetch(fetch, self.now).unwrap();
        let records = records_max.min(self.leader_log_end_offset - follower.log_end_offset);
        follower.log_end_offset += records;
        let answer = FetchAnswer {
            request_leader_epoch: current_leader_epoch,
            last_offset: (records > 0).then(|| Offset(follower.log_end_offset - 1)),
            leader_high_watermark: decision.high_watermark,
            leader_log_start_offset: Offset(0),
        };
        let progress = follower.state.on_fetch_answer(answer).unwrap();
        assert_eq!(progress.next_fetch_offset, Offset(follower.log_end_offset));
        assert!(progress.high_watermark <= self.leader.high_watermark());
        assert!(progress.high_watermark.0 <= follower.log_end_offset);
    }

    fn propose(&mut self) {
        if let Some(proposal) = self.leader.isr_change(self.now) {
            assert!(proposal.new_isr.contains(&LEADER), "seed {}", self.seed);
            self.controller.requests.push_back(proposal);
        }
    }

    /// The controller takes the oldest request; it commits only a proposal based on its
    /// current partition epoch (and only when `willing`).
    fn decide(&mut self, willing: bool) {
        let Some(proposal) = self.controller.requests.pop_front() else {
            return;
        };
        let answer = if willing && proposal.partition_epoch == self.controller.partition_epoch {
            self.controller.isr = proposal.new_isr.clone();
            self.controller.partition_epoch += 1;
            Answer::Committed {
                isr: proposal.new_isr.clone(),
                epoch: self.controller.partition_epoch,
            }
        } else {
            Answer::Refused
        };
        self.controller.answers.push_back((proposal, answer));
    }

    fn deliver(&mut self, via_metadata: bool) {
        let Some((proposal, answer)) = self.controller.answers.pop_front() else {
            return;
        };
        match answer {
            Answer::Committed { isr, epoch } if via_metadata => {
                let image = self.image(isr, epoch);
                self.leader.on_metadata(&image, self.now);
            }
            Answer::Committed { isr, epoch } => {
                self.leader.on_isr_committed(isr, epoch);
            }
            Answer::Refused => self.leader.on_isr_refused(&proposal),
        }
    }

    /// The controller removes a follower on its own (a fenced broker) and publishes it.
    fn controller_removes(&mut self, index: usize) {
        let id = self.followers[index].id;
        if !self.controller.isr.contains(&id) {
            return;
        }
        self.controller.isr.retain(|member| *member != id);
        self.controller.partition_epoch += 1;
        let image = self.image(self.controller.isr.clone(), self.controller.partition_epoch);
        let decision = self.leader.on_metadata(&image, self.now);
        assert!(
            matches!(decision, LeaderMetadataDecision::Continue { .. }),
            "seed {}: {decision:?}",
            self.seed
        );
    }

    fn image(&self, isr: Vec<BrokerId>, partition_epoch: i32) -> PartitionImage {
        PartitionImage {
            replicas: vec![LEADER, BrokerId(2), BrokerId(3)],
            leader: Some(LEADER),
            leader_epoch: EPOCH.0,
            isr,
            partition_epoch,
        }
    }

    fn real_log_end_offset(&self, id: BrokerId) -> i64 {
        if id == LEADER {
            return self.leader_log_end_offset;
        }
        self.followers
            .iter()
            .find(|follower| follower.id == id)
            .unwrap()
            .log_end_offset
    }

    fn check_acks(&mut self) {
        let mut still_waiting = Vec::new();
        for last_offset in std::mem::take(&mut self.waiting_acks) {
            match self.leader.acks_all_ready(last_offset) {
                AckState::Waiting => still_waiting.push(last_offset),
                AckState::NotEnoughReplicas => {}
                AckState::Ready => {
                    // acked_never_lost
                    for member in &self.controller.isr {
                        assert!(
                            last_offset.0 < self.real_log_end_offset(*member),
                            "seed {}: batch ending at {last_offset} acknowledged but ISR \
                             member {member} ends at {}",
                            self.seed,
                            self.real_log_end_offset(*member)
                        );
                    }
                    self.acknowledged += 1;
                }
            }
        }
        self.waiting_acks = still_waiting;
    }

    fn check_invariants(&mut self, step: usize) {
        let high_watermark = self.leader.high_watermark();
        let context = format!("seed {} step {step}", self.seed);
        // hw_never_decreases
        assert!(high_watermark >= self.last_high_watermark, "{context}");
        self.last_high_watermark = high_watermark;
        // hw_within_committed_isr
        for member in &self.controller.isr {
            assert!(
                high_watermark.0 <= self.real_log_end_offset(*member),
                "{context}: HW {high_watermark} past the LEO of ISR member {member}"
            );
        }
        // leader_in_isr
        assert!(self.controller.isr.contains(&LEADER), "{context}");
        assert!(self.leader.isr().contains(&LEADER), "{context}");
    }

    fn step(&mut self, rng: &mut StdRng) {
        match rng.gen_range(0..100) {
            0..=19 => self.append(rng.gen_range(1..=5)),
            20..=49 => self.fetch(rng.gen_range(0..2), rng.gen_range(1..=8)),
            50..=59 => self.now += Duration::from_millis(rng.gen_range(0..4_000)),
            60..=62 => {
                let index = rng.gen_range(0..2);
                self.followers[index].paused = !self.followers[index].paused;
            }
            63..=72 => self.propose(),
            73..=79 => self.decide(rng.gen_bool(0.7)),
            80..=86 => self.deliver(rng.gen_bool(0.3)),
            87..=88 => self.controller_removes(rng.gen_range(0..2)),
            _ => self.check_acks(),
        }
    }

    /// Every follower back and fetching, every proposal committed: the ISR must grow back
    /// to all three and every waiting batch must be acknowledged.
    fn converge(&mut self) {
        for follower in &mut self.followers {
            follower.paused = false;
        }
        for _ in 0..20 {
            self.fetch(0, i64::MAX);
            self.fetch(1, i64::MAX);
            self.propose();
            while !self.controller.requests.is_empty() || !self.controller.answers.is_empty() {
                self.decide(true);
                self.deliver(false);
            }
            self.now += Duration::from_millis(100);
        }
        assert_eq!(self.leader.isr().len(), 3, "seed {}", self.seed);
        assert_eq!(
            self.leader.high_watermark(),
            Offset(self.leader_log_end_offset)
        );
        self.check_acks();
        assert!(self.waiting_acks.is_empty(), "seed {}", self.seed);
    }
}

#[test]
fn leader_and_two_followers_keep_the_replication_invariants() {
    let mut acknowledged = 0;
    let mut shrinks = 0;
    for seed in 0..300 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cluster = Cluster::new(seed);
        for step in 0..400 {
            cluster.step(&mut rng);
            cluster.check_invariants(step);
            if cluster.leader.isr().len() < 3 {
                shrinks += 1;
            }
        }
        cluster.converge();
        cluster.check_invariants(usize::MAX);
        acknowledged += cluster.acknowledged;
    }
    // The runs must exercise what they check.
    assert!(acknowledged > 1_000, "{acknowledged} batches acknowledged");
    assert!(shrinks > 1_000, "{shrinks} steps with a shrunk ISR");
}
