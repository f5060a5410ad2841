//! Idempotent produce: the producer id and epoch from `InitProducerId`, per-partition
//! sequence numbers, and stamping them into an encoded batch.
//!
//! The broker remembers, per (producer id, partition), the sequence numbers of the last
//! batches it appended. A retried batch carries the same id, epoch and base sequence, so
//! the broker answers it with the original offset instead of appending it twice; a gap
//! gets `OUT_OF_ORDER_SEQUENCE`.
//!
//! Sequence numbers are assigned when a batch is first sent, not when it is built, so a
//! batch that fails before it reaches the broker does not leave a gap. A batch that may
//! have been appended keeps its numbers until the broker answers it (see
//! [`super::in_flight`]), so one producer id serves the producer's whole life: it never
//! resends a batch under a new id or epoch while an earlier copy may still be appended.

use bytes::Bytes;
use strata_proto::api::v1 as wire;
use strata_proto::record::{recompute_crc_for_header, BatchHeader, RecordError};
use tokio::sync::OnceCell;

use crate::client::Client;
use crate::connection::request;
use crate::error::Error;

/// A producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
}

/// Where the producer's identity comes from: one shared by all partitions, fetched once.
#[derive(Debug)]
pub(crate) struct IdentitySource {
    client: Client,
    shared: OnceCell<Identity>,
}

impl IdentitySource {
    pub(crate) fn new(client: Client) -> IdentitySource {
        IdentitySource {
            client,
            shared: OnceCell::new(),
        }
    }

    /// The producer's identity, fetched on first use.
    pub(crate) async fn shared(&self) -> Result<Identity, Error> {
        self.shared.get_or_try_init(|| self.fetch()).await.copied()
    }

    async fn fetch(&self) -> Result<Identity, Error> {
        let timeout = self.client.request_timeout();
        let response = self
            .client
            .call_any("init producer id", |mut broker| async move {
                broker
                    .init_producer_id(request(wire::InitProducerIdRequest {}, timeout))
                    .await
            })
            .await?;
        if let Some(error) = Error::from_wire(response.error.as_ref()) {
            return Err(error);
        }
        let producer_epoch = i16::try_from(response.producer_epoch).map_err(|_| {
            Error::broker(
                wire::ErrorCode::UnknownServerError,
                format!(
                    "broker sent producer epoch {} outside the i16 range",
                    response.producer_epoch
                ),
            )
        })?;
        if response.producer_id < 0 {
            return Err(Error::broker(
                wire::ErrorCode::UnknownServerError,
                format!("broker sent producer id {}", response.producer_id),
            ));
        }
        Ok(Identity {
            producer_id: response.producer_id,
            producer_epoch,
        })
    }
}

/// Rewrites producer id, epoch and base sequence of an encoded batch and its CRC. The
/// bytes are copied only when shared.
pub(crate) fn stamp(
    batch: Bytes,
    identity: Option<Identity>,
    base_sequence: i32,
) -> Result<Bytes, RecordError> {
    let mut header = BatchHeader::parse(&batch)?;
    let (producer_id, producer_epoch, base_sequence) = match identity {
        Some(identity) => (identity.producer_id, identity.producer_epoch, base_sequence),
        None => (-1, -1, -1),
    };
    if (
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
    ) == (producer_id, producer_epoch, base_sequence)
    {
        return Ok(batch);
    }
    let old_header = header.encode();
    header.producer_id = producer_id;
    header.producer_epoch = producer_epoch;
    header.base_sequence = base_sequence;
    let mut encoded = header.encode();
    let records_bytes = batch.len().saturating_sub(encoded.len());
    header.crc = recompute_crc_for_header(header.crc, &old_header, &encoded, records_bytes);
    encoded = header.encode();
    // Copies only when the bytes are shared (a resend keeps the sent copy alive).
    let mut bytes = Vec::from(batch);
    if let Some(target) = bytes.get_mut(..encoded.len()) {
        target.copy_from_slice(&encoded);
    }
    Ok(Bytes::from(bytes))
}

/// `sequence + count`, wrapping from `i32::MAX` to 0 as Kafka does.
pub(crate) fn increment_sequence(sequence: i32, count: i32) -> i32 {
    if sequence > i32::MAX - count {
        count - (i32::MAX - sequence) - 1
    } else {
        sequence + count
    }
}

/// `sequence - count`, the inverse of [`increment_sequence`].
pub(crate) fn decrement_sequence(sequence: i32, count: i32) -> i32 {
    if sequence < count {
        i32::MAX - (count - sequence) + 1
    } else {
        sequence - count
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use strata_proto::record::{
        check_stored_batch, decode_batch, BatchBuilder, BatchSettings, Compression, DecodeLimits,
        Record,
    };

    #[test]
    fn stamping_rewrites_the_header_and_keeps_the_crc_valid() {
        for compression in [Compression::None, Compression::Zstd] {
            let mut builder = BatchBuilder::new(BatchSettings {
                compression,
                ..BatchSettings::default()
            });
            builder.append(&Record::from_value(1, &b"a"[..])).unwrap();
            builder.append(&Record::from_value(2, &b"b"[..])).unwrap();
            let batch = builder.build().unwrap();
            let identity = Identity {
                producer_id: 42,
                producer_epoch: 3,
            };
            let stamped = stamp(batch, Some(identity), 17).unwrap();
            let header = check_stored_batch(&stamped, usize::MAX).unwrap();
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, 17)
            );
            let decoded = decode_batch(&stamped, &DecodeLimits::default()).unwrap();
            assert_eq!(decoded.records.len(), 2);
            let cleared = stamp(stamped, None, 0).unwrap();
            let header = check_stored_batch(&cleared, usize::MAX).unwrap();
            assert_eq!(header.producer_id, -1);
        }
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(8, 3), 5);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(0, 1), i32::MAX);
    }
}
