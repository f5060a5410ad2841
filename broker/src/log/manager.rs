//! The log manager: every partition log of one data directory.
//!
//! It owns the directory-wide files: `.lock` (an exclusive `flock`, so two brokers can
//! never write the same logs) and `.strata_cleanshutdown`. The marker is written as the
//! very last step of [`LogManager::close`], after every log was flushed and
//! checkpointed; [`LogManager::open`] reads it to choose between trusting the files and
//! scanning them, then deletes it (and fsyncs the directory) before anything is written,
//! so a crash from then on is always detected.
//!
//! It also runs the background duties that need a clock rather than a request: interval
//! flushes, periodic checkpoints and retention ([`LogManager::start_background_tasks`]).
//!
//! Its logs share one cache of open sealed segments ([`OpenSegments`]), so the files a
//! whole data directory holds open are bounded: one `.log` descriptor per partition (its
//! active segment) plus the cache's capacity, whatever the number of segments.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strata_proto::types::{PartitionId, TopicName};

use super::cleaner::{CleanOutcome, CleanTrigger, CleanerSettings};
use super::clock::Clock;
use super::config::LogConfig;
use super::durable;
use super::error::{LogError, LogResult};
use super::open_segments::{OpenSegments, DEFAULT_CAPACITY};
use super::partition_log::{LogResources, PartitionLog};
use super::reclaim::{ReclaimPace, Reclaimer, ReclaimerThread};
use super::recovery::PreviousShutdown;
use super::repair::{self, RepairReport};

/// Name of the clean-shutdown marker in the data directory.
pub const CLEAN_SHUTDOWN_FILE: &str = ".strata_cleanshutdown";
/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = ".lock";
/// Directories other layers keep in the data directory (the controller quorum's Raft
/// state); not partitions, and not warned about.
pub const RESERVED_DIRS: [&str; 1] = ["controller"];
/// What a set-aside partition directory's name holds: `<topic>-<partition>.orphaned.<ms>`
/// ([`LogManager::set_aside`]). Such a name never parses as a partition directory.
pub const ORPHANED_INFIX: &str = ".orphaned.";
/// What the name of a directory holding the damaged part of a repaired partition log holds:
/// `<topic>-<partition>.damaged.<ms>` ([`LogManager::repair`]). Never parses as a
/// partition directory either.
pub const DAMAGED_INFIX: &str = ".damaged.";

/// A repaired partition log ([`LogManager::repair`]).
#[derive(Debug)]
pub struct Repaired {
    /// The log, online again.
    pub log: Arc<PartitionLog>,
    pub report: RepairReport,
    /// Where the cut part was kept; `None` when nothing was cut (only the checkpoint
    /// promised more than the log held).
    pub aside: Option<PathBuf>,
}

/// A topic and one of its partitions; its directory is `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: TopicName,
    pub partition: PartitionId,
}

impl TopicPartition {
    pub fn new(topic: TopicName, partition: PartitionId) -> TopicPartition {
        TopicPartition { topic, partition }
    }

    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name; topics may contain '-', the partition is after the last.
    pub fn parse_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        let partition: i32 = partition.parse().ok().filter(|p: &i32| *p >= 0)?;
        if !partition.to_string().eq(partition_text(name)) {
            return None;
        }
        Some(TopicPartition::new(
            TopicName::new(topic).ok()?,
            PartitionId(partition),
        ))
    }
}

fn partition_text(name: &str) -> &str {
    name.rsplit_once('-').map_or("", |(_, partition)| partition)
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Every partition log of a data directory. See the module docs.
#[derive(Debug)]
pub struct LogManager {
    data_dir: PathBuf,
    default_config: LogConfig,
    previous: PreviousShutdown,
    logs: RwLock<BTreeMap<TopicPartition, Arc<PartitionLog>>>,
    /// What every log of the directory shares: the clock, the cache of open sealed
    /// segments, and the reclaimer that gives deleted segments' space back a chunk at a
    /// time (`reclaim.rs`). Declared before the thread guard so the handle goes first.
    resources: LogResources,
    /// Where [`LogManager::clean_next`] starts looking next time.
    clean_cursor: AtomicUsize,
    _reclaim_thread: ReclaimerThread,
    _lock: File,
}

impl LogManager {
    /// Locks `data_dir` (created if missing), opens and recovers every partition in it,
    /// with a cache of [`DEFAULT_CAPACITY`] open sealed segments.
    pub fn open(
        data_dir: &Path,
        default_config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> LogResult<LogManager> {
        LogManager::open_with(
            data_dir,
            default_config,
            clock,
            OpenSegments::new(DEFAULT_CAPACITY),
        )
    }

    /// [`LogManager::open`] with the cache of open sealed segments its logs share (the
    /// broker sizes it from its descriptor budget).
    pub fn open_with(
        data_dir: &Path,
        default_config: LogConfig,
        clock: Arc<dyn Clock>,
        open_segments: OpenSegments,
    ) -> LogResult<LogManager> {
        fs::create_dir_all(data_dir)
            .map_err(|source| LogError::io("create data directory", data_dir, source))?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| LogError::io("open lock file", &lock_path, source))?;
        lock.try_lock().map_err(|error| {
            LogError::io(
                "lock data directory (is another broker using it?)",
                &lock_path,
                std::io::Error::other(error.to_string()),
            )
        })?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let previous = if marker.exists() {
            PreviousShutdown::Clean
        } else {
            PreviousShutdown::Crashed
        };
        let (reclaimer, reclaim_thread) = Reclaimer::start(ReclaimPace::default());
        let resources = LogResources {
            clock,
            open_segments,
            reclaimer,
        };
        let mut logs = BTreeMap::new();
        // Whether a partition directory (live, set aside or being deleted) or the
        // controller's was found: a
        // directory with none and no marker is new rather than crashed. Recovery does not
        // care (it has no log to scan); only the start-up log says so.
        let mut holds_partitions = false;
        let entries = fs::read_dir(data_dir)
            .map_err(|source| LogError::io("list data directory", data_dir, source))?;
        for entry in entries {
            let entry =
                entry.map_err(|source| LogError::io("list data directory", data_dir, source))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name();
            holds_partitions |= name.to_str().is_some_and(|name| {
                RESERVED_DIRS.contains(&name)
                    || name.contains(ORPHANED_INFIX)
                    || name.contains(DAMAGED_INFIX)
                    || name.ends_with(".deleted")
                    || TopicPartition::parse_dir_name(name).is_some()
            });
            if name
                .to_str()
                .is_some_and(|name| name.contains(ORPHANED_INFIX))
            {
                tracing::warn!(path = %path.display(), "a partition directory set aside earlier is still here; delete it once it is no longer needed");
                continue;
            }
            if name
                .to_str()
                .is_some_and(|name| name.contains(DAMAGED_INFIX))
            {
                tracing::warn!(path = %path.display(), "the damaged part of a repaired partition log is still here; delete it once it is no longer needed");
                continue;
            }
            if name.to_str().is_some_and(|name| name.ends_with(".deleted")) {
                fs::remove_dir_all(&path)
                    .map_err(|source| LogError::io("remove deleted partition", &path, source))?;
                continue;
            }
            if name
                .to_str()
                .is_some_and(|name| RESERVED_DIRS.contains(&name))
            {
                continue;
            }
            let Some(partition) = name.to_str().and_then(TopicPartition::parse_dir_name) else {
                tracing::warn!(path = %path.display(), "ignoring a directory that is not <topic>-<partition>");
                continue;
            };
            let log =
                PartitionLog::open_or_offline(&path, default_config.clone(), previous, &resources)?;
            logs.insert(partition, Arc::new(log));
        }
        if previous == PreviousShutdown::Clean {
            fs::remove_file(&marker)
                .map_err(|source| LogError::io("remove clean-shutdown marker", &marker, source))?;
            durable::sync_dir(data_dir)?;
        }
        let offline = logs.values().filter(|log| log.is_offline()).count();
        let open_segments = resources.open_segments.stats();
        let previous_name = match previous {
            PreviousShutdown::Crashed if !holds_partitions => "New",
            PreviousShutdown::Crashed => "Crashed",
            PreviousShutdown::Clean => "Clean",
        };
        tracing::info!(data_dir = %data_dir.display(), partitions = logs.len(), offline, previous = %previous_name,
            sealed_segments_open = open_segments.open,
            sealed_segments_open_max = resources.open_segments.capacity(), "opened logs");
        Ok(LogManager {
            data_dir: data_dir.to_path_buf(),
            default_config,
            previous,
            logs: RwLock::new(logs),
            resources,
            clean_cursor: AtomicUsize::new(0),
            _reclaim_thread: reclaim_thread,
            _lock: lock,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// How the previous process using this directory ended.
    pub fn previous_shutdown(&self) -> PreviousShutdown {
        self.previous
    }

    pub fn get(&self, partition: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.logs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(partition)
            .cloned()
    }

    /// Where the space of deleted segments goes (its stats say what is still held).
    pub fn reclaimer(&self) -> &Reclaimer {
        &self.resources.reclaimer
    }

    /// The cache of open sealed segments every log here shares.
    pub fn open_segments(&self) -> &OpenSegments {
        &self.resources.open_segments
    }

    /// Every partition hosted here.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.logs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The log of `partition`, created with `config` (or the default) if it is new.
    pub fn get_or_create(
        &self,
        partition: &TopicPartition,
        config: Option<LogConfig>,
    ) -> LogResult<Arc<PartitionLog>> {
        let mut logs = self
            .logs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(log) = logs.get(partition) {
            return Ok(Arc::clone(log));
        }
        let dir = self.data_dir.join(partition.dir_name());
        let config = config.unwrap_or_else(|| self.default_config.clone());
        let log = PartitionLog::open_or_offline(
            &dir,
            config,
            PreviousShutdown::Crashed,
            &self.resources,
        )?;
        durable::sync_dir(&self.data_dir)?;
        let log = Arc::new(log);
        logs.insert(partition.clone(), Arc::clone(&log));
        Ok(log)
    }

    fn all_logs(&self) -> Vec<Arc<PartitionLog>> {
        self.logs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// fsyncs every `flush = interval:<ms>` log whose interval has passed, and starts
    /// writeback of the others' recent appends.
    pub fn flush_due_logs(&self) -> LogResult<()> {
        for log in self.all_logs() {
            if !log.flush_if_due()? {
                log.start_writeback_if_due()?;
            }
        }
        Ok(())
    }

    /// Writes every partition checkpoint (recovery point, HW, log start), like Kafka's
    /// `log.flush.offset.checkpoint.interval.ms` task.
    pub fn checkpoint_all(&self) -> LogResult<()> {
        for log in self.all_logs() {
            log.checkpoint()?;
        }
        Ok(())
    }

    /// Applies retention to every partition (Kafka's `log.retention.check.interval.ms`
    /// task); a log that deleted something writes its checkpoint.
    pub fn apply_retention_all(&self) -> LogResult<()> {
        for log in self.all_logs() {
            let outcome = log.apply_retention()?;
            if outcome.segments_deleted > 0 {
                tracing::info!(
                    dir = %log.dir().display(),
                    segments = outcome.segments_deleted,
                    bytes = outcome.bytes_deleted,
                    log_start_offset = outcome.log_start_offset.0,
                    "retention deleted segments"
                );
            }
        }
        Ok(())
    }

    /// Gives one compacted partition that is due a cleaning pass (`log/cleaner.rs`),
    /// taking the logs in turn so that none waits behind a busy one. Returns what the pass
    /// did, or `None` when no log was due. A log whose pass fails is logged and skipped.
    pub fn clean_next(&self, settings: &CleanerSettings) -> Option<CleanOutcome> {
        let logs: Vec<Arc<PartitionLog>> = self
            .all_logs()
            .into_iter()
            .filter(|log| log.config().cleanup_policy.compacts() && !log.is_offline())
            .collect();
        let start = self.clean_cursor.fetch_add(1, Ordering::Relaxed);
        for index in 0..logs.len() {
            let Some(log) = logs.get((start + index) % logs.len()) else {
                continue;
            };
            match log.clean(settings, CleanTrigger::WhenDue) {
                Ok(outcome) if outcome.segments_cleaned > 0 => return Some(outcome),
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(dir = %log.dir().display(), %error, "cleaning the partition log failed");
                }
            }
        }
        None
    }

    /// Starts the background thread that runs [`LogManager::flush_due_logs`] every
    /// `schedule.tick`, [`LogManager::checkpoint_all`] every `schedule.checkpoint_every`,
    /// [`LogManager::apply_retention_all`] every `schedule.retention_check_every` and
    /// [`LogManager::clean_next`] every `schedule.cleaner_check_every` (one partition per
    /// pass; a pass blocks this thread's other duties while it runs, as long as reading
    /// and rewriting that partition's dirty segments takes).
    /// It stops when the returned guard is dropped, or when the manager is gone.
    pub fn start_background_tasks(
        self: &Arc<Self>,
        schedule: BackgroundSchedule,
    ) -> BackgroundTasks {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let manager = Arc::downgrade(self);
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("strata-log-tasks".into())
            .spawn(move || background_loop(&manager, &thread_stop, schedule));
        let handle = match handle {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::error!(%error, "cannot start the log background thread");
                None
            }
        };
        BackgroundTasks { stop, handle }
    }

    /// Removes a partition (its topic was deleted). The log is closed and its segments
    /// deleted through the reclaimer, so a large partition's space is given back a chunk
    /// at a time. Then the directory, which holds only checkpoints by now, is renamed to
    /// `<dir>.<millis>.deleted`, the data directory fsynced, and the rest removed. A crash
    /// while the segments are deleted leaves a directory with fewer segments under its
    /// live name; the broker sets it aside at the next start ([`LogManager::set_aside`]),
    /// because the metadata no longer lists the partition, and an operator deletes it.
    pub fn delete(&self, partition: &TopicPartition) -> LogResult<()> {
        let removed = self
            .logs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(partition);
        let Some(log) = removed else { return Ok(()) };
        log.close()?;
        log.delete_segments()?;
        let dir = log.dir().to_path_buf();
        drop(log);
        let doomed = self.data_dir.join(format!(
            "{}.{}.deleted",
            partition.dir_name(),
            self.resources.clock.now_ms()
        ));
        fs::rename(&dir, &doomed)
            .map_err(|source| LogError::io("rename deleted partition", &dir, source))?;
        durable::sync_dir(&self.data_dir)?;
        fs::remove_dir_all(&doomed)
            .map_err(|source| LogError::io("remove deleted partition", &doomed, source))?;
        tracing::info!(%partition, "deleted partition log");
        Ok(())
    }

    /// Takes a partition out of service without deleting anything: the log is closed and
    /// its directory renamed to `<dir>.orphaned.<millis>`, which later starts skip (with a
    /// warning). For data the metadata does not account for: deleting it on a doubt could
    /// lose acknowledged records. Returns the new path.
    pub fn set_aside(&self, partition: &TopicPartition) -> LogResult<PathBuf> {
        let removed = self
            .logs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(partition);
        let Some(log) = removed else {
            return Ok(self.data_dir.join(partition.dir_name()));
        };
        log.close()?;
        let dir = log.dir().to_path_buf();
        drop(log);
        let aside = self.data_dir.join(format!(
            "{}{ORPHANED_INFIX}{}",
            partition.dir_name(),
            self.resources.clock.now_ms()
        ));
        fs::rename(&dir, &aside)
            .map_err(|source| LogError::io("set aside a partition directory", &dir, source))?;
        durable::sync_dir(&self.data_dir)?;
        Ok(aside)
    }

    /// Repairs the offline log of `partition` (damaged when it was opened) from its valid
    /// prefix (`repair.rs`) and puts it back online, opened again. What is cut is kept in
    /// `<data>/<topic>-<partition>.damaged.<ms>`, never deleted. `None` when the partition
    /// has no log here or its log is online. Only for a replica whose leader holds every
    /// committed record: the cut may remove some (the caller decides; see
    /// `node/replica_repair.rs`). Blocking, and as long as a full scan of the log.
    pub fn repair(&self, partition: &TopicPartition) -> LogResult<Option<Repaired>> {
        let Some(offline) = self.get(partition).filter(|log| log.is_offline()) else {
            return Ok(None);
        };
        let dir = offline.dir().to_path_buf();
        let config = offline.config();
        let aside = self.data_dir.join(format!(
            "{}{DAMAGED_INFIX}{}",
            partition.dir_name(),
            self.resources.clock.now_ms()
        ));
        let report = repair::cut_to_valid_prefix(&dir, &config, &aside)?;
        durable::sync_dir(&self.data_dir)?;
        let log =
            PartitionLog::open_with(&dir, config, PreviousShutdown::Crashed, &self.resources)?;
        let log = Arc::new(log);
        let mut logs = self
            .logs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Replaced only if nothing else did meanwhile (a deletion of the topic).
        if !logs
            .get(partition)
            .is_some_and(|current| Arc::ptr_eq(current, &offline))
        {
            drop(logs);
            log.close()?;
            return Ok(None);
        }
        logs.insert(partition.clone(), Arc::clone(&log));
        let aside = (report.files_set_aside > 0).then_some(aside);
        Ok(Some(Repaired { log, report, aside }))
    }

    /// Clean shutdown: close every log, then write the marker as the very last step.
    /// Logs still referenced elsewhere are closed too and refuse later writes.
    pub fn close(&self) -> LogResult<()> {
        for log in self.all_logs() {
            log.close()?;
        }
        let marker = self.data_dir.join(CLEAN_SHUTDOWN_FILE);
        let file = File::create(&marker)
            .map_err(|source| LogError::io("write clean-shutdown marker", &marker, source))?;
        durable::sync_file(&file, &marker)?;
        durable::sync_dir(&self.data_dir)?;
        tracing::info!(data_dir = %self.data_dir.display(), "logs closed cleanly");
        Ok(())
    }
}

type StopSignal = Arc<(Mutex<bool>, Condvar)>;

fn background_loop(manager: &Weak<LogManager>, stop: &StopSignal, schedule: BackgroundSchedule) {
    let (stopped, wake) = &**stop;
    let mut last_checkpoint = Instant::now();
    let mut last_retention = Instant::now();
    let mut last_clean = Instant::now();
    loop {
        let guard = stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, schedule.tick, |stopped| !*stopped)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *guard {
            return;
        }
        drop(guard);
        let Some(manager) = manager.upgrade() else {
            return;
        };
        if let Err(error) = manager.flush_due_logs() {
            tracing::error!(%error, "background flush failed");
        }
        if last_retention.elapsed() >= schedule.retention_check_every {
            last_retention = Instant::now();
            if let Err(error) = manager.apply_retention_all() {
                tracing::error!(%error, "background retention failed");
            }
        }
        if last_clean.elapsed() >= schedule.cleaner_check_every {
            // Again at once while partitions are due: one partition per turn of the loop.
            if manager.clean_next(&schedule.cleaner).is_none() {
                last_clean = Instant::now();
            }
        }
        if last_checkpoint.elapsed() >= schedule.checkpoint_every {
            last_checkpoint = Instant::now();
            if let Err(error) = manager.checkpoint_all() {
                tracing::error!(%error, "background checkpoint failed");
            }
        }
    }
}

/// Kafka's `log.cleaner.backoff.ms`: 15 s.
pub const CLEANER_CHECK_EVERY_DEFAULT: Duration = Duration::from_secs(15);

/// How often the log manager's background thread does each duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackgroundSchedule {
    /// How often interval flushes and writeback are considered.
    pub tick: Duration,
    /// How often every partition checkpoint is written.
    pub checkpoint_every: Duration,
    /// How often retention looks for segments to delete.
    pub retention_check_every: Duration,
    /// How often the log cleaner looks for a compacted partition that is due a pass when
    /// none was (Kafka's `log.cleaner.backoff.ms`).
    pub cleaner_check_every: Duration,
    pub cleaner: CleanerSettings,
}

impl Default for BackgroundSchedule {
    /// A 50 ms tick; checkpoints and retention every minute; the cleaner looks every 15 s
    /// (Kafka's backoff) with a 128 MiB offset map.
    fn default() -> BackgroundSchedule {
        BackgroundSchedule {
            tick: Duration::from_millis(50),
            checkpoint_every: Duration::from_secs(60),
            retention_check_every: Duration::from_secs(60),
            cleaner_check_every: CLEANER_CHECK_EVERY_DEFAULT,
            cleaner: CleanerSettings::default(),
        }
    }
}

/// The log manager's background thread; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct BackgroundTasks {
    stop: StopSignal,
    handle: Option<JoinHandle<()>>,
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        wake.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
