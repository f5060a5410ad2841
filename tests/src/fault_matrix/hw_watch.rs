//! [`HwWatch`]: one task that asks `ListOffsets(latest)` of every partition in turn, every
//! [`INTERVAL`], through the client library (so of whichever broker it takes for the
//! leader), and records each answer as [`Event::HighWatermark`] with the time the question
//! was asked. The checker flags an answer below what the history showed before it was
//! asked (`hw_regressed`).
//!
//! One task asking one question at a time keeps the answers in the order the broker gave
//! them. Failed questions (no leader, a timeout) are not recorded: only answers say where
//! the high watermark was.

use std::time::Duration;

use strata_client::OffsetSpec;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::history::{Event, Recorder, TopicPartition};
use crate::workload::{connect, WorkloadConfig};

/// Time between two rounds of questions.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Bounds one question.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The process name of the answers in the history.
pub const PROCESS: &str = "hw-watch";

/// The running watcher; [`HwWatch::stop`] ends it.
#[derive(Debug)]
pub struct HwWatch {
    stop: watch::Sender<bool>,
    task: JoinHandle<usize>,
}

impl HwWatch {
    /// Starts asking about every partition of `config`'s topic.
    pub async fn start(config: &WorkloadConfig, recorder: Recorder) -> anyhow::Result<HwWatch> {
        let client = connect(config, PROCESS).await?;
        let (stop, stopped) = watch::channel(false);
        let topic = config.topic.clone();
        let partitions = config.partitions;
        let task = tokio::spawn(async move {
            let admin = client.admin();
            let mut answers = 0;
            while !*stopped.borrow() {
                for partition in 0..partitions {
                    let asked_at = recorder.elapsed();
                    let asked = admin.list_offsets(&topic, partition, OffsetSpec::Latest);
                    if let Ok(Ok((offset, _))) = tokio::time::timeout(ASK_TIMEOUT, asked).await {
                        let partition = TopicPartition::new(topic.as_str(), partition);
                        let event = Event::HighWatermark {
                            partition,
                            offset,
                            asked_at,
                        };
                        recorder.record(PROCESS, event);
                        answers += 1;
                    }
                }
                tokio::time::sleep(INTERVAL).await;
            }
            answers
        });
        Ok(HwWatch { stop, task })
    }

    /// Stops asking; returns how many answers were recorded.
    pub async fn stop(mut self) -> usize {
        self.stop.send_replace(true);
        (&mut self.task).await.unwrap_or_default()
    }
}

impl Drop for HwWatch {
    /// A run that fails early leaves no watcher running.
    fn drop(&mut self) {
        self.task.abort();
    }
}
