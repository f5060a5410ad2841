//! Real `strata-broker` processes for integration tests: each gets a temporary data
//! directory and a free 127.0.0.1 port, is started from the binary cargo built, and is
//! stopped by PID (SIGTERM for a clean stop, SIGKILL for a crash) or paused (SIGSTOP,
//! then SIGCONT).
//!
//! A paused process is always continued before it is killed or dropped, so no stopped
//! process outlives the test; dropping a `BrokerProcess` kills and reaps it, also when a
//! test panics.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Path of a binary of this workspace built by the same `cargo test` run
/// (`target/<profile>/<name>`), found next to the test executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop(); // the test executable
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// A free port on 127.0.0.1 (bound, then released for the broker to take).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One broker process and what is needed to restart it on the same data.
#[derive(Debug)]
pub struct BrokerProcess {
    data_dir: PathBuf,
    address: SocketAddr,
    extra_args: Vec<String>,
    /// `RLIMIT_NOFILE` (soft and hard) the process is started under, if not the harness's.
    open_files_limit: Option<u64>,
    child: Option<Child>,
    /// SIGSTOPped and not continued yet.
    paused: bool,
}

/// How a process given SIGTERM ended: [`BrokerProcess::terminate_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It exited on its own within the grace period.
    Exited(ExitStatus),
    /// It was still running when the grace period ended and was SIGKILLed.
    Killed,
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` and a free port, and waits until it accepts
    /// connections.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<BrokerProcess> {
        BrokerProcess::start_with(data_dir, extra_args, None)
    }

    /// [`BrokerProcess::start`] under an open-files limit of `limit`, soft and hard (so the
    /// broker cannot raise it), as on a host with a low `ulimit -n`. Restarts keep it.
    pub fn start_with_open_files_limit(
        data_dir: &Path,
        extra_args: &[&str],
        limit: u64,
    ) -> anyhow::Result<BrokerProcess> {
        BrokerProcess::start_with(data_dir, extra_args, Some(limit))
    }

    fn start_with(
        data_dir: &Path,
        extra_args: &[&str],
        open_files_limit: Option<u64>,
    ) -> anyhow::Result<BrokerProcess> {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut broker = BrokerProcess {
            data_dir: data_dir.to_path_buf(),
            address,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            open_files_limit,
            child: None,
            paused: false,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>`, for gRPC clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process was started and has not been reaped since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process is SIGSTOPped.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts the process again with the same data directory, port and flags.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("broker is still running");
        }
        let mut command = Command::new(workspace_binary("strata-broker"));
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.address.to_string())
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(limit) = self.open_files_limit {
            limit_open_files(&mut command, limit);
        }
        let child = command
            .spawn()
            .context("start strata-broker (was it built? `cargo build -p strata-broker`)")?;
        self.child = Some(child);
        self.wait_until_listening(Duration::from_secs(60))
    }

    /// Polls the port until the broker accepts a connection (bounded).
    fn wait_until_listening(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("strata-broker exited during start-up: {status}");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "strata-broker did not listen on {} within {limit:?}",
            self.address
        )
    }

    fn signal(&self, signal: i32) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            bail!("broker is not running")
        };
        let pid = i32::try_from(pid)?;
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet
        // (we still hold its `Child`), so the pid cannot have been reused.
        let result = unsafe { libc::kill(pid, signal) };
        if result != 0 {
            bail!(
                "kill({pid}, {signal}) failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// SIGSTOP: the process stops where it is, its sockets stay open and unanswered (a
    /// long GC pause, a stalled VM).
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT: undoes [`BrokerProcess::pause`].
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// SIGKILL and reap: a crash.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.resume_if_paused()?;
        self.signal(libc::SIGKILL)?;
        self.reap()
    }

    /// SIGTERM and wait (bounded, 30 s) for the clean shutdown.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let grace = Duration::from_secs(30);
        match self.terminate_within(grace)? {
            Termination::Exited(status) => Ok(status),
            Termination::Killed => {
                bail!("strata-broker did not exit within {grace:?} of SIGTERM (SIGKILLed)")
            }
        }
    }

    /// SIGTERM and wait up to `grace` for the process to exit; SIGKILL it after that, so
    /// the process is gone either way.
    pub fn terminate_within(&mut self, grace: Duration) -> anyhow::Result<Termination> {
        self.resume_if_paused()?;
        self.signal(libc::SIGTERM)?;
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Ok(Termination::Exited(status));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()?;
        Ok(Termination::Killed)
    }

    fn resume_if_paused(&mut self) -> anyhow::Result<()> {
        if self.paused {
            self.resume()?;
        }
        Ok(())
    }

    fn reap(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("broker is not running")?;
        self.paused = false;
        Ok(child.wait()?)
    }
}

/// Makes `command`'s child start with `RLIMIT_NOFILE` = `limit` (soft and hard).
fn limit_open_files(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: the closure runs in the forked child before `exec`; it only calls
    // setrlimit(2), which is async-signal-safe, on a value copied into the closure, and
    // `last_os_error` reads errno without allocating.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; continuing it first keeps the rule simple:
        // nothing this harness stopped stays stopped.
        let _ = self.resume_if_paused();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
