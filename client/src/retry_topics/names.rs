//! [`RetryTopicNames`]: the names of a (topic, group)'s retry and dead-letter topics.
//!
//! `<topic>.<group>.retry.<level>` and `<topic>.<group>.dlt`, e.g.
//! `orders.billing.retry.0` and `orders.billing.dlt`. The group is part of the name so
//! that two groups reading one topic never see each other's failures.
//!
//! A topic name allows only `[a-zA-Z0-9._-]` and 249 bytes:
//! - a group id with any other character has each one replaced by `_` and gets `-` and 8
//!   hex digits of the murmur2 hash of the real id appended (`billing team` →
//!   `billing_team-<hash>`), so two ids that sanitise alike still differ;
//! - a name longer than 249 bytes keeps its suffix (`.retry.<level>`, `.dlt`) and has
//!   its `<topic>.<group>` part cut and followed by `-` and 8 hex digits of the hash of
//!   `<topic>` NUL `<group>`.
//!
//! The derived name alone does not prove ownership (`a.b` + `c` and `a` + `b.c` give
//! the same name): each topic also carries labels naming its source topic and group,
//! checked before use (`consumer/retry/topics.rs`).

use crate::error::Error;
use crate::partitioner::murmur2;

/// The longest topic name.
const TOPIC_BYTES_MAX: usize = 249;

/// The names of one (source topic, group)'s retry and dead-letter topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryTopicNames {
    source: String,
    group: String,
    /// `<topic>.<sanitised group>`.
    base: String,
}

impl RetryTopicNames {
    /// The names for records of `source` failed by `group`. Internal topics (`__`) have
    /// none.
    pub fn new(source: &str, group: &str) -> Result<RetryTopicNames, Error> {
        if source.starts_with("__") {
            return Err(Error::InvalidConfig(format!(
                "internal topic {source} cannot have retry topics"
            )));
        }
        if group.is_empty() {
            return Err(Error::InvalidConfig(
                "retry topics need a non-empty group id".to_owned(),
            ));
        }
        Ok(RetryTopicNames {
            source: source.to_owned(),
            group: group.to_owned(),
            base: format!("{source}.{}", sanitise_group(group)),
        })
    }

    /// The source topic.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The group, as given.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// `<topic>.<group>.retry.<level>`.
    pub fn retry(&self, level: u32) -> String {
        self.with_suffix(&format!("retry.{level}"))
    }

    /// `<topic>.<group>.dlt`.
    pub fn dlt(&self) -> String {
        self.with_suffix("dlt")
    }

    fn with_suffix(&self, suffix: &str) -> String {
        let name = format!("{}.{suffix}", self.base);
        if name.len() <= TOPIC_BYTES_MAX {
            return name;
        }
        let hash = hash8(format!("{}\0{}", self.source, self.group).as_bytes());
        // `<cut base>-<hash>.<suffix>`; the base is ASCII, so any cut is a boundary.
        let keep = TOPIC_BYTES_MAX - suffix.len() - 1 - hash.len() - 1;
        let cut = self.base.get(..keep).unwrap_or(&self.base);
        format!("{cut}-{hash}.{suffix}")
    }
}

/// The group id as a topic name part (see the module docs).
fn sanitise_group(group: &str) -> String {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if group.chars().all(legal) {
        return group.to_owned();
    }
    let replaced: String = group
        .chars()
        .map(|c| if legal(c) { c } else { '_' })
        .collect();
    format!("{replaced}-{}", hash8(group.as_bytes()))
}

/// 8 lower-case hex digits of Kafka's murmur2 of `bytes`.
fn hash8(bytes: &[u8]) -> String {
    format!("{:08x}", murmur2(bytes) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(topic: &str, group: &str) -> RetryTopicNames {
        match RetryTopicNames::new(topic, group) {
            Ok(names) => names,
            Err(error) => panic!("{topic}/{group}: {error}"),
        }
    }

    fn legal_topic(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= TOPIC_BYTES_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    }

    #[test]
    fn plain_names_follow_topic_group_kind() {
        let orders = names("orders", "billing");
        assert_eq!(orders.retry(0), "orders.billing.retry.0");
        assert_eq!(orders.retry(12), "orders.billing.retry.12");
        assert_eq!(orders.dlt(), "orders.billing.dlt");
        assert_eq!(orders.source(), "orders");
        assert_eq!(orders.group(), "billing");
    }

    #[test]
    fn bad_group_characters_become_underscores_plus_a_hash_of_the_real_id() {
        let spaced = names("orders", "billing team/eu");
        let dlt = spaced.dlt();
        assert!(dlt.starts_with("orders.billing_team_eu-"), "{dlt}");
        assert!(dlt.ends_with(".dlt"));
        assert!(legal_topic(&dlt), "{dlt}");
        // Two ids that sanitise alike still get different names.
        assert_ne!(dlt, names("orders", "billing team:eu").dlt());
        // The same id always gives the same name.
        assert_eq!(dlt, names("orders", "billing team/eu").dlt());
        assert!(legal_topic(&names("t", "émile").retry(0)));
    }

    #[test]
    fn long_names_are_cut_to_249_bytes_keeping_suffix_and_uniqueness() {
        let topic = "t".repeat(240);
        let long = names(&topic, "billing");
        for name in [long.retry(0), long.retry(99), long.dlt()] {
            assert_eq!(name.len(), TOPIC_BYTES_MAX, "{name}");
            assert!(legal_topic(&name), "{name}");
        }
        assert!(long.dlt().ends_with(".dlt"));
        assert!(long.retry(99).ends_with(".retry.99"));
        assert_ne!(long.dlt(), names(&topic, "shipping").dlt());
        let group_long = names("orders", &"g".repeat(249));
        assert!(legal_topic(&group_long.dlt()));
    }

    #[test]
    fn internal_topics_and_empty_groups_are_refused() {
        assert!(RetryTopicNames::new("__consumer_offsets", "g").is_err());
        assert!(RetryTopicNames::new("orders", "").is_err());
    }
}
