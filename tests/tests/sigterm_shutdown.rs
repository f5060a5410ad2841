//! SIGTERM ends a broker that clients are connected to (issue 17, part 4), with real
//! processes:
//!
//! - an idle consumer (an open fetch session) and an open produce stream do not keep the
//!   broker up: it ends their streams, exits 0 and leaves the clean-shutdown marker;
//! - under acks=all idempotent load, a SIGTERM and a restart on the same data lose and
//!   duplicate no acknowledged record, and the same producer and consumer go on;
//! - a second SIGTERM during the grace period exits 130 at once, without the marker, and
//!   the next start recovers every acknowledged record;
//! - a connection that never closes is cut when the grace period ends, and the shutdown is
//!   still clean.
//!
//! Timing decides nothing here: every wait is bounded only so a broken broker fails the
//! test instead of hanging it. A grace period of 120 s is longer than
//! `BrokerProcess::terminate` waits, so an exit seen there was not the grace period's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_broker::log::manager::CLEAN_SHUTDOWN_FILE;
use strata_client::{Acks, Client, Consumer, NewTopic, Offset, OffsetSpec, Producer, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

const TOPIC: &str = "drained";
const PARTITIONS: i32 = 3;
/// Longer than any wait of these tests: the broker must not need it.
const LONG_GRACE_MS: &str = "120000";
/// A handshake timeout longer than any of these tests, so that a frozen connection
/// ([`frozen_connection`]) stays open until the shutdown deals with it; by default the
/// broker closes it after 10 s, which a slow run could reach.
const LONG_HANDSHAKE_TIMEOUT: [&str; 2] = ["--handshake-timeout-ms", "600000"];

/// `(partition, offset)` of an acknowledged record, by value.
type Acked = BTreeMap<String, (i32, i64)>;

/// Records read: `(partition, offset, value)`.
type Records = Vec<(i32, i64, String)>;

fn marker(data_dir: &Path) -> PathBuf {
    data_dir.join(CLEAN_SHUTDOWN_FILE)
}

/// SIGTERM, then the exit status (bounded wait), off the async workers.
fn terminate(broker: &mut BrokerProcess) -> ExitStatus {
    tokio::task::block_in_place(|| broker.terminate()).expect("the broker exits after SIGTERM")
}

fn restart(broker: &mut BrokerProcess) {
    tokio::task::block_in_place(|| broker.restart()).unwrap();
}

/// Sends SIGTERM without waiting for the exit.
fn send_sigterm(broker: &BrokerProcess) {
    let pid = i32::try_from(broker.pid().expect("the broker runs")).unwrap();
    // SAFETY: kill(2) on our own child, which `BrokerProcess` has not reaped (it still
    // holds its `Child`), so the pid cannot have been reused.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// Waits until the broker refuses connections: the first signal has been handled (the
/// listener closes once the shutdown has begun).
fn wait_until_refusing(address: SocketAddr) {
    let started = Instant::now();
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the broker still accepts connections 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that sent nothing, not even the HTTP/2 preface, and never will (a process
/// frozen right after connecting): the broker cannot close its connection gracefully, so
/// only the grace period ends it (or the handshake timeout, which these tests set longer
/// than themselves: [`LONG_HANDSHAKE_TIMEOUT`]).
///
/// It returns once the broker has accepted the connection (its SETTINGS frame arrived):
/// a connection still in the listen backlog when the SIGTERM closes the listener is no
/// connection of the server's, and would not hold the shutdown up.
fn frozen_connection(address: SocketAddr) -> TcpStream {
    let mut connection = TcpStream::connect(address).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut settings = [0u8; 9];
    std::io::Read::read_exact(&mut connection, &mut settings)
        .expect("the broker accepts the connection and sends its SETTINGS frame");
    connection
}

async fn client_of(broker: &BrokerProcess) -> Client {
    Client::builder()
        .brokers([broker.address().to_string()])
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

async fn start_with_topic(data_dir: &Path, args: &[&str]) -> (BrokerProcess, Client) {
    let broker = BrokerProcess::start(data_dir, args).unwrap();
    let client = client_of(&broker).await;
    client
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(PARTITIONS))
        .await
        .unwrap();
    (broker, client)
}

/// acks=all and idempotent, with a delivery timeout long enough to wait out a restart.
fn producer_of(client: &Client) -> Producer {
    client
        .producer()
        .acks(Acks::All)
        .idempotence(true)
        .linger(Duration::from_millis(2))
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn consumer_of(client: &Client) -> Consumer {
    client
        .consumer()
        .topics([TOPIC])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap()
}

fn record(value: &str) -> Record {
    Record::to(TOPIC)
        .key(value.to_owned())
        .value(value.to_owned())
}

/// Sends `count` records named `{prefix}{n}` and waits for every acknowledgement.
async fn send_acked(producer: &Producer, prefix: &str, count: usize) -> Acked {
    let mut acked = Acked::new();
    for n in 0..count {
        let value = format!("{prefix}{n}");
        let delivery = producer.send(record(&value)).await.unwrap();
        acked.insert(value, (delivery.partition, delivery.offset));
    }
    acked
}

/// Everything in the topic, read by a new consumer: `(partition, offset, value)`.
async fn read_everything(broker: &BrokerProcess) -> Records {
    let client = client_of(broker).await;
    let mut total = 0;
    for partition in 0..PARTITIONS {
        let (end, _) = client
            .admin()
            .list_offsets(TOPIC, partition, OffsetSpec::Latest)
            .await
            .unwrap();
        total += end;
    }
    let mut consumer = consumer_of(&client).await;
    let mut records = Vec::new();
    while (records.len() as i64) < total {
        let record = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .expect("the read makes progress")
            .unwrap()
            .unwrap();
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        records.push((record.partition, record.offset, value));
    }
    records
}

/// Every acknowledged record is in `records` exactly once, where it was acknowledged,
/// and no other value is there twice.
fn assert_exactly_once(records: &[(i32, i64, String)], acked: &Acked) {
    let mut found: HashMap<&str, (i32, i64)> = HashMap::new();
    for (partition, offset, value) in records {
        let earlier = found.insert(value, (*partition, *offset));
        assert!(earlier.is_none(), "{value} is stored twice");
    }
    for (value, at) in acked {
        assert_eq!(
            found.get(value.as_str()),
            Some(at),
            "acknowledged {value} lost or moved"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_consumer_and_an_open_produce_stream_do_not_keep_the_broker_up() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--shutdown-grace-ms", LONG_GRACE_MS];
    let (mut broker, client) = start_with_topic(data.path(), &args).await;
    let producer = producer_of(&client);
    let acked = send_acked(&producer, "a", 3).await;
    let mut consumer = consumer_of(&client).await;
    for _ in 0..acked.len() {
        tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("the consumer reads what was sent")
            .unwrap()
            .unwrap();
    }
    // Now the consumer's fetch session waits for data that does not come, and the
    // producer's stream stays open.

    let status = terminate(&mut broker);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(marker(data.path()).exists(), "no clean-shutdown marker");
    drop((producer, consumer));
}

/// Sends records from `senders` tasks until `stop`, recording each acknowledgement.
fn spawn_senders(
    producer: &Producer,
    senders: usize,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<Acked>>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..senders)
        .map(|sender| {
            let (producer, stop, acked) = (producer.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let value = format!("w{sender}-s{n}");
                    n += 1;
                    match producer.send(record(&value)).await {
                        Ok(delivery) => {
                            let at = (delivery.partition, delivery.offset);
                            acked.lock().unwrap().insert(value, at);
                        }
                        Err(error) => failed.push(format!("{value}: {}", error.error)),
                    }
                }
                failed
            })
        })
        .collect()
}

/// Reads `consumer` into `read` until the test ends.
fn spawn_reader(mut consumer: Consumer, read: &Arc<Mutex<Records>>) -> tokio::task::JoinHandle<()> {
    let read = read.clone();
    tokio::spawn(async move {
        while let Some(record) = consumer.next().await {
            let record = record.expect("the consumer reads through the restart");
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            read.lock()
                .unwrap()
                .push((record.partition, record.offset, value));
        }
    })
}

/// Waits (bounded) until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_under_load_loses_nothing_and_the_same_clients_go_on_after_the_restart() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--shutdown-grace-ms", LONG_GRACE_MS];
    let (mut broker, client) = start_with_topic(data.path(), &args).await;
    let producer = producer_of(&client);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::new()));
    let read = Arc::new(Mutex::new(Records::new()));
    let senders = spawn_senders(&producer, 4, &stop, &acked);
    let reader = spawn_reader(consumer_of(&client).await, &read);
    let acked_count = || acked.lock().unwrap().len();
    let read_count = || read.lock().unwrap().len();
    eventually("300 records are acknowledged", || acked_count() >= 300).await;

    let status = terminate(&mut broker);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(marker(data.path()).exists(), "no clean-shutdown marker");
    let (acked_before, read_before) = (acked_count(), read_count());
    restart(&mut broker);

    eventually("the producer goes on after the restart", || {
        acked_count() >= acked_before + 300
    })
    .await;
    eventually("the consumer goes on after the restart", || {
        read_count() > read_before
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        let failed = sender.await.unwrap();
        assert!(failed.is_empty(), "sends failed: {failed:?}");
    }
    let acked = acked.lock().unwrap().clone();
    let everything = read_everything(&broker).await;
    assert_exactly_once(&everything, &acked);
    eventually("the consumer has read everything", || {
        read_count() >= everything.len()
    })
    .await;
    reader.abort();
    let mut seen = read.lock().unwrap().clone();
    seen.sort_unstable();
    let mut expected = everything.clone();
    expected.sort_unstable();
    assert_eq!(
        seen, expected,
        "the consumer read each record once, in full"
    );
    eprintln!(
        "{} acknowledged ({acked_before} before the SIGTERM), {} stored, 0 lost, 0 duplicated",
        acked.len(),
        everything.len()
    );
    drop(producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_grace_period_exits_130_and_the_next_start_recovers() {
    let data = tempfile::tempdir().unwrap();
    let [handshake_flag, handshake_ms] = LONG_HANDSHAKE_TIMEOUT;
    let args = [
        "--shutdown-grace-ms",
        LONG_GRACE_MS,
        handshake_flag,
        handshake_ms,
    ];
    let (mut broker, client) = start_with_topic(data.path(), &args).await;
    let producer = producer_of(&client);
    let acked = send_acked(&producer, "c", 200).await;
    let _held_open = frozen_connection(broker.address());

    send_sigterm(&broker);
    tokio::task::block_in_place(|| wait_until_refusing(broker.address()));
    // The frozen connection keeps the first shutdown waiting; the second signal ends it.
    let status = terminate(&mut broker);
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(
        !marker(data.path()).exists(),
        "a second signal leaves no clean-shutdown marker"
    );

    restart(&mut broker);
    assert_exactly_once(&read_everything(&broker).await, &acked);
    drop(producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_closes_is_cut_when_the_grace_period_ends() {
    let data = tempfile::tempdir().unwrap();
    let [handshake_flag, handshake_ms] = LONG_HANDSHAKE_TIMEOUT;
    let args = ["--shutdown-grace-ms", "1000", handshake_flag, handshake_ms];
    let (mut broker, client) = start_with_topic(data.path(), &args).await;
    let producer = producer_of(&client);
    let acked = send_acked(&producer, "d", 50).await;
    let _held_open = frozen_connection(broker.address());

    let status = terminate(&mut broker);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(marker(data.path()).exists(), "no clean-shutdown marker");
    restart(&mut broker);
    assert_exactly_once(&read_everything(&broker).await, &acked);
    drop(producer);
}
