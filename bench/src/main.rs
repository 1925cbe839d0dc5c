//! Benchmarks push-core side by side with a Node socket.io 4 server.
//!
//! `cargo run --release -p bench -- all` builds push-core, starts each
//! server in turn, drives it with thousands of simulated browsers from this
//! process and writes `docs/benchmarks.md` and `docs/benchmarks-latency.svg`.
//! `cargo run -p bench -- smoke` is the quick check the test suite runs: a
//! few dozen browsers, a few seconds, exit status 1 unless both servers
//! delivered every message to the right browsers. `cargo run --release -p
//! bench -- replay` times push-core's replay of a backlog to one browser
//! that reconnects (missed-message recovery). `cargo run --release -p
//! bench -- cluster` compares fan-out on one node with fan-out over the
//! nodes of a Redis cluster (issue #13). `cargo run --release -p bench --
//! chaos` runs a cluster under faults and judges what its pages received
//! (docs/chaos.md).
//!
//! How the parts fit:
//! - `client`: the socket.io v4 WebSocket client and a fleet of them;
//! - `recorder`: latency histograms and counts of what arrives;
//! - `publisher`: publishing at a fixed rate to either server;
//! - `servers`: the servers as child processes, and /proc readings;
//! - `auth`: the site's auth endpoint, in-process;
//! - `scenarios`: the four scenarios of the benchmark;
//! - `report`: tables, `docs/benchmarks.md` and the chart;
//! - `replay`: the replay of missed messages to one reconnecting browser;
//! - `cluster`: fan-out over several nodes sharing through Redis;
//! - `cluster_publish`: the publish path into such a cluster;
//! - `chaos`: a cluster under faults, and what its pages received.

mod auth;
mod chaos;
mod client;
mod cluster;
mod cluster_publish;
mod limits;
mod publisher;
mod recorder;
mod replay;
mod report;
mod scenarios;
mod servers;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use clap::{Parser, Subcommand, ValueEnum};

use crate::scenarios::{Bench, Plan, Results};
use crate::servers::Kind;

#[derive(Parser)]
#[command(about = "Benchmarks push-core side by side with Node socket.io 4.")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Every scenario at full size (about 15 minutes); writes
    /// docs/benchmarks.md and docs/benchmarks-latency.svg.
    All(RunArgs),
    /// A few dozen browsers for a few seconds; fails unless both servers
    /// deliver every message to the right browsers. Timings are not checked.
    Smoke,
    /// Times push-core's replay of a backlog to one browser reconnecting
    /// with its last offset (missed-message recovery). Prints a table.
    Replay(ReplayArgs),
    /// The publish path (one publish's round trip, a pipeline's
    /// throughput) on a node alone and on the first of several nodes
    /// sharing one Redis, in interleaved rounds; then fan-out with the same
    /// subscribers on one node alone, on one node with `--adapter redis`,
    /// and spread over several nodes (Redis started by the bench),
    /// publishing on the first node. Prints tables.
    Cluster(ClusterArgs),
    /// Three nodes, Redis and 2,000 recovering pages under faults (kill -9
    /// and restart a node, SIGSTOP a node, restart Redis, cut pages'
    /// network, pages that stop reading) for 10 minutes; prints what the
    /// pages received and each node's RSS, and exits 1 on a silent gap, a
    /// duplicate, a message out of order or another user's, or growing RSS.
    Chaos(chaos::ChaosArgs),
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// Subscriber counts; each is spread evenly over the nodes.
    #[arg(long, value_delimiter = ',', default_value = "3000,10000")]
    subscribers: Vec<usize>,
    /// Offered deliveries/s per step (default: the fan-out's steps).
    #[arg(long, value_delimiter = ',')]
    steps: Vec<u64>,
    /// Nodes of the spread layout.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Recovery settings to run: on (publishes through the Redis Stream),
    /// off (`--recovery-window 0`, through socketioxide's Redis pub/sub).
    #[arg(long, value_delimiter = ',', default_value = "on,off")]
    recovery: Vec<OnOff>,
    /// Parts to run: publish (the publish path), fanout.
    #[arg(long, value_delimiter = ',', default_value = "publish,fanout")]
    only: Vec<ClusterPart>,
    /// Publish path: rounds, each measuring every layout once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Publish path: synchronous publishes per layout and round.
    #[arg(long, default_value_t = 5000)]
    synchronous: usize,
    /// Publish path: pipelined publishes per layout and round.
    #[arg(long, default_value_t = 200_000)]
    pipelined: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClusterPart {
    Publish,
    Fanout,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Messages published while the browser is away.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Runs, each with a fresh push-core; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Run only these scenarios.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Run only against these servers, in this order (default: push-core,
    /// node, write-floor). push-core-no-recovery is push-core with
    /// `--recovery-window 0`; push-core-no-old-clients is push-core built
    /// without its `old-clients` feature (socket.io protocol 4), built by
    /// the bench next to the other; write-floor is the one-write floor
    /// (bench/src/bin/write-floor/), run in the fan-out and private-message
    /// scenarios only.
    #[arg(long, value_delimiter = ',')]
    servers: Vec<ServerArg>,
    /// Print the tables but leave docs/ alone.
    #[arg(long)]
    no_write: bool,
    /// Fan-out: these subscriber counts instead of the plan's (for profiling one case).
    #[arg(long, value_delimiter = ',')]
    subscribers: Vec<usize>,
    /// Idle: these connection counts instead of the plan's.
    #[arg(long, value_delimiter = ',')]
    idle_sizes: Vec<usize>,
    /// Idle: also open the connections as socket.io 1.x/2.x clients
    /// (protocol 4), against every push-core in the run.
    #[arg(long)]
    old_clients: bool,
    /// Idle: seconds to measure CPU over instead of the plan's 26.
    #[arg(long)]
    idle_window: Option<u64>,
    /// Fan-out: these offered deliveries/s instead of the plan's steps.
    #[arg(long, value_delimiter = ',')]
    steps: Vec<u64>,
    /// Another push-core binary (e.g. built from an earlier commit) run as
    /// the push-core-baseline server, so that a change is measured against
    /// what it changes in one run. Adds push-core-baseline to --servers.
    #[arg(long, value_name = "PATH")]
    baseline: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Idle,
    Fanout,
    Private,
    Storm,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerArg {
    PushCore,
    PushCoreNoRecovery,
    PushCoreNoOldClients,
    PushCoreBaseline,
    Node,
    WriteFloor,
}

impl ServerArg {
    fn kind(self) -> Kind {
        match self {
            ServerArg::PushCore => Kind::PushCore,
            ServerArg::PushCoreNoRecovery => Kind::PushCoreNoRecovery,
            ServerArg::PushCoreNoOldClients => Kind::PushCoreNoOldClients,
            ServerArg::PushCoreBaseline => Kind::PushCoreBaseline,
            ServerArg::Node => Kind::Node,
            ServerArg::WriteFloor => Kind::WriteFloor,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.mode {
        Mode::All(args) => runtime.block_on(run_all(args)),
        Mode::Smoke => runtime.block_on(run_smoke()),
        Mode::Replay(args) => runtime.block_on(run_replay(args)),
        Mode::Cluster(args) => runtime.block_on(run_cluster(args)),
        Mode::Chaos(args) => runtime.block_on(chaos::run(args)),
    };
    // Browsers still open end with the runtime.
    runtime.shutdown_background();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is inside the workspace")
        .to_path_buf()
}

async fn setup(plan: Plan) -> anyhow::Result<Bench> {
    let largest = plan
        .idle_sizes
        .iter()
        .chain(plan.fanout.iter().map(|(n, _)| n))
        .copied()
        .chain([plan.private_users as usize, plan.storm_clients])
        .max()
        .unwrap_or(0) as u64;
    let limit = limits::raise_open_files(largest + limits::SPARE_DESCRIPTORS);
    let plan = shrink_to_limit(
        plan,
        limit.saturating_sub(limits::SPARE_DESCRIPTORS) as usize,
    );
    let programs = servers::prepare(&workspace())?;
    Ok(Bench {
        programs,
        auth: auth::AuthBackend::start().await?,
        recorder: Arc::new(recorder::Recorder::default()),
        next_source: Arc::new(AtomicUsize::new(0)),
        plan,
    })
}

/// Caps every size of `plan` at `most` connections.
fn shrink_to_limit(mut plan: Plan, most: usize) -> Plan {
    for size in plan.idle_sizes.iter_mut() {
        *size = (*size).min(most);
    }
    plan.idle_sizes.dedup();
    for (size, _) in plan.fanout.iter_mut() {
        *size = (*size).min(most);
    }
    plan.private_users = plan.private_users.min(most as u32);
    plan.storm_clients = plan.storm_clients.min(most);
    plan
}

async fn run_all(args: RunArgs) -> anyhow::Result<bool> {
    let wants = |scenario| args.only.is_empty() || args.only.contains(&scenario);
    let mut kinds: Vec<Kind> = if args.servers.is_empty() {
        Kind::DEFAULT_RUN.to_vec()
    } else {
        let mut kinds: Vec<Kind> = Vec::new();
        for kind in args.servers.iter().map(|server| server.kind()) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds
    };
    let machine_before = report::Machine::observe(&workspace());
    let started = std::time::Instant::now();
    let mut plan = Plan::full();
    if !args.subscribers.is_empty() {
        // The plan's steps for a size it has, its largest size's steps for
        // any other.
        let default_steps = plan
            .fanout
            .last()
            .map(|(_, steps)| steps.clone())
            .unwrap_or_default();
        plan.fanout = args
            .subscribers
            .iter()
            .map(|&n| {
                let steps = plan.fanout.iter().find(|(size, _)| *size == n);
                (
                    n,
                    steps.map_or_else(|| default_steps.clone(), |(_, steps)| steps.clone()),
                )
            })
            .collect();
    }
    if !args.idle_sizes.is_empty() {
        plan.idle_sizes.clone_from(&args.idle_sizes);
    }
    if let Some(seconds) = args.idle_window {
        plan.idle_window = std::time::Duration::from_secs(seconds);
    }
    if !args.steps.is_empty() {
        for (_, steps) in plan.fanout.iter_mut() {
            steps.clone_from(&args.steps);
        }
    }
    let mut bench = setup(plan).await?;
    if let Some(baseline) = &args.baseline {
        anyhow::ensure!(
            baseline.is_file(),
            "--baseline {} is not a file",
            baseline.display()
        );
        bench.programs.push_core_baseline = Some(baseline.clone());
        if !kinds.contains(&Kind::PushCoreBaseline) {
            kinds.insert(kinds.len().min(1), Kind::PushCoreBaseline);
        }
    }
    if kinds.contains(&Kind::PushCoreNoOldClients) {
        servers::build_without_old_clients(&workspace(), &bench.programs)?;
    }
    let plan = bench.plan.clone();
    let mut results = Results::default();

    // A scenario that fails against one server is written down and the run
    // goes on: the other figures are still worth having.
    let failed = |what: String, error: anyhow::Error, results: &mut Results| {
        eprintln!("bench: {what} failed: {error:#}");
        results.notes.push(format!("**{what} failed:** {error:#}"));
    };
    if wants(Scenario::Idle) {
        for &size in &plan.idle_sizes {
            // Old clients against the builds that accept them.
            let holding = kinds.iter().filter(|kind| kind.holds_connections());
            let old = holding
                .clone()
                .filter(|kind| args.old_clients && kind.accepts_protocol4())
                .map(|&kind| (kind, true));
            for (kind, protocol4) in holding.map(|&kind| (kind, false)).chain(old) {
                match bench.idle(kind, size, protocol4).await {
                    Ok(result) => {
                        eprintln!("{}", report::idle_line(&result));
                        results.idle.push(result);
                    }
                    Err(error) => failed(
                        format!("idle {size} against {}", kind.label()),
                        error,
                        &mut results,
                    ),
                }
            }
        }
    }
    if wants(Scenario::Fanout) {
        for (size, offered) in &plan.fanout {
            for &kind in &kinds {
                match bench.fanout(kind, *size, offered).await {
                    Ok(steps) => results.fanout.extend(steps),
                    Err(error) => failed(
                        format!("fan-out to {size} against {}", kind.label()),
                        error,
                        &mut results,
                    ),
                }
            }
        }
    }
    if wants(Scenario::Private) {
        for &kind in &kinds {
            match bench.private(kind).await {
                Ok(steps) => results.private.extend(steps),
                Err(error) => failed(
                    format!("private messages against {}", kind.label()),
                    error,
                    &mut results,
                ),
            }
        }
    }
    if wants(Scenario::Storm) {
        for &kind in kinds.iter().filter(|kind| kind.holds_connections()) {
            match bench.storm(kind).await {
                Ok(storm) => results.storm.push(storm),
                Err(error) => failed(
                    format!("connect storm against {}", kind.label()),
                    error,
                    &mut results,
                ),
            }
        }
    }
    let machine = machine_before.finish(started.elapsed());
    let text = report::tables(&results);
    println!("{text}");
    if !args.no_write {
        let docs = workspace().join("docs");
        report::write_markdown(&docs.join("benchmarks.md"), &machine, &plan, &results)?;
        report::write_chart(&docs.join("benchmarks-latency.svg"), &results)?;
        eprintln!("bench: wrote docs/benchmarks.md and docs/benchmarks-latency.svg");
    }
    let _ = std::fs::remove_dir_all(&bench.programs.scratch);
    Ok(true)
}

/// Both servers deliver every message to the right browsers: broadcasts to
/// all, private messages to their user's tabs only, and after a connect
/// storm with auth every tab is known as its user. So does the one-write
/// floor, for broadcasts and private messages (it joins no storm).
async fn run_smoke() -> anyhow::Result<bool> {
    let bench = setup(Plan::smoke()).await?;
    let plan = bench.plan.clone();
    let mut ok = true;
    for kind in Kind::BOTH {
        for (size, offered) in &plan.fanout {
            for step in bench.fanout(kind, *size, offered).await? {
                ok &= check(
                    kind,
                    "broadcast",
                    step.delivered,
                    step.expected,
                    step.misdelivered,
                );
            }
        }
        for step in bench.private(kind).await? {
            ok &= check(
                kind,
                "private",
                step.delivered,
                step.expected,
                step.misdelivered,
            );
        }
        let storm = bench.storm(kind).await?;
        ok &= check(
            kind,
            "storm joined",
            storm.joined as u64,
            storm.clients as u64,
            0,
        );
        ok &= check(
            kind,
            "storm identified",
            storm.identified,
            storm.clients as u64,
            0,
        );
    }
    // The floor's rows sit next to the servers' in `all`; a floor that
    // lost messages would make every comparison with it wrong.
    let floor = Kind::WriteFloor;
    for (size, offered) in &plan.fanout {
        for step in bench.fanout(floor, *size, offered).await? {
            ok &= check(
                floor,
                "broadcast",
                step.delivered,
                step.expected,
                step.misdelivered,
            );
        }
    }
    for step in bench.private(floor).await? {
        ok &= check(
            floor,
            "private",
            step.delivered,
            step.expected,
            step.misdelivered,
        );
    }
    // The cluster paths: a broadcast on one node reaches the browsers of
    // three, through the Redis Stream (recovery on) and through
    // socketioxide's Redis pub/sub (recovery off).
    for recovery in [true, false] {
        for (size, offered) in &plan.fanout {
            let layout = cluster::Layout::Redis { nodes: SMOKE_NODES };
            for entry in bench
                .cluster_fanout(layout, recovery, *size, offered)
                .await?
            {
                let step = entry.step;
                ok &= check(
                    step.kind,
                    &format!("broadcast over {}", layout.label()),
                    step.delivered,
                    step.expected,
                    step.misdelivered,
                );
            }
        }
    }
    let unparsed = bench.recorder.unparsed();
    if unparsed > 0 {
        eprintln!("smoke: {unparsed} events could not be read");
        ok = false;
    }
    let _ = std::fs::remove_dir_all(&bench.programs.scratch);
    println!("smoke: {}", if ok { "passed" } else { "FAILED" });
    Ok(ok)
}

/// Runs the cluster fan-out for every recovery setting and subscriber
/// count, each layout in turn, and prints the table.
async fn run_cluster(args: ClusterArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2");
    anyhow::ensure!(
        args.subscribers.iter().all(|&n| n >= args.nodes),
        "every --subscribers count must be at least --nodes"
    );
    let steps = if args.steps.is_empty() {
        Plan::full()
            .fanout
            .first()
            .map(|(_, steps)| steps.clone())
            .unwrap_or_default()
    } else {
        args.steps.clone()
    };
    let fanout = if args.only.contains(&ClusterPart::Fanout) {
        args.subscribers
            .iter()
            .map(|&n| (n, steps.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let plan = Plan {
        idle_sizes: vec![],
        fanout,
        private_users: 0,
        storm_clients: 0,
        ..Plan::full()
    };
    let bench = setup(plan).await?;
    let plan = bench.plan.clone();
    let recoveries: Vec<bool> = args.recovery.iter().map(|r| *r == OnOff::On).collect();
    let mut ok = true;
    if args.only.contains(&ClusterPart::Publish) {
        let publish_plan = cluster_publish::PublishPlan {
            nodes: args.nodes,
            rounds: args.rounds,
            synchronous: args.synchronous,
            pipelined: args.pipelined,
        };
        match bench.cluster_publish(publish_plan, &recoveries).await {
            Ok(figures) => println!("{}", cluster_publish::table(&figures)),
            Err(error) => {
                eprintln!("bench: the cluster publish path failed: {error:#}");
                ok = false;
            }
        }
    }
    let layouts = [
        cluster::Layout::Alone,
        cluster::Layout::Redis { nodes: 1 },
        cluster::Layout::Redis { nodes: args.nodes },
    ];
    let mut results = Vec::new();
    for &recovery in &recoveries {
        for (size, offered) in &plan.fanout {
            for layout in layouts {
                match bench.cluster_fanout(layout, recovery, *size, offered).await {
                    Ok(steps) => results.extend(steps),
                    Err(error) => {
                        eprintln!(
                            "bench: cluster fan-out to {size} over {} failed: {error:#}",
                            layout.label()
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&bench.programs.scratch);
    if !results.is_empty() {
        println!("{}", cluster::table(&results));
    }
    Ok(ok)
}

/// Replays a backlog to one reconnecting browser a few times and prints
/// the table.
async fn run_replay(args: ReplayArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let programs = servers::prepare(&workspace())?;
    let runs = replay::measure(&programs, args.messages, args.runs).await;
    let _ = std::fs::remove_dir_all(&programs.scratch);
    println!("{}", replay::table(args.messages, &runs?));
    Ok(true)
}

/// Nodes of the smoke's cluster check: enough for a publish to cross from
/// one node to two others.
const SMOKE_NODES: usize = 3;

fn check(kind: Kind, what: &str, got: u64, expected: u64, misdelivered: u64) -> bool {
    let ok = got == expected && misdelivered == 0 && expected > 0;
    println!(
        "smoke {} {what}: {got} of {expected} delivered, {misdelivered} misdelivered: {}",
        kind.label(),
        if ok { "ok" } else { "FAILED" }
    );
    ok
}
