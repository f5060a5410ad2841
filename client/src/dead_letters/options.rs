//! [`Replay`], what a replay is asked to do, and [`ReplayReport`], what it found and did.

use std::collections::BTreeMap;

use super::replay_record::ReplayFilter;

/// Where replayed records go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayTarget {
    /// The group's first retry topic (`<topic>.<group>.retry.0`): only the failing group
    /// reads it, the records are due at once and get every attempt again.
    #[default]
    Retry,
    /// The source topic, which **every** group reading it consumes again; needs
    /// [`Replay::confirm_every_group`].
    Source,
    /// Any other existing topic, with at least as many partitions as the records' numbers
    /// need.
    Topic(String),
}

/// Where each partition of the dead-letter topic starts. A replay never starts before
/// the progress an earlier replay committed (group `strata-dlt-replay.<dlt>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayStart {
    /// The log start (or the committed progress).
    #[default]
    Start,
    /// This offset, inclusive.
    Offset(i64),
    /// The first record with a timestamp at or after this time (ms since the Unix epoch).
    Time(i64),
}

/// A replay of dead-lettered records: a dry run unless [`Replay::execute`] is called.
///
/// ```no_run
/// # async fn example(client: strata_client::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use strata_client::Replay;
///
/// let dead_letters = client.dead_letters("orders", "billing")?;
/// let plan = dead_letters.replay(&Replay::new()).await?; // changes nothing
/// println!("{} records would be replayed", plan.matched);
/// let done = dead_letters.replay(&Replay::new().execute()).await?;
/// println!("{} records replayed to {}", done.matched, done.target);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Replay {
    pub(crate) target: ReplayTarget,
    pub(crate) start: ReplayStart,
    pub(crate) stop_offset: Option<i64>,
    pub(crate) max_records: Option<u64>,
    pub(crate) filter: ReplayFilter,
    pub(crate) execute: bool,
    pub(crate) every_group_confirmed: bool,
    pub(crate) sample_records: usize,
}

impl Default for Replay {
    fn default() -> Replay {
        Replay {
            target: ReplayTarget::Retry,
            start: ReplayStart::Start,
            stop_offset: None,
            max_records: None,
            filter: ReplayFilter::default(),
            execute: false,
            every_group_confirmed: false,
            sample_records: 5,
        }
    }
}

impl Replay {
    /// A dry run of every record not replayed yet, to the group's first retry topic.
    pub fn new() -> Replay {
        Replay::default()
    }

    pub fn to(mut self, target: ReplayTarget) -> Replay {
        self.target = target;
        self
    }

    pub fn start(mut self, start: ReplayStart) -> Replay {
        self.start = start;
        self
    }

    /// Stops each partition before this offset (exclusive). Without it, at the end
    /// offsets seen when the replay begins.
    pub fn stop_offset(mut self, offset: i64) -> Replay {
        self.stop_offset = Some(offset);
        self
    }

    /// Replays at most this many records in all.
    pub fn max_records(mut self, records: u64) -> Replay {
        self.max_records = Some(records);
        self
    }

    /// Takes only records whose header `key` has this value (UTF-8 text), e.g.
    /// `.filter("strata.error.type", "billing::PaymentDeclined")`. Several filters must all
    /// hold. Records passed over are not offered again by a later replay.
    pub fn filter(mut self, key: impl Into<String>, value: impl Into<String>) -> Replay {
        self.filter.add(key.into(), value.into());
        self
    }

    /// Produces the records and commits the progress; without it, a dry run.
    pub fn execute(mut self) -> Replay {
        self.execute = true;
        self
    }

    /// Needed for [`ReplayTarget::Source`]: the caller knows every group reading the
    /// source topic gets the records again.
    pub fn confirm_every_group(mut self) -> Replay {
        self.every_group_confirmed = true;
        self
    }

    /// How many records [`ReplayReport::sample`] shows (default 5).
    pub fn sample_records(mut self, records: usize) -> Replay {
        self.sample_records = records;
        self
    }

    pub fn is_dry_run(&self) -> bool {
        !self.execute
    }
}

/// One record shown as a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplaySample {
    pub partition: i32,
    pub offset: i64,
    /// The key as (lossy) UTF-8 text.
    pub key: Option<String>,
    /// `strata.error.type` (`-` without it).
    pub error_type: String,
    /// `strata.error.message`, when there is one.
    pub error_message: Option<String>,
}

/// What happened to one partition of the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayPartition {
    pub partition: i32,
    /// The first offset read.
    pub start_offset: i64,
    /// The offset after the last record read: what the progress is (or, for a dry run,
    /// would be) committed to.
    pub next_offset: i64,
    /// Records taken (replayed, or for a dry run, that would be).
    pub records: u64,
}

/// The outcome of [`DeadLetters::replay`](crate::DeadLetters::replay).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    pub dlt: String,
    pub target: String,
    /// `false` for a dry run: nothing was produced or committed.
    pub executed: bool,
    /// The group holding the replay's progress, `strata-dlt-replay.<dlt>`.
    pub progress_group: String,
    /// Records read in the range.
    pub examined: u64,
    /// Records taken (replayed, or for a dry run, that would be).
    pub matched: u64,
    /// Taken records by `strata.error.type` (`-` without it).
    pub by_error_type: BTreeMap<String, u64>,
    pub sample: Vec<ReplaySample>,
    /// Partitions that had records to read, by number.
    pub partitions: Vec<ReplayPartition>,
}
