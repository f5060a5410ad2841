//! [`Firewall`]: network partitions between loopback addresses on one Linux machine, made
//! of iptables DROP rules (so it needs root).
//!
//! Cutting the link between 127.0.0.a and 127.0.0.b inserts two rules at the top of the
//! `INPUT` chain, one per direction, that drop TCP packets from one address to the other
//! when either port is one of the firewall's ports (the cluster's listen port). Packets
//! vanish, nothing answers: a connect hangs and an open connection stalls, as across a
//! broken switch. Loopback packets do cross `INPUT` (checked; `OUTPUT` works as well).
//! Scoping the rules to the ports keeps clusters of parallel tests, which use the same
//! addresses with different ports, out of each other's partitions.
//!
//! Only connections that really come *from* 127.0.0.a are cut: the kernel gives every
//! loopback connection the source 127.0.0.1 unless the socket was bound first, so brokers
//! bind their outgoing connections to their own listen address (and
//! [`crate::broker_process::connect_from`] does the same for tests).
//!
//! Every rule carries the comment `strata-test-<pid>-<counter>-<random>`, unique to one
//! `Firewall`. Healing deletes rules by their exact text, and dropping the `Firewall` (a
//! test that ends, or panics) deletes every rule carrying its comment, so it never
//! touches another test's rules. Rules left by a process that was SIGKILLed can be found
//! with `iptables -S INPUT | grep strata-test-`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Prefix of the comment on every rule a `Firewall` inserts.
pub const RULE_COMMENT_PREFIX: &str = "strata-test-";

/// The chain the rules go into.
const CHAIN: &str = "INPUT";

/// Seconds iptables may wait for the xtables lock (another test changing rules).
const LOCK_WAIT_SECONDS: &str = "10";

/// Why a link could not be cut or healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallError {
    /// iptables cannot be used here (not installed, not root): tests of partitions must
    /// skip, and say so ([`skip_unless_available`]).
    Unavailable { reason: String },
    /// iptables ran and refused a command.
    Failed { command: String, stderr: String },
}

impl FirewallError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, FirewallError::Unavailable { .. })
    }
}

impl fmt::Display for FirewallError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallError::Unavailable { reason } => {
                write!(
                    formatter,
                    "iptables is unavailable, so links cannot be cut: {reason}"
                )
            }
            FirewallError::Failed { command, stderr } => {
                write!(formatter, "`{command}` failed: {}", stderr.trim())
            }
        }
    }
}

impl std::error::Error for FirewallError {}

/// Whether this process can change iptables rules: checked once (`iptables -S INPUT`).
pub fn available() -> Result<(), FirewallError> {
    static AVAILABLE: OnceLock<Result<(), FirewallError>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| iptables(&["-S", CHAIN]).map(drop).map_err(unavailable))
        .clone()
}

/// True when iptables is available; otherwise prints, loudly, that `test` skips its
/// partition cases and why, and returns false.
pub fn skip_unless_available(test: &str) -> bool {
    match available() {
        Ok(()) => true,
        Err(error) => {
            eprintln!("SKIPPED: {test}: its network partition cases do not run: {error}");
            false
        }
    }
}

fn unavailable(error: FirewallError) -> FirewallError {
    let reason = match error {
        FirewallError::Unavailable { reason } => reason,
        FirewallError::Failed { command, stderr } => {
            format!("`{command}` failed: {}", stderr.trim())
        }
    };
    FirewallError::Unavailable { reason }
}

/// The iptables rules of one test; see the module documentation.
#[derive(Debug)]
pub struct Firewall {
    comment: String,
    ports: Vec<u16>,
    /// Cut links, each as (lower address, higher address).
    cut: BTreeSet<(Ipv4Addr, Ipv4Addr)>,
    /// A rule was ever inserted: `drop` has something to look for.
    inserted: bool,
}

impl Firewall {
    /// A firewall whose rules drop TCP packets to or from any of `ports` (at most 15, a
    /// limit of iptables' `multiport`). Inserts nothing yet.
    pub fn new(ports: &[u16]) -> Firewall {
        assert!(
            (1..=15).contains(&ports.len()),
            "a firewall covers 1 to 15 ports, not {}",
            ports.len()
        );
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let comment = format!(
            "{RULE_COMMENT_PREFIX}{}-{}-{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        Firewall {
            comment,
            ports: ports.to_vec(),
            cut: BTreeSet::new(),
            inserted: false,
        }
    }

    /// The comment on each of this firewall's rules.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// Drops traffic between `a` and `b`, both ways. Cutting a cut link does nothing.
    pub fn cut(&mut self, a: Ipv4Addr, b: Ipv4Addr) -> Result<(), FirewallError> {
        available()?;
        let link = link(a, b);
        if self.cut.contains(&link) {
            return Ok(());
        }
        self.inserted = true;
        iptables(&self.rule("-I", a, b))?;
        if let Err(error) = iptables(&self.rule("-I", b, a)) {
            // Do not leave half a cut behind.
            let _ = iptables(&self.rule("-D", a, b));
            return Err(error);
        }
        self.cut.insert(link);
        Ok(())
    }

    /// Restores the link between `a` and `b`. Healing a link that is not cut does nothing.
    pub fn heal(&mut self, a: Ipv4Addr, b: Ipv4Addr) -> Result<(), FirewallError> {
        let link = link(a, b);
        if !self.cut.contains(&link) {
            return Ok(());
        }
        iptables(&self.rule("-D", a, b))?;
        iptables(&self.rule("-D", b, a))?;
        self.cut.remove(&link);
        Ok(())
    }

    /// Restores every link this firewall cut.
    pub fn heal_all(&mut self) -> Result<(), FirewallError> {
        for (a, b) in self.cut.clone() {
            self.heal(a, b)?;
        }
        Ok(())
    }

    /// The links cut now, each as (lower address, higher address).
    pub fn cut_links(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.cut.iter().copied()
    }

    /// This firewall's rules as iptables has them (`iptables -S INPUT` lines).
    pub fn rules(&self) -> Result<Vec<String>, FirewallError> {
        rules_with_comment(&self.comment)
    }

    /// `iptables <action> INPUT` arguments of the rule dropping `from` → `to`.
    fn rule(&self, action: &str, from: Ipv4Addr, to: Ipv4Addr) -> Vec<String> {
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        [
            action,
            CHAIN,
            "-s",
            &from.to_string(),
            "-d",
            &to.to_string(),
            "-p",
            "tcp",
            "-m",
            "multiport",
            "--ports",
            &ports.join(","),
            "-m",
            "comment",
            "--comment",
            &self.comment,
            "-j",
            "DROP",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect()
    }
}

impl Drop for Firewall {
    /// Deletes every rule carrying this firewall's comment, whatever `cut` recorded.
    fn drop(&mut self) {
        if !self.inserted {
            return;
        }
        match rules_with_comment(&self.comment) {
            Ok(rules) => {
                for rule in rules {
                    // `-A INPUT <spec>` → `-D INPUT <spec>`; our comment has no spaces, so
                    // splitting on whitespace gives back the arguments.
                    let Some(spec) = rule.strip_prefix("-A ") else {
                        continue;
                    };
                    let mut args = vec!["-D"];
                    args.extend(spec.split_whitespace());
                    if let Err(error) = iptables(&args) {
                        eprintln!("firewall: could not delete `{rule}`: {error}");
                    }
                }
            }
            Err(error) => eprintln!(
                "firewall: could not list the rules tagged {} to delete them: {error}",
                self.comment
            ),
        }
    }
}

fn link(a: Ipv4Addr, b: Ipv4Addr) -> (Ipv4Addr, Ipv4Addr) {
    (a.min(b), a.max(b))
}

/// The `iptables -S INPUT` lines whose comment is exactly `comment`.
pub fn rules_with_comment(comment: &str) -> Result<Vec<String>, FirewallError> {
    let listing = iptables(&["-S", CHAIN])?;
    Ok(listing
        .lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.windows(2).any(|pair| pair == ["--comment", comment])
        })
        .map(str::to_owned)
        .collect())
}

/// Runs `iptables -w <seconds> <args>` and returns its stdout.
fn iptables<S: AsRef<str>>(args: &[S]) -> Result<String, FirewallError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let command = format!("iptables {}", args.join(" "));
    let output = Command::new("iptables")
        .arg("-w")
        .arg(LOCK_WAIT_SECONDS)
        .args(&args)
        .output()
        .map_err(|error| FirewallError::Unavailable {
            reason: format!("cannot run `{command}`: {error}"),
        })?;
    if !output.status.success() {
        return Err(FirewallError::Failed {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
