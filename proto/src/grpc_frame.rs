//! # gRPC messages laid out in chunks, so that record bytes are never copied
//!
//! tonic encodes each message into one contiguous buffer and decodes each message out of
//! one contiguous buffer. For a fetch answer of MiBs that is a copy of every record byte
//! on the broker (into the encode buffer) and another on the consumer (the HTTP/2 frames
//! into the decode buffer). The fetch path of broker and client uses these helpers
//! instead; what goes over the wire is byte for byte a gRPC message, so either side
//! still talks to a plain tonic peer.
//!
//! - [`fetch_response_chunks`] lays a [`FetchResponse`] out as a gRPC message (the 5-byte
//!   prefix, then protobuf) in chunks, each partition's `records` being a chunk of its
//!   own: the `Bytes` the log returned, not a copy.
//! - [`Chunks`] collects the chunks of a message as they arrive, refusing a message over
//!   a limit before it is buffered, and is a [`Buf`] whose `copy_to_bytes` slices a chunk
//!   instead of copying when the range lies inside one. prost reads `bytes` fields with
//!   `copy_to_bytes`, so a batch that arrived in one HTTP/2 frame is decoded in place.
//! - [`Chunks::take_message`] checks the prefix and takes one message out.
//! - [`Chunks::skip_message`] passes over a streamed message that is over the limit,
//!   keeping only its first bytes (for [`produce_request_head`]) and dropping the rest as
//!   it arrives, so that the broker can refuse one oversized request and read on.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;

use crate::api::v1::{FetchResponse, ProduceRequest};

/// The path of the fetch call (`ClientApi.Fetch`), which broker and client frame with
/// these helpers; the broker's tests check it against the generated service's name.
pub const FETCH_PATH: &str = "/strata.v1.ClientApi/Fetch";
/// The path of the fetch session (`ClientApi.FetchStream`): a stream of answers framed
/// like [`FETCH_PATH`]'s.
pub const FETCH_STREAM_PATH: &str = "/strata.v1.ClientApi/FetchStream";
/// The path of the produce stream (`ClientApi.Produce`), whose requests the broker reads
/// with [`Chunks::next_message`].
pub const PRODUCE_PATH: &str = "/strata.v1.ClientApi/Produce";
/// The gRPC length prefix: a compressed flag byte and a big-endian `u32` length.
pub const PREFIX_BYTES: usize = 5;
/// `FetchResponse.partitions`.
const PARTITIONS_FIELD: u32 = 1;
/// `FetchedPartition.records`.
const RECORDS_FIELD: u32 = 6;
/// `FetchedPartition.fetch_offset`, the one field numbered after `records`.
const FETCH_OFFSET_FIELD: u32 = 7;
/// `ProduceRequest.records`, the last field: prost writes every other field before it.
const PRODUCE_RECORDS_FIELD: u32 = 6;

/// Why a sequence of chunks is not one acceptable gRPC message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("message of {length} bytes is over the limit of {limit} bytes")]
    TooLarge { length: u64, limit: usize },
    #[error("message has the compressed flag set; no compression was negotiated")]
    Compressed,
    #[error("message ends after {present} of {expected} bytes")]
    Truncated { present: usize, expected: usize },
    #[error("{extra} bytes follow the message; a unary call carries one")]
    TrailingBytes { extra: usize },
}

/// Lays `response` out as one gRPC message: the prefix and the protobuf fields in small
/// chunks, each partition's records as the chunk it already is. The bytes are those
/// prost would write (fields in number order: `records`, then `fetch_offset`, each left
/// out when it is the default).
///
/// Fails only for a message over 4 GiB, which no fetch limit allows.
pub fn fetch_response_chunks(mut response: FetchResponse) -> Result<Vec<Bytes>, FrameError> {
    let taken: Vec<(Bytes, i64)> = response
        .partitions
        .iter_mut()
        .map(|partition| {
            (
                std::mem::take(&mut partition.records),
                std::mem::take(&mut partition.fetch_offset),
            )
        })
        .collect();
    let partition_lengths: Vec<usize> = response
        .partitions
        .iter()
        .zip(&taken)
        .map(|(partition, (records, fetch_offset))| {
            partition.encoded_len() + records_field_len(records) + fetch_offset_len(*fetch_offset)
        })
        .collect();
    let message_length: usize = partition_lengths
        .iter()
        .map(|length| key_len(PARTITIONS_FIELD) + encoded_len_varint(*length as u64) + length)
        .sum();
    let mut head = start_message(message_length, 64 * response.partitions.len())?;
    let mut chunks = Vec::with_capacity(2 * taken.len() + 1);
    for ((partition, (records, fetch_offset)), length) in
        response.partitions.iter().zip(taken).zip(partition_lengths)
    {
        encode_key(PARTITIONS_FIELD, WireType::LengthDelimited, &mut head);
        encode_varint(length as u64, &mut head);
        encode_fields(partition, &mut head, message_length)?;
        if !records.is_empty() {
            encode_key(RECORDS_FIELD, WireType::LengthDelimited, &mut head);
            encode_varint(records.len() as u64, &mut head);
            chunks.push(head.split().freeze());
            chunks.push(records);
        }
        if fetch_offset != 0 {
            prost::encoding::int64::encode(FETCH_OFFSET_FIELD, &fetch_offset, &mut head);
        }
    }
    if !head.is_empty() {
        chunks.push(head.freeze());
    }
    Ok(chunks)
}

/// A buffer holding the prefix of a message of `message_length` bytes, with room for
/// `fields` bytes more.
fn start_message(message_length: usize, fields: usize) -> Result<BytesMut, FrameError> {
    let prefix_length = u32::try_from(message_length).map_err(|_| over_4_gib(message_length))?;
    let mut head = BytesMut::with_capacity(PREFIX_BYTES + fields);
    head.put_u8(0);
    head.put_u32(prefix_length);
    Ok(head)
}

/// Appends `message`'s fields to `head`. A `BytesMut` grows as needed, so this cannot run
/// out of room; the error is there only because prost's `encode` has one.
fn encode_fields(
    message: &impl Message,
    head: &mut BytesMut,
    message_length: usize,
) -> Result<(), FrameError> {
    message.encode(head).map_err(|_| over_4_gib(message_length))
}

fn over_4_gib(message_length: usize) -> FrameError {
    FrameError::TooLarge {
        length: message_length as u64,
        limit: u32::MAX as usize,
    }
}

fn records_field_len(records: &Bytes) -> usize {
    if records.is_empty() {
        0
    } else {
        key_len(RECORDS_FIELD) + encoded_len_varint(records.len() as u64) + records.len()
    }
}

fn fetch_offset_len(fetch_offset: i64) -> usize {
    if fetch_offset == 0 {
        0
    } else {
        prost::encoding::int64::encoded_len(FETCH_OFFSET_FIELD, &fetch_offset)
    }
}

/// Lays `request` out as one gRPC message: the prefix and the other fields in one small
/// chunk, the batch as the `Bytes` it already is (left out when empty). The bytes are
/// those prost would write (`records` is the last field).
pub fn produce_request_chunks(mut request: ProduceRequest) -> Result<Vec<Bytes>, FrameError> {
    let records = std::mem::take(&mut request.records);
    let message_length = request.encoded_len() + records_field_len(&records);
    let mut head = start_message(message_length, 64)?;
    encode_fields(&request, &mut head, message_length)?;
    if records.is_empty() {
        return Ok(vec![head.freeze()]);
    }
    encode_key(RECORDS_FIELD, WireType::LengthDelimited, &mut head);
    encode_varint(records.len() as u64, &mut head);
    Ok(vec![head.freeze(), records])
}

/// One gRPC message with its prefix, in one chunk (for small requests).
pub fn encode_message(message: &impl Message) -> Bytes {
    let length = message.encoded_len();
    let mut buffer = BytesMut::with_capacity(PREFIX_BYTES + length);
    buffer.put_u8(0);
    // Requests built here are far below 4 GiB; a longer one would fail the peer's limit.
    buffer.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
    // The buffer has room for the whole message, so encoding cannot fail.
    let _ = message.encode(&mut buffer);
    buffer.freeze()
}

/// Received chunks of a gRPC body, read as one [`Buf`].
#[derive(Debug, Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: usize,
    /// Bytes of a skipped message ([`Chunks::skip_message`]) still to arrive; they are
    /// dropped by [`Chunks::append`], never held. While it is not zero, nothing is held.
    discard: u64,
}

/// A streamed message over the limit, passed over by [`Chunks::skip_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMessage {
    /// The length its prefix claimed.
    pub length: u64,
    /// Its first bytes (all of it when it is shorter than asked for).
    pub head: Bytes,
}

impl Chunks {
    pub fn new() -> Chunks {
        Chunks::default()
    }

    /// Adds the next chunk of the body; refuses it when the body would then hold more
    /// than one message of at most `limit` bytes, so a peer cannot make us buffer more.
    pub fn push(&mut self, chunk: Bytes, limit: usize) -> Result<(), FrameError> {
        let total = self.remaining + chunk.len();
        if total > PREFIX_BYTES + limit {
            return Err(FrameError::TooLarge {
                length: self.claimed_length().unwrap_or(total as u64),
                limit,
            });
        }
        if let Some(length) = self.claimed_length_with(&chunk) {
            if length > limit as u64 {
                return Err(FrameError::TooLarge { length, limit });
            }
        }
        if !chunk.is_empty() {
            self.remaining = total;
            self.chunks.push_back(chunk);
        }
        Ok(())
    }

    /// Adds the next chunk of a stream of messages. The caller bounds the buffer: it
    /// appends only while [`Chunks::next_message`] has no whole message, which refuses a
    /// prefix over its limit, so at most one message and one chunk are ever held.
    ///
    /// The bytes of a message being skipped ([`Chunks::skip_message`]) are dropped here.
    pub fn append(&mut self, mut chunk: Bytes) {
        if self.discard > 0 {
            let dropped = usize::try_from(self.discard).map_or(chunk.len(), |d| d.min(chunk.len()));
            chunk.advance(dropped);
            self.discard -= dropped as u64;
        }
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Whether the stream stopped inside a message: bytes of an unfinished message are
    /// held, or bytes of a skipped one are still expected.
    pub fn inside_message(&self) -> bool {
        self.remaining > 0 || self.discard > 0
    }

    /// Passes over the message at the front of a stream of messages, whichever its
    /// length (the caller has seen [`Chunks::next_message`] refuse it as too large):
    /// once its first `head_bytes` (all of it, if shorter) are here, takes them and its
    /// prefix off the front, and drops the rest of it: what is held now, and what
    /// [`Chunks::append`] receives later. `None` while the prefix or the head is still
    /// incomplete. Never holds more than the head and one chunk.
    pub fn skip_message(&mut self, head_bytes: usize) -> Option<SkippedMessage> {
        let length = self.claimed_length()?;
        let head_length = usize::try_from(length).map_or(head_bytes, |l| l.min(head_bytes));
        if self.remaining < PREFIX_BYTES + head_length {
            return None;
        }
        self.advance(PREFIX_BYTES);
        let head = self.copy_to_bytes(head_length);
        let rest = length - head_length as u64;
        let held = usize::try_from(rest).map_or(self.remaining, |r| r.min(self.remaining));
        self.advance(held);
        self.discard = rest - held as u64;
        Some(SkippedMessage { length, head })
    }

    /// Takes the next whole message (without its prefix) off the front of a stream of
    /// messages; `None` until all of it has arrived. A prefix claiming more than `limit`
    /// bytes, or a compressed message, is refused as soon as the prefix is here.
    pub fn next_message(&mut self, limit: usize) -> Result<Option<Chunks>, FrameError> {
        let Some(length) = self.claimed_length() else {
            return Ok(None);
        };
        if length > limit as u64 {
            return Err(FrameError::TooLarge { length, limit });
        }
        if self.chunk().first() != Some(&0) {
            return Err(FrameError::Compressed);
        }
        // At most `limit`, so it fits a usize.
        let length = length as usize;
        if self.remaining < PREFIX_BYTES + length {
            return Ok(None);
        }
        self.advance(PREFIX_BYTES);
        Ok(Some(self.split_to(length)))
    }

    /// The first `length` bytes as chunks of their own (slices, no copy).
    fn split_to(&mut self, length: usize) -> Chunks {
        let mut taken = Chunks::new();
        let mut left = length;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                if let Some(chunk) = self.chunks.pop_front() {
                    taken.chunks.push_back(chunk);
                }
            } else {
                taken.chunks.push_back(front.split_to(left));
                left = 0;
            }
        }
        self.remaining -= length - left;
        taken.remaining = length - left;
        taken
    }

    /// The length the prefix claims, once its five bytes are here.
    fn claimed_length(&self) -> Option<u64> {
        self.claimed_length_with(&Bytes::new())
    }

    fn claimed_length_with(&self, next: &Bytes) -> Option<u64> {
        let mut prefix = [0u8; PREFIX_BYTES];
        let mut filled = 0;
        for chunk in self.chunks.iter().chain(std::iter::once(next)) {
            let take = (PREFIX_BYTES - filled).min(chunk.len());
            prefix[filled..filled + take].copy_from_slice(&chunk[..take]);
            filled += take;
            if filled == PREFIX_BYTES {
                let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
                return Some(u64::from(length));
            }
        }
        None
    }

    /// Takes the body's one message (without its prefix); the body must hold exactly
    /// one, uncompressed, of at most `limit` bytes. An empty body is no message.
    pub fn take_message(mut self, limit: usize) -> Result<Option<Chunks>, FrameError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        if self.remaining < PREFIX_BYTES {
            return Err(FrameError::Truncated {
                present: self.remaining,
                expected: PREFIX_BYTES,
            });
        }
        let compressed = self.get_u8();
        let length = self.get_u32() as usize;
        if length > limit {
            return Err(FrameError::TooLarge {
                length: length as u64,
                limit,
            });
        }
        if compressed != 0 {
            return Err(FrameError::Compressed);
        }
        if self.remaining < length {
            return Err(FrameError::Truncated {
                present: self.remaining,
                expected: length,
            });
        }
        if self.remaining > length {
            return Err(FrameError::TrailingBytes {
                extra: self.remaining - length,
            });
        }
        Ok(Some(self))
    }
}

/// The fields of a produce request that come before its batch (request id, topic,
/// partition, acks, timeout), read from the request's first bytes; the batch is left
/// empty. `None` when those bytes do not reach the batch's field key, or are not the
/// fields of a produce request. prost writes fields in number order and the batch is the
/// last, so a request's first few hundred bytes hold all the others (a topic name is at
/// most 249 bytes).
pub fn produce_request_head(head: &[u8]) -> Option<ProduceRequest> {
    let mut rest = head;
    loop {
        let start = head.len() - rest.len();
        if rest.is_empty() {
            return None;
        }
        let (tag, wire_type) = prost::encoding::decode_key(&mut rest).ok()?;
        if tag == PRODUCE_RECORDS_FIELD {
            return ProduceRequest::decode(head.get(..start)?).ok();
        }
        prost::encoding::skip_field(
            wire_type,
            tag,
            &mut rest,
            prost::encoding::DecodeContext::default(),
        )
        .ok()?;
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |chunk| chunk.as_ref())
    }

    fn advance(&mut self, mut count: usize) {
        assert!(
            count <= self.remaining,
            "advance past the end of the chunks"
        );
        self.remaining -= count;
        while count > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if count < front.len() {
                front.advance(count);
                break;
            }
            count -= front.len();
            self.chunks.pop_front();
        }
    }

    /// A slice of the front chunk when it holds all `length` bytes; a copy otherwise.
    fn copy_to_bytes(&mut self, length: usize) -> Bytes {
        assert!(
            length <= self.remaining,
            "copy_to_bytes past the end of the chunks"
        );
        if let Some(front) = self.chunks.front_mut() {
            if length <= front.len() {
                let bytes = front.split_to(length);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                self.remaining -= length;
                return bytes;
            }
        }
        let mut joined = BytesMut::with_capacity(length);
        joined.put((&mut *self).take(length));
        joined.freeze()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::api::v1::{Error, FetchedPartition};

    fn partition(name: &str, records: &[u8], fetch_offset: i64) -> FetchedPartition {
        FetchedPartition {
            topic: name.to_owned(),
            partition: 3,
            error: Some(Error::default()),
            high_watermark: 1_000_000,
            log_start_offset: 17,
            records: Bytes::copy_from_slice(records),
            fetch_offset,
        }
    }

    /// Partitions with and without records and with and without a fetch offset, so each
    /// optional field is both written and left out.
    fn response() -> FetchResponse {
        FetchResponse {
            partitions: vec![
                partition("a", &[7; 3000], 1 << 40),
                partition("empty", &[], 0),
                partition("b", &[9; 40], 0),
                partition("empty-at", &[], 5),
            ],
        }
    }

    fn framed_by_prost(response: &FetchResponse) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend((response.encoded_len() as u32).to_be_bytes());
        bytes.extend(response.encode_to_vec());
        bytes
    }

    #[test]
    fn chunks_are_the_bytes_prost_writes_and_records_are_not_copied() {
        let response = response();
        let records = response.partitions[0].records.clone();
        let chunks = fetch_response_chunks(response.clone()).unwrap();
        assert_eq!(chunks.concat(), framed_by_prost(&response));
        assert!(
            chunks
                .iter()
                .any(|chunk| chunk.as_ptr() == records.as_ptr()),
            "the records must be their own chunk"
        );
    }

    #[test]
    fn a_message_split_anywhere_decodes_and_whole_records_are_sliced() {
        let response = response();
        let wire = framed_by_prost(&response);
        for cut in 0..wire.len() {
            let wire = Bytes::from(wire.clone());
            let mut chunks = Chunks::new();
            chunks.push(wire.slice(..cut), 1 << 20).unwrap();
            chunks.push(wire.slice(cut..), 1 << 20).unwrap();
            let message = chunks.take_message(1 << 20).unwrap().unwrap();
            let decoded = FetchResponse::decode(message).unwrap();
            assert_eq!(decoded, response, "cut at {cut}");
        }
        // Records inside one chunk come out as a slice of it.
        let chunks_in = fetch_response_chunks(response).unwrap();
        let mut chunks = Chunks::new();
        for chunk in &chunks_in {
            chunks.push(chunk.clone(), 1 << 20).unwrap();
        }
        let decoded =
            FetchResponse::decode(chunks.take_message(1 << 20).unwrap().unwrap()).unwrap();
        assert!(chunks_in
            .iter()
            .any(|chunk| chunk.as_ptr() == decoded.partitions[0].records.as_ptr()));
    }

    #[test]
    fn a_prefix_over_the_limit_is_refused_before_the_body_arrives() {
        let mut chunks = Chunks::new();
        chunks.push(Bytes::from_static(&[0, 0xff]), 1024).unwrap();
        let refused = chunks.push(Bytes::from_static(&[0xff, 0xff, 0xff, 1, 2]), 1024);
        assert_eq!(
            refused,
            Err(FrameError::TooLarge {
                length: u64::from(u32::MAX),
                limit: 1024
            })
        );
        let mut chunks = Chunks::new();
        chunks
            .push(Bytes::from_static(&[0, 0, 0, 0, 1]), 1024)
            .unwrap();
        let refused = chunks.push(Bytes::from(vec![0; 2000]), 1024);
        assert!(
            matches!(refused, Err(FrameError::TooLarge { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn bad_framing_is_a_typed_error() {
        let take = |bytes: &'static [u8]| {
            let mut chunks = Chunks::new();
            chunks.push(Bytes::from_static(bytes), 1024).unwrap();
            chunks
                .take_message(1024)
                .map(|message| message.map(|m| m.remaining()))
        };
        assert_eq!(take(&[]), Ok(None));
        assert_eq!(
            take(&[0, 0, 0]),
            Err(FrameError::Truncated {
                present: 3,
                expected: 5
            })
        );
        assert_eq!(take(&[1, 0, 0, 0, 1, 9]), Err(FrameError::Compressed));
        assert_eq!(
            take(&[0, 0, 0, 0, 4, 9]),
            Err(FrameError::Truncated {
                present: 1,
                expected: 4
            })
        );
        assert_eq!(
            take(&[0, 0, 0, 0, 1, 9, 9]),
            Err(FrameError::TrailingBytes { extra: 1 })
        );
        assert_eq!(take(&[0, 0, 0, 0, 1, 9]), Ok(Some(1)));
    }

    #[test]
    fn a_stream_of_messages_comes_apart_message_by_message() {
        let first = encode_message(&response());
        let second = encode_message(&FetchResponse::default());
        let wire = Bytes::from([first.to_vec(), second.to_vec()].concat());
        for cut in 0..wire.len() {
            let mut chunks = Chunks::new();
            chunks.append(wire.slice(..cut));
            let mut messages = Vec::new();
            while let Some(message) = chunks.next_message(1 << 20).unwrap() {
                messages.push(FetchResponse::decode(message).unwrap());
            }
            chunks.append(wire.slice(cut..));
            while let Some(message) = chunks.next_message(1 << 20).unwrap() {
                messages.push(FetchResponse::decode(message).unwrap());
            }
            assert_eq!(
                messages,
                [response(), FetchResponse::default()],
                "cut at {cut}"
            );
            assert_eq!(chunks.remaining(), 0);
        }
        let mut chunks = Chunks::new();
        chunks.append(Bytes::from_static(&[0, 0, 0, 4, 1]));
        assert!(matches!(
            chunks.next_message(1024),
            Err(FrameError::TooLarge { .. })
        ));
        let mut chunks = Chunks::new();
        chunks.append(Bytes::from_static(&[1, 0, 0, 0, 1, 0]));
        assert_eq!(
            chunks.next_message(1024).map(|m| m.is_some()),
            Err(FrameError::Compressed)
        );
    }

    #[test]
    fn a_produce_request_is_prosts_bytes_with_the_batch_as_its_own_chunk() {
        let request = ProduceRequest {
            request_id: 7,
            topic: "t".to_owned(),
            partition: 2,
            acks: -1,
            timeout_ms: 30_000,
            records: Bytes::from(vec![5; 1000]),
        };
        let chunks = produce_request_chunks(request.clone()).unwrap();
        assert_eq!(chunks.concat(), encode_message(&request));
        assert_eq!(chunks[1].as_ptr(), request.records.as_ptr());
        let empty = ProduceRequest::default();
        assert_eq!(
            produce_request_chunks(empty.clone()).unwrap(),
            [encode_message(&empty)]
        );
    }

    fn produce_request(records: usize) -> ProduceRequest {
        ProduceRequest {
            request_id: 41,
            topic: "orders".to_owned(),
            partition: 3,
            acks: -1,
            timeout_ms: 30_000,
            records: Bytes::from(vec![7; records]),
        }
    }

    #[test]
    fn an_oversized_message_is_skipped_keeping_its_head_and_the_next_one_comes_out() {
        let big = encode_message(&produce_request(5000));
        let next = encode_message(&produce_request(10));
        let wire = Bytes::from([big.to_vec(), next.to_vec()].concat());
        for cut in [1, 5, 100, 511, 517, 600, 4000, big.len(), big.len() + 3] {
            let mut chunks = Chunks::new();
            chunks.append(wire.slice(..cut));
            assert!(matches!(
                chunks.next_message(1024),
                Err(FrameError::TooLarge { .. }) | Ok(None)
            ));
            let skipped = match chunks.skip_message(512) {
                Some(skipped) => skipped,
                None => {
                    chunks.append(wire.slice(cut..));
                    chunks.skip_message(512).expect("the head is here")
                }
            };
            assert_eq!(skipped.length, big.len() as u64 - 5, "cut at {cut}");
            assert_eq!(skipped.head, big.slice(5..517));
            assert!(chunks.remaining() <= wire.len() - 517);
            if cut >= 517 {
                // What was held of the skipped request is gone; the rest is dropped as
                // it arrives.
                chunks.append(wire.slice(cut..));
            }
            let message = chunks
                .next_message(1024)
                .unwrap()
                .expect("the next request");
            assert_eq!(
                ProduceRequest::decode(message).unwrap(),
                produce_request(10)
            );
            assert!(!chunks.inside_message());
        }
    }

    #[test]
    fn a_skipped_message_arriving_later_is_dropped_as_it_comes() {
        let big = encode_message(&produce_request(100_000));
        let mut chunks = Chunks::new();
        chunks.append(big.slice(..600));
        let skipped = chunks.skip_message(512).unwrap();
        assert_eq!(skipped.length, big.len() as u64 - 5);
        assert_eq!(chunks.remaining(), 0);
        assert!(chunks.inside_message(), "the rest is still to come");
        for piece in big.slice(600..).chunks(7000) {
            chunks.append(Bytes::copy_from_slice(piece));
            assert_eq!(
                chunks.remaining(),
                0,
                "nothing of the skipped message is held"
            );
        }
        assert!(!chunks.inside_message());
        chunks.append(encode_message(&produce_request(1)));
        assert!(chunks.next_message(1024).unwrap().is_some());
    }

    #[test]
    fn a_produce_requests_head_gives_every_field_but_the_batch() {
        let request = produce_request(5000);
        let encoded = request.encode_to_vec();
        let head = produce_request_head(&encoded[..512]).unwrap();
        assert_eq!(
            head,
            ProduceRequest {
                records: Bytes::new(),
                ..request.clone()
            }
        );
        // Cut before the batch's key, or not a produce request: nothing.
        let key_at = encoded.len() - 5000 - 3;
        assert_eq!(produce_request_head(&encoded[..key_at]), None);
        assert!(produce_request_head(&encoded[..key_at + 1]).is_some());
        assert_eq!(produce_request_head(&[0x0f, 0x00, 0x01]), None);
        assert_eq!(produce_request_head(&[]), None);
        // A topic name longer than the head: nothing.
        let long_topic = ProduceRequest {
            topic: "t".repeat(600),
            ..request
        };
        assert_eq!(
            produce_request_head(&long_topic.encode_to_vec()[..512]),
            None
        );
    }

    #[test]
    fn an_encoded_request_is_one_framed_message() {
        let response = response();
        let mut chunks = Chunks::new();
        chunks.push(encode_message(&response), 1 << 20).unwrap();
        let message = chunks.take_message(1 << 20).unwrap().unwrap();
        assert_eq!(FetchResponse::decode(message).unwrap(), response);
    }
}
