//! Tests of the group state machine (being written).
