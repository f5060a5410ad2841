//! [`Voters`]: the controller quorum's members, from `--controller-voters`
//! (`1@127.0.0.1:7070,2@127.0.0.2:7070,3@127.0.0.3:7070`): each voter's broker id and the
//! `host:port` of its gRPC listener. The set is static: every broker of a cluster is given
//! the same list, and it must name the broker it is given to.

use std::collections::BTreeMap;
use std::fmt;

/// Why a `--controller-voters` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VotersError {
    #[error("--controller-voters is empty")]
    Empty,
    #[error("--controller-voters entry {entry:?} is not <id>@<host>:<port>: {reason}")]
    Unparsable { entry: String, reason: String },
    #[error("--controller-voters names voter {id} twice")]
    DuplicateId { id: i32 },
    #[error("--controller-voters names the address {address} twice (voters {first} and {second})")]
    DuplicateAddress {
        address: String,
        first: i32,
        second: i32,
    },
    #[error("--controller-voters does not name this broker (--node-id {node_id}); in combined mode every broker is a voter, so list it with the address of its own listener")]
    MissingSelf { node_id: i32 },
}

/// The voters of the controller quorum, by broker id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voters {
    voters: BTreeMap<i32, String>,
}

impl Voters {
    /// A quorum of one: this broker alone (the default, a one-node cluster).
    pub fn single(node_id: i32, address: &str) -> Voters {
        Voters {
            voters: BTreeMap::from([(node_id, address.to_owned())]),
        }
    }

    /// Parses `1@host:port,2@host:port,…` and checks it names `node_id`.
    pub fn parse(value: &str, node_id: i32) -> Result<Voters, VotersError> {
        let mut voters = BTreeMap::new();
        let mut by_address: BTreeMap<String, i32> = BTreeMap::new();
        for entry in value.split(',').map(str::trim) {
            if entry.is_empty() {
                if value.trim().is_empty() {
                    return Err(VotersError::Empty);
                }
                return Err(VotersError::Unparsable {
                    entry: entry.to_owned(),
                    reason: "an empty entry".into(),
                });
            }
            let unparsable = |reason: &str| VotersError::Unparsable {
                entry: entry.to_owned(),
                reason: reason.to_owned(),
            };
            let (id, address) = entry
                .split_once('@')
                .ok_or_else(|| unparsable("no '@' between the id and the address"))?;
            let id: i32 = id
                .trim()
                .parse()
                .map_err(|_| unparsable("the id is not a number"))?;
            if id < 0 {
                return Err(unparsable("the id is negative"));
            }
            let address = address.trim();
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| unparsable("the address has no port"))?;
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(unparsable("the host is empty"));
            }
            match port.parse::<u16>() {
                Ok(port) if port != 0 => {}
                _ => return Err(unparsable("the port is not a number from 1 to 65535")),
            }
            if voters.insert(id, address.to_owned()).is_some() {
                return Err(VotersError::DuplicateId { id });
            }
            if let Some(first) = by_address.insert(address.to_owned(), id) {
                return Err(VotersError::DuplicateAddress {
                    address: address.to_owned(),
                    first,
                    second: id,
                });
            }
        }
        if voters.is_empty() {
            return Err(VotersError::Empty);
        }
        if !voters.contains_key(&node_id) {
            return Err(VotersError::MissingSelf { node_id });
        }
        Ok(Voters { voters })
    }

    pub fn len(&self) -> usize {
        self.voters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Voter ids and addresses, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &str)> {
        self.voters
            .iter()
            .map(|(id, address)| (*id, address.as_str()))
    }

    pub fn address(&self, id: i32) -> Option<&str> {
        self.voters.get(&id).map(String::as_str)
    }
}

impl fmt::Display for Voters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .voters
            .iter()
            .map(|(id, address)| format!("{id}@{address}"))
            .collect();
        f.write_str(&entries.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn three_voters_parse_and_print_back() {
        let text = "1@127.0.0.1:7070,2@127.0.0.2:7070,3@127.0.0.3:7070";
        let voters = Voters::parse(text, 2).unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(voters.address(3), Some("127.0.0.3:7070"));
        assert_eq!(voters.to_string(), text);
        let spaced = Voters::parse(" 1@a:1 , 2@b:2 ", 1).unwrap();
        assert_eq!(spaced.to_string(), "1@a:1,2@b:2");
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let cases: [(&str, i32, VotersError); 4] = [
            ("", 1, VotersError::Empty),
            (
                "1@127.0.0.1:7070,1@127.0.0.2:7070",
                1,
                VotersError::DuplicateId { id: 1 },
            ),
            (
                "1@127.0.0.1:7070,2@127.0.0.1:7070",
                1,
                VotersError::DuplicateAddress {
                    address: "127.0.0.1:7070".into(),
                    first: 1,
                    second: 2,
                },
            ),
            (
                "2@127.0.0.2:7070,3@127.0.0.3:7070",
                1,
                VotersError::MissingSelf { node_id: 1 },
            ),
        ];
        for (text, node_id, expected) in cases {
            assert_eq!(
                Voters::parse(text, node_id).unwrap_err(),
                expected,
                "{text}"
            );
        }
        for unparsable in [
            "1@127.0.0.1",
            "x@127.0.0.1:7070",
            "1127.0.0.1:7070",
            "1@:7070",
            "1@h:0",
            "1@h:99999",
            "1@h:1,,2@g:2",
            "-1@h:1",
        ] {
            let error = Voters::parse(unparsable, 1).unwrap_err();
            assert!(
                matches!(error, VotersError::Unparsable { .. }),
                "{unparsable}: {error}"
            );
        }
    }
}
