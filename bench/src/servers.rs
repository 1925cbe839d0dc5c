//! The servers under test, as child processes, and what /proc says
//! about them.
//!
//! Each scenario starts a fresh server so that memory figures start from
//! the same empty process. All get the same namespace, the same
//! per-user rooms and, where the scenario wants one, the same auth
//! backend. push-core takes publishes on its Unix socket; the Node peer
//! (`bench/peer-node/server.js`) on an HTTP POST, as the PHP site's
//! publishes reached the Node server it replaces. push-core runs with
//! missed-message recovery on, its default; a third kind runs it with
//! `--recovery-window 0`, to measure what recovery costs, and a fourth is a
//! build without the `old-clients` feature (no socket.io protocol 4), to
//! measure what accepting old clients costs new ones. The fifth is not a
//! server: the one-write floor (`bench/src/bin/write-floor/`) delivers
//! each message with one `write(2)` per recipient and nothing else, the
//! least any push server can spend per delivery.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The namespace both servers serve and the browsers join.
pub const NAMESPACE: &str = "/bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PushCore,
    /// push-core started with `--recovery-window 0`.
    PushCoreNoRecovery,
    /// push-core built without its `old-clients` feature.
    PushCoreNoOldClients,
    /// Another build of push-core, named with `--baseline`: an earlier
    /// commit, measured in the same run as this one.
    PushCoreBaseline,
    Node,
    /// The one-write floor: one `write(2)` per delivery, no pings, no auth.
    WriteFloor,
}

impl Kind {
    /// The servers a run compares unless told otherwise.
    pub const BOTH: [Kind; 2] = [Kind::PushCore, Kind::Node];

    /// What `all` runs unless told otherwise: both servers, and the floor
    /// in the scenarios it takes part in.
    pub const DEFAULT_RUN: [Kind; 3] = [Kind::PushCore, Kind::Node, Kind::WriteFloor];

    /// Takes part in the idle and connect-storm scenarios. The floor does
    /// not: it sends no pings (idle CPU would be nothing by construction)
    /// and admits browsers without an auth backend, so neither scenario
    /// would measure anything a server could approach.
    pub fn holds_connections(self) -> bool {
        self != Kind::WriteFloor
    }

    /// Serves socket.io 1.x and 2.x clients (protocol 4). The Node peer is
    /// socket.io 4 without `allowEIO3`.
    pub fn accepts_protocol4(self) -> bool {
        matches!(
            self,
            Kind::PushCore | Kind::PushCoreNoRecovery | Kind::PushCoreBaseline
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::PushCore => "push-core",
            Kind::PushCoreNoRecovery => "push-core (recovery off)",
            Kind::PushCoreNoOldClients => "push-core (no old clients)",
            Kind::PushCoreBaseline => "push-core (baseline build)",
            Kind::Node => "node socket.io",
            Kind::WriteFloor => "one-write floor",
        }
    }
}

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    pub push_core: PathBuf,
    /// push-core built without the `old-clients` feature; built by
    /// [`build_without_old_clients`] when a run asks for that kind.
    pub push_core_no_old_clients: PathBuf,
    /// Another push-core build to compare with (`--baseline`).
    pub push_core_baseline: Option<PathBuf>,
    pub peer_node: PathBuf,
    /// The one-write floor, built by [`prepare`] if it is missing or older
    /// than its sources.
    pub write_floor: PathBuf,
    pub scratch: PathBuf,
}

/// How a server takes publishes.
#[derive(Clone, Debug)]
pub enum PublishEndpoint {
    Unix(PathBuf),
    Http(SocketAddr),
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub publish: PublishEndpoint,
    child: Child,
}

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    pub rss_bytes: u64,
    /// User plus system CPU time, in microseconds.
    pub cpu_us: u64,
    /// The user part of `cpu_us`.
    pub user_us: u64,
    /// The system part of `cpu_us`: the kernel's work on the process's
    /// behalf, mostly socket writes for a push server.
    pub system_us: u64,
    /// Context switches of the process's live threads, summed: voluntary
    /// (the thread blocked: waiting for work, a lock, I/O) and involuntary
    /// (the scheduler took the core away). Threads that have exited are not
    /// counted: /proc keeps their CPU time in the process's, not their
    /// switches.
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub at: Instant,
}

impl ProcSample {
    /// The counters of several processes added up, as one: CPU time and
    /// RSS summed, read at the first one's time.
    pub fn sum(samples: &[ProcSample]) -> Option<ProcSample> {
        let first = *samples.first()?;
        Some(samples[1..].iter().fold(first, |total, sample| ProcSample {
            rss_bytes: total.rss_bytes + sample.rss_bytes,
            cpu_us: total.cpu_us + sample.cpu_us,
            user_us: total.user_us + sample.user_us,
            system_us: total.system_us + sample.system_us,
            voluntary_switches: total.voluntary_switches + sample.voluntary_switches,
            involuntary_switches: total.involuntary_switches + sample.involuntary_switches,
            at: total.at,
        }))
    }

    /// CPU time used between `self` and the later sample `later`, in
    /// microseconds, and as a share of one core.
    pub fn cpu_since(&self, later: &ProcSample) -> (u64, f64) {
        let used = later.cpu_us.saturating_sub(self.cpu_us);
        let wall = later.at.duration_since(self.at).as_micros().max(1) as f64;
        (used, used as f64 / wall)
    }
}

impl Server {
    /// Starts `kind` and waits until it accepts connections. With
    /// `auth_url`, the server asks that URL who each browser is.
    pub fn start(kind: Kind, programs: &Programs, auth_url: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with(kind, programs, auth_url, &[])
    }

    /// The same, with `extra` added to push-core's command line (a
    /// cluster node's `--adapter redis ...`).
    pub fn start_with(
        kind: Kind,
        programs: &Programs,
        auth_url: Option<&str>,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let (mut command, publish) = match kind {
            Kind::PushCore
            | Kind::PushCoreNoRecovery
            | Kind::PushCoreNoOldClients
            | Kind::PushCoreBaseline => {
                let socket = programs.scratch.join(format!("push-{}.sock", addr.port()));
                // BENCH_PUSH_CORE_WRAPPER runs the daemon under a profiler,
                // e.g. "valgrind --tool=dhat --dhat-out-file=/tmp/dhat.json".
                let wrapper = std::env::var("BENCH_PUSH_CORE_WRAPPER").unwrap_or_default();
                let mut words = wrapper.split_whitespace();
                let binary = match kind {
                    Kind::PushCoreNoOldClients => &programs.push_core_no_old_clients,
                    Kind::PushCoreBaseline => programs
                        .push_core_baseline
                        .as_ref()
                        .context("the push-core-baseline server needs --baseline PATH")?,
                    _ => &programs.push_core,
                };
                let mut command = match words.next() {
                    Some(program) => {
                        let mut command = Command::new(program);
                        command.args(words).arg(binary);
                        command
                    }
                    None => Command::new(binary),
                };
                command
                    .arg("serve")
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--socket")
                    .arg(&socket)
                    .arg("--namespace")
                    .arg(NAMESPACE)
                    .arg("--log-level")
                    .arg("error");
                if let Some(url) = auth_url {
                    command.arg("--auth-url").arg(url);
                }
                if kind == Kind::PushCoreNoRecovery {
                    command.arg("--recovery-window").arg("0");
                }
                command.args(extra);
                (command, PublishEndpoint::Unix(socket))
            }
            Kind::WriteFloor => {
                anyhow::ensure!(extra.is_empty(), "the floor takes no extra arguments");
                let socket = programs.scratch.join(format!("floor-{}.sock", addr.port()));
                let mut command = Command::new(&programs.write_floor);
                command
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--socket")
                    .arg(&socket)
                    .arg("--namespace")
                    .arg(NAMESPACE);
                (command, PublishEndpoint::Unix(socket))
            }
            Kind::Node => {
                anyhow::ensure!(extra.is_empty(), "the Node peer takes no extra arguments");
                let mut command = Command::new("node");
                command
                    .arg(programs.peer_node.join("server.js"))
                    .env("PORT", addr.port().to_string())
                    .env("NAMESPACE", NAMESPACE);
                if let Some(url) = auth_url {
                    command.env("AUTH_URL", url);
                }
                (command, PublishEndpoint::Http(addr))
            }
        };
        command.stdin(Stdio::null()).stdout(Stdio::null());
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", kind.label()))?;
        let mut server = Server {
            kind,
            addr,
            publish,
            child,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited while starting: {status}", self.kind.label());
            }
            let socket_ready = match &self.publish {
                PublishEndpoint::Unix(path) => path.exists(),
                PublishEndpoint::Http(_) => true,
            };
            if socket_ready && TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("{} did not start listening in time", self.kind.label());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        proc_sample(self.pid())
    }

    /// Ends the server. The bench measures nothing after this, so there is
    /// no point in waiting for a graceful stop of thousands of connections.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if std::env::var_os("BENCH_PUSH_CORE_WRAPPER").is_some() {
            // A profiler writes its report on a graceful exit only.
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            for _ in 0..600 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// RSS, CPU time and context switches of process `pid`.
pub fn proc_sample(pid: u32) -> anyhow::Result<ProcSample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15 (1-based).
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let (user_ticks, system_ticks): (u64, u64) = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some((u.parse().ok()?, s.parse().ok()?)))
        .context("no CPU times in /proc/PID/stat")?;
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    let user_us = user_ticks * 1_000_000 / per_second;
    let system_us = system_ticks * 1_000_000 / per_second;

    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    let (voluntary_switches, involuntary_switches) = context_switches(pid);
    Ok(ProcSample {
        rss_bytes: rss_kb * 1024,
        cpu_us: user_us + system_us,
        user_us,
        system_us,
        voluntary_switches,
        involuntary_switches,
        at,
    })
}

/// Voluntary and involuntary context switches of every live thread of
/// process `pid`. `/proc/PID/status` counts the main thread's alone, so
/// each thread's `/proc/PID/task/TID/status` is read; a thread that exits
/// between listing and reading is skipped.
fn context_switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let field = |status: &str, name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut totals = (0, 0);
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        totals.0 += field(&status, "voluntary_ctxt_switches:");
        totals.1 += field(&status, "nonvoluntary_ctxt_switches:");
    }
    totals
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Finds the push-core binary next to the bench's own, building it with the
/// same profile if needed, and installs the Node peer's modules if they are
/// missing.
pub fn prepare(workspace: &Path) -> anyhow::Result<Programs> {
    let push_core = push_core(workspace)?;
    let dir = push_core
        .parent()
        .context("the push-core binary has no directory")?;
    let write_floor = dir.join("write-floor");
    let floor_sources = [
        workspace.join("Cargo.lock"),
        workspace.join("bench/src/bin/write-floor"),
        workspace.join("push-client"),
    ];
    if is_stale(&write_floor, &floor_sources) {
        build_write_floor(workspace, &write_floor)?;
    }

    let peer_node = workspace.join("bench/peer-node");
    if !peer_node.join("node_modules/socket.io").exists() {
        eprintln!("bench: installing the Node peer's modules (npm ci)");
        let status = Command::new("npm")
            .current_dir(&peer_node)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .status()
            .context("running npm ci; is Node installed?")?;
        if !status.success() {
            bail!("npm ci in bench/peer-node failed");
        }
    }
    let scratch = std::env::temp_dir().join(format!("push-core-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    Ok(Programs {
        push_core_no_old_clients: dir.join("push-core-no-old-clients"),
        push_core_baseline: None,
        push_core,
        peer_node,
        write_floor,
        scratch,
    })
}

/// The push-core binary next to the bench's own, built with the same
/// profile if it is missing or older than its sources.
pub fn push_core(workspace: &Path) -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe()?;
    let dir = own.parent().context("the bench binary has no directory")?;
    let push_core = dir.join("push-core");
    // Building it again when it is current would not be free: cargo unifies
    // features over the packages of one build, so `-p push-core` alone
    // rebuilds dependencies that `cargo build --workspace` already built.
    if is_stale(&push_core, &push_core_sources(workspace)) {
        build_push_core(workspace, &push_core, &[])?;
    }
    Ok(push_core)
}

/// Builds the one-write floor, in the bench's own profile, and fails
/// unless `binary` is there afterwards. `cargo run -p bench` builds the
/// bench's default binary only, hence this.
fn build_write_floor(workspace: &Path, binary: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "bench", "--bin", "write-floor"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    eprintln!("bench: building the one-write floor ({})", profile());
    let status = build.status().context("running cargo build")?;
    if !status.success() || !binary.exists() {
        bail!("building the one-write floor failed");
    }
    Ok(())
}

/// Builds `push-core` with cargo's `extra` arguments, in the bench's own
/// profile, and fails unless `binary` is there afterwards.
fn build_push_core(workspace: &Path, binary: &Path, extra: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace).args([
        "build",
        "--quiet",
        "-p",
        "push-core",
        "--bin",
        "push-core",
    ]);
    build.args(extra);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    eprintln!(
        "bench: building push-core ({}) {}",
        profile(),
        extra.join(" ")
    );
    let status = build.status().context("running cargo build")?;
    if !status.success() || !binary.exists() {
        bail!("building push-core failed");
    }
    Ok(())
}

/// Builds push-core without its `old-clients` feature, next to the default
/// build, unless that copy is current. cargo writes both feature sets to
/// the same `push-core` file, so the copy is moved aside under its own name
/// and the default build made again (only push-core itself recompiles: the
/// dependencies of both feature sets stay in cargo's cache).
pub fn build_without_old_clients(workspace: &Path, programs: &Programs) -> anyhow::Result<()> {
    if !is_stale(
        &programs.push_core_no_old_clients,
        &push_core_sources(workspace),
    ) {
        return Ok(());
    }
    build_push_core(
        workspace,
        &programs.push_core,
        &["--no-default-features", "--features", "cli"],
    )?;
    std::fs::rename(&programs.push_core, &programs.push_core_no_old_clients)
        .context("moving the build without old clients aside")?;
    build_push_core(workspace, &programs.push_core, &[])
}

/// What push-core is built from.
fn push_core_sources(workspace: &Path) -> [PathBuf; 4] {
    [
        workspace.join("Cargo.lock"),
        workspace.join("push-core"),
        workspace.join("push-client"),
        workspace.join("push-engineio"),
    ]
}

/// True when `binary` is missing or older than one of `sources` (files, or
/// directories searched through).
fn is_stale(binary: &Path, sources: &[PathBuf]) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return true;
    };
    sources.iter().any(|path| newer_than(path, built))
}

fn newer_than(path: &Path, time: std::time::SystemTime) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.modified().is_ok_and(|m| m > time) {
        return true;
    }
    meta.is_dir()
        && std::fs::read_dir(path).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|entry| newer_than(&entry.path(), time))
        })
}

pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The switches of a thread other than the main one are in the sum:
    /// `/proc/PID/status` alone would miss them.
    #[test]
    fn context_switches_count_every_thread() {
        const SLEEPS: u64 = 20;
        let (slept_tx, slept_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            // Each sleep blocks the thread: one voluntary switch at least.
            for _ in 0..SLEEPS {
                std::thread::sleep(Duration::from_millis(1));
            }
            slept_tx.send(()).expect("the test waits for this");
            let _ = done_rx.recv();
        });
        slept_rx.recv().expect("the sleeper reports");
        let pid = std::process::id();
        let main_thread = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("/proc/self/status")
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|count| count.trim().parse::<u64>().ok())
            .expect("voluntary_ctxt_switches in /proc/self/status");
        let (voluntary, _) = context_switches(pid);
        done_tx.send(()).expect("the sleeper waits for this");
        sleeper.join().expect("the sleeper ends");
        assert!(
            voluntary >= main_thread + SLEEPS,
            "{voluntary} voluntary switches over all threads, {main_thread} on the main one"
        );
    }
}
