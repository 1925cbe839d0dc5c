//! The processes a chaos run breaks: the push-core nodes and their Redis.
//!
//! Each keeps its address across restarts, so pages and the publisher find
//! a restarted node where they left it, and nodes find Redis again where
//! it was. Faults are signals: `kill -9` (SIGKILL), then a start with the
//! same command line; SIGSTOP and SIGCONT; Redis killed and started again
//! empty (no persistence, as the test suite runs it), which makes the
//! cluster's history begin a new epoch.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};

use crate::cluster::answers_ping;
use crate::servers::free_port;

/// How long a node or Redis may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The namespace the pages join.
pub const NAMESPACE: &str = "/chaos";

/// A redis-server that can be killed and started again on its port.
pub struct Redis {
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> anyhow::Result<Self> {
        let mut redis = Self {
            addr: free_port()?,
            child: None,
        };
        redis.launch()?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Kills it (as a crash would) and starts it again, empty.
    pub fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        self.kill();
        std::thread::sleep(down_for);
        self.launch()
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.addr.port().to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server (Debian: apt-get install redis-server)")?;
        self.child = Some(child);
        let started = Instant::now();
        while !answers_ping(self.addr) {
            if started.elapsed() > START_TIMEOUT {
                bail!("redis-server did not answer PING in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One push-core node of the cluster.
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    pub socket: PathBuf,
    command: Vec<String>,
    binary: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Times it was started; 1 until its first restart.
    pub starts: u32,
}

impl Node {
    /// Starts node `index` of a cluster on `redis`, its pages identified by
    /// `auth_url`; its log goes to a file in `scratch`. `queue` is
    /// `max_buffered_messages`.
    pub fn start(
        binary: &Path,
        scratch: &Path,
        index: usize,
        redis: &Redis,
        auth_url: &str,
        queue: usize,
    ) -> anyhow::Result<Self> {
        let name = format!("chaos-{}", index + 1);
        let addr = free_port()?;
        let socket = scratch.join(format!("{name}.sock"));
        let command = [
            "serve",
            "--listen",
            &addr.to_string(),
            "--socket",
            &socket.to_string_lossy(),
            "--namespace",
            NAMESPACE,
            "--adapter",
            "redis",
            "--redis-url",
            &redis.url(),
            "--node-id",
            &name,
            "--auth-url",
            auth_url,
            // A heartbeat of seconds, so that a cut network or a stopped
            // node ends connections within the run, as the default 45 s
            // would over a longer one.
            "--ping-interval",
            "5s",
            "--ping-timeout",
            "5s",
            // A small queue, so that a page that stops reading for a few
            // seconds overflows it and is caught up.
            "--max-buffered-messages",
            &queue.to_string(),
            // Every page comes from an address of its own through the
            // relay; the limits per address are not what is tested.
            "--max-connections-per-ip",
            "0",
            "--handshakes-per-ip-per-minute",
            "0",
            "--log-level",
            "warn",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut node = Self {
            log: scratch.join(format!("{name}.log")),
            name,
            addr,
            socket,
            command,
            binary: binary.to_owned(),
            child: None,
            starts: 0,
        };
        node.launch()?;
        Ok(node)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: it ends at once, saying nothing to anyone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same command line.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch()
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { Signal::STOP } else { Signal::CONT };
        if let Some(pid) = self.pid().and_then(|pid| Pid::from_raw(pid as i32)) {
            let _ = kill_process(pid, signal);
        }
    }

    /// Its resident memory, in bytes.
    pub fn rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The last lines of its log, for a failed run.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(&self.command)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        self.starts += 1;
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited while starting: {status}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if self.socket.exists() && TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("{} did not start listening in time", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.freeze(false);
        self.kill();
    }
}
