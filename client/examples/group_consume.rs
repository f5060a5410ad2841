//! A member of a consumer group: reads its share of a topic's partitions, prints each
//! record and each rebalance, and commits by `CommitMode::Auto`. Start it several times
//! (in several shells) to watch the partitions spread over the members and move back
//! when one stops.
//!
//! ```text
//! cargo run -p strata-client --example group_consume -- orders billing 100
//! ```
//!
//! Arguments: topic, group, and how many records to read before closing (commit, leave);
//! without a count it reads until killed. The broker address comes from `STRATA_BROKERS`
//! (default `127.0.0.1:7070`). It starts at the group's committed offsets, or at the
//! beginning of each partition the group has not committed.

use std::process::ExitCode;

use strata_client::{Client, Offset, RebalanceEvent};
use tokio_stream::StreamExt;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("group_consume: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(topic), Some(group)) = (args.next(), args.next()) else {
        return Err("usage: group_consume <topic> <group> [count]".into());
    };
    let count: Option<u64> = args.next().map(|count| count.parse()).transpose()?;
    let brokers = std::env::var("STRATA_BROKERS").unwrap_or_else(|_| "127.0.0.1:7070".into());
    let client = Client::builder()
        .brokers(brokers.split(','))
        .build()
        .await?;
    let mut consumer = client
        .consumer()
        .topics([topic.as_str()])
        .group(group.as_str())
        .start(Offset::Earliest)
        .build()
        .await?;
    let mut events = consumer
        .rebalance_events()
        .ok_or("a group consumer has rebalance events")?;
    let mut read = 0;
    while count.is_none_or(|count| read < count) {
        tokio::select! {
            record = consumer.next() => {
                let Some(record) = record else { break };
                let record = record?;
                let value = record.value.as_deref().map(String::from_utf8_lossy);
                println!("{}/{}@{} {}", record.topic, record.partition, record.offset,
                    value.unwrap_or_default());
                read += 1;
            }
            Some(event) = events.recv() => match event {
                RebalanceEvent::Assigned(partitions) => eprintln!("assigned {partitions:?}"),
                RebalanceEvent::Revoked(partitions) => eprintln!("revoked {partitions:?}"),
                RebalanceEvent::Lost(partitions) => eprintln!("lost {partitions:?}"),
                other => eprintln!("{other:?}"),
            },
        }
    }
    consumer.close().await?;
    Ok(())
}
