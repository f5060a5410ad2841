//! The types openraft is instantiated with: what one Raft log entry carries ([`Command`])
//! and what applying it answers ([`CommandOutcome`]).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::controller::metadata_record::MetadataRecord;

openraft::declare_raft_types!(
    /// Strata's Raft: node ids are broker ids (as `u64`), nodes are addressed by their
    /// gRPC listener, entries carry [`Command`]s, snapshots are JSON in memory.
    pub StrataRaft:
        D = Command,
        R = CommandOutcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<StrataRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The application data of one Raft log entry: metadata records written together, as
/// one atomic controller operation. Applying it applies every record or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub records: Vec<MetadataRecord>,
}

/// What applying a [`Command`] gave: the metadata version after it, or why the state
/// machine refused it (then nothing of it was applied, on every voter alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub version: i64,
    pub refused: Option<String>,
}

pub type NodeId = u64;
pub type Raft = openraft::Raft<StrataRaft>;
pub type Entry = openraft::Entry<StrataRaft>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<StrataRaft>;
