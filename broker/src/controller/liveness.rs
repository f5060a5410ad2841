//! [`Leases`]: which brokers the active controller still hears from.
//!
//! A broker holds a lease of fixed length, renewed by each heartbeat. When it lapses the
//! controller fences the broker (`election::fence`). Times are `Instant`s of the
//! monotonic clock, always passed in, never read here: a wall-clock jump (fault 14 of
//! `docs/RELIABILITY.md`) can neither expire nor extend a lease, and tests drive time by
//! hand.
//!
//! Leases are the active controller's memory only, never written to the metadata log: a
//! newly elected controller knows nothing of the heartbeats its predecessor received, so
//! [`Leases::on_elected`] gives every broker a full lease from the election (KRaft does the
//! same). A broker that died just before the election is therefore fenced one lease later
//! than it would have been, never earlier.
//!
//! Each lease belongs to one incarnation of the broker (one process): a heartbeat from an
//! older incarnation is refused, so a paused old process cannot keep the new one's lease
//! alive, nor revive its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_proto::types::BrokerId;

/// The lease of every tracked broker. See the module docs.
#[derive(Debug, Clone)]
pub struct Leases {
    lease: Duration,
    brokers: BTreeMap<BrokerId, Lease>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    incarnation: u64,
    /// `None`: `now + lease` does not fit an `Instant`; such a lease never lapses.
    expires_at: Option<Instant>,
}

/// A heartbeat from an incarnation older than the one the lease belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("broker {broker} incarnation {incarnation} is stale (the current one is {current})")]
pub struct StaleIncarnation {
    pub broker: BrokerId,
    pub incarnation: u64,
    pub current: u64,
}

impl Leases {
    /// No broker tracked yet; each lease lasts `lease` from its last renewal.
    pub fn new(lease: Duration) -> Leases {
        Leases {
            lease,
            brokers: BTreeMap::new(),
        }
    }

    /// This controller became active at `now`: forget every lease of an earlier term and
    /// give each of `brokers` (id, registered incarnation) a full lease from `now`.
    pub fn on_elected(&mut self, now: Instant, brokers: impl IntoIterator<Item = (BrokerId, u64)>) {
        let expires_at = now.checked_add(self.lease);
        self.brokers = brokers
            .into_iter()
            .map(|(broker, incarnation)| {
                let lease = Lease {
                    incarnation,
                    expires_at,
                };
                (broker, lease)
            })
            .collect();
    }

    /// Renews the lease of `broker` from `now`. A newer incarnation (a restart) takes the
    /// lease over; an older one is refused and changes nothing. An untracked broker starts
    /// being tracked.
    pub fn heartbeat(
        &mut self,
        broker: BrokerId,
        incarnation: u64,
        now: Instant,
    ) -> Result<(), StaleIncarnation> {
        if let Some(current) = self.brokers.get(&broker) {
            if incarnation < current.incarnation {
                return Err(StaleIncarnation {
                    broker,
                    incarnation,
                    current: current.incarnation,
                });
            }
        }
        let lease = Lease {
            incarnation,
            expires_at: now.checked_add(self.lease),
        };
        self.brokers.insert(broker, lease);
        Ok(())
    }

    /// The brokers whose lease has lapsed at `now` (a lease of length L renewed at t lapses
    /// at t + L), in id order. They stay tracked until [`Leases::forget`] or a heartbeat.
    pub fn expired(&self, now: Instant) -> Vec<BrokerId> {
        self.brokers
            .iter()
            .filter(|(_, lease)| lease.expires_at.is_some_and(|deadline| now >= deadline))
            .map(|(broker, _)| *broker)
            .collect()
    }

    /// Stops tracking `broker` (it was fenced or shut down); its next heartbeat tracks it
    /// again.
    pub fn forget(&mut self, broker: BrokerId) {
        self.brokers.remove(&broker);
    }

    /// The incarnation the lease of `broker` belongs to, if it is tracked.
    pub fn incarnation(&self, broker: BrokerId) -> Option<u64> {
        self.brokers.get(&broker).map(|lease| lease.incarnation)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const LEASE: Duration = Duration::from_secs(6);

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn a_new_controller_gives_every_broker_a_full_lease() {
        let start = Instant::now();
        let mut leases = Leases::new(LEASE);
        leases.heartbeat(BrokerId(9), 1, start).unwrap();
        leases.on_elected(at(start, 1_000), [(BrokerId(1), 3), (BrokerId(2), 1)]);
        assert_eq!(
            leases.incarnation(BrokerId(9)),
            None,
            "an earlier term's lease"
        );
        assert!(leases.expired(at(start, 6_999)).is_empty());
        assert_eq!(leases.expired(at(start, 7_000)), [BrokerId(1), BrokerId(2)]);
    }

    #[test]
    fn heartbeats_renew_the_lease_from_their_own_time() {
        let start = Instant::now();
        let mut leases = Leases::new(LEASE);
        leases.on_elected(start, [(BrokerId(1), 1), (BrokerId(2), 1)]);
        leases.heartbeat(BrokerId(1), 1, at(start, 5_000)).unwrap();
        assert_eq!(leases.expired(at(start, 6_000)), [BrokerId(2)]);
        assert!(leases.expired(at(start, 10_999)).contains(&BrokerId(2)));
        assert_eq!(
            leases.expired(at(start, 11_000)),
            [BrokerId(1), BrokerId(2)]
        );
        leases.forget(BrokerId(2));
        assert_eq!(leases.expired(at(start, 11_000)), [BrokerId(1)]);
        leases.heartbeat(BrokerId(2), 1, at(start, 11_000)).unwrap();
        assert_eq!(leases.expired(at(start, 11_000)), [BrokerId(1)]);
    }

    #[test]
    fn an_older_incarnation_is_refused_and_a_newer_one_takes_over() {
        let start = Instant::now();
        let mut leases = Leases::new(LEASE);
        leases.on_elected(start, [(BrokerId(1), 4)]);
        let stale = leases.heartbeat(BrokerId(1), 3, at(start, 5_000));
        assert_eq!(
            stale,
            Err(StaleIncarnation {
                broker: BrokerId(1),
                incarnation: 3,
                current: 4
            })
        );
        assert_eq!(
            leases.expired(at(start, 6_000)),
            [BrokerId(1)],
            "the refused heartbeat renewed nothing"
        );
        leases.heartbeat(BrokerId(1), 5, at(start, 6_000)).unwrap();
        assert_eq!(leases.incarnation(BrokerId(1)), Some(5));
        assert!(leases.heartbeat(BrokerId(1), 4, at(start, 6_000)).is_err());
        assert!(leases.expired(at(start, 11_999)).is_empty());
    }

    #[test]
    fn a_lease_past_the_end_of_time_never_lapses() {
        let start = Instant::now();
        let mut leases = Leases::new(Duration::MAX);
        leases.heartbeat(BrokerId(1), 1, start).unwrap();
        assert!(leases.expired(at(start, 1 << 40)).is_empty());
    }
}
