//! The readiness rule of `GET /readyz`: a broker is ready when its logs are recovered,
//! it is registered with the controller (for a one-node cluster: its one-voter quorum
//! is up and has registered it), a controller leader is known and its gRPC listener is
//! bound; from the first step of a shutdown it is `shutting_down` whatever else holds.
//!
//! [`judge`] is the rule, pure, over [`Facts`]; [`Lifecycle`] holds the facts only the
//! binary knows (listener bound, shutdown begun), set once each, read by every request,
//! and tells whoever follows readiness (gRPC health, `service/health.rs`) when one is set.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// What readiness is decided from, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The data directory is open and every log recovered (the node has started).
    pub recovered: bool,
    /// This broker's registration is applied in its metadata.
    pub registered: bool,
    /// The controller leader this broker's voter knows, if any.
    pub controller_leader: Option<i32>,
    /// The gRPC listener accepts connections.
    pub listeners_bound: bool,
    /// The first shutdown signal has arrived.
    pub shutting_down: bool,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// Not ready yet; each reason is one unmet condition.
    Booting(Vec<&'static str>),
    ShuttingDown,
}

pub const REASON_RECOVERING: &str = "log recovery in progress";
pub const REASON_NOT_REGISTERED: &str = "not registered with the controller";
pub const REASON_NO_CONTROLLER: &str = "no controller leader known";
pub const REASON_LISTENERS: &str = "listeners not bound";
pub const REASON_SHUTTING_DOWN: &str = "shutdown in progress";

/// The readiness rule.
pub fn judge(facts: &Facts) -> Verdict {
    if facts.shutting_down {
        return Verdict::ShuttingDown;
    }
    let mut reasons = Vec::new();
    if !facts.recovered {
        // Nothing else can be known before the node exists.
        reasons.push(REASON_RECOVERING);
    } else {
        if !facts.registered {
            reasons.push(REASON_NOT_REGISTERED);
        }
        if facts.controller_leader.is_none() {
            reasons.push(REASON_NO_CONTROLLER);
        }
    }
    if !facts.listeners_bound {
        reasons.push(REASON_LISTENERS);
    }
    if reasons.is_empty() {
        Verdict::Ready
    } else {
        Verdict::Booting(reasons)
    }
}

impl Verdict {
    /// 200 when ready, else 503.
    pub fn status_code(&self) -> u16 {
        match self {
            Verdict::Ready => 200,
            Verdict::Booting(_) | Verdict::ShuttingDown => 503,
        }
    }

    /// The JSON body: `{"status":"ready"}`, or
    /// `{"status":"booting"|"shutting_down","reasons":[...]}`.
    pub fn to_json(&self) -> String {
        let (status, reasons): (&str, &[&str]) = match self {
            Verdict::Ready => return r#"{"status":"ready"}"#.to_owned(),
            Verdict::Booting(reasons) => ("booting", reasons),
            Verdict::ShuttingDown => ("shutting_down", &[REASON_SHUTTING_DOWN]),
        };
        // Serializing a list of strings cannot fail.
        let reasons = serde_json::to_string(reasons).unwrap_or_else(|_| "[]".to_owned());
        format!(r#"{{"status":"{status}","reasons":{reasons}}}"#)
    }
}

/// The facts set by the binary as it starts and stops.
#[derive(Debug)]
pub struct Lifecycle {
    listeners_bound: AtomicBool,
    shutting_down: AtomicBool,
    /// Bumped after each fact is set; its value means nothing.
    changes: watch::Sender<()>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            listeners_bound: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            changes: watch::Sender::new(()),
        }
    }
}

impl Lifecycle {
    /// The gRPC listener accepts connections.
    pub fn listeners_bound(&self) {
        self.listeners_bound.store(true, Ordering::Release);
        self.changes.send_modify(|_| {});
    }

    /// The first step of a shutdown: `/readyz` answers `shutting_down` from now on.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.changes.send_modify(|_| {});
    }

    /// A receiver that sees a change each time a fact is set (after it is set).
    pub fn changes(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }

    pub fn is_listening(&self) -> bool {
        self.listeners_bound.load(Ordering::Acquire)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ready_facts() -> Facts {
        Facts {
            recovered: true,
            registered: true,
            controller_leader: Some(1),
            listeners_bound: true,
            shutting_down: false,
        }
    }

    #[test]
    fn a_recovered_registered_listening_broker_with_a_controller_is_ready() {
        let verdict = judge(&ready_facts());
        assert_eq!(verdict, Verdict::Ready);
        assert_eq!(verdict.status_code(), 200);
        assert_eq!(verdict.to_json(), r#"{"status":"ready"}"#);
    }

    #[test]
    fn a_broker_still_recovering_is_booting_and_says_so() {
        let facts = Facts {
            recovered: false,
            registered: false,
            controller_leader: None,
            listeners_bound: false,
            shutting_down: false,
        };
        let verdict = judge(&facts);
        assert_eq!(
            verdict,
            Verdict::Booting(vec![REASON_RECOVERING, REASON_LISTENERS])
        );
        assert_eq!(verdict.status_code(), 503);
        assert_eq!(
            verdict.to_json(),
            r#"{"status":"booting","reasons":["log recovery in progress","listeners not bound"]}"#
        );
    }

    #[test]
    fn each_missing_condition_is_one_reason() {
        let cases = [
            (
                Facts {
                    registered: false,
                    ..ready_facts()
                },
                vec![REASON_NOT_REGISTERED],
            ),
            (
                Facts {
                    controller_leader: None,
                    ..ready_facts()
                },
                vec![REASON_NO_CONTROLLER],
            ),
            (
                Facts {
                    listeners_bound: false,
                    ..ready_facts()
                },
                vec![REASON_LISTENERS],
            ),
            (
                Facts {
                    registered: false,
                    controller_leader: None,
                    ..ready_facts()
                },
                vec![REASON_NOT_REGISTERED, REASON_NO_CONTROLLER],
            ),
        ];
        for (facts, reasons) in cases {
            assert_eq!(judge(&facts), Verdict::Booting(reasons), "{facts:?}");
        }
    }

    #[test]
    fn shutting_down_wins_over_everything_else() {
        for facts in [
            ready_facts(),
            Facts {
                recovered: false,
                ..Facts::default()
            },
        ] {
            let verdict = judge(&Facts {
                shutting_down: true,
                ..facts
            });
            assert_eq!(verdict, Verdict::ShuttingDown);
            assert_eq!(verdict.status_code(), 503);
            assert_eq!(
                verdict.to_json(),
                r#"{"status":"shutting_down","reasons":["shutdown in progress"]}"#
            );
        }
    }

    #[test]
    fn the_lifecycle_flags_start_unset_and_stay_set() {
        let lifecycle = Lifecycle::default();
        assert!(!lifecycle.is_listening() && !lifecycle.is_shutting_down());
        lifecycle.listeners_bound();
        lifecycle.shutting_down();
        lifecycle.shutting_down();
        assert!(lifecycle.is_listening() && lifecycle.is_shutting_down());
    }

    #[test]
    fn setting_a_fact_is_seen_as_a_change() {
        let lifecycle = Lifecycle::default();
        let mut changes = lifecycle.changes();
        assert!(!changes.has_changed().unwrap());
        lifecycle.shutting_down();
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        lifecycle.listeners_bound();
        assert!(changes.has_changed().unwrap());
    }
}
