//! The quick start as a program: creates the topic `quickstart` (one partition) if it is
//! not there, produces three records, reads those three back, prints them, and exits.
//!
//! ```text
//! cargo run --release -p strata-broker            # in one shell
//! cargo run -p strata-client --example quickstart # in another
//! ```
//!
//! The broker address comes from `STRATA_BROKERS` (default `127.0.0.1:7070`). With no
//! broker there, it prints one line naming the address and exits with status 1.

use std::process::ExitCode;

use strata_client::{Client, ErrorCode, NewTopic, Offset, Record};
use tokio_stream::StreamExt;

const TOPIC: &str = "quickstart";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quickstart: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::var("STRATA_BROKERS").unwrap_or_else(|_| "127.0.0.1:7070".into());
    let client = Client::builder()
        .brokers(brokers.split(','))
        .build()
        .await
        .map_err(|error| format!("cannot reach a broker at {brokers}: {error}"))?;

    // An existing topic is fine: the records below are read back by their offsets.
    match client
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(1))
        .await
    {
        Err(error) if error.code() != Some(ErrorCode::TopicAlreadyExists) => {
            return Err(error.into())
        }
        _ => {}
    }

    let producer = client.producer().build()?; // acks=all, idempotent
    let mut first_offset = None;
    for (key, value) in [("k1", "hello"), ("k2", "from"), ("k3", "strata")] {
        let delivery = producer
            .send(Record::to(TOPIC).partition(0).key(key).value(value))
            .await?;
        first_offset.get_or_insert(delivery.offset);
    }
    producer.close().await?;

    let start = first_offset.ok_or("nothing was produced")?;
    let mut consumer = client
        .consumer()
        .assign([(TOPIC, 0)])
        .start(Offset::At(start))
        .build()
        .await?;
    // A consumer's stream never ends by itself: it waits for new records. Stop after ours.
    for _ in 0..3 {
        let Some(record) = consumer.next().await else {
            break;
        };
        let record = record?;
        let text = |bytes: &Option<bytes::Bytes>| {
            bytes
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned()
        };
        println!(
            "{}@{} {}={}",
            record.partition,
            record.offset,
            text(&record.key),
            text(&record.value)
        );
    }
    consumer.close().await?;
    Ok(())
}
