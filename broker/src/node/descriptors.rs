//! The broker's descriptor budget: how many partitions it can host within the open-files
//! limit (`RLIMIT_NOFILE`) and the memory-map limit (`vm.max_map_count`) it runs under.
//!
//! What the broker holds open (docs/ARCHITECTURE.md, "Open files"):
//!
//! | what | descriptors | maps |
//! |---|---|---|
//! | each partition (its active segment) | 1 (`.log`), 2 with direct I/O | 2 (`.index`, `.timeindex`) |
//! | each sealed segment in the cache of open segments | 1, 2 with direct I/O | up to 3 |
//! | connections | 1 each | — |
//! | the rest: listener, runtime, lock file, metadata log, files being rolled or checkpointed, deleted files the reclaimer holds | [`FIXED_DESCRIPTORS`] | [`FIXED_MAPS`] |
//!
//! At start the broker raises its soft `RLIMIT_NOFILE` to the hard limit
//! ([`raise_open_files_limit`]), then [`DescriptorBudget::measure`]s what it got. A quarter
//! of the descriptors is kept for connections, an eighth (at most
//! [`SEALED_SEGMENTS_OPEN_DEFAULT`]) for sealed segments; what is left, after the fixed part,
//! bounds the partitions. [`DescriptorBudget::check_partitions`] refuses to start a broker
//! whose data directory holds more, and the controller refuses a topic creation or a
//! partition increase that would go past it (`controller::topic_validation`), with an
//! error that names the limit and how to raise it.

use std::io;
use std::path::Path;

use crate::log::open_segments::DEFAULT_CAPACITY;
use crate::log::reclaim::FILES_PENDING_MAX;
use crate::log::TopicPartition;

/// Descriptors the broker needs whatever its partitions: standard streams, the listener,
/// the runtime's event descriptors, the data directory lock, files being created by a roll
/// or rewritten by a checkpoint, plus the deleted files the reclaimer may hold.
pub const FIXED_DESCRIPTORS: u64 = 128 + FILES_PENDING_MAX as u64;

/// Memory maps the broker needs whatever its partitions: its binary and libraries, heap
/// arenas, thread stacks and their guard pages.
pub const FIXED_MAPS: u64 = 2048;

/// The most sealed segments whose files stay open (the cache of `log/open_segments.rs`),
/// when the descriptor limit allows it.
pub const SEALED_SEGMENTS_OPEN_DEFAULT: usize = DEFAULT_CAPACITY;

/// Linux's default `vm.max_map_count`, assumed where it cannot be read.
const MAP_COUNT_MAX_DEFAULT: u64 = 65_530;

/// The soft and hard open-files limits of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The process's `RLIMIT_NOFILE`.
pub fn open_files_limit() -> io::Result<OpenFilesLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the pointer, which points at a live,
    // properly aligned local.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OpenFilesLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (which only root can raise); returns
/// the limits before and after. An unlimited hard limit (`RLIM_INFINITY`) is not a value
/// Linux accepts for the soft limit of open files; the soft limit then goes to
/// `fs.nr_open`, the kernel's own bound.
pub fn raise_open_files_limit() -> io::Result<(OpenFilesLimit, OpenFilesLimit)> {
    let before = open_files_limit()?;
    let target = if before.hard == libc::RLIM_INFINITY {
        nr_open().unwrap_or(before.soft).max(before.soft)
    } else {
        before.hard
    };
    if target > before.soft {
        let limit = libc::rlimit {
            rlim_cur: target,
            rlim_max: before.hard,
        };
        // SAFETY: setrlimit reads one `rlimit` through the pointer, which points at a
        // live, properly aligned local.
        let result = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, open_files_limit()?))
}

/// `fs.nr_open`: the most descriptors the kernel lets one process have.
fn nr_open() -> Option<u64> {
    read_number(Path::new("/proc/sys/fs/nr_open"))
}

/// `vm.max_map_count`: the most memory maps one process may have.
pub fn map_count_max() -> Option<u64> {
    read_number(Path::new("/proc/sys/vm/max_map_count"))
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A data directory holds more partitions than the budget allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the data directory holds {partitions} partitions, but this broker can keep at most \
     {partitions_max} open: {limited_by}. The broker does not start, rather than fail \
     later with \"Too many open files\""
)]
pub struct BudgetExceeded {
    pub partitions: usize,
    pub partitions_max: usize,
    /// Which limit binds, and how to raise it.
    pub limited_by: String,
}

/// How many partitions and open sealed segments fit the limits. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    /// The soft `RLIMIT_NOFILE` in force.
    pub open_files_limit: u64,
    /// `vm.max_map_count`.
    pub map_count_max: u64,
    /// Whether segments are also opened with `O_DIRECT` (a second descriptor each).
    pub direct_io: bool,
}

impl DescriptorBudget {
    /// The budget of this process under its current limits.
    pub fn measure(direct_io: bool) -> io::Result<DescriptorBudget> {
        Ok(DescriptorBudget {
            open_files_limit: open_files_limit()?.soft,
            map_count_max: map_count_max().unwrap_or(MAP_COUNT_MAX_DEFAULT),
            direct_io,
        })
    }

    fn descriptors_per_segment(&self) -> u64 {
        if self.direct_io {
            2
        } else {
            1
        }
    }

    /// Descriptors kept for connections: a quarter of the limit.
    pub fn connection_descriptors(&self) -> u64 {
        self.open_files_limit / 4
    }

    /// How many sealed segments' files may stay open at once: an eighth of the
    /// descriptors, at most [`SEALED_SEGMENTS_OPEN_DEFAULT`], at least 1.
    pub fn sealed_segments_open_max(&self) -> usize {
        let eighth = self.open_files_limit / 8 / self.descriptors_per_segment();
        usize::try_from(eighth)
            .unwrap_or(usize::MAX)
            .clamp(1, SEALED_SEGMENTS_OPEN_DEFAULT)
    }

    /// Partitions the descriptors allow.
    fn partitions_max_by_descriptors(&self) -> u64 {
        let sealed = self.sealed_segments_open_max() as u64 * self.descriptors_per_segment();
        self.open_files_limit
            .saturating_sub(FIXED_DESCRIPTORS)
            .saturating_sub(self.connection_descriptors())
            .saturating_sub(sealed)
            / self.descriptors_per_segment()
    }

    /// Partitions the memory-map limit allows.
    fn partitions_max_by_maps(&self) -> u64 {
        let sealed = self.sealed_segments_open_max() as u64 * 3;
        self.map_count_max
            .saturating_sub(FIXED_MAPS)
            .saturating_sub(sealed)
            / 2
    }

    /// The most partitions this broker can host.
    pub fn partitions_max(&self) -> usize {
        let max = self
            .partitions_max_by_descriptors()
            .min(self.partitions_max_by_maps());
        usize::try_from(max).unwrap_or(usize::MAX)
    }

    /// Which limit bounds [`DescriptorBudget::partitions_max`], and how an operator
    /// raises it: a sentence for error messages.
    pub fn limited_by(&self) -> String {
        let max = self.partitions_max();
        if self.partitions_max_by_descriptors() <= self.partitions_max_by_maps() {
            format!(
                "its open-files limit (RLIMIT_NOFILE {}) allows {max} partitions with \
                 room for connections and open segments; raise the hard limit it is \
                 started with (`ulimit -Hn`, systemd LimitNOFILE=, docker --ulimit nofile=)",
                self.open_files_limit
            )
        } else {
            format!(
                "the memory-map limit (vm.max_map_count {}) allows {max} partitions; \
                 raise it with `sysctl vm.max_map_count=<n>`",
                self.map_count_max
            )
        }
    }

    /// `Err` when `partitions` (what the data directory holds) do not fit.
    pub fn check_partitions(&self, partitions: usize) -> Result<(), BudgetExceeded> {
        let partitions_max = self.partitions_max();
        if partitions <= partitions_max {
            return Ok(());
        }
        Err(BudgetExceeded {
            partitions,
            partitions_max,
            limited_by: self.limited_by(),
        })
    }
}

/// Why [`budget_at_start`] stops the broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read or raise the open-files limit (RLIMIT_NOFILE)")]
    Limit(#[source] io::Error),
    #[error("cannot count the partitions in {data_dir}")]
    DataDir {
        data_dir: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Exceeded(#[from] BudgetExceeded),
}

/// What `strata-broker` does before it opens its data directory: raises its soft
/// `RLIMIT_NOFILE` to the hard limit, measures the budget, logs both, and checks that the
/// partitions already in `data_dir` fit.
pub fn budget_at_start(data_dir: &Path, direct_io: bool) -> Result<DescriptorBudget, StartError> {
    let (before, after) = raise_open_files_limit().map_err(StartError::Limit)?;
    let budget = DescriptorBudget::measure(direct_io).map_err(StartError::Limit)?;
    let partitions = partition_dirs(data_dir).map_err(|source| StartError::DataDir {
        data_dir: data_dir.to_path_buf(),
        source,
    })?;
    tracing::info!(
        open_files_soft_before = before.soft,
        open_files_soft = after.soft,
        open_files_hard = after.hard,
        map_count_max = budget.map_count_max,
        partitions,
        partitions_max = budget.partitions_max(),
        sealed_segments_open_max = budget.sealed_segments_open_max(),
        connection_descriptors = budget.connection_descriptors(),
        "descriptor budget"
    );
    budget.check_partitions(partitions)?;
    Ok(budget)
}

/// The partition directories (`<topic>-<partition>`) in `data_dir`: what the log manager
/// will open. Directories set aside or being deleted do not count. A missing directory
/// holds none.
pub fn partition_dirs(data_dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut count = 0;
    for entry in entries {
        let entry = entry?;
        let is_partition = entry.file_type()?.is_dir()
            && entry
                .file_name()
                .to_str()
                .and_then(TopicPartition::parse_dir_name)
                .is_some();
        count += usize::from(is_partition);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn budget(open_files_limit: u64) -> DescriptorBudget {
        DescriptorBudget {
            open_files_limit,
            map_count_max: MAP_COUNT_MAX_DEFAULT,
            direct_io: false,
        }
    }

    #[test]
    fn the_budget_keeps_room_for_connections_and_open_segments() {
        let small = budget(1024);
        assert_eq!(small.sealed_segments_open_max(), 128);
        assert_eq!(small.connection_descriptors(), 256);
        assert_eq!(
            small.partitions_max() as u64,
            1024 - FIXED_DESCRIPTORS - 256 - 128
        );
        // The probe's limit: a 10,000-partition topic fits.
        let probe = budget(20_000);
        assert_eq!(
            probe.sealed_segments_open_max(),
            SEALED_SEGMENTS_OPEN_DEFAULT
        );
        assert!(
            probe.partitions_max() > 10_001,
            "{}",
            probe.partitions_max()
        );
        // Direct I/O doubles what each partition and open segment costs.
        let direct = DescriptorBudget {
            direct_io: true,
            ..probe
        };
        assert!(direct.partitions_max() < probe.partitions_max() / 2 + 1);
        // A tiny limit leaves nothing, but the cache keeps one segment.
        assert_eq!(budget(100).partitions_max(), 0);
        assert_eq!(budget(4).sealed_segments_open_max(), 1);
    }

    #[test]
    fn a_large_limit_is_bounded_by_the_map_count_and_says_so() {
        let large = budget(1 << 20);
        let by_maps = (MAP_COUNT_MAX_DEFAULT - FIXED_MAPS - 3 * 1024) / 2;
        assert_eq!(large.partitions_max() as u64, by_maps);
        assert!(large.limited_by().contains("vm.max_map_count"));
        assert!(budget(1024).limited_by().contains("RLIMIT_NOFILE 1024"));
    }

    #[test]
    fn too_many_partitions_is_an_error_naming_the_limit() {
        let small = budget(1024);
        assert!(small.check_partitions(small.partitions_max()).is_ok());
        let error = small
            .check_partitions(small.partitions_max() + 1)
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("RLIMIT_NOFILE 1024"), "{message}");
        assert!(message.contains("ulimit -Hn"), "{message}");
    }

    #[test]
    fn partition_dirs_counts_what_the_log_manager_opens() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(partition_dirs(&dir.path().join("missing")).unwrap(), 0);
        for name in [
            "orders-0",
            "orders-1",
            "my-topic-3",
            "__cluster_metadata-0",
            "orders-2.orphaned.1700000000000",
            "orders-4.1700000000000.deleted",
            "not a partition",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("orders-9"), b"a file").unwrap();
        assert_eq!(partition_dirs(dir.path()).unwrap(), 4);
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let (before, after) = raise_open_files_limit().unwrap();
        assert!(after.soft >= before.soft);
        assert_eq!(after.hard, before.hard);
        assert!(DescriptorBudget::measure(false).unwrap().open_files_limit >= before.soft);
    }
}
