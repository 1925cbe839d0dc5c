//! Fan-out across the nodes of a cluster (`--adapter redis`, issue #13).
//!
//! The same number of subscribers, publishing on the first node at the
//! same offered steps, in three layouts run one after the other in one
//! invocation:
//! - one node alone, no Redis (the single-node figures of the fan-out);
//! - one node with `--adapter redis`: what the Redis path costs by itself;
//! - `nodes` nodes with `--adapter redis`, the subscribers spread evenly
//!   over them: what spreading browsers over nodes buys and costs.
//!
//! With recovery on (the default) a publish is numbered in a Redis Stream
//! and every node, the publishing one included, reads it from there; with
//! `--recovery-window 0` it travels through socketioxide's Redis adapter
//! (pub/sub). Both are measured. The bench starts its own `redis-server` on
//! a free loopback port, without persistence, fresh for each layout, and
//! counts its CPU apart from the nodes'.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use push_client::{Publish, Target};

use crate::client::Fleet;
use crate::publisher::{Audience, EVENT, push_core_client};
use crate::recorder::{now_us, payload};
use crate::scenarios::{Bench, DeliveryStep, step_line};
use crate::servers::{Kind, NAMESPACE, PublishEndpoint, Server, free_port};

/// How long redis-server may take to answer PING after it is started.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the nodes may take to see each other: every subscriber must
/// receive one warm-up broadcast published on the first node. Nodes link
/// to Redis in milliseconds; the bound only stops a broken run.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one warm-up broadcast may take to reach every subscriber
/// before another is sent.
const WARM_UP_WAIT: Duration = Duration::from_secs(2);

/// Handshakes in flight per node while the subscribers connect.
const CONNECT_IN_FLIGHT: usize = 128;

/// How the subscribers are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One push-core, no Redis.
    Alone,
    /// `nodes` push-core nodes sharing through one Redis.
    Redis { nodes: usize },
}

impl Layout {
    pub fn label(self) -> String {
        match self {
            Layout::Alone => "1 node, no Redis".to_owned(),
            Layout::Redis { nodes: 1 } => "1 node + Redis".to_owned(),
            Layout::Redis { nodes } => format!("{nodes} nodes + Redis"),
        }
    }

    pub fn nodes(self) -> usize {
        match self {
            Layout::Alone => 1,
            Layout::Redis { nodes } => nodes,
        }
    }
}

/// One step of one layout.
#[derive(Clone, Debug)]
pub struct ClusterStep {
    pub layout: Layout,
    pub recovery: bool,
    /// Server figures are summed over the nodes.
    pub step: DeliveryStep,
    /// Redis's CPU time over the step, in µs; `None` without Redis.
    pub redis_cpu_us: Option<u64>,
}

impl ClusterStep {
    /// Redis's CPU time per delivery, in µs.
    pub fn redis_us_per_delivery(&self) -> Option<f64> {
        let deliveries = self.step.delivered.max(1) as f64;
        self.redis_cpu_us.map(|us| us as f64 / deliveries)
    }

    /// Redis's CPU time per publish, in µs: its work is per message, not
    /// per recipient.
    pub fn redis_us_per_publish(&self) -> Option<f64> {
        let publishes = self.step.published.messages.max(1) as f64;
        self.redis_cpu_us.map(|us| us as f64 / publishes)
    }
}

/// A redis-server of the bench's own, on a free loopback port, with no
/// persistence. Killed when dropped.
pub struct RedisServer {
    pub url: String,
    child: Child,
}

impl RedisServer {
    pub fn start() -> anyhow::Result<Self> {
        let addr = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server (Debian: apt-get install redis-server)")?;
        let mut redis = Self {
            url: format!("redis://{addr}"),
            child,
        };
        let started = Instant::now();
        while !answers_ping(addr) {
            if let Some(status) = redis.child.try_wait()? {
                bail!("redis-server exited while starting: {status}");
            }
            if started.elapsed() > REDIS_START_TIMEOUT {
                bail!("redis-server did not answer PING in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the Redis at `addr` answers PING (within half a second).
pub(crate) fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 5];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG"
}

impl Bench {
    /// Broadcasts to `connections` subscribers served as `layout`,
    /// stepping the offered rate up until the nodes no longer keep up.
    pub async fn cluster_fanout(
        &self,
        layout: Layout,
        recovery: bool,
        connections: usize,
        offered: &[u64],
    ) -> anyhow::Result<Vec<ClusterStep>> {
        let (kind, redis, nodes) = self.start_layout(layout, recovery)?;
        // Subscribers spread evenly: node i gets every nodes-th one.
        let mut fleets: Vec<Fleet> = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            let share = connections / nodes.len() + usize::from(index < connections % nodes.len());
            let mut fleet = self.fleet(node);
            fleet.connect(&vec![None; share], CONNECT_IN_FLIGHT).await;
            fleets.push(fleet);
        }
        let joined: usize = fleets.iter().map(Fleet::joined).sum();
        anyhow::ensure!(
            joined == connections,
            "{}: only {joined} of {connections} subscribers joined",
            layout.label()
        );
        self.wait_until_linked(&nodes[0], connections).await?;
        let node_refs: Vec<&Server> = nodes.iter().collect();
        let mut steps = Vec::new();
        for &deliveries in offered {
            let rate = deliveries as f64 / connections as f64;
            let (step, redis_us) = self
                .delivery_step_across(
                    &node_refs,
                    redis.as_ref().map(RedisServer::pid),
                    Audience::Everyone,
                    rate,
                    connections as u64,
                )
                .await?;
            let step = DeliveryStep {
                kind,
                connections,
                offered: deliveries,
                ..step
            };
            let sustained = step.sustained;
            let entry = ClusterStep {
                layout,
                recovery,
                step,
                redis_cpu_us: redis_us,
            };
            eprintln!(
                "{}, redis {}",
                step_line(
                    &format!("cluster fan-out, {},", layout.label()),
                    &entry.step
                ),
                entry
                    .redis_us_per_publish()
                    .map_or("-".to_owned(), |us| format!("{us:.1} µs/publish"))
            );
            steps.push(entry);
            if !sustained {
                break;
            }
        }
        for fleet in fleets {
            fleet.close().await;
        }
        for node in nodes {
            node.stop();
        }
        Ok(steps)
    }

    /// Starts `layout`'s nodes, and its Redis if it has one; returns the
    /// kind of push-core they are, with them.
    pub fn start_layout(
        &self,
        layout: Layout,
        recovery: bool,
    ) -> anyhow::Result<(Kind, Option<RedisServer>, Vec<Server>)> {
        let kind = if recovery {
            Kind::PushCore
        } else {
            Kind::PushCoreNoRecovery
        };
        let redis = match layout {
            Layout::Alone => None,
            Layout::Redis { .. } => Some(RedisServer::start()?),
        };
        let mut nodes = Vec::new();
        for index in 0..layout.nodes() {
            let extra = match &redis {
                None => Vec::new(),
                Some(redis) => [
                    "--adapter",
                    "redis",
                    "--redis-url",
                    &redis.url,
                    "--node-id",
                    &format!("bench-{index}"),
                ]
                .map(str::to_owned)
                .to_vec(),
            };
            nodes.push(Server::start_with(kind, &self.programs, None, &extra)?);
        }
        Ok((kind, redis, nodes))
    }

    /// Waits until a broadcast published on `first` reaches all
    /// `connections` subscribers, wherever they are connected: the nodes
    /// have linked to Redis and subscribed. The warm-up messages carry step
    /// 0, which no measured step has, so they are counted as late and
    /// never recorded.
    async fn wait_until_linked(&self, first: &Server, connections: usize) -> anyhow::Result<()> {
        let socket = match &first.publish {
            PublishEndpoint::Unix(path) => path.clone(),
            PublishEndpoint::Http(_) => bail!("push-core publishes on a Unix socket"),
        };
        let started = Instant::now();
        while started.elapsed() < CLUSTER_READY_TIMEOUT {
            self.recorder.begin_step();
            let socket = socket.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<u32> {
                let body = payload(now_us(), None, 0);
                Ok(push_core_client(socket)?
                    .publish(&Publish {
                        namespace: NAMESPACE,
                        event: EVENT,
                        target: Target::everyone(),
                        payload: body.as_bytes(),
                    })?
                    .total)
            })
            .await
            .context("the warm-up publisher failed")??;
            let sent = Instant::now();
            while sent.elapsed() < WARM_UP_WAIT {
                if self.recorder.late() >= connections as u64 {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        bail!(
            "a broadcast on the first node did not reach all {connections} subscribers within {:?}",
            CLUSTER_READY_TIMEOUT
        )
    }
}

/// The table of a cluster run, and the ratios of each layout to the node
/// alone at the steps both ran.
pub fn table(steps: &[ClusterStep]) -> String {
    let mut out = String::from(
        "\n### Fan-out across nodes (100-byte broadcasts published on the first node)\n\n\
         | recovery | subscribers | layout | offered deliveries/s | delivered/s | p50 ms | p99 ms | server CPU µs/delivery (all nodes) | Redis CPU µs/delivery | Redis CPU µs/publish | sustained |\n\
         |---|--:|---|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for entry in steps {
        let step = &entry.step;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            on_off(entry.recovery),
            step.connections,
            entry.layout.label(),
            step.offered,
            step.deliveries_per_s,
            step.p50_ms,
            step.p99_ms,
            step.server_cpu_us_per_delivery,
            entry
                .redis_us_per_delivery()
                .map_or("–".to_owned(), |us| format!("{us:.2}")),
            entry
                .redis_us_per_publish()
                .map_or("–".to_owned(), |us| format!("{us:.0}")),
            if step.sustained { "yes" } else { "no" },
        );
    }
    out.push_str(
        "\n### Each layout against one node alone, at the same step\n\n\
         | recovery | subscribers | layout | offered deliveries/s | delivered/s ratio | p99 ratio | server CPU per delivery ratio (all nodes) |\n\
         |---|--:|---|--:|--:|--:|--:|\n",
    );
    for entry in steps.iter().filter(|entry| entry.layout != Layout::Alone) {
        let alone = steps.iter().find(|other| {
            other.layout == Layout::Alone
                && other.recovery == entry.recovery
                && other.step.connections == entry.step.connections
                && other.step.offered == entry.step.offered
        });
        let Some(alone) = alone else { continue };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            on_off(entry.recovery),
            entry.step.connections,
            entry.layout.label(),
            entry.step.offered,
            entry.step.deliveries_per_s / alone.step.deliveries_per_s.max(1e-9),
            entry.step.p99_ms / alone.step.p99_ms.max(1e-9),
            entry.step.server_cpu_us_per_delivery / alone.step.server_cpu_us_per_delivery.max(1e-9),
        );
    }
    out
}

fn on_off(recovery: bool) -> &'static str {
    if recovery { "on" } else { "off" }
}
