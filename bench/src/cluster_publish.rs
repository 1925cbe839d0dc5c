//! The publish path into a cluster (issue #22): how long one publish takes
//! and how many a pipeline gets through, on a node alone and on the first
//! of several nodes sharing one Redis, side by side in one run.
//!
//! Every layout is started first, each with its own `redis-server`, and the
//! measurements then take turns: round 1 measures each layout once, round
//! 2 again, and so on, so that a spell of load from another process on the
//! machine falls on all of them rather than on one.
//!
//! Two measurements per layout and round, on one publisher connection
//! (push-client, as PHP's extension uses it), 100-byte broadcasts to a
//! namespace nobody is connected to (the publish path alone, as in
//! docs/benchmarks.md "PHP publish path"):
//! - **synchronous**: each publish waits for its reply before the next;
//!   the median and p99 of the round trips;
//! - **pipelined**: publishes queued in batches and flushed, as
//!   `PushClient::queue()`/`flush()` do; messages per second.
//!
//! CPU is the nodes' and Redis's time over each measurement (`/proc`),
//! per publish.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use push_client::{Client, Publish, Target};

use crate::cluster::{Layout, RedisServer};
use crate::publisher::{EVENT, push_core_client};
use crate::recorder::payload;
use crate::scenarios::Bench;
use crate::servers::{NAMESPACE, ProcSample, PublishEndpoint, Server, proc_sample};

/// How long the nodes of a layout may take to see each other.
const LINKED_TIMEOUT: Duration = Duration::from_secs(20);

/// Publishes queued before each flush in the pipelined measurement: as
/// many as a PHP page that queues a burst of notifications might.
const PIPELINE_BATCH: usize = 1000;

/// What to measure.
#[derive(Clone, Copy, Debug)]
pub struct PublishPlan {
    pub nodes: usize,
    pub rounds: usize,
    /// Synchronous publishes per round.
    pub synchronous: usize,
    /// Pipelined publishes per round.
    pub pipelined: usize,
}

/// One layout's figures in one round.
#[derive(Clone, Debug)]
pub struct PublishFigures {
    pub layout: Layout,
    pub recovery: bool,
    pub round: usize,
    pub median_us: f64,
    pub p99_us: f64,
    /// Server CPU (every node and Redis) per synchronous publish, in µs.
    pub synchronous_cpu_us: f64,
    pub pipelined_per_s: f64,
    /// Server CPU (every node and Redis) per pipelined publish, in µs.
    pub pipelined_cpu_us: f64,
    /// Redis's share of it; `None` without Redis.
    pub pipelined_redis_us: Option<f64>,
    /// Replies that said partial, over both measurements.
    pub partial: u64,
}

/// A layout running: its nodes and its Redis.
struct Running {
    layout: Layout,
    recovery: bool,
    nodes: Vec<Server>,
    redis: Option<RedisServer>,
}

impl Running {
    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.nodes.iter().map(Server::pid).collect();
        pids.extend(self.redis.as_ref().map(RedisServer::pid));
        pids
    }

    fn cpu(&self) -> anyhow::Result<ProcSample> {
        let samples = self
            .pids()
            .into_iter()
            .map(proc_sample)
            .collect::<anyhow::Result<Vec<_>>>()?;
        ProcSample::sum(&samples).context("a layout without processes")
    }

    /// Redis's CPU time so far, in µs.
    fn redis_cpu(&self) -> anyhow::Result<Option<u64>> {
        self.redis
            .as_ref()
            .map(|redis| proc_sample(redis.pid()).map(|sample| sample.cpu_us))
            .transpose()
    }

    fn client(&self) -> anyhow::Result<Client> {
        match &self.nodes[0].publish {
            PublishEndpoint::Unix(path) => push_core_client(path.clone()),
            PublishEndpoint::Http(_) => bail!("push-core publishes on a Unix socket"),
        }
    }
}

impl Bench {
    /// Starts every layout, then measures them in turn, `plan.rounds`
    /// times.
    pub async fn cluster_publish(
        &self,
        plan: PublishPlan,
        recoveries: &[bool],
    ) -> anyhow::Result<Vec<PublishFigures>> {
        let mut running = Vec::new();
        for &recovery in recoveries {
            for layout in [Layout::Alone, Layout::Redis { nodes: plan.nodes }] {
                let (_, redis, nodes) = self.start_layout(layout, recovery)?;
                running.push(Running {
                    layout,
                    recovery,
                    nodes,
                    redis,
                });
            }
        }
        for layout in &running {
            wait_linked(layout).await?;
        }
        let mut figures = Vec::new();
        for round in 1..=plan.rounds {
            for layout in &running {
                let measured = measure(layout, round, plan).await?;
                eprintln!("{}", line(&measured));
                figures.push(measured);
            }
        }
        for layout in running {
            for node in layout.nodes {
                node.stop();
            }
        }
        Ok(figures)
    }
}

/// The publish every measurement sends: a broadcast nobody receives.
fn publish(body: &str) -> Publish<'_> {
    Publish {
        namespace: NAMESPACE,
        event: EVENT,
        target: Target::everyone(),
        payload: body.as_bytes(),
    }
}

/// Waits until a publish on the first node gets a complete count: every
/// node has linked to Redis and answers.
async fn wait_linked(layout: &Running) -> anyhow::Result<()> {
    if layout.layout == Layout::Alone {
        return Ok(());
    }
    let mut client = layout.client()?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let body = payload(0, None, 0);
        let started = Instant::now();
        while started.elapsed() < LINKED_TIMEOUT {
            if !client.publish(&publish(&body))?.partial {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the nodes did not link to Redis within {LINKED_TIMEOUT:?}")
    })
    .await
    .context("the warm-up publisher failed")?
}

/// One round of both measurements on `layout`.
async fn measure(
    layout: &Running,
    round: usize,
    plan: PublishPlan,
) -> anyhow::Result<PublishFigures> {
    let mut client = layout.client()?;
    let before = layout.cpu()?;
    let (mut client, mut samples, mut partial) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let body = payload(0, None, 0);
            let mut samples = Vec::with_capacity(plan.synchronous);
            let mut partial = 0;
            for _ in 0..plan.synchronous {
                let sent = Instant::now();
                let count = client.publish(&publish(&body))?;
                samples.push(sent.elapsed());
                partial += u64::from(count.partial);
            }
            Ok((client, samples, partial))
        })
        .await
        .context("the synchronous publisher panicked")??;
    let middle = layout.cpu()?;
    let redis_before = layout.redis_cpu()?;
    let (pipelined, elapsed, errors, partial_pipelined) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let body = payload(0, None, 0);
            let started = Instant::now();
            let (mut sent, mut errors, mut partial) = (0, 0u64, 0u64);
            while sent < plan.pipelined {
                let batch = PIPELINE_BATCH.min(plan.pipelined - sent);
                for _ in 0..batch {
                    client.queue_publish(&publish(&body))?;
                }
                for reply in client.flush() {
                    match reply {
                        Ok(count) => partial += u64::from(count.partial),
                        Err(_) => errors += 1,
                    }
                }
                sent += batch;
            }
            Ok((sent, started.elapsed(), errors, partial))
        })
        .await
        .context("the pipelined publisher panicked")??;
    let after = layout.cpu()?;
    let redis_used = layout
        .redis_cpu()?
        .zip(redis_before)
        .map(|(after, before)| after.saturating_sub(before));
    anyhow::ensure!(
        errors == 0,
        "{}: {errors} pipelined publishes failed",
        layout.layout.label()
    );
    partial += partial_pipelined;
    samples.sort_unstable();
    let at = |quantile: f64| {
        let index = ((samples.len() as f64 * quantile) as usize).min(samples.len() - 1);
        samples[index].as_secs_f64() * 1e6
    };
    Ok(PublishFigures {
        layout: layout.layout,
        recovery: layout.recovery,
        round,
        median_us: at(0.5),
        p99_us: at(0.99),
        synchronous_cpu_us: before.cpu_since(&middle).0 as f64 / plan.synchronous.max(1) as f64,
        pipelined_per_s: pipelined as f64 / elapsed.as_secs_f64(),
        pipelined_cpu_us: middle.cpu_since(&after).0 as f64 / pipelined.max(1) as f64,
        pipelined_redis_us: redis_used.map(|us| us as f64 / pipelined.max(1) as f64),
        partial,
    })
}

fn line(figures: &PublishFigures) -> String {
    format!(
        "cluster publish, round {}, {}, recovery {}: synchronous median {:.1} µs, p99 {:.1} µs, {:.1} µs CPU; pipelined {:.0}/s, {:.2} µs CPU{}",
        figures.round,
        figures.layout.label(),
        on_off(figures.recovery),
        figures.median_us,
        figures.p99_us,
        figures.synchronous_cpu_us,
        figures.pipelined_per_s,
        figures.pipelined_cpu_us,
        if figures.partial > 0 {
            format!(", {} partial counts", figures.partial)
        } else {
            String::new()
        },
    )
}

/// The figures of every round, and each cluster against the node alone in
/// the same round.
pub fn table(figures: &[PublishFigures]) -> String {
    let mut out = String::from(
        "\n### Publishing into a cluster (100-byte broadcasts to nobody, one publisher connection)\n\n\
         | round | recovery | layout | synchronous median µs | p99 µs | server CPU µs/publish | pipelined msg/s | server CPU µs/publish | of which Redis |\n\
         |--:|---|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for entry in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} | {} |",
            entry.round,
            on_off(entry.recovery),
            entry.layout.label(),
            entry.median_us,
            entry.p99_us,
            entry.synchronous_cpu_us,
            entry.pipelined_per_s,
            entry.pipelined_cpu_us,
            entry
                .pipelined_redis_us
                .map_or("–".to_owned(), |us| format!("{us:.2}")),
        );
    }
    out.push_str(
        "\n### Each cluster against the node alone, same round\n\n\
         | round | recovery | layout | synchronous median ratio | pipelined throughput ratio |\n\
         |--:|---|---|--:|--:|\n",
    );
    for entry in figures.iter().filter(|entry| entry.layout != Layout::Alone) {
        let Some(alone) = figures.iter().find(|other| {
            other.layout == Layout::Alone
                && other.recovery == entry.recovery
                && other.round == entry.round
        }) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2}× | {:.3}× |",
            entry.round,
            on_off(entry.recovery),
            entry.layout.label(),
            entry.median_us / alone.median_us.max(1e-9),
            entry.pipelined_per_s / alone.pipelined_per_s.max(1e-9),
        );
    }
    out
}

fn on_off(recovery: bool) -> &'static str {
    if recovery { "on" } else { "off" }
}
