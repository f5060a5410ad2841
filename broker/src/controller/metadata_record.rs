//! [`MetadataRecord`]: one change to the cluster metadata, as stored in the metadata log.
//!
//! The metadata is a log of these records (the shape of Kafka's KRaft), applied in order by
//! [`state_machine::apply`](super::state_machine::apply). A record is the value of one
//! record in the `__cluster_metadata` partition, encoded as tagged JSON:
//!
//! ```json
//! {"type":"CreateTopic","topic_id":"5f0c…","name":"orders","configs":{"retention_ms":"-1"}}
//! ```
//!
//! Invariants: a record describes a change completely (the state machine never consults a
//! clock, a random source or the local broker), so replaying the same log on any node
//! yields the same image. Records written together in one batch are one atomic controller
//! operation. Broker ids are plain `i32` here because this is a persisted format; the
//! image uses [`BrokerId`](strata_proto::types::BrokerId).
//!
//! Compatibility: new variants and new optional fields may be added; existing field names
//! and meanings never change, since old logs are replayed by new binaries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ControllerError;

/// One change to the cluster metadata. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// Names the cluster; written once, by the first controller that starts.
    SetClusterId {
        cluster_id: String,
    },
    /// A broker (re)started. `incarnation` grows by one on every start, so a restart is
    /// visible even when the address did not change. `address` is its internal listener's
    /// advertised address; `external_address` its external listener's, when it has one
    /// (absent in logs written before external listeners existed: none).
    RegisterBroker {
        broker_id: i32,
        address: String,
        rack: Option<String>,
        incarnation: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_address: Option<String>,
    },
    /// A new topic, without partitions (each follows as a [`MetadataRecord::CreatePartition`]
    /// in the same batch). `topic_id` is 32 lowercase hex digits; `configs` holds the
    /// validated overrides under their Strata names.
    CreateTopic {
        topic_id: String,
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A new partition of an existing topic; partitions are created densely, 0, 1, 2, …
    /// `leader` is -1 when there is none.
    CreatePartition {
        topic_id: String,
        partition: i32,
        replicas: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
    /// A leader, ISR or replica-list change. `partition_epoch` is the new epoch, one above
    /// the current. `replicas` is set only by a reassignment: the partition's new replica
    /// list (absent in logs written before reassignment existed: unchanged).
    ChangePartition {
        topic_id: String,
        partition: i32,
        leader: Option<i32>,
        leader_epoch: i32,
        isr: Vec<i32>,
        partition_epoch: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
    },
    /// The broker's lease lapsed or it finished a controlled shutdown: it leads nothing
    /// until it is unfenced. `incarnation` must be the registered one, so a fence decided
    /// for an old process never lands on the restarted one.
    FenceBroker {
        broker_id: i32,
        incarnation: u64,
    },
    /// The broker (at its registered `incarnation`) heartbeats again and may lead.
    UnfenceBroker {
        broker_id: i32,
        incarnation: u64,
    },
    /// Reserves producer ids `[first_id, first_id + count)`; `first_id` is the end of the
    /// previous block, so ids are never handed out twice, also across restarts.
    AllocateProducerIds {
        first_id: i64,
        count: i64,
    },
    /// Sets and deletes config overrides of a topic (Strata names, validated values).
    AlterConfig {
        topic_id: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    DeleteTopic {
        topic_id: String,
    },
}

impl MetadataRecord {
    /// The record's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            MetadataRecord::SetClusterId { .. } => "SetClusterId",
            MetadataRecord::RegisterBroker { .. } => "RegisterBroker",
            MetadataRecord::CreateTopic { .. } => "CreateTopic",
            MetadataRecord::CreatePartition { .. } => "CreatePartition",
            MetadataRecord::ChangePartition { .. } => "ChangePartition",
            MetadataRecord::FenceBroker { .. } => "FenceBroker",
            MetadataRecord::UnfenceBroker { .. } => "UnfenceBroker",
            MetadataRecord::AllocateProducerIds { .. } => "AllocateProducerIds",
            MetadataRecord::AlterConfig { .. } => "AlterConfig",
            MetadataRecord::DeleteTopic { .. } => "DeleteTopic",
        }
    }

    /// The JSON stored as the value of a metadata log record.
    pub fn to_json(&self) -> Result<Vec<u8>, ControllerError> {
        serde_json::to_vec(self).map_err(|error| {
            ControllerError::invalid_record(format!("cannot encode {}: {error}", self.kind()))
        })
    }

    /// Parses the value of a metadata log record.
    pub fn from_json(bytes: &[u8]) -> Result<MetadataRecord, ControllerError> {
        serde_json::from_slice(bytes).map_err(|error| {
            ControllerError::invalid_record(format!("undecodable metadata record: {error}"))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn samples() -> Vec<MetadataRecord> {
        let topic_id = "0123456789abcdef0123456789abcdef".to_owned();
        vec![
            MetadataRecord::SetClusterId {
                cluster_id: "c".repeat(32),
            },
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                address: "127.0.0.1:7070".into(),
                rack: Some("r1".into()),
                incarnation: 3,
                external_address: None,
            },
            MetadataRecord::CreateTopic {
                topic_id: topic_id.clone(),
                name: "orders".into(),
                configs: BTreeMap::from([("retention_ms".into(), "-1".into())]),
            },
            MetadataRecord::CreatePartition {
                topic_id: topic_id.clone(),
                partition: 0,
                replicas: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
                isr: vec![1, 2],
            },
            MetadataRecord::ChangePartition {
                topic_id: topic_id.clone(),
                partition: 0,
                leader: None,
                leader_epoch: 1,
                isr: vec![],
                partition_epoch: 1,
                replicas: None,
            },
            MetadataRecord::ChangePartition {
                topic_id: topic_id.clone(),
                partition: 0,
                leader: Some(2),
                leader_epoch: 2,
                isr: vec![2],
                partition_epoch: 2,
                replicas: Some(vec![2, 3]),
            },
            MetadataRecord::FenceBroker {
                broker_id: 2,
                incarnation: 4,
            },
            MetadataRecord::UnfenceBroker {
                broker_id: 2,
                incarnation: 4,
            },
            MetadataRecord::AllocateProducerIds {
                first_id: 0,
                count: 1000,
            },
            MetadataRecord::AlterConfig {
                topic_id: topic_id.clone(),
                set: BTreeMap::from([("flush".into(), "always".into())]),
                delete: vec!["retention_ms".into()],
            },
            MetadataRecord::DeleteTopic { topic_id },
        ]
    }

    #[test]
    fn every_record_round_trips_through_json() {
        for record in samples() {
            let json = record.to_json().unwrap();
            assert_eq!(MetadataRecord::from_json(&json).unwrap(), record);
        }
    }

    #[test]
    fn every_kind_is_named_once() {
        let kinds: std::collections::BTreeSet<&str> =
            samples().iter().map(MetadataRecord::kind).collect();
        assert_eq!(kinds.len(), 10, "{kinds:?}");
    }

    #[test]
    fn change_partition_without_replicas_reads_and_writes_the_old_shape() {
        let old = br#"{"type":"ChangePartition","topic_id":"ab","partition":0,"leader":1,"leader_epoch":2,"isr":[1],"partition_epoch":3}"#;
        let record = MetadataRecord::from_json(old).unwrap();
        assert_eq!(
            record,
            MetadataRecord::ChangePartition {
                topic_id: "ab".into(),
                partition: 0,
                leader: Some(1),
                leader_epoch: 2,
                isr: vec![1],
                partition_epoch: 3,
                replicas: None,
            }
        );
        assert_eq!(record.to_json().unwrap(), old.to_vec());
    }

    #[test]
    fn register_broker_without_an_external_address_reads_and_writes_the_old_shape() {
        let old = br#"{"type":"RegisterBroker","broker_id":1,"address":"broker-1:7070","rack":null,"incarnation":2}"#;
        let record = MetadataRecord::from_json(old).unwrap();
        assert_eq!(
            record,
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                address: "broker-1:7070".into(),
                rack: None,
                incarnation: 2,
                external_address: None,
            }
        );
        assert_eq!(record.to_json().unwrap(), old.to_vec());
        let with_external = MetadataRecord::RegisterBroker {
            broker_id: 1,
            address: "broker-1:7070".into(),
            rack: None,
            incarnation: 3,
            external_address: Some("127.0.0.1:17070".into()),
        };
        let json = with_external.to_json().unwrap();
        assert_eq!(MetadataRecord::from_json(&json).unwrap(), with_external);
    }

    #[test]
    fn json_is_tagged_with_the_record_type() {
        let json = String::from_utf8(
            MetadataRecord::DeleteTopic {
                topic_id: "ab".into(),
            }
            .to_json()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(json, r#"{"type":"DeleteTopic","topic_id":"ab"}"#);
    }

    #[test]
    fn unknown_type_or_garbage_is_an_invalid_record() {
        for bad in [
            &br#"{"type":"Nope"}"#[..],
            br#"{"topic_id":"ab"}"#,
            b"\xff\x00",
            b"",
        ] {
            assert!(matches!(
                MetadataRecord::from_json(bad),
                Err(ControllerError::InvalidRecord { .. })
            ));
        }
    }
}
