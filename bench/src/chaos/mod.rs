//! A chaos run: a cluster under faults, judged by what its pages receive.
//!
//! `cargo run --release -p bench -- chaos` starts a Redis and three
//! push-core nodes sharing it (recovery on), connects 2,000 pages through
//! a relay that can cut their network, publishes at a steady rate to the
//! nodes in turn, and for ten minutes makes one fault after another:
//!
//! - a node killed with `kill -9`, and started again a few seconds later;
//! - a node stopped with SIGSTOP for a few seconds;
//! - Redis killed and started again, empty;
//! - the network of some pages cut at the relay for seconds;
//! - some pages that stop reading for seconds.
//!
//! Then everything is healed, the pages catch up, and each page's record
//! is judged against what the site was told it published
//! ([`verdict`]): no silent gap, no duplicate, nothing out of order,
//! nothing for another user, and every node's memory flat. The table is
//! printed; the exit status is 1 unless the run passed. docs/chaos.md has a
//! full run; scripts/test.sh runs a 30-second one.
//!
//! The parts:
//! - `cluster`: the nodes and Redis, and the signals that break them;
//! - `relay`: the pages' network;
//! - `page`: a page that recovers, and its record;
//! - `publisher`: the site, and the ledger of what it published;
//! - `verdict`: the judgement and the table.

mod cluster;
mod page;
mod publisher;
mod relay;
mod verdict;

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::cluster::{Node, Redis};
use self::page::Page;
use self::publisher::Ledger;
use self::relay::Relay;
use self::verdict::{FaultCounts, RssSample, RunShape};
use crate::{auth, limits, servers};

/// Settings of a chaos run.
#[derive(clap::Args, Clone, Debug)]
pub struct ChaosArgs {
    /// How long faults are made, in minutes.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// How long faults are made, in seconds (instead of --minutes).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Pages connected through the relay.
    #[arg(long, default_value_t = 2000)]
    pub pages: usize,
    /// push-core nodes sharing one Redis.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Publishes per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// The nodes' max_buffered_messages.
    #[arg(long, default_value_t = 32)]
    pub queue: usize,
}

/// Users the pages are spread over: two pages (tabs) each.
fn users(pages: usize) -> u32 {
    (pages as u32 / 2).max(1)
}

/// A private message in this many publishes; the rest go to everyone.
const PRIVATE_SHARE: f64 = 0.1;

/// How long the pages may take to catch up once the faults end.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the pages may take to join at the start.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the chaos; true if it passed.
pub async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    let duration = args.seconds.map_or(
        Duration::from_secs_f64(args.minutes * 60.0),
        Duration::from_secs,
    );
    let plan = FaultPlan::for_run(duration, args.pages);
    limits::raise_open_files(4 * args.pages as u64 + limits::SPARE_DESCRIPTORS);
    let binary = servers::push_core(&crate::workspace())?;
    let scratch = std::env::temp_dir().join(format!("push-core-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let auth = auth::AuthBackend::start().await?;
    let redis = Arc::new(Mutex::new(Redis::start()?));
    let nodes = start_nodes(&binary, &scratch, &args, &redis, &auth.url)?;
    let stop = CancellationToken::new();
    let addresses: Vec<_> = lock(&nodes).iter().map(|node| node.addr).collect();
    let relay = Relay::start(addresses, stop.clone()).await?;
    eprintln!(
        "chaos: {} nodes, redis {}, relay {}, logs in {}",
        args.nodes,
        lock(&redis).addr,
        relay.addr,
        scratch.display()
    );

    let clock = Instant::now();
    let pages: Vec<Arc<Page>> = (0..args.pages)
        .map(|index| Page::new(index, index as u32 % users(args.pages)))
        .collect();
    let page_stop = CancellationToken::new();
    let page_tasks: Vec<_> = pages
        .iter()
        .map(|page| tokio::spawn(page.clone().run(relay.addr, clock, page_stop.clone())))
        .collect();
    wait_for(JOIN_TIMEOUT, || {
        pages.iter().all(|p| p.connected.load(Ordering::Acquire))
    })
    .await;
    let joined = pages
        .iter()
        .filter(|p| p.connected.load(Ordering::Acquire))
        .count();
    eprintln!(
        "chaos: {joined} of {} pages joined; faults for {duration:?}",
        pages.len()
    );

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let publishing = Arc::new(AtomicBool::new(false));
    let publisher = {
        let sockets = lock(&nodes)
            .iter()
            .map(|node| node.socket.clone())
            .collect();
        let (ledger, stopped, rate, users) = (
            ledger.clone(),
            publishing.clone(),
            args.rate,
            users(args.pages),
        );
        std::thread::spawn(move || {
            publisher::publish(sockets, rate, users, PRIVATE_SHARE, ledger, stopped)
        })
    };
    let sampling = CancellationToken::new();
    let rss = tokio::spawn(sample_rss(
        nodes.clone(),
        clock,
        plan.sample_every,
        sampling.clone(),
    ));
    let chaos = Chaos {
        nodes: nodes.clone(),
        redis: redis.clone(),
        relay: relay.clone(),
        pages: pages.clone(),
        plan,
        clock,
    };
    let faults = chaos.make_faults(duration).await?;

    publishing.store(true, Ordering::Release);
    let _ = publisher.join();
    eprintln!("chaos: faults over ({faults:?}); waiting for the pages to catch up");
    let sent = std::mem::take(&mut lock(&ledger).sent);
    let resets_then: Vec<u16> = pages.iter().map(|page| lock(&page.record).resets).collect();
    let caught_up = wait_for(SETTLE_TIMEOUT, || {
        pages
            .iter()
            .zip(&resets_then)
            .all(|(page, &resets)| page_caught_up(page, &sent, resets))
    })
    .await;
    if !caught_up {
        eprintln!("chaos: not every page caught up within {SETTLE_TIMEOUT:?}");
    }
    sampling.cancel();
    let rss = rss.await.unwrap_or_default();
    page_stop.cancel();
    for task in page_tasks {
        let _ = task.await;
    }
    stop.cancel();

    let records: Vec<_> = pages
        .iter()
        .map(|page| (page.user, std::mem::take(&mut *lock(&page.record))))
        .collect();
    let shape = RunShape {
        seconds: duration.as_secs(),
        nodes: args.nodes,
        pages: args.pages,
        rate: args.rate,
        queue: args.queue,
    };
    let judged = verdict::verdict(&shape, faults, &records, &sent, &rss);
    println!("{}", judged.report);
    if !judged.passed {
        for node in lock(&nodes).iter() {
            eprintln!(
                "chaos: the end of {}'s log:\n{}",
                node.name,
                node.log_tail()
            );
        }
    }
    Ok(judged.passed)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn start_nodes(
    binary: &Path,
    scratch: &Path,
    args: &ChaosArgs,
    redis: &Mutex<Redis>,
    auth_url: &str,
) -> anyhow::Result<Arc<Mutex<Vec<Node>>>> {
    let redis = lock(redis);
    let nodes = (0..args.nodes)
        .map(|index| Node::start(binary, scratch, index, &redis, auth_url, args.queue))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Arc::new(Mutex::new(nodes)))
}

/// Whether `page` is connected and has the last message the site
/// published for it (or a later one), or was told to reload since the
/// publishing stopped, when it had `resets_then` resets.
fn page_caught_up(page: &Page, sent: &[publisher::Sent], resets_then: u16) -> bool {
    if !page.connected.load(Ordering::Acquire) {
        return false;
    }
    let last_meant = sent
        .iter()
        .rposition(|s| s.acknowledged && s.to.is_none_or(|to| to == page.user));
    let record = lock(&page.record);
    match last_meant {
        None => true,
        Some(id) => record.last_id().is_some_and(|last| last >= id) || record.resets > resets_then,
    }
}

/// Polls `done` until it holds or `limit` passes; true if it held.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads every node's RSS every `every` until `stop`.
async fn sample_rss(
    nodes: Arc<Mutex<Vec<Node>>>,
    clock: Instant,
    every: Duration,
    stop: CancellationToken,
) -> Vec<(String, Vec<RssSample>)> {
    let mut samples: Vec<(String, Vec<RssSample>)> = lock(&nodes)
        .iter()
        .map(|node| (node.name.clone(), Vec::new()))
        .collect();
    loop {
        for (node, (_, readings)) in lock(&nodes).iter().zip(samples.iter_mut()) {
            if let Some(rss) = node.rss() {
                readings.push(RssSample {
                    at_secs: clock.elapsed().as_secs(),
                    start: node.starts,
                    rss,
                });
            }
        }
        tokio::select! {
            () = stop.cancelled() => return samples,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// How long each fault lasts, and the pause between two.
#[derive(Debug, Clone)]
struct FaultPlan {
    node_down: Range<f64>,
    node_stopped: Range<f64>,
    redis_down: Range<f64>,
    cut: Range<f64>,
    stall: Range<f64>,
    pause: Range<f64>,
    /// Pages cut or stalled at a time.
    pages_each: usize,
    sample_every: Duration,
}

impl FaultPlan {
    /// Seconds-long faults for a run of minutes; shorter for a smoke run.
    fn for_run(duration: Duration, pages: usize) -> Self {
        let pages_each = (pages / 20).max(1);
        if duration >= Duration::from_secs(120) {
            Self {
                node_down: 2.0..5.0,
                node_stopped: 2.0..6.0,
                redis_down: 0.5..2.0,
                cut: 3.0..15.0,
                stall: 3.0..8.0,
                pause: 2.0..6.0,
                pages_each,
                sample_every: Duration::from_secs(15),
            }
        } else {
            Self {
                node_down: 1.0..2.0,
                node_stopped: 1.0..3.0,
                redis_down: 0.3..1.0,
                cut: 2.0..5.0,
                stall: 2.0..4.0,
                pause: 0.5..1.5,
                pages_each,
                sample_every: Duration::from_secs(5),
            }
        }
    }
}

/// A random duration in `range` seconds.
fn seconds(range: &Range<f64>) -> Duration {
    Duration::from_secs_f64(range.start + fastrand::f64() * (range.end - range.start))
}

/// What the faults are made to.
struct Chaos {
    nodes: Arc<Mutex<Vec<Node>>>,
    redis: Arc<Mutex<Redis>>,
    relay: Relay,
    pages: Vec<Arc<Page>>,
    plan: FaultPlan,
    clock: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Stop,
    RestartRedis,
    Cut,
    Stall,
}

impl Chaos {
    /// Makes faults until `duration` has passed, every kind in each round
    /// in a random order; each is healed before the next.
    async fn make_faults(&self, duration: Duration) -> anyhow::Result<FaultCounts> {
        let mut counts = FaultCounts {
            pages_each: self.plan.pages_each,
            ..FaultCounts::default()
        };
        let started = Instant::now();
        let mut round = Vec::new();
        while started.elapsed() < duration {
            if round.is_empty() {
                round = vec![
                    Fault::Kill,
                    Fault::Stop,
                    Fault::RestartRedis,
                    Fault::Cut,
                    Fault::Stall,
                ];
                fastrand::shuffle(&mut round);
            }
            let Some(fault) = round.pop() else { continue };
            eprintln!("chaos: {:>4}s {fault:?}", self.clock.elapsed().as_secs());
            match fault {
                Fault::Kill => {
                    self.kill_node().await?;
                    counts.killed += 1;
                }
                Fault::Stop => {
                    self.stop_node().await;
                    counts.stopped += 1;
                }
                Fault::RestartRedis => {
                    self.restart_redis().await?;
                    counts.redis_restarts += 1;
                }
                Fault::Cut => {
                    self.cut_pages().await;
                    counts.cuts += 1;
                }
                Fault::Stall => {
                    self.stall_pages().await;
                    counts.stalls += 1;
                }
            }
            tokio::time::sleep(seconds(&self.plan.pause)).await;
        }
        Ok(counts)
    }

    async fn kill_node(&self) -> anyhow::Result<()> {
        let index = fastrand::usize(0..lock(&self.nodes).len());
        self.relay.set_down(index, true);
        lock(&self.nodes)[index].kill();
        tokio::time::sleep(seconds(&self.plan.node_down)).await;
        let nodes = self.nodes.clone();
        tokio::task::spawn_blocking(move || lock(&nodes)[index].restart()).await??;
        self.relay.set_down(index, false);
        Ok(())
    }

    async fn stop_node(&self) {
        let index = fastrand::usize(0..lock(&self.nodes).len());
        lock(&self.nodes)[index].freeze(true);
        tokio::time::sleep(seconds(&self.plan.node_stopped)).await;
        lock(&self.nodes)[index].freeze(false);
    }

    async fn restart_redis(&self) -> anyhow::Result<()> {
        let redis = self.redis.clone();
        let down_for = seconds(&self.plan.redis_down);
        tokio::task::spawn_blocking(move || lock(&redis).restart(down_for)).await?
    }

    fn some_pages(&self) -> Vec<Arc<Page>> {
        let mut chosen = self.pages.clone();
        fastrand::shuffle(&mut chosen);
        chosen.truncate(self.plan.pages_each);
        chosen
    }

    async fn cut_pages(&self) {
        let chosen = self.some_pages();
        for page in &chosen {
            self.relay.cut(page.address(), true);
        }
        tokio::time::sleep(seconds(&self.plan.cut)).await;
        for page in &chosen {
            self.relay.cut(page.address(), false);
        }
    }

    async fn stall_pages(&self) {
        let chosen = self.some_pages();
        let stall = seconds(&self.plan.stall);
        for page in &chosen {
            page.stall(self.clock, stall);
        }
        tokio::time::sleep(stall).await;
        for page in &chosen {
            page.unstall();
        }
    }
}
