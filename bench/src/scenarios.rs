//! The four scenarios of the benchmark, and the smoke check.
//!
//! Every scenario runs the same way against each server: start a fresh
//! server, open the browsers, measure, stop. Figures come from three
//! places: the browsers (latency, counts), /proc of the server (RSS, CPU
//! time) and the auth backend (calls made).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::auth::AuthBackend;
use crate::client::{Fleet, Target};
use crate::publisher::{Audience, Published, publish_at_rate};
use crate::recorder::{Recorder, StepFigures};
use crate::servers::{Kind, NAMESPACE, ProcSample, Programs, Server, proc_sample};

/// Handshakes in flight while opening a fleet outside the connect storm:
/// enough to keep both cores busy without overflowing accept queues.
const CONNECT_IN_FLIGHT: usize = 256;

/// After the last publish of a step, how long the backlog may take to
/// arrive before the step counts as not sustained.
const SUSTAINED_DRAIN: Duration = Duration::from_secs(1);

/// Longest wait for a step's stragglers.
const MAX_DRAIN: Duration = Duration::from_secs(5);

/// Share of expected deliveries that must arrive for a step to count as
/// sustained.
const SUSTAINED_SHARE: f64 = 0.999;

/// Share of the offered rate the deliveries must reach, measured from the
/// first publish to the last receipt, for a step to count as sustained. A
/// server whose publish path blocks (the Node peer answers the POST only
/// once its event loop gets to it) would otherwise look as if it kept up.
const SUSTAINED_RATE: f64 = 0.9;

/// What to run; `all` and `smoke` differ only in sizes and durations.
#[derive(Clone, Debug)]
pub struct Plan {
    pub idle_sizes: Vec<usize>,
    pub idle_window: Duration,
    /// Subscriber counts and, for each, the offered deliveries/s per step.
    pub fanout: Vec<(usize, Vec<u64>)>,
    pub step_duration: Duration,
    pub private_users: u32,
    pub private_rates: Vec<u64>,
    pub storm_clients: usize,
    pub storm_users: u32,
}

impl Plan {
    pub fn full() -> Self {
        let steps = vec![10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000];
        Self {
            idle_sizes: vec![1_000, 5_000, 15_000],
            // Longer than the 25 s ping interval both servers use, so the
            // idle CPU includes a round of pings of every connection.
            idle_window: Duration::from_secs(26),
            // 5,000 subscribers at 5 broadcasts/s: a site's busy hour, the
            // case issue #16 sets the user-space target on.
            // 10,000 subscribers go on to a million deliveries a second,
            // the fan-out peak issue #21 asks for.
            fanout: vec![
                (1_000, steps.clone()),
                (5_000, vec![25_000]),
                (10_000, [steps, vec![1_000_000, 1_280_000]].concat()),
            ],
            step_duration: Duration::from_secs(5),
            private_users: 10_000,
            private_rates: vec![1_000, 5_000, 20_000],
            storm_clients: 10_000,
            storm_users: 5_000,
        }
    }

    pub fn smoke() -> Self {
        Self {
            idle_sizes: vec![],
            idle_window: Duration::ZERO,
            fanout: vec![(40, vec![400])],
            step_duration: Duration::from_secs(2),
            private_users: 40,
            private_rates: vec![50],
            storm_clients: 60,
            storm_users: 30,
        }
    }
}

#[derive(Clone, Debug)]
pub struct IdleResult {
    pub kind: Kind,
    /// The browsers spoke socket.io protocol 4 (clients 1.x and 2.x).
    pub protocol4: bool,
    pub connections: usize,
    pub joined: usize,
    pub failed: usize,
    pub dropped: usize,
    pub connect_time: Duration,
    pub rss_empty: u64,
    pub rss_connected: u64,
    /// Share of one core used while idle (pings only).
    pub idle_cpu: f64,
}

impl IdleResult {
    pub fn rss_per_connection(&self) -> f64 {
        self.rss_connected.saturating_sub(self.rss_empty) as f64 / self.connections.max(1) as f64
    }
}

#[derive(Clone, Debug)]
pub struct DeliveryStep {
    pub kind: Kind,
    pub connections: usize,
    /// Publishes per second.
    pub rate: f64,
    /// Deliveries per second offered: rate × recipients per publish.
    pub offered: u64,
    pub published: Published,
    pub expected: u64,
    pub delivered: u64,
    pub late: u64,
    pub misdelivered: u64,
    /// Delivered over the time from the first publish to the last receipt.
    pub deliveries_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub server_cpu_us_per_delivery: f64,
    /// The user and system parts of `server_cpu_us_per_delivery`.
    pub server_user_us_per_delivery: f64,
    pub server_system_us_per_delivery: f64,
    /// The server's context switches per delivery, all live threads:
    /// voluntary (a thread blocked) and involuntary (it was preempted).
    pub server_voluntary_cs_per_delivery: f64,
    pub server_involuntary_cs_per_delivery: f64,
    pub server_cpu: f64,
    pub bench_cpu: f64,
    pub sustained: bool,
}

#[derive(Clone, Debug)]
pub struct StormResult {
    pub kind: Kind,
    pub clients: usize,
    pub users: u32,
    pub joined: usize,
    pub failed: usize,
    pub all_joined: Duration,
    pub auth_calls: u64,
    /// Tabs that received a message sent to their user after the storm:
    /// the connections the server knew the user of.
    pub identified: u64,
}

/// Everything one run measured.
#[derive(Default, Debug)]
pub struct Results {
    pub idle: Vec<IdleResult>,
    pub fanout: Vec<DeliveryStep>,
    pub private: Vec<DeliveryStep>,
    pub storm: Vec<StormResult>,
    pub notes: Vec<String>,
}

/// Runs the scenarios against the servers and browsers.
pub struct Bench {
    pub programs: Programs,
    pub auth: AuthBackend,
    pub recorder: Arc<Recorder>,
    pub next_source: Arc<AtomicUsize>,
    pub plan: Plan,
}

impl Bench {
    pub fn fleet(&self, server: &Server) -> Fleet {
        self.fleet_speaking(server, false)
    }

    fn fleet_speaking(&self, server: &Server, protocol4: bool) -> Fleet {
        Fleet::new(
            Target {
                server: server.addr,
                namespace: NAMESPACE.to_owned(),
                protocol4,
            },
            self.recorder.clone(),
            self.next_source.clone(),
        )
    }

    /// Scenario 1: idle connections, speaking socket.io protocol 4 (as
    /// pages on the 1.x and 2.x clients) when `protocol4` is set.
    pub async fn idle(
        &self,
        kind: Kind,
        connections: usize,
        protocol4: bool,
    ) -> anyhow::Result<IdleResult> {
        let server = Server::start(kind, &self.programs, None)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let empty = server.sample()?;
        let mut fleet = self.fleet_speaking(&server, protocol4);
        let connect_time = fleet
            .connect(&vec![None; connections], CONNECT_IN_FLIGHT)
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = server.sample()?;
        tokio::time::sleep(self.plan.idle_window).await;
        let after = server.sample()?;
        let result = IdleResult {
            kind,
            protocol4,
            connections,
            joined: fleet.joined(),
            failed: fleet.failed(),
            dropped: fleet.dropped(),
            connect_time,
            rss_empty: empty.rss_bytes,
            rss_connected: after.rss_bytes.max(before.rss_bytes),
            idle_cpu: before.cpu_since(&after).1,
        };
        fleet.close().await;
        server.stop();
        Ok(result)
    }

    /// Scenario 2: broadcasts to `connections` subscribers, stepping the
    /// rate up until the server no longer keeps up.
    pub async fn fanout(
        &self,
        kind: Kind,
        connections: usize,
        offered: &[u64],
    ) -> anyhow::Result<Vec<DeliveryStep>> {
        let server = Server::start(kind, &self.programs, None)?;
        let mut fleet = self.fleet(&server);
        fleet
            .connect(&vec![None; connections], CONNECT_IN_FLIGHT)
            .await;
        let joined = fleet.joined();
        anyhow::ensure!(
            joined == connections,
            "{}: only {joined} of {connections} subscribers joined",
            kind.label()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut steps = Vec::new();
        for &deliveries in offered {
            let rate = deliveries as f64 / connections as f64;
            let step = self
                .delivery_step(&server, Audience::Everyone, rate, connections as u64)
                .await?;
            let step = DeliveryStep {
                kind,
                connections,
                offered: deliveries,
                ..step
            };
            let sustained = step.sustained;
            eprintln!("{}", step_line("fan-out", &step));
            steps.push(step);
            if !sustained {
                break;
            }
        }
        fleet.close().await;
        server.stop();
        Ok(steps)
    }

    /// Scenario 3: publishes to single random users, one tab each.
    pub async fn private(&self, kind: Kind) -> anyhow::Result<Vec<DeliveryStep>> {
        let users = self.plan.private_users;
        let server = match kind {
            Kind::PushCore
            | Kind::PushCoreNoRecovery
            | Kind::PushCoreNoOldClients
            | Kind::PushCoreBaseline => Server::start(kind, &self.programs, Some(&self.auth.url))?,
            // The Node peer and the floor trust the uid cookie themselves.
            Kind::Node | Kind::WriteFloor => Server::start(kind, &self.programs, None)?,
        };
        let mut fleet = self.fleet(&server);
        let tabs: Vec<Option<u32>> = (0..users).map(Some).collect();
        fleet.connect(&tabs, CONNECT_IN_FLIGHT).await;
        anyhow::ensure!(
            fleet.joined() == users as usize,
            "{}: only {} of {users} users joined",
            kind.label(),
            fleet.joined()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut steps = Vec::new();
        for &rate in &self.plan.private_rates {
            let step = self
                .delivery_step(&server, Audience::RandomUser { users }, rate as f64, 1)
                .await?;
            let step = DeliveryStep {
                kind,
                connections: users as usize,
                offered: rate,
                ..step
            };
            eprintln!("{}", step_line("private", &step));
            steps.push(step);
        }
        fleet.close().await;
        server.stop();
        Ok(steps)
    }

    /// Scenario 4: every client connects at once, with the auth backend on;
    /// `storm_users` users with two tabs each.
    pub async fn storm(&self, kind: Kind) -> anyhow::Result<StormResult> {
        let (clients, users) = (self.plan.storm_clients, self.plan.storm_users);
        let server = Server::start(kind, &self.programs, Some(&self.auth.url))?;
        self.auth.reset();
        let mut fleet = self.fleet(&server);
        let tabs: Vec<Option<u32>> = (0..clients).map(|i| Some(i as u32 % users)).collect();
        let all_joined = fleet.connect(&tabs, clients).await;
        let auth_calls = self.auth.calls();
        let joined = fleet.joined();
        // One message to each user: every tab whose user the server knows
        // receives one.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let check = self
            .delivery_step(
                &server,
                Audience::EachUser { users },
                f64::from(users) * 2.0,
                (clients as u64) / u64::from(users),
            )
            .await?;
        let result = StormResult {
            kind,
            clients,
            users,
            joined,
            failed: fleet.failed(),
            all_joined,
            auth_calls,
            identified: check.delivered,
        };
        eprintln!(
            "storm {}: {} of {} joined in {:.2} s, {} auth calls, {} identified, {} misdelivered",
            kind.label(),
            result.joined,
            clients,
            all_joined.as_secs_f64(),
            auth_calls,
            result.identified,
            check.misdelivered
        );
        fleet.close().await;
        server.stop();
        Ok(result)
    }

    /// Publishes at `rate` for one step and waits for the deliveries.
    /// `per_publish` is how many tabs each publish should reach.
    async fn delivery_step(
        &self,
        server: &Server,
        audience: Audience,
        rate: f64,
        per_publish: u64,
    ) -> anyhow::Result<DeliveryStep> {
        let (step, _) = self
            .delivery_step_across(&[server], None, audience, rate, per_publish)
            .await?;
        Ok(step)
    }

    /// One step with several servers (the nodes of a cluster): publishes
    /// go to the first, the server CPU is the sum over all of them, and the
    /// CPU time of `apart` (Redis), if given, is returned on its own, in
    /// microseconds.
    pub async fn delivery_step_across(
        &self,
        servers: &[&Server],
        apart: Option<u32>,
        audience: Audience,
        rate: f64,
        per_publish: u64,
    ) -> anyhow::Result<(DeliveryStep, Option<u64>)> {
        let first = servers.first().context("a step needs a server")?;
        let sample_servers = || -> anyhow::Result<ProcSample> {
            let samples = servers
                .iter()
                .map(|server| server.sample())
                .collect::<anyhow::Result<Vec<_>>>()?;
            ProcSample::sum(&samples).context("a step needs a server")
        };
        let duration = match audience {
            // The identification check sends each user one message.
            Audience::EachUser { users } => Duration::from_secs_f64(f64::from(users) / rate),
            _ => self.plan.step_duration,
        };
        let step = self.recorder.begin_step();
        let server_before = sample_servers()?;
        let apart_before = apart.map(proc_sample).transpose()?;
        let bench_before = proc_sample(std::process::id())?;
        let started = Instant::now();
        let endpoint = first.publish.clone();
        let published = tokio::task::spawn_blocking(move || {
            publish_at_rate(&endpoint, audience, rate, duration, step)
        })
        .await
        .context("the publisher thread failed")??;
        let publish_end = Instant::now();
        let expected = published.messages * per_publish;
        let mut last_receipt = Instant::now();
        let mut delivered = self.recorder.delivered();
        while delivered < expected && publish_end.elapsed() < MAX_DRAIN {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.recorder.delivered();
            if now > delivered {
                last_receipt = Instant::now();
            }
            delivered = now;
        }
        let drained_at = if delivered >= expected {
            last_receipt
        } else {
            Instant::now()
        };
        let server_after = sample_servers()?;
        let apart_us = match (apart, apart_before) {
            (Some(pid), Some(before)) => Some(before.cpu_since(&proc_sample(pid)?).0),
            _ => None,
        };
        let bench_after = proc_sample(std::process::id())?;
        let figures = self.recorder.figures();
        let step = build_step(
            first.kind,
            rate,
            published,
            expected,
            &figures,
            started,
            publish_end,
            drained_at,
            (&server_before, &server_after),
            (&bench_before, &bench_after),
        );
        Ok((step, apart_us))
    }
}

#[allow(clippy::too_many_arguments)]
fn build_step(
    kind: Kind,
    rate: f64,
    published: Published,
    expected: u64,
    figures: &StepFigures,
    started: Instant,
    publish_end: Instant,
    drained_at: Instant,
    server: (&ProcSample, &ProcSample),
    bench: (&ProcSample, &ProcSample),
) -> DeliveryStep {
    let delivered = figures.delivered();
    let window = drained_at.max(publish_end).duration_since(started);
    let (server_cpu_us, server_cpu) = server.0.cpu_since(server.1);
    let (_, bench_cpu) = bench.0.cpu_since(bench.1);
    let drained_in_time = drained_at.saturating_duration_since(publish_end) <= SUSTAINED_DRAIN;
    let offered_per_s = rate * expected as f64 / published.messages.max(1) as f64;
    let deliveries_per_s = delivered as f64 / window.as_secs_f64().max(1e-9);
    DeliveryStep {
        kind,
        connections: 0,
        rate,
        offered: 0,
        published,
        expected,
        delivered,
        late: figures.late,
        misdelivered: figures.misdelivered,
        deliveries_per_s,
        p50_ms: figures.percentile_ms(50.0),
        p99_ms: figures.percentile_ms(99.0),
        p999_ms: figures.percentile_ms(99.9),
        max_ms: figures.percentile_ms(100.0),
        server_cpu_us_per_delivery: server_cpu_us as f64 / delivered.max(1) as f64,
        server_user_us_per_delivery: server.1.user_us.saturating_sub(server.0.user_us) as f64
            / delivered.max(1) as f64,
        server_system_us_per_delivery: server.1.system_us.saturating_sub(server.0.system_us) as f64
            / delivered.max(1) as f64,
        server_voluntary_cs_per_delivery: server
            .1
            .voluntary_switches
            .saturating_sub(server.0.voluntary_switches)
            as f64
            / delivered.max(1) as f64,
        server_involuntary_cs_per_delivery: server
            .1
            .involuntary_switches
            .saturating_sub(server.0.involuntary_switches)
            as f64
            / delivered.max(1) as f64,
        server_cpu,
        bench_cpu,
        sustained: published.errors == 0
            && delivered as f64 >= expected as f64 * SUSTAINED_SHARE
            && drained_in_time
            && deliveries_per_s >= offered_per_s * SUSTAINED_RATE,
    }
}

/// One progress line for standard error.
pub fn step_line(scenario: &str, step: &DeliveryStep) -> String {
    format!(
        "{scenario} {} n={} offered={}/s: delivered {}/{} ({:.0}/s) p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms, server {:.2} µs/delivery (user {:.2}, system {:.2}; {:.0}% cpu; cs/delivery {:.3} vol {:.3} invol), bench {:.0}% cpu, misdelivered {}, late {}, publish errors {}{}",
        step.kind.label(),
        step.connections,
        step.offered,
        step.delivered,
        step.expected,
        step.deliveries_per_s,
        step.p50_ms,
        step.p99_ms,
        step.p999_ms,
        step.server_cpu_us_per_delivery,
        step.server_user_us_per_delivery,
        step.server_system_us_per_delivery,
        step.server_cpu * 100.0,
        step.server_voluntary_cs_per_delivery,
        step.server_involuntary_cs_per_delivery,
        step.bench_cpu * 100.0,
        step.misdelivered,
        step.late,
        step.published.errors,
        if step.sustained {
            ""
        } else {
            " (not sustained)"
        }
    )
}
