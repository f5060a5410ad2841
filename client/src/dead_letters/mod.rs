//! [`DeadLetters`]: one group's dead-letter topic, and replaying its records
//! (`docs/RETRY.md`, "Replay"). From [`Client::dead_letters`] (by source topic and group)
//! or [`DeadLetters::of_topic`] (by the DLT's name, what `strata dlt replay` does).
//!
//! - `options`: [`Replay`] (target, range, filter, dry run or execute) and
//!   [`ReplayReport`].
//! - `replay_record`: the record a replay sends, and the `--where` filter (no I/O).
//! - `replay`: the run: read the range, produce with `acks=all`, commit the progress.
//!
//! Before anything is read, the topic must be what it claims: its labels
//! (`strata.retry.kind=dlt`, `strata.retry.source-topic`, `strata.retry.group`) must name
//! this (topic, group), and the target must exist (the group's first retry topic with its
//! own labels). A topic that is not a dead-letter topic is refused with
//! [`ReplayError::NotDeadLetterTopic`], and nothing is read, produced or committed.

mod options;
mod replay;
pub mod replay_record;

pub use options::{Replay, ReplayPartition, ReplayReport, ReplaySample, ReplayStart, ReplayTarget};
pub use replay_record::{ReplayFilter, REPLAY_COUNT, REPLAY_FROM};

use crate::admin::TopicDescription;
use crate::client::Client;
use crate::consumer::retry::topics::{LABEL_GROUP, LABEL_KIND, LABEL_LEVEL, LABEL_SOURCE};
use crate::error::Error;
use crate::retry_topics::RetryTopicNames;

/// The group under which a replay of `dlt` commits its progress.
pub fn progress_group(dlt: &str) -> String {
    format!("strata-dlt-replay.{dlt}")
}

/// Why a replay was refused or failed. Nothing was produced or committed unless the
/// variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The topic's labels do not make it this (topic, group)'s dead-letter topic.
    #[error("topic {topic} is not a dead-letter topic: {reason}")]
    NotDeadLetterTopic { topic: String, reason: String },
    /// [`ReplayTarget::Source`] without [`Replay::confirm_every_group`].
    #[error(
        "replaying into source topic {source_topic} sends the records to every group that \
         reads it, not only to {group}; it needs an explicit confirmation"
    )]
    ConfirmationRequired { source_topic: String, group: String },
    /// The group has no first retry topic (it retries in place, or never started).
    #[error("group {group} has no retry topic to replay into ({topic}): {reason}")]
    NoRetryTopic {
        group: String,
        topic: String,
        reason: String,
    },
    /// A record's partition number does not exist in the target.
    #[error("topic {target} has {partitions} partitions; records of partition {partition} cannot keep their partition number there")]
    TargetTooSmall {
        target: String,
        partitions: i32,
        partition: i32,
    },
    /// A broker or client error. With `executed`, some records may have been replayed
    /// (and their progress committed) before it.
    #[error("{source}")]
    Client {
        #[source]
        source: Error,
    },
}

impl From<Error> for ReplayError {
    fn from(source: Error) -> ReplayError {
        ReplayError::Client { source }
    }
}

impl ReplayError {
    /// A SCREAMING_SNAKE name for reports: the client error's Kafka name, or one of
    /// `NOT_A_DEAD_LETTER_TOPIC`, `CONFIRMATION_REQUIRED`, `NO_RETRY_TOPIC`,
    /// `TARGET_TOO_SMALL`.
    pub fn code_name(&self) -> &'static str {
        match self {
            ReplayError::NotDeadLetterTopic { .. } => "NOT_A_DEAD_LETTER_TOPIC",
            ReplayError::ConfirmationRequired { .. } => "CONFIRMATION_REQUIRED",
            ReplayError::NoRetryTopic { .. } => "NO_RETRY_TOPIC",
            ReplayError::TargetTooSmall { .. } => "TARGET_TOO_SMALL",
            ReplayError::Client { source } => source.code_name(),
        }
    }

    pub fn is_retriable(&self) -> bool {
        matches!(self, ReplayError::Client { source } if source.is_retriable())
    }
}

/// One group's dead-letter topic; from [`Client::dead_letters`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: Client,
    names: RetryTopicNames,
}

impl Client {
    /// The dead-letter topic of `topic` and `group` (`<topic>.<group>.dlt`). Fails only
    /// for names that cannot have one (an internal topic, an empty group); the topic
    /// itself is checked when it is used.
    pub fn dead_letters(&self, topic: &str, group: &str) -> Result<DeadLetters, Error> {
        Ok(DeadLetters {
            client: self.clone(),
            names: RetryTopicNames::new(topic, group)?,
        })
    }
}

impl DeadLetters {
    /// The dead-letter topic named `dlt`, found by its labels.
    pub async fn of_topic(client: &Client, dlt: &str) -> Result<DeadLetters, ReplayError> {
        let description = client.admin().describe_topic(dlt).await?;
        let not_dlt = |reason: String| ReplayError::NotDeadLetterTopic {
            topic: dlt.to_owned(),
            reason,
        };
        let (Some(source), Some(group)) = (
            label(&description, LABEL_SOURCE),
            label(&description, LABEL_GROUP),
        ) else {
            return Err(not_dlt(
                "it has no strata.retry.* labels (the client library did not create it)".to_owned(),
            ));
        };
        let names =
            RetryTopicNames::new(source, group).map_err(|error| not_dlt(error.to_string()))?;
        let dead_letters = DeadLetters {
            client: client.clone(),
            names,
        };
        dead_letters.check(&description)?;
        Ok(dead_letters)
    }

    /// `<topic>.<group>.dlt`.
    pub fn topic(&self) -> String {
        self.names.dlt()
    }

    pub fn source_topic(&self) -> &str {
        self.names.source()
    }

    pub fn group(&self) -> &str {
        self.names.group()
    }

    /// Refuses `description` unless its labels make it this pair's dead-letter topic.
    fn check(&self, description: &TopicDescription) -> Result<(), ReplayError> {
        let expected = [
            (LABEL_KIND, "dlt"),
            (LABEL_SOURCE, self.names.source()),
            (LABEL_GROUP, self.names.group()),
        ];
        for (key, value) in expected {
            match label(description, key) {
                Some(found) if found == value => {}
                found => {
                    return Err(ReplayError::NotDeadLetterTopic {
                        topic: description.name.clone(),
                        reason: format!(
                            "its label {key} is {}, not {value:?}",
                            found
                                .map_or_else(|| "missing".to_owned(), |found| format!("{found:?}"))
                        ),
                    })
                }
            }
        }
        if description.name != self.names.dlt() {
            return Err(ReplayError::NotDeadLetterTopic {
                topic: description.name.clone(),
                reason: format!(
                    "the dead-letter topic of {} and {} is named {}",
                    self.names.source(),
                    self.names.group(),
                    self.names.dlt()
                ),
            });
        }
        Ok(())
    }

    /// Checks the group's first retry topic, the default target.
    fn check_retry_topic(&self, description: &TopicDescription) -> Result<(), ReplayError> {
        let expected = [
            (LABEL_KIND, "retry"),
            (LABEL_LEVEL, "0"),
            (LABEL_SOURCE, self.names.source()),
            (LABEL_GROUP, self.names.group()),
        ];
        for (key, value) in expected {
            if label(description, key) != Some(value) {
                return Err(ReplayError::NoRetryTopic {
                    group: self.names.group().to_owned(),
                    topic: description.name.clone(),
                    reason: format!("its label {key} is not {value:?}"),
                });
            }
        }
        Ok(())
    }
}

fn label<'a>(description: &'a TopicDescription, key: &str) -> Option<&'a str> {
    description
        .configs
        .iter()
        .find(|entry| entry.key == key)
        .map(|entry| entry.value.as_str())
}
