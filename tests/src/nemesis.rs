//! [`Nemesis`]: injects faults into real broker processes on a random schedule, from its
//! own thread, while the clients of a test run: SIGSTOP for a while then SIGCONT
//! ([`Fault::Pause`]), SIGKILL then restart ([`Fault::Kill`]), SIGTERM then restart
//! ([`Fault::Terminate`]).
//!
//! Each step waits a quiet period, picks a fault and a broker at random (a seeded RNG:
//! the same seed gives the same sequence of faults and durations, not the same timing),
//! applies it, and records its start and end in the history. [`Nemesis::stop`] ends the
//! schedule, heals everything (continues paused brokers, restarts stopped ones) and hands
//! the brokers back.
//!
//! Failures of the brokers themselves (a restart that fails, a SIGTERM that does not end
//! the process within the grace period, a non-zero exit status after SIGTERM) are
//! collected in [`NemesisOutcome::failures`]; the test decides what they mean. Every
//! wait is bounded: a broker that ignores SIGTERM is SIGKILLed after the grace period.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_broker::log::manager::CLEAN_SHUTDOWN_FILE;

use crate::broker_process::{BrokerProcess, Termination};
use crate::history::{Event, Recorder};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGSTOP for a random time in [`NemesisConfig::pause`] (alternately from its upper
    /// and its lower half), then SIGCONT.
    Pause,
    /// SIGKILL, down for a random time in [`NemesisConfig::down`], restart.
    Kill,
    /// SIGTERM, wait up to [`NemesisConfig::terminate_grace`] for the exit, restart.
    Terminate,
}

/// A range of durations to draw from, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Between {
    pub min: Duration,
    pub max: Duration,
}

impl Between {
    pub fn new(min: Duration, max: Duration) -> Between {
        Between { min, max }
    }

    pub fn millis(min: u64, max: u64) -> Between {
        Between::new(Duration::from_millis(min), Duration::from_millis(max))
    }

    fn draw(self, rng: &mut StdRng) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        rng.gen_range(self.min..=self.max)
    }

    /// The upper half of the range for the 1st, 3rd, … draw, the lower half for the 2nd,
    /// 4th, …: short runs get both kinds (e.g. pauses longer and shorter than a client's
    /// delivery timeout), whatever the seed.
    fn draw_alternating(self, draw: usize, rng: &mut StdRng) -> Duration {
        let middle = self.min + (self.max.saturating_sub(self.min)) / 2;
        let half = if draw.is_multiple_of(2) {
            Between::new(middle, self.max)
        } else {
            Between::new(self.min, middle)
        };
        half.draw(rng)
    }
}

/// What the nemesis does, and how often.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// Each step picks one of these at random.
    pub faults: Vec<Fault>,
    /// The wait before each fault (the first one too: the clients warm up).
    pub quiet: Between,
    /// How long a paused broker stays stopped.
    pub pause: Between,
    /// How long a killed or terminated broker stays down before its restart.
    pub down: Between,
    /// How long a SIGTERMed broker may take to exit before it is SIGKILLed and the step
    /// counts as a failure.
    pub terminate_grace: Duration,
    pub seed: u64,
}

impl NemesisConfig {
    /// Pauses of 1–5 s, 0.5–2 s apart; kills and terminations 1–3 s apart, down 0–1 s;
    /// a 40 s grace period for SIGTERM.
    pub fn new(faults: Vec<Fault>, seed: u64) -> NemesisConfig {
        let only_pauses = faults.iter().all(|fault| *fault == Fault::Pause);
        NemesisConfig {
            faults,
            quiet: if only_pauses {
                Between::millis(500, 2_000)
            } else {
                Between::millis(1_000, 3_000)
            },
            pause: Between::millis(1_000, 5_000),
            down: Between::millis(0, 1_000),
            terminate_grace: Duration::from_secs(40),
            seed,
        }
    }
}

/// What a nemesis run did, and the brokers, healed and running.
#[derive(Debug)]
pub struct NemesisOutcome {
    pub brokers: Vec<BrokerProcess>,
    /// How many faults were injected.
    pub faults: usize,
    /// What went wrong with the brokers (see the module documentation).
    pub failures: Vec<String>,
}

/// A running fault schedule; see the module documentation. Dropping it without
/// [`Nemesis::stop`] (a test failing early) stops and heals too, then kills the brokers.
#[derive(Debug)]
pub struct Nemesis {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<NemesisOutcome>>,
}

impl Nemesis {
    /// Starts the schedule on its own thread, which owns `brokers` until [`Nemesis::stop`].
    pub fn start(
        brokers: Vec<BrokerProcess>,
        config: NemesisConfig,
        recorder: Recorder,
    ) -> anyhow::Result<Nemesis> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("nemesis".to_owned())
            .spawn(move || {
                let mut schedule = Schedule {
                    outcome: NemesisOutcome {
                        brokers,
                        faults: 0,
                        failures: Vec::new(),
                    },
                    rng: StdRng::seed_from_u64(config.seed),
                    config,
                    recorder,
                    stopped,
                    stopping: false,
                    pauses: 0,
                };
                schedule.run();
                schedule.heal();
                schedule.outcome
            })
            .context("start the nemesis thread")?;
        Ok(Nemesis {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Ends the schedule (a fault in progress completes: a pause lasts as drawn, a SIGTERM
    /// gets its grace period), heals every broker and returns them. Blocks: call it from a
    /// blocking context (`spawn_blocking`) in async code.
    pub fn stop(mut self) -> anyhow::Result<NemesisOutcome> {
        self.join()
            .context("the nemesis already stopped")?
            .map_err(|_| anyhow::anyhow!("the nemesis thread panicked"))
    }

    fn join(&mut self) -> Option<std::thread::Result<NemesisOutcome>> {
        // The thread may have ended on its own (a broker failed to restart): then nobody
        // receives this, and that is fine.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map(JoinHandle::join)
    }
}

impl Drop for Nemesis {
    fn drop(&mut self) {
        // The outcome, and with it the brokers, is dropped here: they are killed.
        let _ = self.join();
    }
}

/// The nemesis thread's state.
struct Schedule {
    outcome: NemesisOutcome,
    config: NemesisConfig,
    rng: StdRng,
    recorder: Recorder,
    stopped: mpsc::Receiver<()>,
    /// Told to stop: every later wait returns at once.
    stopping: bool,
    /// Pauses so far.
    pauses: usize,
}

impl Schedule {
    fn run(&mut self) {
        if self.outcome.brokers.is_empty() || self.config.faults.is_empty() {
            return;
        }
        loop {
            let quiet = self.config.quiet.draw(&mut self.rng);
            if self.sleep(quiet) {
                return;
            }
            let fault = self.config.faults[self.rng.gen_range(0..self.config.faults.len())];
            let target = self.rng.gen_range(0..self.outcome.brokers.len());
            self.outcome.faults += 1;
            let result = match fault {
                Fault::Pause => self.pause(target),
                Fault::Kill => self.kill(target),
                Fault::Terminate => self.terminate(target),
            };
            if let Err(error) = result {
                // A broker that cannot be signalled or restarted ends the schedule.
                self.fail(format!("{fault:?} of broker {target}: {error:#}"));
                return;
            }
        }
    }

    /// Waits `duration`, noting a request to stop without acting on it.
    fn sleep_through(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        self.sleep(duration); // returns early only when told to stop
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }

    /// Waits `duration` or until told to stop; true when told to stop.
    fn sleep(&mut self, duration: Duration) -> bool {
        if !self.stopping {
            match self.stopped.recv_timeout(duration) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => self.stopping = true,
            }
        }
        self.stopping
    }

    fn note(&self, description: String) {
        self.recorder
            .record("nemesis", Event::Nemesis { description });
    }

    fn fail(&mut self, failure: String) {
        self.note(format!("failure: {failure}"));
        self.outcome.failures.push(failure);
    }

    fn broker(&mut self, target: usize) -> anyhow::Result<&mut BrokerProcess> {
        self.outcome
            .brokers
            .get_mut(target)
            .with_context(|| format!("no broker {target}"))
    }

    fn pause(&mut self, target: usize) -> anyhow::Result<()> {
        let duration = self
            .config
            .pause
            .draw_alternating(self.pauses, &mut self.rng);
        self.pauses += 1;
        self.broker(target)?.pause()?;
        self.note(format!("paused broker {target} for {duration:?}"));
        let started = Instant::now();
        // Not cut short by `stop`: the last pause of a run is as long as the others.
        self.sleep_through(duration);
        self.broker(target)?.resume()?;
        self.note(format!(
            "resumed broker {target} after {:?}",
            started.elapsed()
        ));
        Ok(())
    }

    fn kill(&mut self, target: usize) -> anyhow::Result<()> {
        let status = self.broker(target)?.kill()?;
        self.note(format!("killed broker {target} ({status})"));
        self.restart_after_down(target)
    }

    fn terminate(&mut self, target: usize) -> anyhow::Result<()> {
        let grace = self.config.terminate_grace;
        self.note(format!("SIGTERM to broker {target}"));
        let started = Instant::now();
        match self.broker(target)?.terminate_within(grace)? {
            Termination::Exited(status) => {
                self.note(format!(
                    "broker {target} exited ({status}) {:?} after SIGTERM",
                    started.elapsed()
                ));
                if !status.success() {
                    self.fail(format!(
                        "broker {target} exited with {status} after SIGTERM"
                    ));
                }
                let marker = self.broker(target)?.data_dir().join(CLEAN_SHUTDOWN_FILE);
                if !marker.exists() {
                    self.fail(format!(
                        "broker {target} exited after SIGTERM without writing {}",
                        marker.display()
                    ));
                }
            }
            Termination::Killed => self.fail(format!(
                "broker {target} did not exit within the grace period ({grace:?} after SIGTERM); SIGKILLed"
            )),
        }
        self.restart_after_down(target)
    }

    fn restart_after_down(&mut self, target: usize) -> anyhow::Result<()> {
        let down = self.config.down.draw(&mut self.rng);
        // Restart even when told to stop meanwhile: `heal` would do it anyway.
        self.sleep(down);
        let started = Instant::now();
        self.broker(target)?.restart()?;
        self.note(format!(
            "restarted broker {target} (listening after {:?})",
            started.elapsed()
        ));
        Ok(())
    }

    /// Continues paused brokers and restarts stopped ones.
    fn heal(&mut self) {
        for target in 0..self.outcome.brokers.len() {
            let Some(broker) = self.outcome.brokers.get_mut(target) else {
                continue;
            };
            let result = if broker.is_paused() {
                broker.resume()
            } else if !broker.is_running() {
                broker.restart()
            } else {
                Ok(())
            };
            if let Err(error) = result {
                self.fail(format!("healing broker {target}: {error:#}"));
            }
        }
        self.note("healed".to_owned());
    }
}
