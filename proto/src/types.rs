//! Newtypes for Kafka's vocabulary, with Kafka's meanings.
//!
//! They are plain `Copy` wrappers with no behaviour beyond ordering and display: their job
//! is to make `append(offset, position)` impossible to call with the arguments swapped.

use std::fmt;

/// A record's position in its partition: dense, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    /// The offset `n` records after this one. Saturates instead of overflowing: the
    /// `base_offset` of a batch read from disk or the wire is not covered by its CRC, so a
    /// damaged one near `i64::MAX` must not panic a debug build; the caller's range checks
    /// then refuse the saturated value.
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0.saturating_add(n))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A number raised on every leader change, stamped into every batch the leader appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A partition's index within its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PartitionId(pub i32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A broker's configured node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BrokerId(pub i32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest topic name Kafka (and Strata) accept.
pub const TOPIC_NAME_MAX_CHARS: usize = 249;

/// A validated topic name: `[a-zA-Z0-9._-]{1,249}`, not `.` or `..` (hostile input 24 of
/// `docs/RELIABILITY.md`).
///
/// Because the alphabet excludes `/`, NUL and every non-ASCII letter, a topic name is always
/// safe to use as part of a directory name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(String);

/// Why a string is not a valid topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTopicName {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name is {length} characters long; the limit is {TOPIC_NAME_MAX_CHARS}")]
    TooLong { length: usize },
    #[error("topic name may not be '.' or '..'")]
    DotName,
    #[error("topic name contains {character:?}; only ASCII letters, digits, '.', '_' and '-' are allowed")]
    BadCharacter { character: char },
}

impl TopicName {
    /// Checks `name` against Kafka's rules. The reserved `__` prefix is a policy of topic
    /// creation (internal topics use it), not of the name itself, so it is accepted here.
    pub fn new(name: &str) -> Result<TopicName, InvalidTopicName> {
        if name.is_empty() {
            return Err(InvalidTopicName::Empty);
        }
        let length = name.chars().count();
        if length > TOPIC_NAME_MAX_CHARS {
            return Err(InvalidTopicName::TooLong { length });
        }
        if name == "." || name == ".." {
            return Err(InvalidTopicName::DotName);
        }
        if let Some(character) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(InvalidTopicName::BadCharacter { character });
        }
        Ok(TopicName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(TopicName::new("orders.v1_eu-west").is_ok());
        assert!(TopicName::new(&"a".repeat(249)).is_ok());
        assert_eq!(TopicName::new(""), Err(InvalidTopicName::Empty));
        assert_eq!(TopicName::new("."), Err(InvalidTopicName::DotName));
        assert_eq!(TopicName::new(".."), Err(InvalidTopicName::DotName));
        assert_eq!(
            TopicName::new(&"a".repeat(250)),
            Err(InvalidTopicName::TooLong { length: 250 })
        );
        for bad in ["a/b", "../x", "a\0b", "tópico", "a b"] {
            assert!(
                matches!(
                    TopicName::new(bad),
                    Err(InvalidTopicName::BadCharacter { .. })
                ),
                "{bad:?} must be refused"
            );
        }
    }
}
