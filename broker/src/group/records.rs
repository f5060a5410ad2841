//! The records of `__consumer_offsets`: committed offsets and group snapshots, as
//! versioned binary keys and values (being written).
