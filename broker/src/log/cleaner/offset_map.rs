//! [`OffsetMap`]: the newest offset of each key in the dirty part of a log, within a
//! memory budget (Kafka's `log.cleaner.dedupe.buffer.size`).
//!
//! Keys are kept whole, not hashed (Kafka keeps a 16-byte MD5 of each): a hash collision
//! would make the cleaner drop the newest value of a key, and exact keys cost only memory,
//! which the budget bounds. A key counts its length plus [`ENTRY_OVERHEAD_BYTES`] against
//! the budget; once a new key would not fit, [`OffsetMap::insert`] refuses it and the
//! cleaner stops filling the map there (the rest of the dirty part waits for the next
//! pass). An update of a key already held always fits.

use std::collections::HashMap;

use strata_proto::types::Offset;

/// What one entry costs besides its key bytes: the `Vec` header, the offset, the hash
/// table's slot and control bytes, with room for the table's spare capacity.
pub const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Key → newest offset, bounded. See the module docs.
#[derive(Debug)]
pub struct OffsetMap {
    offsets: HashMap<Vec<u8>, Offset>,
    bytes: usize,
    bytes_max: usize,
}

impl OffsetMap {
    pub fn new(bytes_max: usize) -> OffsetMap {
        OffsetMap {
            offsets: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Records `offset` as the newest of `key` (offsets are inserted in increasing order).
    /// Returns `false`, changing nothing, when `key` is new and does not fit the budget.
    pub fn insert(&mut self, key: &[u8], offset: Offset) -> bool {
        if let Some(newest) = self.offsets.get_mut(key) {
            debug_assert!(*newest < offset, "offsets are inserted in increasing order");
            *newest = offset;
            return true;
        }
        let cost = key.len().saturating_add(ENTRY_OVERHEAD_BYTES);
        if self.bytes.saturating_add(cost) > self.bytes_max {
            return false;
        }
        self.bytes += cost;
        self.offsets.insert(key.to_vec(), offset);
        true
    }

    /// The newest offset of `key` in the map.
    pub fn newest(&self, key: &[u8]) -> Option<Offset> {
        self.offsets.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes counted against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_offset_and_refuses_new_keys_past_the_budget() {
        let mut map = OffsetMap::new(2 * (ENTRY_OVERHEAD_BYTES + 1));
        assert!(map.insert(b"a", Offset(1)));
        assert!(map.insert(b"b", Offset(2)));
        assert!(!map.insert(b"c", Offset(3)), "a third key does not fit");
        assert!(map.insert(b"a", Offset(4)), "updates always fit");
        assert_eq!(map.newest(b"a"), Some(Offset(4)));
        assert_eq!(map.newest(b"c"), None);
        assert_eq!(
            (map.len(), map.bytes()),
            (2, 2 * (ENTRY_OVERHEAD_BYTES + 1))
        );
    }
}
