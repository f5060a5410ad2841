//! What one client can hold on a real `strata-broker` is bounded (issue 18, rows 10–12):
//!
//! - connections per client address are capped, and other addresses are still served;
//! - a connection that never sends the HTTP/2 preface is closed after the handshake
//!   timeout, and one with no call open after the idle timeout; calls per client
//!   address are capped;
//! - a fetch that names one partition hundreds of times, sent on 16 streams by a client
//!   that never reads, keeps the broker's memory (RSS) bounded, and the memory goes
//!   back within 30 s of the connection's close; so do 32 lz4 batches that expand 120
//!   times, validated at once;
//! - a produce request over the transport's limit is refused alone, with
//!   MESSAGE_TOO_LARGE, and the requests before and after it on the same stream are
//!   answered; a topic's own `max.message.bytes` below the broker's is enforced.
//!
//! The broker's settings are given through `STRATA_…` variables rather than flags, so
//! that this file, run against a broker built before the settings existed, shows the
//! old behaviour instead of a refused flag.
//!
//! Timing decides no verdict: every wait is bounded only so that a broken broker fails
//! instead of hanging, and memory bounds are generous (hundreds of MB against the
//! gigabytes the unbounded broker used). RSS is the broker's `VmRSS` from
//! `/proc/<pid>/status`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw_grpc::honest_frame;
use common::{
    assert_ok, batch, bounded, code, connect, create_topic, fetch, fetch_partition, now_ms,
    produce, produce_request, ProduceStream,
};
use prost::Message;
use strata_proto::api::v1::{
    ErrorCode, FetchRequest, FetchSessionRequest, MetadataRequest, ProduceRequest,
};
use strata_proto::record::{BatchSettings, Compression, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tonic::Code;

/// The longest a timeout of the broker's may take to show (its setting plus a margin for
/// a slow machine).
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// RSS may grow by at most this much under a probe (the unbounded broker grew by 800 MB
/// to 1.8 GB).
const RSS_GROWTH_MAX_KB: u64 = 320 << 10;

/// After a probe, RSS must come back within this much of the figure before it.
const RSS_SETTLED_KB: u64 = 64 << 10;

/// Serialises setting the environment and starting a broker, so each broker sees only
/// its own test's variables.
static ENV: Mutex<()> = Mutex::new(());

/// Starts a broker with `STRATA_…` settings in its environment.
fn start_with(data_dir: &Path, settings: &[(&str, &str)]) -> BrokerProcess {
    let _env = ENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (key, value) in settings {
        std::env::set_var(key, value);
    }
    let broker = tokio::task::block_in_place(|| BrokerProcess::start(data_dir, &[]));
    for (key, _) in settings {
        std::env::remove_var(key);
    }
    broker.expect("start strata-broker (built with `cargo build -p strata-broker`?)")
}

/// The broker's resident memory, in KiB.
fn rss_kb(broker: &BrokerProcess) -> u64 {
    let pid = broker.pid().expect("the broker runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The largest RSS seen while sampling for `how_long`.
async fn peak_rss_kb(broker: &BrokerProcess, how_long: Duration) -> u64 {
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < how_long {
        peak = peak.max(rss_kb(broker));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

/// Polls RSS until it is within [`RSS_SETTLED_KB`] of `before_kb`, for at most 30 s;
/// returns the last figure.
async fn settled_rss_kb(broker: &BrokerProcess, before_kb: u64) -> u64 {
    let started = Instant::now();
    loop {
        let now_kb = rss_kb(broker);
        if now_kb <= before_kb + RSS_SETTLED_KB || started.elapsed() > Duration::from_secs(30) {
            return now_kb;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// RSS once the broker has been quiet for a few seconds (it may trim when quiet).
async fn quiet_rss_kb(broker: &BrokerProcess) -> u64 {
    tokio::time::sleep(Duration::from_secs(5)).await;
    rss_kb(broker)
}

/// One HTTP/2 connection written by hand, from `source` (any port).
struct RawConnection {
    sender: h2::client::SendRequest<Bytes>,
    driver: JoinHandle<Result<(), h2::Error>>,
    address: SocketAddr,
}

impl RawConnection {
    async fn open(broker: &BrokerProcess, source: Ipv4Addr) -> RawConnection {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
        let tcp = bounded("connect", socket.connect(broker.address()))
            .await
            .unwrap();
        let (sender, connection) = bounded("h2 handshake", h2::client::handshake(tcp))
            .await
            .expect("the client's half of the handshake");
        RawConnection {
            sender,
            driver: tokio::spawn(connection),
            address: broker.address(),
        }
    }

    /// Starts a call of `method` sending `body` (ending the request side when `end`);
    /// returns the response future and the request stream.
    fn start(
        &mut self,
        method: &str,
        body: Bytes,
        end: bool,
    ) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{}/strata.v1.ClientApi/{method}",
                self.address
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut stream) = self.sender.send_request(request, false)?;
        stream.send_data(body, end)?;
        Ok((response, stream))
    }

    /// A whole unary call; its gRPC status, or why the connection failed it.
    async fn call(&mut self, method: &str, body: Bytes) -> Result<Code, String> {
        let ready = tokio::time::timeout(CLOSE_WAIT, self.sender.clone().ready()).await;
        let mut sender = match ready {
            Ok(Ok(sender)) => sender,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("not ready".to_owned()),
        };
        std::mem::swap(&mut self.sender, &mut sender);
        let (response, _stream) = self.start(method, body, true).map_err(|e| e.to_string())?;
        let outcome = tokio::time::timeout(CLOSE_WAIT, async move {
            let response = response.await.map_err(|e| e.to_string())?;
            let (parts, mut body) = response.into_parts();
            if let Some(status) = parts.headers.get("grpc-status") {
                return Ok(Code::from_bytes(status.as_bytes()));
            }
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let trailers = body.trailers().await.map_err(|e| e.to_string())?;
            let status = trailers
                .as_ref()
                .and_then(|map| map.get("grpc-status"))
                .ok_or("no grpc-status")?;
            Ok(Code::from_bytes(status.as_bytes()))
        })
        .await;
        outcome.unwrap_or_else(|_| Err("no answer".to_owned()))
    }

    async fn metadata(&mut self) -> Result<Code, String> {
        let body = honest_frame(&MetadataRequest { topics: vec![] }.encode_to_vec());
        self.call("Metadata", body).await
    }

    /// Whether the connection has ended (the broker closed it).
    fn is_closed(&self) -> bool {
        self.driver.is_finished()
    }

    /// Waits (bounded) until the broker closes the connection; false if it does not.
    async fn closed_within(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.is_closed() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.is_closed()
    }
}

const LOCALHOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Another client address: Linux routes all of 127.0.0.0/8 to the loopback interface.
const OTHER_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_cap_are_closed_while_other_addresses_are_served() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[("STRATA_MAX_CONNECTIONS_PER_IP", "8")]);
    let mut admitted = Vec::new();
    for _ in 0..8 {
        let mut connection = RawConnection::open(&broker, LOCALHOST).await;
        assert_eq!(connection.metadata().await, Ok(Code::Ok));
        admitted.push(connection);
    }
    // Idle connections beyond the cap, from the same address: each is closed at once.
    for extra in 0..4 {
        let mut connection = RawConnection::open(&broker, LOCALHOST).await;
        let outcome = connection.metadata().await;
        assert!(
            outcome.is_err() && connection.closed_within(CLOSE_WAIT).await,
            "connection {} from 127.0.0.1 (cap 8) was served: {outcome:?}",
            9 + extra
        );
    }
    // Another address is served, and the admitted connections still are.
    let mut other = RawConnection::open(&broker, OTHER_HOST).await;
    assert_eq!(other.metadata().await, Ok(Code::Ok));
    for connection in &mut admitted {
        assert_eq!(connection.metadata().await, Ok(Code::Ok));
    }
    // A connection that closes gives its slot back.
    admitted.pop();
    let started = Instant::now();
    loop {
        let mut connection = RawConnection::open(&broker, LOCALHOST).await;
        if connection.metadata().await == Ok(Code::Ok) {
            break;
        }
        assert!(
            started.elapsed() < CLOSE_WAIT,
            "a closed connection's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_the_preface_is_closed_after_the_handshake_timeout() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[("STRATA_HANDSHAKE_TIMEOUT_MS", "1000")]);

    // Silent after connecting (a half-open or frozen client). The broker's own SETTINGS
    // frame may arrive first; then the connection must end.
    let mut silent = tokio::net::TcpStream::connect(broker.address())
        .await
        .unwrap();
    let closed = tokio::time::timeout(CLOSE_WAIT, async {
        let mut received = [0u8; 256];
        while let Ok(read) = silent.read(&mut received).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a connection that sent nothing is still open after {CLOSE_WAIT:?}"
    );

    // The preface one byte at a time, 300 ms apart (7 s in all): a slowloris.
    let mut slow = tokio::net::TcpStream::connect(broker.address())
        .await
        .unwrap();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut byte = [0u8; 64];
    let mut closed_after = None;
    for sent in 0..preface.len() {
        if slow.write_all(&preface[sent..=sent]).await.is_err() {
            closed_after = Some(sent);
            break;
        }
        let read = tokio::time::timeout(Duration::from_millis(300), slow.read(&mut byte)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            closed_after = Some(sent + 1);
            break;
        }
    }
    assert!(
        closed_after.is_some_and(|sent| sent < preface.len()),
        "a preface sent byte by byte over 7 s was let through: {closed_after:?}"
    );

    // A client that completed the handshake is not held to it.
    let mut served = RawConnection::open(&broker, LOCALHOST).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served.metadata().await, Ok(Code::Ok));
}

/// A fetch session's first message: wait up to 30 s for data on an empty partition.
fn waiting_session(topic: &str) -> Bytes {
    let mut partition = fetch_partition(topic, 0, 0);
    partition.partition_max_bytes = 1 << 20;
    let session = FetchSessionRequest {
        fetch: Some(FetchRequest {
            max_wait_ms: 30_000,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partitions: vec![partition],
        }),
        grant: 1,
    };
    honest_frame(&session.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_no_call_open_is_closed_after_the_idle_timeout() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[("STRATA_CONNECTIONS_MAX_IDLE_MS", "1500")]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "quiet", 1, &[]).await;

    let mut idle = RawConnection::open(&broker, LOCALHOST).await;
    assert_eq!(idle.metadata().await, Ok(Code::Ok));
    // A consumer waiting for data keeps a call (its fetch session) open.
    let mut waiting = RawConnection::open(&broker, LOCALHOST).await;
    let (response, session) = waiting
        .start("FetchStream", waiting_session("quiet"), false)
        .unwrap();
    let response = bounded("session headers", response).await.unwrap();
    assert_eq!(response.status(), 200);

    assert!(
        idle.closed_within(CLOSE_WAIT).await,
        "a connection with no call open is still open after {CLOSE_WAIT:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !waiting.is_closed(),
        "a connection with a call open was closed"
    );
    assert_eq!(waiting.metadata().await, Ok(Code::Ok));
    // Once its call ends, it is idle too.
    drop((response, session));
    assert!(waiting.closed_within(CLOSE_WAIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_per_address_cap_are_refused_resource_exhausted() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[("STRATA_MAX_STREAMS_PER_IP", "4")]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "calls", 1, &[]).await;
    drop(client);

    let mut connection = RawConnection::open(&broker, LOCALHOST).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let (response, stream) = connection
            .start("FetchStream", waiting_session("calls"), false)
            .unwrap();
        let response = bounded("session headers", response).await.unwrap();
        assert!(response.headers().get("grpc-status").is_none());
        sessions.push((response, stream));
    }
    assert_eq!(connection.metadata().await, Ok(Code::ResourceExhausted));
    let mut other = RawConnection::open(&broker, OTHER_HOST).await;
    assert_eq!(other.metadata().await, Ok(Code::Ok), "another address");
    // Ending a call frees its slot.
    let (_, mut stream) = sessions.pop().unwrap();
    stream.send_reset(h2::Reason::CANCEL);
    let started = Instant::now();
    while connection.metadata().await != Ok(Code::Ok) {
        assert!(started.elapsed() < CLOSE_WAIT, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces `batches` batches of `values` records of `value_bytes` each to partition 0.
async fn fill(
    client: &mut common::Client,
    topic: &str,
    batches: usize,
    values: usize,
    value_bytes: usize,
) {
    for batch_index in 0..batches {
        let records: Vec<Record> = (0..values)
            .map(|value| {
                let byte = u8::try_from((batch_index * values + value) % 251).unwrap();
                Record::from_value(now_ms(), Bytes::from(vec![byte; value_bytes]))
            })
            .collect();
        let response = produce(client, topic, 0, batch(&records, BatchSettings::default())).await;
        assert_ok(&response.error);
    }
}

/// A fetch naming partition 0 of `topic` `times` times (7 KB for 300).
fn repeated_fetch(topic: &str, times: usize) -> FetchRequest {
    FetchRequest {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 64 << 20,
        partitions: vec![fetch_partition(topic, 0, 0); times],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_named_twice_in_one_fetch_is_answered_at_its_first_entry_only() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "twice", 1, &[]).await;
    fill(&mut client, "twice", 1, 4, 1000).await;

    let answer = fetch(&mut client, repeated_fetch("twice", 3)).await;
    assert_eq!(answer.partitions.len(), 3);
    assert_ok(&answer.partitions[0].error);
    assert!(!answer.partitions[0].records.is_empty());
    for repeated in &answer.partitions[1..] {
        assert_eq!(
            code(&repeated.error),
            ErrorCode::InvalidRequest,
            "{repeated:?}"
        );
        assert!(repeated.records.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_partition_fetch_from_a_client_that_never_reads_keeps_rss_bounded() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "repeated", 1, &[]).await;
    // 1.2 MB: more than one partition's 1 MiB answer.
    fill(&mut client, "repeated", 2, 6, 100_000).await;
    let before_kb = quiet_rss_kb(&broker).await;

    // 16 fetches on one connection, each naming the partition 300 times; the client
    // never reads, so whatever the broker reads for them stays with it.
    let mut probe = RawConnection::open(&broker, LOCALHOST).await;
    let body = honest_frame(&repeated_fetch("repeated", 300).encode_to_vec());
    let mut calls = Vec::new();
    for _ in 0..16 {
        calls.push(probe.start("Fetch", body.clone(), true).unwrap());
    }
    let peak_kb = peak_rss_kb(&broker, Duration::from_secs(10)).await;
    drop(calls);
    drop(probe);
    let after_kb = settled_rss_kb(&broker, before_kb).await;
    eprintln!("repeated fetch: RSS {before_kb} kB before, {peak_kb} kB at most during, {after_kb} kB after");
    assert!(
        peak_kb < before_kb + RSS_GROWTH_MAX_KB && after_kb <= before_kb + RSS_SETTLED_KB,
        "RSS {before_kb} kB before the probe, {peak_kb} kB at its peak, {after_kb} kB 30 s \
         after the connection closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_batches_that_expand_120_times_validated_at_once_keep_rss_bounded() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "expanding", 1, &[]).await;
    // 48 records of 1,000,000 zero bytes: about 48 MB of records in a batch of 0.2 MB
    // (under the 1 MiB message limit, and each record under it too).
    let records: Vec<Record> = (0..48)
        .map(|_| Record::from_value(now_ms(), Bytes::from(vec![0u8; 1_000_000])))
        .collect();
    let settings = BatchSettings {
        compression: Compression::Lz4,
        ..BatchSettings::default()
    };
    let expanding = batch(&records, settings);
    assert!(expanding.len() < 1 << 20, "{} bytes", expanding.len());
    let before_kb = quiet_rss_kb(&broker).await;

    let mut streams = Vec::new();
    for id in 0..32 {
        let stream = ProduceStream::open(&mut client).await;
        let mut request = produce_request(id, "expanding", 0, expanding.clone());
        request.acks = 1;
        stream.send(request).await;
        streams.push(stream);
    }
    let answered = tokio::spawn(async move {
        for stream in &mut streams {
            let response = stream.recv().await.expect("an answer");
            assert_ok(&response.error);
        }
        streams
    });
    let mut peak_kb = 0;
    while !answered.is_finished() {
        peak_kb = peak_kb.max(rss_kb(&broker));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let streams = answered.await.expect("every batch is answered");
    drop(streams);
    let after_kb = settled_rss_kb(&broker, before_kb).await;
    eprintln!(
        "lz4 batches: RSS {before_kb} kB before, {peak_kb} kB at most during, {after_kb} kB after"
    );
    assert!(
        peak_kb < before_kb + RSS_GROWTH_MAX_KB && after_kb <= before_kb + RSS_SETTLED_KB,
        "RSS {before_kb} kB before the batches, {peak_kb} kB at its peak, {after_kb} kB 30 s \
         after they were answered"
    );
}

/// A produce request whose batch (2 MiB of zeros, never parsed) is over the broker's
/// decode limit of 1 MiB + 64 KiB.
fn oversized_request(request_id: u64, topic: &str, acks: i32) -> ProduceRequest {
    let mut request = produce_request(request_id, topic, 0, Bytes::from(vec![0u8; 2 << 20]));
    request.acks = acks;
    request
}

fn small_request(request_id: u64, topic: &str, value: &str) -> ProduceRequest {
    let records = [Record::from_value(
        now_ms(),
        Bytes::copy_from_slice(value.as_bytes()),
    )];
    produce_request(
        request_id,
        topic,
        0,
        batch(&records, BatchSettings::default()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_produce_request_is_refused_alone_and_the_stream_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "mixed", 1, &[]).await;

    let mut stream = ProduceStream::open(&mut client).await;
    stream.send(small_request(1, "mixed", "before")).await;
    stream.send(oversized_request(2, "mixed", -1)).await;
    stream.send(small_request(3, "mixed", "after")).await;
    stream.send(oversized_request(4, "mixed", 0)).await; // acks=0: no answer
    stream.send(small_request(5, "mixed", "last")).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        let response = stream
            .recv()
            .await
            .expect("the stream goes on after an oversized request");
        answers.push(response);
    }
    answers.sort_by_key(|response| response.request_id);
    let summary: Vec<(u64, ErrorCode, i64)> = answers
        .iter()
        .map(|r| (r.request_id, code(&r.error), r.base_offset))
        .collect();
    assert_eq!(
        summary,
        [
            (1, ErrorCode::None, 0),
            (2, ErrorCode::MessageTooLarge, -1),
            (3, ErrorCode::None, 1),
            (5, ErrorCode::None, 2),
        ]
    );
    let refusal = answers[1].error.as_ref().unwrap();
    assert!(!refusal.retriable);
    let length = oversized_request(2, "mixed", -1).encoded_len().to_string();
    let limit = ((1 << 20) + (64 << 10)).to_string();
    assert!(
        refusal.message.contains(&length) && refusal.message.contains(&limit),
        "the refusal names the request's length {length} and the limit {limit}: {}",
        refusal.message
    );
    let values: Vec<Bytes> = common::fetch_all(&mut client, "mixed", 0)
        .await
        .into_iter()
        .filter_map(|record| record.value)
        .collect();
    assert_eq!(values, [&b"before"[..], b"after", b"last"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_max_message_bytes_below_the_brokers_is_enforced() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_with(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "small", 1, &[("max.message.bytes", "2048")]).await;
    create_topic(&mut client, "default", 1, &[]).await;
    let value = "v".repeat(4000);

    let refused = produce(&mut client, "small", 0, batch_of(&value)).await;
    assert_eq!(
        code(&refused.error),
        ErrorCode::MessageTooLarge,
        "{refused:?}"
    );
    let accepted = produce(&mut client, "small", 0, batch_of("fits")).await;
    assert_ok(&accepted.error);
    let elsewhere = produce(&mut client, "default", 0, batch_of(&value)).await;
    assert_ok(&elsewhere.error);
}

fn batch_of(value: &str) -> Bytes {
    let records = [Record::from_value(
        now_ms(),
        Bytes::copy_from_slice(value.as_bytes()),
    )];
    batch(&records, BatchSettings::default())
}
