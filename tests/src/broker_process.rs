//! Real `strata-broker` processes for integration tests: each gets a temporary data
//! directory and a free 127.0.0.1 port (or the listen address it is given), is started
//! from the binary cargo built, and is stopped by PID (SIGTERM for a clean stop, SIGKILL
//! for a crash) or paused (SIGSTOP, then SIGCONT).
//!
//! A paused process is always continued before it is killed or dropped, so no stopped
//! process outlives the test; dropping a `BrokerProcess` kills and reaps it, also when a
//! test panics.
//!
//! The start waits until the broker accepts a TCP connection made *from its own listen
//! address* (127.0.0.3 to 127.0.0.3:port): a link the cluster harness cut between two
//! other loopback addresses cannot hide a broker that is up.

use std::fs::OpenOptions;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
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

/// A TCP connection to `target` whose source address is `source` (port chosen by the
/// kernel), given up after `timeout`. Without the bind the kernel picks 127.0.0.1 as the
/// source of every loopback connection.
pub fn connect_from(
    source: IpAddr,
    target: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(target);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&target.into(), timeout)?;
    Ok(socket.into())
}

/// How to start a broker, beyond its data directory: [`BrokerProcess::start_with_options`].
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Flags after `--data-dir` and `--listen`.
    pub extra_args: Vec<String>,
    /// `--listen`; by default a free port on 127.0.0.1.
    pub listen: Option<SocketAddr>,
    /// `RLIMIT_NOFILE` (soft and hard) the process is started under, if not the harness's.
    pub open_files_limit: Option<u64>,
    /// Where the broker's stderr (its log) goes, appended across restarts; by default the
    /// test's own stderr.
    pub log_file: Option<PathBuf>,
    /// `RUST_LOG`; `warn` by default.
    pub log_filter: Option<String>,
}

/// One broker process and what is needed to restart it on the same data.
#[derive(Debug)]
pub struct BrokerProcess {
    data_dir: PathBuf,
    address: SocketAddr,
    /// Kept for restarts; `listen` is always set (to `address`).
    options: BrokerOptions,
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
        let options = BrokerOptions {
            extra_args: owned_args(extra_args),
            ..BrokerOptions::default()
        };
        BrokerProcess::start_with_options(data_dir, options)
    }

    /// [`BrokerProcess::start`] under an open-files limit of `limit`, soft and hard (so the
    /// broker cannot raise it), as on a host with a low `ulimit -n`. Restarts keep it.
    pub fn start_with_open_files_limit(
        data_dir: &Path,
        extra_args: &[&str],
        limit: u64,
    ) -> anyhow::Result<BrokerProcess> {
        let options = BrokerOptions {
            extra_args: owned_args(extra_args),
            open_files_limit: Some(limit),
            ..BrokerOptions::default()
        };
        BrokerProcess::start_with_options(data_dir, options)
    }

    /// Starts a broker on `data_dir` as `options` say, and waits until it accepts
    /// connections. Restarts keep the options, the listen address included.
    pub fn start_with_options(
        data_dir: &Path,
        mut options: BrokerOptions,
    ) -> anyhow::Result<BrokerProcess> {
        let address = match options.listen {
            Some(address) => address,
            None => format!("127.0.0.1:{}", free_port()?).parse()?,
        };
        options.listen = Some(address);
        let mut broker = BrokerProcess {
            data_dir: data_dir.to_path_buf(),
            address,
            options,
            child: None,
            paused: false,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// The listen address, `127.0.0.1:<port>` unless given.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://<address>`, for gRPC clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file the broker's stderr goes to, if [`BrokerOptions::log_file`] was given.
    pub fn log_file(&self) -> Option<&Path> {
        self.options.log_file.as_deref()
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

    /// Starts the process again with the same data directory, address and flags.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("broker is still running");
        }
        let stderr = match &self.options.log_file {
            Some(path) => Stdio::from(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("open the broker log {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        let mut command = Command::new(workspace_binary("strata-broker"));
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.address.to_string())
            .args(&self.options.extra_args)
            // A free admin port unless `--admin-listen` is given: brokers of one test, and
            // tests running at once, would all take the default 127.0.0.1:7080.
            .env("STRATA_LISTENERS__ADMIN", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                self.options.log_filter.as_deref().unwrap_or("warn"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(limit) = self.options.open_files_limit {
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
            let probe = connect_from(self.address.ip(), self.address, Duration::from_millis(200));
            if probe.is_ok() {
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
    /// long GC pause, a stalled VM). Returns once every thread of it is stopped (the
    /// signal is delivered asynchronously).
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        self.wait_until_stopped_is(true)
    }

    /// SIGCONT: undoes [`BrokerProcess::pause`]; returns once no thread is stopped.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        self.wait_until_stopped_is(false)
    }

    /// Polls /proc (bounded, 10 s) until all of the process's threads are stopped, or
    /// none is.
    fn wait_until_stopped_is(&self, stopped: bool) -> anyhow::Result<()> {
        let pid = self.pid().context("broker is not running")?;
        let limit = Duration::from_secs(10);
        let started = Instant::now();
        loop {
            let states = thread_states(pid)?;
            let now_stopped = states.iter().filter(|state| **state == 'T').count();
            let reached = if stopped {
                now_stopped == states.len()
            } else {
                now_stopped == 0
            };
            if reached {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!("broker {pid} threads still in states {states:?} {limit:?} after SIGSTOP/SIGCONT");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
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

/// The scheduler state (`R`, `S`, `T` for stopped, …) of each thread of process `pid`,
/// from `/proc/<pid>/task/*/stat`.
fn thread_states(pid: u32) -> anyhow::Result<Vec<char>> {
    let tasks = PathBuf::from(format!("/proc/{pid}/task"));
    let mut states = Vec::new();
    for task in std::fs::read_dir(&tasks).with_context(|| format!("list {}", tasks.display()))? {
        let stat_path = task?.path().join("stat");
        // A thread that ended since the listing has no state to report.
        let Ok(stat) = std::fs::read_to_string(&stat_path) else {
            continue;
        };
        // `<tid> (<name>) <state> …`; the name may hold spaces and parentheses.
        let state = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].trim_start().chars().next())
            .with_context(|| format!("no state in {}: {stat:?}", stat_path.display()))?;
        states.push(state);
    }
    Ok(states)
}

fn owned_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
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
