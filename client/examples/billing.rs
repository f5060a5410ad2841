//! Retry and dead-letter topics: a billing service whose handler fails some orders.
//!
//! ```text
//! cargo run -p strata-client --example billing
//! strata consume orders.billing.dlt -o start -f '%k %h\n'
//! ```
//!
//! It writes ten orders to `orders` (creating the topic if needed) and handles them as
//! group `billing` with the default `RetryPolicy` (3 attempts, waits of about 1 s and
//! 2 s):
//! - orders 1, 4 and 7 fail once (card declined): retried from `orders.billing.retry.0`
//!   about 1 s later, and succeed;
//! - orders 5 and 10 always fail (the payment service is down): retried after about 1 s
//!   and 2 s, then dead-lettered to `orders.billing.dlt` as `exhausted`;
//! - order 9 has an amount that does not parse: a decode error is not retryable, so it
//!   goes to the dead-letter topic at once as `non-retryable`.
//!
//! Each line shows when the attempt ran, counted from the record's first failure.
//!
//! Then the payment service is back: the example replays the dead-letter topic
//! (`client.dead_letters("orders", "billing")`), first as a dry run that counts what
//! would go, then for real, taking only the `exhausted` records (`strata.error.kind`), so
//! orders 5 and 10 go back to `orders.billing.retry.0` and are billed, while order 9,
//! which no retry can fix, stays in the dead-letter topic. The same from the shell:
//! `strata dlt replay orders.billing.dlt --where strata.error.kind=exhausted --execute`.
//!
//! The broker address comes from `STRATA_BROKERS` (default `127.0.0.1:7070`).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_client::dead_letters::REPLAY_FROM;
use strata_client::retry_topics::{attempts_made, headers};
use strata_client::{
    Client, ConsumedRecord, HandlerError, NewTopic, Offset, Record, Replay, ReplayReport,
    RetryPolicy,
};
use tokio::sync::Notify;

const ORDERS: u32 = 10;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PaymentDeclined(&'static str);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("billing: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::var("STRATA_BROKERS").unwrap_or_else(|_| "127.0.0.1:7070".into());
    let client = Client::builder()
        .brokers(brokers.split(','))
        .build()
        .await?;
    if let Err(error) = client.admin().create_topic(NewTopic::new("orders")).await {
        if error.code_name() != "TOPIC_ALREADY_EXISTS" {
            return Err(error.into());
        }
    }
    // A run id keeps this run's orders apart from those of earlier runs.
    let run_id = now_ms();
    let producer = client.producer().build()?;
    for number in 1..=ORDERS {
        let amount = if number == 9 {
            "12,50".to_owned()
        } else {
            format!("{}", number * 10)
        };
        let key = format!("order-{number}");
        producer
            .send(
                Record::to("orders")
                    .key(key)
                    .value(format!("{run_id} {number} {amount}")),
            )
            .await?;
    }
    producer.close().await?;

    let mut consumer = client
        .consumer()
        .topics(["orders"])
        .group("billing")
        .start(Offset::Earliest)
        .retry(RetryPolicy::default())
        .build()
        .await?;
    let finished = Arc::new(Mutex::new(BTreeSet::new()));
    let all_finished = Arc::new(Notify::new());
    let handler = |record: ConsumedRecord| {
        let (finished, all_finished) = (finished.clone(), all_finished.clone());
        async move {
            let outcome = bill(&record, run_id);
            let Some((number, final_attempt)) = outcome.finishes else {
                return outcome.result;
            };
            let done = outcome.result.is_ok() || final_attempt;
            let mut finished = finished
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if done && finished.insert(number) && finished.len() == ORDERS as usize {
                all_finished.notify_one();
            }
            outcome.result
        }
    };
    consumer.run_until(handler, all_finished.notified()).await?;
    consumer.close().await?;
    println!("see the dead letters with");
    println!("  strata consume orders.billing.dlt -o start -e -f '%k %h\\n'");

    replay_exhausted(&client, run_id).await?;
    Ok(())
}

/// The payment service is back: replays the exhausted records to the group's first
/// retry topic and bills them from there.
async fn replay_exhausted(client: &Client, run_id: i64) -> Result<(), Box<dyn std::error::Error>> {
    let dead_letters = client.dead_letters("orders", "billing")?;
    let exhausted = Replay::new().filter("strata.error.kind", "exhausted");
    let plan = dead_letters.replay(&exhausted).await?;
    print_report("dry run", &plan);
    let done = dead_letters.replay(&exhausted.execute()).await?;
    print_report("replayed", &done);
    let again = dead_letters
        .replay(&Replay::new().filter("strata.error.kind", "exhausted"))
        .await?;
    println!("a second dry run finds {} records to replay", again.matched);

    let mut consumer = client
        .consumer()
        .topics(["orders"])
        .group("billing")
        .start(Offset::Earliest)
        .retry(RetryPolicy::default())
        .build()
        .await?;
    let billed = Arc::new(Mutex::new(0_usize));
    let all_billed = Arc::new(Notify::new());
    // Orders 5 and 10 of this run (earlier runs' records may be replayed too).
    let expected = (1..=ORDERS).filter(|number| number % 5 == 0).count();
    let handler = |record: ConsumedRecord| {
        let (billed, all_billed) = (billed.clone(), all_billed.clone());
        async move {
            let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
            let from = headers::header_text(&record, REPLAY_FROM).unwrap_or("-");
            let mut fields = value.split(' ');
            if fields.next() != Some(run_id.to_string().as_str()) {
                return Ok(()); // an earlier run's order
            }
            let number = fields.next().unwrap_or("?");
            println!(
                "order {number:>2} attempt {} from {} (replayed from {from}): billed",
                attempts_made(&record) + 1,
                record.topic
            );
            let mut billed = billed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *billed += 1;
            if *billed == expected {
                all_billed.notify_one();
            }
            Ok(())
        }
    };
    consumer.run_until(handler, all_billed.notified()).await?;
    consumer.close().await?;
    println!("done");
    Ok(())
}

fn print_report(what: &str, report: &ReplayReport) {
    println!(
        "{what}: {} of {} records of {} to {} (progress group {})",
        report.matched, report.examined, report.dlt, report.target, report.progress_group
    );
    for (error_type, records) in &report.by_error_type {
        println!("  {records} x {error_type}");
    }
    for sample in &report.sample {
        println!(
            "  sample {}/{} key {} : {}",
            sample.partition,
            sample.offset,
            sample.key.as_deref().unwrap_or("-"),
            sample.error_message.as_deref().unwrap_or("-")
        );
    }
}

/// A handler call's result, and for an order of this run: its number and whether this
/// was its last attempt.
struct Outcome {
    result: Result<(), HandlerError>,
    finishes: Option<(u32, bool)>,
}

/// Bills one order (see the module docs for which ones fail).
fn bill(record: &ConsumedRecord, run_id: i64) -> Outcome {
    let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
    let mut fields = value.split(' ');
    let (Some(run), Some(number), Some(amount)) = (fields.next(), fields.next(), fields.next())
    else {
        return Outcome {
            result: Ok(()),
            finishes: None,
        };
    };
    if run != run_id.to_string() {
        return Outcome {
            result: Ok(()),
            finishes: None,
        }; // an earlier run's order
    }
    let number: u32 = number.parse().unwrap_or(0);
    let attempt = attempts_made(record) + 1;
    let since = headers::header_text(record, headers::FIRST_FAILURE_MS)
        .and_then(|first| first.parse::<i64>().ok())
        .map(|first| {
            format!(
                " ({:.1} s after its first failure)",
                (now_ms() - first) as f64 / 1000.0
            )
        })
        .unwrap_or_default();
    let result = match amount.parse::<u32>() {
        Err(error) => Err(HandlerError::from(error)),
        Ok(_) if number.is_multiple_of(5) => Err(PaymentDeclined("payment service down").into()),
        Ok(_) if number % 3 == 1 && attempt == 1 => Err(PaymentDeclined("card declined").into()),
        Ok(_) => Ok(()),
    };
    let verdict = match &result {
        Ok(()) => "billed".to_owned(),
        Err(error) => format!("failed: {error}"),
    };
    println!(
        "order {number:>2} attempt {attempt} from {}{since}: {verdict}",
        record.topic
    );
    let final_attempt =
        attempt >= 3 || matches!(&result, Err(error) if error.is_marked_non_retryable());
    Outcome {
        result,
        finishes: Some((number, final_attempt)),
    }
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}
