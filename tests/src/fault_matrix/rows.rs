//! One fault episode per matrix row: what is done to which broker, when the
//! unavailability clock starts, and the row's own checks beyond the history. The runner
//! repeats a row's episode until its fault time is used up, settling after each
//! ([`Stage::settle`]).
//!
//! "The leader" is the leader of partition 0 when the episode starts; the other
//! partitions are disturbed as well (at RF 3 every broker holds every partition).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use strata_broker::log::manager::CLEAN_SHUTDOWN_FILE;

use super::setup::topology;
use super::stage::Stage;
use super::Row;
use crate::ack_timeline::AckTimeline;
use crate::wait::wait_for;

/// How long a killed broker stays down (rows 1, 7, 13).
const DOWN: Duration = Duration::from_secs(5);
/// How long a zombie leader is paused (row 2). The matrix row says 10 s and the
/// replication acceptance 15 s; 15 s covers both, since the controller fences the paused
/// leader and elects another well within 10 s either way.
const ZOMBIE_PAUSE: Duration = Duration::from_secs(15);
/// How long the leader is cut off from the other brokers (row 3).
const ISOLATION: Duration = Duration::from_secs(15);
/// How long the clients' link to the leader stays cut (row 17).
const CLIENT_CUT: Duration = Duration::from_secs(8);
/// Row 13: longer than a request timeout (so sends are retried), shorter than the
/// delivery timeout the row gives its producers (so the retries can still succeed).
const RESPONSE_LOSS: Duration = Duration::from_millis(2_500);
/// Bytes cut off the end of each active segment (row 7).
const TORN_BYTES: u64 = 7;

/// Runs one episode of `row`.
pub async fn episode(row: Row, stage: &mut Stage<'_>) -> anyhow::Result<()> {
    match row {
        Row::KillLeader => kill_leader(stage).await,
        Row::PauseLeader if std::env::var_os("STRATA_FAULT_CHASE").is_some() => {
            pause_leader_and_successor(stage).await
        }
        Row::PauseLeader => pause_leader(stage).await,
        Row::IsolateLeader => isolate_leader(stage).await,
        Row::IsrShrinkThenKill => isr_shrink_then_kill(stage).await,
        Row::KillAll => kill_all(stage).await,
        Row::TornTail => torn_tail(stage).await,
        Row::FollowerLag => follower_lag(stage).await,
        Row::RollingRestart => rolling_restart(stage).await,
        Row::LostResponse => lost_response(stage).await,
        Row::ClientCut => client_cut(stage).await,
    }
}

/// Row 1: SIGKILL the leader, restart it 5 s later.
async fn kill_leader(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let leader = stage.leader(0, &[]).await?;
    stage.kill(leader)?;
    stage.measure_from(format!("SIGKILL of the leader, node {leader}"));
    stage.hold(DOWN).await;
    stage.restart(leader)
}

/// Row 2: SIGSTOP the leader for 15 s, then SIGCONT (a zombie that wakes up).
async fn pause_leader(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let leader = stage.leader(0, &[]).await?;
    stage.pause(leader)?;
    stage.measure_from(format!("SIGSTOP of the leader, node {leader}"));
    stage.hold(ZOMBIE_PAUSE).await;
    stage.resume(leader)
}

/// Row 2, chasing (`STRATA_FAULT_CHASE` set): SIGSTOP the leader; the moment another
/// broker leads partition 0, SIGSTOP that one and SIGCONT the first; SIGCONT the second
/// 15 s later. The second zombie is paused in its first moments as leader.
async fn pause_leader_and_successor(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let first = stage.leader(0, &[]).await?;
    stage.pause(first)?;
    stage.measure_from(format!("SIGSTOP of the leader, node {first}"));
    let (cluster, topic) = (&*stage.cluster, stage.topic);
    let successor = wait_for(
        &format!("a leader of partition 0 other than node {first}"),
        super::setup::WAIT,
        || async move {
            let view = topology(cluster, topic, &[first]).await?;
            let leader = view.first().map_or(-1, |partition| partition.leader);
            match u8::try_from(leader) {
                Ok(leader) if leader >= 1 && leader != first => Ok(leader),
                _ => bail!("still led by {leader}"),
            }
        },
    )
    .await?;
    stage.pause(successor)?;
    stage.resume(first)?;
    stage.hold(ZOMBIE_PAUSE).await;
    stage.resume(successor)
}

/// Row 3: cut the leader off from the other brokers; clients still reach it.
async fn isolate_leader(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let leader = stage.leader(0, &[]).await?;
    stage.cluster.isolate(leader)?;
    stage.note(format!("cut node {leader} off from the other brokers"));
    stage.measure_from(format!("isolation of the leader, node {leader}"));
    stage.hold(ISOLATION).await;
    stage.heal_all()
}

/// Row 4: pause both followers until the leader is the ISR alone, kill the leader,
/// continue the followers (they must not lead: they are out of the ISR), restart the
/// leader. Unavailability runs from that restart.
async fn isr_shrink_then_kill(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let view = topology(stage.cluster, stage.topic, &[]).await?;
    let partition = view.first().context("no partition 0")?.clone();
    let leader = u8::try_from(partition.leader)?;
    let followers: Vec<u8> = partition
        .replicas
        .iter()
        .filter(|replica| **replica != partition.leader)
        .map(|replica| u8::try_from(*replica))
        .collect::<Result<_, _>>()?;
    for follower in &followers {
        stage.pause(*follower)?;
    }
    let (cluster, topic) = (&*stage.cluster, stage.topic);
    wait_for(
        "the leader is partition 0's ISR alone",
        super::setup::WAIT,
        || async move {
            let view = topology(cluster, topic, &[]).await?;
            match view.first() {
                Some(p) if p.isr == [i32::from(leader)] && p.leader == i32::from(leader) => Ok(()),
                other => bail!("not yet: {other:?}"),
            }
        },
    )
    .await?;
    stage.note(format!("partition 0's ISR is node {leader} alone"));
    let shrunk_at = stage.recorder.elapsed();
    if super::min_insync_replicas(stage).await >= 2 {
        refused_below_min_isr(stage, shrunk_at).await?;
    }
    stage.kill(leader)?;
    for follower in &followers {
        stage.resume(*follower)?;
    }
    // The followers are live and out of the ISR: no view may show either leading.
    let watched = Instant::now();
    while watched.elapsed() < DOWN {
        if let Ok(view) = topology(stage.cluster, stage.topic, &[]).await {
            if let Some(p) = view.first() {
                if p.leader >= 0 && p.leader != i32::from(leader) {
                    stage.failures.push(format!(
                        "unclean election: partition 0 led by {} while its only ISR member {leader} was down: {p:?}",
                        p.leader
                    ));
                }
            }
        }
        stage.hold(Duration::from_millis(200)).await;
    }
    stage.restart(leader)?;
    stage.measure_from(format!("restart of the last ISR member, node {leader}"));
    Ok(())
}

/// With min ISR 2 in force, some send to partition 0 is refused with
/// NOT_ENOUGH_REPLICAS after the ISR shrank to the leader.
async fn refused_below_min_isr(stage: &mut Stage<'_>, since: Duration) -> anyhow::Result<()> {
    let partition = [crate::history::TopicPartition::new(stage.topic, 0)];
    let recorder = stage.recorder;
    let refused = wait_for(
        "a send refused with NOT_ENOUGH_REPLICAS",
        Duration::from_secs(30),
        || {
            let timeline = AckTimeline::from_entries(&recorder.entries());
            let found = timeline.failures_on(&partition).iter().any(|failure| {
                failure.at >= since && failure.error.contains("NOT_ENOUGH_REPLICAS")
            });
            async move {
                if found {
                    Ok(())
                } else {
                    Err("not yet")
                }
            }
        },
    )
    .await;
    if let Err(error) = refused {
        stage.failures.push(format!(
            "the ISR was below min_insync_replicas, yet no write was refused: {error:#}"
        ));
    }
    Ok(())
}

/// Row 6: SIGKILL every broker, restart them all (`flush = always`, the default).
async fn kill_all(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    for node in stage.cluster.nodes() {
        stage.kill(node)?;
    }
    for node in stage.cluster.nodes() {
        stage.restart(node)?;
    }
    stage.measure_from("restart of the last broker".to_owned());
    Ok(())
}

/// Row 7: SIGKILL the leader, cut a few bytes off the end of every active segment it
/// holds, restart it.
async fn torn_tail(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let leader = stage.leader(0, &[]).await?;
    stage.kill(leader)?;
    stage.measure_from(format!("SIGKILL of the leader, node {leader}"));
    for partition in 0..stage.partitions {
        let dir = stage
            .cluster
            .data_dir(leader)
            .join(format!("{}-{partition}", stage.topic));
        if let Some(cut) = truncate_active_segment(&dir, TORN_BYTES)? {
            stage.note(cut);
        }
    }
    stage.hold(DOWN).await;
    stage.restart(leader)
}

/// Cuts `bytes` off the end of the segment with the highest base offset in `dir`.
fn truncate_active_segment(dir: &Path, bytes: u64) -> anyhow::Result<Option<String>> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    segments.sort();
    let Some(active) = segments.pop() else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new().write(true).open(&active)?;
    let length = file.metadata()?.len();
    let cut = bytes.min(length);
    file.set_len(length - cut)?;
    file.sync_all()?;
    Ok(Some(format!(
        "truncated {} from {length} to {} bytes",
        active.display(),
        length - cut
    )))
}

/// Row 10: SIGSTOP a follower of partition 0 past the ISR lag bound (the partitions it
/// leads fail over), check it left the ISR, SIGCONT it; settling waits for it to rejoin.
async fn follower_lag(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let leader = stage.leader(0, &[]).await?;
    let follower = *stage.followers(leader).first().context("no follower")?;
    stage.pause(follower)?;
    stage.measure_from(format!("SIGSTOP of follower node {follower}"));
    let (cluster, topic) = (&*stage.cluster, stage.topic);
    let within = stage.replica_lag + super::setup::WAIT;
    let shrunk = wait_for(
        "the paused follower leaves every ISR",
        within,
        || async move {
            let view = topology(cluster, topic, &[follower]).await?;
            let member = i32::from(follower);
            if view.iter().all(|p| !p.isr.contains(&member)) {
                Ok(())
            } else {
                bail!("not yet: {view:?}")
            }
        },
    )
    .await;
    match shrunk {
        Ok(()) => stage.note(format!("node {follower} left every ISR")),
        Err(error) => stage.failures.push(format!("{error:#}")),
    }
    stage.hold(Duration::from_secs(2)).await;
    stage.resume(follower)
}

/// Row 11: SIGTERM each broker in turn; each must exit cleanly (status 0, clean
/// shutdown marker, within 30 s); restart it and settle before the next.
async fn rolling_restart(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let nodes = stage.cluster.nodes();
    for (turn, node) in nodes.iter().copied().enumerate() {
        stage.note(format!("SIGTERM node {node}"));
        let stopped = tokio::task::block_in_place(|| stage.cluster.terminate(node));
        match stopped {
            Ok(status) if status.success() => {}
            Ok(status) => stage
                .failures
                .push(format!("node {node} exited with {status} after SIGTERM")),
            Err(error) => stage.failures.push(format!("node {node}: {error:#}")),
        }
        let marker = stage.cluster.data_dir(node).join(CLEAN_SHUTDOWN_FILE);
        if !marker.exists() {
            stage.failures.push(format!(
                "node {node} stopped without writing {}",
                marker.display()
            ));
        }
        stage.measure_from(format!("SIGTERM of node {node}"));
        stage.restart(node)?;
        if turn + 1 < nodes.len() {
            stage.settle().await?;
        }
    }
    Ok(())
}

/// Row 13: responses lost after the append. The clients' link to the leader is cut
/// while sends are in flight (the broker appends what reached it; the answers are lost),
/// for longer than a request timeout, so the client retries. Odd episodes heal the link
/// (the retries reach the same leader); even ones kill the leader as well (the retries
/// reach a new leader, which knows the producers only from its log).
async fn lost_response(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let leader = stage.leader(0, &[]).await?;
    stage.cut_clients(leader, true)?;
    stage.measure_from(format!("responses from the leader, node {leader}, lost"));
    let failover = stage.faults.is_multiple_of(2);
    if failover {
        stage.hold(Duration::from_millis(300)).await;
        stage.kill(leader)?;
    }
    stage.hold(RESPONSE_LOSS).await;
    stage.cut_clients(leader, false)?;
    if failover {
        stage.hold(DOWN).await;
        stage.restart(leader)?;
    }
    Ok(())
}

/// Row 17: the clients cut off from the leader for some seconds; unavailability runs
/// from the heal.
async fn client_cut(stage: &mut Stage<'_>) -> anyhow::Result<()> {
    let leader = stage.leader(0, &[]).await?;
    stage.cut_clients(leader, true)?;
    stage.hold(CLIENT_CUT).await;
    stage.cut_clients(leader, false)?;
    stage.measure_from(format!("heal of the clients' link to node {leader}"));
    Ok(())
}
