//! The scenario table: the scenarios of Kreps' 2014 Kafka benchmark adapted to one node
//! (RF 1), Iggy's benchmark shape, issue 4's acceptance rows, and replication at RF 3 on
//! a three-broker cluster of this machine (issue 20).
//!
//! A [`Session`] is one fresh [`Topology`] (a broker, or a cluster of three): its steps
//! run in order against it, so a `consume` step reads the backlog an earlier `produce`
//! step of the same session wrote. Every session runs once per [`Flush`] mode it lists,
//! each time on new brokers and data dirs. A [`PLANS`] entry names a set of sessions
//! meant to be measured in one sitting.

use std::time::Duration;

/// The broker's `--flush` policy for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flush {
    /// `--flush interval:1000`: acknowledge from the page cache, fsync once a second.
    Interval,
    /// `--flush always`: fsync before acknowledging (group commit).
    Always,
}

impl Flush {
    pub const BOTH: [Flush; 2] = [Flush::Interval, Flush::Always];

    pub fn broker_arg(self) -> &'static str {
        match self {
            Flush::Interval => "interval:1000",
            Flush::Always => "always",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flush::Interval => "interval",
            Flush::Always => "always",
        }
    }
}

/// The brokers a session runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// One broker on 127.0.0.1 with the broker's defaults (a one-node cluster).
    SingleBroker,
    /// [`CLUSTER_BROKERS`] brokers on 127.0.0.1, 127.0.0.2, …, all voters of the
    /// controller quorum (combined mode, as in the README's "Run a cluster").
    Cluster,
}

/// Brokers of a [`Topology::Cluster`].
pub const CLUSTER_BROKERS: u8 = 3;

impl Topology {
    pub fn brokers(self) -> u8 {
        match self {
            Topology::SingleBroker => 1,
            Topology::Cluster => CLUSTER_BROKERS,
        }
    }
}

/// Which `strata bench` subcommand a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Produce,
    Consume,
    E2e,
}

impl Mode {
    pub fn subcommand(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        }
    }
}

/// Producer batching that differs from the client defaults.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Batching {
    pub batch_size_bytes: u32,
    pub linger_ms: u32,
}

/// One `strata bench` invocation; one row of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// The row's name, e.g. `kreps-1p` or `consume-3`.
    pub name: &'static str,
    pub mode: Mode,
    /// Created by `produce`/`e2e`; read by `consume`.
    pub topic: &'static str,
    pub partitions: u32,
    /// Of the topic the step creates; at most the session's broker count.
    pub replication_factor: u32,
    pub record_size_bytes: u32,
    pub producers: u32,
    pub consumers: u32,
    pub acks: &'static str,
    /// Target records/s in total; `None` is unlimited.
    pub rate: Option<u32>,
    pub batching: Option<Batching>,
    /// A later `consume` step of the session reads this step's topic back: the step
    /// produces [`Timing::backlog_bytes`] of values instead of running for a duration.
    pub backlog: bool,
}

/// Fresh brokers and the steps run against them.
#[derive(Debug, Clone)]
pub struct Session {
    pub name: &'static str,
    pub topology: Topology,
    pub flushes: &'static [Flush],
    pub steps: Vec<Step>,
}

/// How long each time-bounded step runs, and how much a step that is read back writes.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timing {
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    #[serde(serialize_with = "as_seconds")]
    pub warmup: Duration,
    /// Bytes of values a produce step writes when a consume step reads them back (warm-up
    /// included): 4 GiB in a quick sitting, half the machine's memory in a full one. Iggy's
    /// shape produces a fixed amount and reads it back; a duration would, at 1 GB/s over
    /// 25 s, write more than this VM's memory holds and measure the disk on the way back.
    pub backlog_bytes: u64,
}

/// A quick sitting's backlog, and a full one's when the machine's memory is unknown.
const QUICK_BACKLOG_BYTES: u64 = 4 << 30;
/// A full sitting's backlog never exceeds this.
const FULL_BACKLOG_MAX_BYTES: u64 = 16 << 30;

impl Timing {
    /// `memory_bytes`: the machine's memory (`MemTotal`), when known.
    pub fn new(quick: bool, memory_bytes: Option<u64>) -> Timing {
        let (duration_s, warmup_s) = if quick { (5, 1) } else { (20, 5) };
        let backlog_bytes = if quick {
            QUICK_BACKLOG_BYTES
        } else {
            memory_bytes.map_or(QUICK_BACKLOG_BYTES, |memory| {
                (memory / 2).min(FULL_BACKLOG_MAX_BYTES)
            })
        };
        Timing {
            duration: Duration::from_secs(duration_s),
            warmup: Duration::from_secs(warmup_s),
            backlog_bytes,
        }
    }

    /// Records of `record_size_bytes` that make up the backlog (at least one).
    pub fn backlog_records(&self, record_size_bytes: u32) -> u64 {
        (self.backlog_bytes / u64::from(record_size_bytes.max(1))).max(1)
    }
}

fn as_seconds<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

/// Iggy's shape: 1000-byte records in batches of about 1000 records.
/// Batches of up to 1,000,000 bytes after at most 5 ms: librdkafka's defaults
/// (`batch.size`, `linger.ms`), and Iggy's benchmark shape (1000 records of 1000 B per
/// batch). The throughput acceptance rows use it; Strata's own client defaults (Kafka's
/// 16 KiB) are what the Kreps rows show.
const LARGE_BATCHES: Batching = Batching {
    batch_size_bytes: 1_000_000,
    linger_ms: 5,
};

/// Unlimited produce: `partitions` partitions, `producers` producers, acks=1.
fn produce(name: &'static str, partitions: u32, record_size_bytes: u32, producers: u32) -> Step {
    Step {
        name,
        mode: Mode::Produce,
        topic: name,
        partitions,
        replication_factor: 1,
        record_size_bytes,
        producers,
        consumers: 0,
        acks: "1",
        rate: None,
        batching: None,
        backlog: false,
    }
}

/// Reads back everything `producer` wrote, with `consumers` consumers.
fn consume(name: &'static str, producer: &Step, consumers: u32) -> Step {
    Step {
        name,
        mode: Mode::Consume,
        producers: 0,
        consumers,
        ..producer.clone()
    }
}

/// Produce and consume together at a fixed rate, acks=1, one consumer.
/// Latency runs send each record as soon as the producer can (`linger.ms=0`, Kafka's
/// default before 4.0; with the 5 ms default the linger alone would exceed the 1 ms
/// target). Batches still form while requests are in flight.
const LATENCY_BATCHING: Batching = Batching {
    batch_size_bytes: 16 * 1024,
    linger_ms: 0,
};

fn e2e(name: &'static str, partitions: u32, record_size_bytes: u32, rate: u32) -> Step {
    Step {
        mode: Mode::E2e,
        consumers: 1,
        rate: Some(rate),
        batching: Some(LATENCY_BATCHING),
        ..produce(name, partitions, record_size_bytes, 1)
    }
}

/// A session; produce steps whose topic a later consume step reads are marked `backlog`.
fn session(name: &'static str, mut steps: Vec<Step>) -> Session {
    for index in 0..steps.len() {
        let read_back = steps[index + 1..]
            .iter()
            .any(|later| later.mode == Mode::Consume && later.topic == steps[index].topic);
        steps[index].backlog = steps[index].mode == Mode::Produce && read_back;
    }
    Session {
        name,
        topology: Topology::SingleBroker,
        flushes: &Flush::BOTH,
        steps,
    }
}

/// A session on a fresh three-broker cluster.
fn cluster_session(name: &'static str, steps: Vec<Step>) -> Session {
    Session {
        topology: Topology::Cluster,
        ..session(name, steps)
    }
}

/// Issue 20's replication rows, on a three-broker cluster under both flush modes.
///
/// The produce pair differs only in replication factor and acks: 1000 B records, one
/// producer, large batches (as the throughput rows above), six partitions as in Kreps'
/// three-broker runs, so that each broker leads two. The RF 1 row runs on the same
/// three-broker cluster, so the ratio compares like with like (Kreps' 0.51 × is RF 3
/// `acks=all` over RF 1 on the same three machines). The e2e row is `e2e-10k` at RF 3.
fn replication_sessions() -> Vec<Session> {
    let rf1 = Step {
        batching: Some(LARGE_BATCHES),
        ..produce(PRODUCE_RF1, 6, 1000, 1)
    };
    let rf3 = Step {
        replication_factor: 3,
        acks: "all",
        batching: Some(LARGE_BATCHES),
        ..produce(PRODUCE_RF3, 6, 1000, 1)
    };
    let e2e_rf3 = Step {
        replication_factor: 3,
        acks: "all",
        ..e2e(E2E_RF3, 1, 1000, 10_000)
    };
    vec![
        cluster_session(PRODUCE_RF1, vec![rf1]),
        cluster_session(PRODUCE_RF3, vec![rf3]),
        cluster_session(E2E_RF3, vec![e2e_rf3]),
    ]
}

/// The replication rows' names (sessions and steps alike).
pub const PRODUCE_RF1: &str = "produce-1k-rf1-acks1";
pub const PRODUCE_RF3: &str = "produce-1k-rf3-acksall";
pub const E2E_RF3: &str = "e2e-10k-rf3-acksall";

/// Named sets of sessions for `--plan`, each meant for one sitting.
pub const PLANS: [(&str, &[&str]); 1] = [(
    // Issue 20: produce at RF 1 / acks=1 and RF 3 / acks=all, and e2e at RF 3, both flush
    // modes, in one sitting.
    "replication",
    &[PRODUCE_RF1, PRODUCE_RF3, E2E_RF3],
)];

/// Every session, in the order they run.
pub fn all_sessions() -> Vec<Session> {
    let kreps_1p = produce("kreps-1p", 6, 100, 1);
    let kreps_acks_all = Step {
        acks: "all",
        ..produce("kreps-acks-all", 6, 100, 1)
    };
    let iggy_1p = Step {
        batching: Some(LARGE_BATCHES),
        ..produce("iggy-1p1p", 1, 1000, 1)
    };
    let iggy_2p = Step {
        batching: Some(LARGE_BATCHES),
        ..produce("iggy-2p2p", 2, 1000, 2)
    };
    let accept = Step {
        batching: Some(LARGE_BATCHES),
        ..produce("accept-1p1p", 1, 1000, 1)
    };
    let accept_100b = Step {
        batching: Some(LARGE_BATCHES),
        ..produce("accept-100b", 6, 100, 1)
    };
    vec![
        session(
            "kreps-1p",
            vec![
                kreps_1p.clone(),
                consume("consume-1", &kreps_1p, 1),
                consume("consume-3", &kreps_1p, 3),
            ],
        ),
        session("kreps-3p", vec![produce("kreps-3p", 6, 100, 3)]),
        session("kreps-acks-all", vec![kreps_acks_all]),
        session("e2e-1k", vec![e2e("e2e-1k", 6, 100, 1000)]),
        session("e2e-10k", vec![e2e("e2e-10k", 1, 1000, 10_000)]),
        session(
            "iggy-1p1p",
            vec![iggy_1p.clone(), consume("iggy-1p1p-consume", &iggy_1p, 1)],
        ),
        session(
            "iggy-2p2p",
            vec![iggy_2p.clone(), consume("iggy-2p2p-consume", &iggy_2p, 2)],
        ),
        session(
            "accept-1p1p",
            vec![accept.clone(), consume("accept-1p1p-consume", &accept, 1)],
        ),
        session("accept-100b", vec![accept_100b]),
    ]
    .into_iter()
    .chain(replication_sessions())
    .collect()
}

/// The sessions of `plan` (a [`PLANS`] name) and those named in `only`, in table order;
/// all of them when both are empty. An unknown name is an error that lists the known ones.
pub fn select(only: &[String], plan: Option<&str>) -> anyhow::Result<Vec<Session>> {
    let sessions = all_sessions();
    if only.is_empty() && plan.is_none() {
        return Ok(sessions);
    }
    let mut wanted: Vec<&str> = only.iter().map(String::as_str).collect();
    if let Some(plan) = plan {
        let Some((_, names)) = PLANS.iter().find(|(name, _)| *name == plan) else {
            let known: Vec<&str> = PLANS.iter().map(|(name, _)| *name).collect();
            anyhow::bail!("unknown plan {plan:?}; known: {}", known.join(", "));
        };
        wanted.extend_from_slice(names);
    }
    let known: Vec<&str> = sessions.iter().map(|session| session.name).collect();
    if let Some(unknown) = wanted.iter().find(|name| !known.contains(name)) {
        anyhow::bail!("unknown scenario {unknown:?}; known: {}", known.join(", "));
    }
    Ok(sessions
        .into_iter()
        .filter(|session| wanted.contains(&session.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_steps_read_back_write_a_backlog_and_the_others_run_for_a_duration() {
        for session in all_sessions() {
            for step in &session.steps {
                let read_back = session
                    .steps
                    .iter()
                    .any(|other| other.mode == Mode::Consume && other.topic == step.topic);
                assert_eq!(
                    step.backlog,
                    step.mode == Mode::Produce && read_back,
                    "{}",
                    step.name
                );
            }
        }
        assert!(all_sessions()
            .iter()
            .any(|session| session.name == "accept-1p1p"
                && session.steps.first().is_some_and(|step| step.backlog)));
    }

    #[test]
    fn the_backlog_is_4_gib_quick_and_half_the_memory_full_within_bounds() {
        let gib = 1u64 << 30;
        assert_eq!(Timing::new(true, Some(24 * gib)).backlog_bytes, 4 * gib);
        assert_eq!(Timing::new(false, Some(24 * gib)).backlog_bytes, 12 * gib);
        assert_eq!(Timing::new(false, Some(64 * gib)).backlog_bytes, 16 * gib);
        assert_eq!(Timing::new(false, Some(4 * gib)).backlog_bytes, 2 * gib);
        assert_eq!(Timing::new(false, None).backlog_bytes, 4 * gib);
        assert_eq!(
            Timing::new(true, None).backlog_records(1000),
            4 * gib / 1000
        );
    }

    #[test]
    fn consume_steps_follow_the_produce_step_of_their_topic() {
        for session in all_sessions() {
            for (index, step) in session.steps.iter().enumerate() {
                if step.mode == Mode::Consume {
                    let producer = session.steps[..index].iter().any(|earlier| {
                        earlier.mode != Mode::Consume && earlier.topic == step.topic
                    });
                    assert!(producer, "{} reads a topic nobody wrote", step.name);
                }
            }
        }
    }

    #[test]
    fn select_rejects_unknown_names() {
        assert!(select(&["nope".to_owned()], None).is_err());
        assert!(select(&[], Some("nope")).is_err());
        let chosen = select(&["e2e-10k".to_owned()], None)
            .ok()
            .unwrap_or_default();
        assert_eq!(chosen.len(), 1);
    }

    fn names(sessions: &[Session]) -> Vec<&'static str> {
        sessions.iter().map(|session| session.name).collect()
    }

    #[test]
    fn the_replication_plan_is_the_three_cluster_sessions_under_both_flush_modes() {
        let chosen = select(&[], Some("replication")).ok().unwrap_or_default();
        assert_eq!(names(&chosen), [PRODUCE_RF1, PRODUCE_RF3, E2E_RF3]);
        for session in &chosen {
            assert_eq!(session.topology, Topology::Cluster);
            assert_eq!(session.flushes, Flush::BOTH);
            assert_eq!(session.steps.len(), 1);
        }
        // A plan and names together: their union, in table order, without repeats.
        let both = select(
            &[E2E_RF3.to_owned(), "e2e-10k".to_owned()],
            Some("replication"),
        )
        .ok()
        .unwrap_or_default();
        assert_eq!(names(&both), ["e2e-10k", PRODUCE_RF1, PRODUCE_RF3, E2E_RF3]);
    }

    #[test]
    fn the_produce_pair_differs_only_in_replication_factor_and_acks() {
        let step = |name: &str| {
            all_sessions()
                .into_iter()
                .find(|session| session.name == name)
                .and_then(|session| session.steps.into_iter().next())
        };
        let (Some(rf1), Some(rf3), Some(e2e_rf3)) =
            (step(PRODUCE_RF1), step(PRODUCE_RF3), step(E2E_RF3))
        else {
            panic!("a replication session is missing");
        };
        assert_eq!((rf1.replication_factor, rf1.acks), (1, "1"));
        assert_eq!((rf3.replication_factor, rf3.acks), (3, "all"));
        let same = |step: &Step| {
            (
                step.mode,
                step.partitions,
                step.record_size_bytes,
                step.producers,
                step.rate,
                step.batching.map(|b| (b.batch_size_bytes, b.linger_ms)),
            )
        };
        assert_eq!(same(&rf1), same(&rf3));
        assert_eq!(rf1.record_size_bytes, 1000);
        assert_eq!(
            (e2e_rf3.mode, e2e_rf3.rate, e2e_rf3.record_size_bytes),
            (Mode::E2e, Some(10_000), 1000)
        );
        assert_eq!((e2e_rf3.replication_factor, e2e_rf3.acks), (3, "all"));
    }

    #[test]
    fn no_step_asks_for_more_replicas_than_its_session_has_brokers() {
        for session in all_sessions() {
            for step in &session.steps {
                assert!(
                    step.replication_factor <= u32::from(session.topology.brokers()),
                    "{}",
                    step.name
                );
            }
        }
    }
}
