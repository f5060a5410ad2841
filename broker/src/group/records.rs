//! The records of `__consumer_offsets`: committed offsets and group snapshots, as
//! versioned binary keys and values (byte by byte in `docs/FORMAT.md`, "Consumer offsets
//! topic"). Pure: no I/O.
//!
//! Two kinds of record share the topic, told apart by the key's first two bytes (its
//! type):
//! - an offset commit: key (type 1, group, topic, partition) → value (version 1, offset,
//!   leader epoch, metadata, commit time);
//! - a group snapshot: key (type 2, group) → value (version 1, the [`GroupSnapshot`]
//!   fields).
//!
//! A record without a value (a tombstone) deletes its key: the offset, or the whole group.
//! The topic is compacted, so only the newest record per key survives, and readers apply
//! records in offset order with the newest winning.
//!
//! Integers are big-endian. A string is a `u16` byte length then UTF-8 bytes; the
//! metadata of a commit is a `u32` length then UTF-8 bytes. Decoding checks every length
//! against the bytes that remain before it takes them, and no count read from the input
//! sizes an allocation: a hostile or damaged record is a [`GroupRecordError`], never a
//! panic or a large allocation.
//!
//! Which partition holds a group: [`partition_for`], FNV-1a (32 bits) over the group
//! id's UTF-8 bytes, modulo the partition count.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Assignment, GroupSnapshot, MemberSnapshot, Subscription};

/// The internal topic of committed offsets and group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Key type of an offset commit.
pub const OFFSET_KEY_TYPE: u16 = 1;
/// Key type of a group snapshot.
pub const GROUP_KEY_TYPE: u16 = 2;
/// The value version this broker writes (and the only one it reads).
pub const VALUE_VERSION: u16 = 1;

/// The longest commit metadata accepted (Kafka's `offset.metadata.max.bytes` is 4096).
pub const METADATA_BYTES_MAX: usize = 4096;

/// The `__consumer_offsets` partition of `group_id` among `partition_count`: FNV-1a
/// (32-bit) over its UTF-8 bytes, modulo the count. Stable across versions and machines:
/// changing it would move every group.
pub fn partition_for(group_id: &str, partition_count: i32) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in group_id.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let count = u32::try_from(partition_count.max(1)).unwrap_or(1);
    i32::try_from(hash % count).unwrap_or(0)
}

/// The key of one committed offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    pub group_id: String,
    pub topic: String,
    pub partition: i32,
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset the group will read.
    pub offset: i64,
    /// The leader epoch of the last record consumed, -1 if unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One record of `__consumer_offsets`, decoded. `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        key: OffsetKey,
        value: Option<OffsetValue>,
    },
    Group {
        group_id: String,
        snapshot: Option<GroupSnapshot>,
    },
}

impl GroupRecord {
    /// The group the record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            GroupRecord::Offset { key, .. } => &key.group_id,
            GroupRecord::Group { group_id, .. } => group_id,
        }
    }
}

/// Why a record of `__consumer_offsets` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupRecordError {
    #[error("the {what} ends after {available} bytes, {needed} are needed")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("unknown key type {key_type} (this broker knows 1 and 2)")]
    UnknownKeyType { key_type: u16 },
    #[error("unknown value version {version} (this broker reads {VALUE_VERSION})")]
    UnknownValueVersion { version: u16 },
    #[error("the {what} is not UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("{count} {what} announced, but only {available} bytes follow")]
    CountTooLarge {
        what: &'static str,
        count: u32,
        available: usize,
    },
    #[error("{trailing} bytes follow the end of the {what}")]
    TrailingBytes { what: &'static str, trailing: usize },
    #[error("the {what} is too long to encode ({length} bytes)")]
    TooLong { what: &'static str, length: usize },
    #[error("the record has no key")]
    MissingKey,
}

// ---- Encoding ---------------------------------------------------------------------------

struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn new() -> Writer {
        Writer { bytes: Vec::new() }
    }

    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn i32(&mut self, value: i32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn string(&mut self, what: &'static str, value: &str) -> Result<(), GroupRecordError> {
        let length = u16::try_from(value.len()).map_err(|_| GroupRecordError::TooLong {
            what,
            length: value.len(),
        })?;
        self.u16(length);
        self.bytes.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn optional_string(
        &mut self,
        what: &'static str,
        value: Option<&str>,
    ) -> Result<(), GroupRecordError> {
        match value {
            None => {
                self.u8(0);
                Ok(())
            }
            Some(value) => {
                self.u8(1);
                self.string(what, value)
            }
        }
    }

    fn count(&mut self, what: &'static str, count: usize) -> Result<(), GroupRecordError> {
        let count = u32::try_from(count).map_err(|_| GroupRecordError::TooLong {
            what,
            length: count,
        })?;
        self.u32(count);
        Ok(())
    }

    fn assignment(&mut self, assignment: &Assignment) -> Result<(), GroupRecordError> {
        self.count("assignment", assignment.len())?;
        for (topic, partitions) in assignment {
            self.string("topic", topic)?;
            self.count("partitions", partitions.len())?;
            for partition in partitions {
                self.i32(*partition);
            }
        }
        Ok(())
    }
}

/// The key of `group_id`'s committed offset for `topic`-`partition`.
pub fn encode_offset_key(key: &OffsetKey) -> Result<Vec<u8>, GroupRecordError> {
    let mut writer = Writer::new();
    writer.u16(OFFSET_KEY_TYPE);
    writer.string("group id", &key.group_id)?;
    writer.string("topic", &key.topic)?;
    writer.i32(key.partition);
    Ok(writer.bytes)
}

pub fn encode_offset_value(value: &OffsetValue) -> Result<Vec<u8>, GroupRecordError> {
    if value.metadata.len() > METADATA_BYTES_MAX {
        return Err(GroupRecordError::TooLong {
            what: "commit metadata",
            length: value.metadata.len(),
        });
    }
    let mut writer = Writer::new();
    writer.u16(VALUE_VERSION);
    writer.i64(value.offset);
    writer.i32(value.leader_epoch);
    writer.count("commit metadata", value.metadata.len())?;
    writer.bytes.extend_from_slice(value.metadata.as_bytes());
    writer.i64(value.commit_timestamp_ms);
    Ok(writer.bytes)
}

/// The key of `group_id`'s snapshot.
pub fn encode_group_key(group_id: &str) -> Result<Vec<u8>, GroupRecordError> {
    let mut writer = Writer::new();
    writer.u16(GROUP_KEY_TYPE);
    writer.string("group id", group_id)?;
    Ok(writer.bytes)
}

/// The value of a group snapshot (the group id is in the key).
pub fn encode_group_value(snapshot: &GroupSnapshot) -> Result<Vec<u8>, GroupRecordError> {
    let mut writer = Writer::new();
    writer.u16(VALUE_VERSION);
    writer.i32(snapshot.group_epoch);
    writer.i32(snapshot.assignment_epoch);
    writer.string("assignor", &snapshot.assignor)?;
    writer.count("members", snapshot.members.len())?;
    for member in &snapshot.members {
        writer.string("member id", &member.member_id)?;
        writer.optional_string("instance id", member.instance_id.as_deref())?;
        writer.string("client id", &member.client_id)?;
        writer.string("client host", &member.client_host)?;
        writer.i32(member.member_epoch);
        writer.count("subscribed topics", member.subscription.topics.len())?;
        for topic in &member.subscription.topics {
            writer.string("topic", topic)?;
        }
        writer.optional_string("subscription regex", member.subscription.regex.as_deref())?;
        let timeout_ms = u64::try_from(member.rebalance_timeout.as_millis()).unwrap_or(u64::MAX);
        writer.i64(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
        writer.assignment(&member.assigned)?;
        writer.assignment(&member.revoking)?;
        writer.assignment(&member.target)?;
    }
    Ok(writer.bytes)
}

// ---- Decoding ---------------------------------------------------------------------------

struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, bytes: &'a [u8]) -> Reader<'a> {
        Reader { what, rest: bytes }
    }

    fn take(&mut self, needed: usize) -> Result<&'a [u8], GroupRecordError> {
        if self.rest.len() < needed {
            return Err(GroupRecordError::Truncated {
                what: self.what,
                needed,
                available: self.rest.len(),
            });
        }
        let (taken, rest) = self.rest.split_at(needed);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GroupRecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, GroupRecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, GroupRecordError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, GroupRecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, GroupRecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, GroupRecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn utf8(what: &'static str, bytes: &[u8]) -> Result<String, GroupRecordError> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| GroupRecordError::NotUtf8 { what })
    }

    fn string(&mut self, what: &'static str) -> Result<String, GroupRecordError> {
        let length = usize::from(self.u16()?);
        let bytes = self.take(length)?;
        Self::utf8(what, bytes)
    }

    fn optional_string(&mut self, what: &'static str) -> Result<Option<String>, GroupRecordError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.string(what).map(Some),
        }
    }

    /// A count of elements of at least `element_bytes_min` bytes each, checked against
    /// the bytes that remain (so a hostile count fails here, before any loop).
    fn count(
        &mut self,
        what: &'static str,
        element_bytes_min: usize,
    ) -> Result<usize, GroupRecordError> {
        let count = self.u32()?;
        let wanted = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .saturating_mul(element_bytes_min);
        if wanted > self.rest.len() {
            return Err(GroupRecordError::CountTooLarge {
                what,
                count,
                available: self.rest.len(),
            });
        }
        Ok(usize::try_from(count).unwrap_or(0))
    }

    fn assignment(&mut self) -> Result<Assignment, GroupRecordError> {
        let mut assignment = Assignment::new();
        // A topic takes at least its name's length and its partition count.
        for _ in 0..self.count("assigned topics", 6)? {
            let topic = self.string("topic")?;
            let mut partitions = BTreeSet::new();
            for _ in 0..self.count("assigned partitions", 4)? {
                partitions.insert(self.i32()?);
            }
            assignment.insert(topic, partitions);
        }
        Ok(assignment)
    }

    fn finish(self) -> Result<(), GroupRecordError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(GroupRecordError::TrailingBytes {
                what: self.what,
                trailing: self.rest.len(),
            })
        }
    }
}

/// Decodes one record of `__consumer_offsets` (`value` `None`: a tombstone).
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<GroupRecord, GroupRecordError> {
    let key = key.ok_or(GroupRecordError::MissingKey)?;
    let mut reader = Reader::new("key", key);
    match reader.u16()? {
        OFFSET_KEY_TYPE => {
            let group_id = reader.string("group id")?;
            let topic = reader.string("topic")?;
            let partition = reader.i32()?;
            reader.finish()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(GroupRecord::Offset {
                key: OffsetKey {
                    group_id,
                    topic,
                    partition,
                },
                value,
            })
        }
        GROUP_KEY_TYPE => {
            let group_id = reader.string("group id")?;
            reader.finish()?;
            let snapshot = value
                .map(|value| decode_group_value(&group_id, value))
                .transpose()?;
            Ok(GroupRecord::Group { group_id, snapshot })
        }
        key_type => Err(GroupRecordError::UnknownKeyType { key_type }),
    }
}

fn decode_offset_value(value: &[u8]) -> Result<OffsetValue, GroupRecordError> {
    let mut reader = Reader::new("offset value", value);
    let version = reader.u16()?;
    if version != VALUE_VERSION {
        return Err(GroupRecordError::UnknownValueVersion { version });
    }
    let offset = reader.i64()?;
    let leader_epoch = reader.i32()?;
    let metadata_bytes = reader.count("commit metadata bytes", 1)?;
    let metadata = Reader::utf8("commit metadata", reader.take(metadata_bytes)?)?;
    let commit_timestamp_ms = reader.i64()?;
    reader.finish()?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// The smallest encoded member: three empty strings' lengths, two absent options, the
/// epoch, the topic count, the timeout and three empty assignments.
const MEMBER_BYTES_MIN: usize = 2 * 3 + 1 + 4 + 4 + 1 + 8 + 3 * 4;

fn decode_group_value(group_id: &str, value: &[u8]) -> Result<GroupSnapshot, GroupRecordError> {
    let mut reader = Reader::new("group value", value);
    let version = reader.u16()?;
    if version != VALUE_VERSION {
        return Err(GroupRecordError::UnknownValueVersion { version });
    }
    let group_epoch = reader.i32()?;
    let assignment_epoch = reader.i32()?;
    let assignor = reader.string("assignor")?;
    let mut members = Vec::new();
    for _ in 0..reader.count("members", MEMBER_BYTES_MIN)? {
        members.push(decode_member(&mut reader)?);
    }
    reader.finish()?;
    Ok(GroupSnapshot {
        group_id: group_id.to_owned(),
        group_epoch,
        assignment_epoch,
        assignor,
        members,
    })
}

fn decode_member(reader: &mut Reader<'_>) -> Result<MemberSnapshot, GroupRecordError> {
    let member_id = reader.string("member id")?;
    let instance_id = reader.optional_string("instance id")?;
    let client_id = reader.string("client id")?;
    let client_host = reader.string("client host")?;
    let member_epoch = reader.i32()?;
    let mut topics = BTreeSet::new();
    for _ in 0..reader.count("subscribed topics", 2)? {
        topics.insert(reader.string("topic")?);
    }
    let regex = reader.optional_string("subscription regex")?;
    let timeout_ms = reader.i64()?;
    let rebalance_timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    let assigned = reader.assignment()?;
    let revoking = reader.assignment()?;
    let target = reader.assignment()?;
    Ok(MemberSnapshot {
        member_id,
        instance_id,
        client_id,
        client_host,
        member_epoch,
        subscription: Subscription { topics, regex },
        rebalance_timeout,
        assigned,
        revoking,
        target,
    })
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
