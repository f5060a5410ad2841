//! Admin requests that must land while the controller quorum may have no leader: they
//! are retried on what a leaderless quorum answers (`NOT_CONTROLLER`, timeouts, an
//! unreachable broker) until a deadline. Tests that kill the controller leader use them
//! to measure when the quorum accepts writes again, and to write through a failover.

use std::time::{Duration, Instant};

use anyhow::bail;
use strata_client::{Client, Error as ClientError, ErrorCode, NewTopic};

use crate::cluster_views::WAIT;

/// Creates `topic` (one partition, RF 1) through `client`, retrying every error until
/// `within` has passed; returns how many attempts it took. `TOPIC_ALREADY_EXISTS` counts
/// as created: an earlier attempt that timed out landed.
pub async fn create_retrying(
    client: &Client,
    topic: &str,
    within: Duration,
) -> anyhow::Result<u32> {
    let deadline = Instant::now() + within;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let started = Instant::now();
        let created = client
            .admin()
            .create_topic(NewTopic::new(topic).partitions(1).replication_factor(1))
            .await;
        match created {
            Ok(()) => return Ok(attempts),
            Err(error) if error.code() == Some(ErrorCode::TopicAlreadyExists) => {
                return Ok(attempts)
            }
            Err(error) if Instant::now() >= deadline => {
                bail!("creating {topic}: still failing after {attempts} attempts: {error}")
            }
            Err(error) => {
                eprintln!(
                    "creating {topic}: attempt {attempts} failed after {:?}: {error}",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Sets `retention_ms` of `topic`, retrying retriable errors, `NOT_CONTROLLER` and
/// `REQUEST_TIMED_OUT` for up to [`WAIT`].
pub async fn alter_retrying(client: &Client, topic: &str, retention_ms: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let altered = client
            .admin()
            .alter_config(
                topic,
                [("retention_ms", retention_ms.to_string())],
                Vec::<String>::new(),
                false,
            )
            .await;
        match altered {
            Ok(_) => return Ok(()),
            Err(error) if retriable(&error) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => bail!("set retention_ms={retention_ms} on {topic}: {error}"),
        }
    }
}

/// What a quorum without a leader, or in the middle of an election, answers.
fn retriable(error: &ClientError) -> bool {
    error.is_retriable()
        || matches!(
            error.code(),
            Some(ErrorCode::NotController | ErrorCode::RequestTimedOut)
        )
}
