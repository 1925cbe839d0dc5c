//! Turning a run into tables, `docs/benchmarks.md` and a chart.
//!
//! The generated part of `docs/benchmarks.md` sits between two markers;
//! the text around them (how to run, the tunings and what limits each
//! figure) is written by people and kept as it is on every run.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use plotters::prelude::*;

use crate::scenarios::{DeliveryStep, IdleResult, Plan, Results, StormResult};
use crate::servers::Kind;

const BEGIN: &str = "<!-- results:begin (written by `cargo run --release -p bench -- all`) -->";
const END: &str = "<!-- results:end -->";

/// The machine and software a run was made on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub node: String,
    pub socket_io: String,
    pub socketioxide: String,
    pub commit: String,
    pub load_before: String,
    pub load_after: String,
    pub open_files: String,
    pub elapsed: Duration,
}

impl Machine {
    pub fn observe(workspace: &Path) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_kb: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let lock = read(&workspace.join("Cargo.lock").to_string_lossy());
        let socketioxide = lock
            .split("[[package]]")
            .find(|block| block.contains("name = \"socketioxide\""))
            .and_then(|block| block.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "?".to_owned());
        let socket_io = read(
            &workspace
                .join("bench/peer-node/node_modules/socket.io/package.json")
                .to_string_lossy(),
        );
        let socket_io = serde_json::from_str::<serde_json::Value>(&socket_io)
            .ok()
            .and_then(|v| v["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".to_owned());
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        Self {
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: memory_kb / 1024.0 / 1024.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            rustc: output("rustc", &["--version"]),
            node: output("node", &["--version"]),
            socket_io,
            socketioxide,
            commit: output(
                "git",
                &[
                    "-C",
                    &workspace.to_string_lossy(),
                    "rev-parse",
                    "--short",
                    "HEAD",
                ],
            ),
            load_before: loadavg(),
            load_after: String::new(),
            open_files: format!(
                "soft {}, hard {}",
                limit
                    .current
                    .map_or("unlimited".to_owned(), |n| n.to_string()),
                limit
                    .maximum
                    .map_or("unlimited".to_owned(), |n| n.to_string())
            ),
            elapsed: Duration::ZERO,
        }
    }

    pub fn finish(mut self, elapsed: Duration) -> Self {
        self.load_after = loadavg();
        self.elapsed = elapsed;
        self
    }
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The server of an idle result, and the clients' protocol when they were
/// the old ones.
fn idle_label(result: &IdleResult) -> String {
    if result.protocol4 {
        format!("{}, socket.io 2.x clients", result.kind.label())
    } else {
        result.kind.label().to_owned()
    }
}

pub fn idle_line(result: &IdleResult) -> String {
    format!(
        "idle {} n={}: {} joined in {:.2} s, {:.1} KB/connection, idle cpu {:.2}%, {} dropped",
        idle_label(result),
        result.connections,
        result.joined,
        result.connect_time.as_secs_f64(),
        result.rss_per_connection() / 1000.0,
        result.idle_cpu * 100.0,
        result.dropped
    )
}

fn ratio(push_core: f64, node: f64) -> String {
    if node == 0.0 || !node.is_finite() || !push_core.is_finite() {
        return "–".to_owned();
    }
    format!("{:.2}", push_core / node)
}

fn ms(value: f64) -> String {
    if value.is_nan() {
        "–".to_owned()
    } else if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.0}")
    }
}

fn find(
    steps: &[DeliveryStep],
    kind: Kind,
    connections: usize,
    offered: u64,
) -> Option<&DeliveryStep> {
    steps
        .iter()
        .find(|s| s.kind == kind && s.connections == connections && s.offered == offered)
}

/// The highest offered load both servers sustained at `connections`.
fn highest_common_sustained(steps: &[DeliveryStep], connections: usize) -> Option<u64> {
    steps
        .iter()
        .filter(|s| s.kind == Kind::PushCore && s.connections == connections && s.sustained)
        .filter(|s| find(steps, Kind::Node, connections, s.offered).is_some_and(|n| n.sustained))
        .map(|s| s.offered)
        .max()
}

/// The best sustained deliveries/s of `kind` at `connections`, and whether
/// it was the top step offered (so only a lower bound).
fn best_sustained(steps: &[DeliveryStep], kind: Kind, connections: usize) -> Option<(f64, bool)> {
    let mine: Vec<&DeliveryStep> = steps
        .iter()
        .filter(|s| s.kind == kind && s.connections == connections)
        .collect();
    let best = mine
        .iter()
        .filter(|s| s.sustained)
        .max_by(|a, b| a.deliveries_per_s.total_cmp(&b.deliveries_per_s))?;
    let never_failed = mine.iter().all(|s| s.sustained);
    Some((best.deliveries_per_s, never_failed))
}

/// Every table of the run, as Markdown.
pub fn tables(results: &Results) -> String {
    let mut out = String::new();
    if !results.idle.is_empty() {
        out.push_str(&idle_table(&results.idle));
    }
    if !results.fanout.is_empty() {
        out.push_str(&delivery_table(
            "2. Fan-out (100-byte broadcasts)",
            "subscribers",
            &results.fanout,
        ));
        out.push_str(&fanout_ratios(&results.fanout));
        out.push_str(&variant_ratios(&results.fanout, RECOVERY, "subscribers"));
        out.push_str(&variant_ratios(&results.fanout, OLD_CLIENTS, "subscribers"));
        out.push_str(&variant_ratios(&results.fanout, BASELINE, "subscribers"));
    }
    if !results.private.is_empty() {
        out.push_str(&delivery_table(
            "3. Private messages (one random user per publish)",
            "users",
            &results.private,
        ));
        out.push_str(&variant_ratios(&results.private, RECOVERY, "users"));
        out.push_str(&variant_ratios(&results.private, OLD_CLIENTS, "users"));
        out.push_str(&variant_ratios(&results.private, BASELINE, "users"));
    }
    if !results.storm.is_empty() {
        out.push_str(&storm_table(&results.storm));
    }
    out.push_str(&targets(results));
    out.push_str(&private_path_targets(results));
    out.push_str(&transport_targets(results));
    out
}

fn idle_table(idle: &[IdleResult]) -> String {
    let mut out = String::from("\n### 1. Idle connections\n\n");
    out.push_str("| connections | server | joined | failed | dropped | time to connect all | RSS empty | RSS connected | RSS per connection | idle CPU (one core) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for r in idle {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} KB | {:.2} % |",
            r.connections,
            idle_label(r),
            r.joined,
            r.failed,
            r.dropped,
            r.connect_time.as_secs_f64(),
            r.rss_empty as f64 / 1048576.0,
            r.rss_connected as f64 / 1048576.0,
            r.rss_per_connection() / 1000.0,
            r.idle_cpu * 100.0
        );
    }
    out.push_str("\npush-core / Node ratios:\n\n| connections | RSS per connection | time to connect all | idle CPU |\n|---|---|---|---|\n");
    for n in sizes_of(idle) {
        let get = |kind| {
            idle.iter()
                .find(|r| r.kind == kind && r.connections == n && !r.protocol4)
        };
        if let (Some(p), Some(node)) = (get(Kind::PushCore), get(Kind::Node)) {
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} |",
                ratio(p.rss_per_connection(), node.rss_per_connection()),
                ratio(
                    p.connect_time.as_secs_f64(),
                    node.connect_time.as_secs_f64()
                ),
                ratio(p.idle_cpu, node.idle_cpu)
            );
        }
    }
    let baseline: String = sizes_of(idle)
        .into_iter()
        .filter_map(|n| {
            let get = |kind| {
                idle.iter()
                    .find(|r| r.kind == kind && r.connections == n && !r.protocol4)
            };
            let (new, old) = (get(Kind::PushCore)?, get(Kind::PushCoreBaseline)?);
            Some(format!(
                "| {n} | {} | {} | {} |\n",
                ratio(new.rss_per_connection(), old.rss_per_connection()),
                ratio(
                    new.connect_time.as_secs_f64(),
                    old.connect_time.as_secs_f64()
                ),
                ratio(new.idle_cpu, old.idle_cpu)
            ))
        })
        .collect();
    if !baseline.is_empty() {
        out.push_str("\nThis build / the baseline build (`--baseline`):\n\n| connections | RSS per connection | time to connect all | idle CPU |\n|---|---|---|---|\n");
        out.push_str(&baseline);
    }
    out.push_str(&idle_old_clients(idle));
    out
}

fn sizes_of(idle: &[IdleResult]) -> Vec<usize> {
    dedup(idle.iter().map(|r| r.connections))
}

/// What old clients and the feature that accepts them cost at rest: RSS
/// per connection of a 2.x client against a 4.x one on the same build, and
/// of a 4.x client on the build with the `old-clients` feature against the
/// build without. Empty unless the run measured one of these.
fn idle_old_clients(idle: &[IdleResult]) -> String {
    let mut rows = String::new();
    for n in dedup(idle.iter().map(|r| r.connections)) {
        let get = |kind, protocol4| {
            idle.iter()
                .find(|r| r.kind == kind && r.connections == n && r.protocol4 == protocol4)
        };
        let new = get(Kind::PushCore, false);
        if let (Some(new), Some(old)) = (new, get(Kind::PushCore, true)) {
            let _ = writeln!(
                rows,
                "| {n} | push-core: 2.x clients / 4.x clients | {} | {} |",
                ratio(old.rss_per_connection(), new.rss_per_connection()),
                ratio(old.idle_cpu, new.idle_cpu)
            );
        }
        if let (Some(with), Some(without)) = (new, get(Kind::PushCoreNoOldClients, false)) {
            let _ = writeln!(
                rows,
                "| {n} | 4.x clients: push-core / push-core (no old clients) | {} | {} |",
                ratio(with.rss_per_connection(), without.rss_per_connection()),
                ratio(with.idle_cpu, without.idle_cpu)
            );
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\nOld clients at rest (ratios):\n\n| connections | compared | RSS per connection | idle CPU |\n|---|---|---|---|\n{rows}"
    )
}

fn dedup<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn delivery_table(title: &str, size_name: &str, steps: &[DeliveryStep]) -> String {
    let mut out = format!("\n### {title}\n\n");
    let _ = writeln!(
        out,
        "| {size_name} | publishes/s | offered deliveries/s | server | delivered / expected | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs per delivery | user µs | system µs | cs/delivery vol | cs/delivery invol | server CPU | bench CPU | misdelivered | sustained |"
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in steps {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} / {}{} | {:.0} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.0} % | {:.0} % | {} | {} |",
            s.connections,
            s.rate,
            s.offered,
            s.kind.label(),
            s.delivered,
            s.expected,
            if s.late > 0 {
                format!(" (+{} late)", s.late)
            } else {
                String::new()
            },
            s.deliveries_per_s,
            ms(s.p50_ms),
            ms(s.p99_ms),
            ms(s.p999_ms),
            ms(s.max_ms),
            s.server_cpu_us_per_delivery,
            s.server_user_us_per_delivery,
            s.server_system_us_per_delivery,
            s.server_voluntary_cs_per_delivery,
            s.server_involuntary_cs_per_delivery,
            s.server_cpu * 100.0,
            s.bench_cpu * 100.0,
            s.misdelivered,
            if s.sustained { "yes" } else { "no" }
        );
    }
    out
}

fn fanout_ratios(steps: &[DeliveryStep]) -> String {
    let mut out = String::from(
        "\npush-core / Node ratios at the same offered load (both measured):\n\n| subscribers | offered deliveries/s | p50 | p99 | p99.9 | server CPU per delivery |\n|---|---|---|---|---|---|\n",
    );
    for p in steps.iter().filter(|s| s.kind == Kind::PushCore) {
        if let Some(n) = find(steps, Kind::Node, p.connections, p.offered) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                p.connections,
                p.offered,
                ratio(p.p50_ms, n.p50_ms),
                ratio(p.p99_ms, n.p99_ms),
                ratio(p.p999_ms, n.p999_ms),
                ratio(p.server_cpu_us_per_delivery, n.server_cpu_us_per_delivery)
            );
        }
    }
    out.push_str("\nHighest sustained deliveries/s:\n\n| subscribers | push-core | Node | push-core / Node |\n|---|---|---|---|\n");
    for n in dedup(steps.iter().map(|s| s.connections)) {
        let p = best_sustained(steps, Kind::PushCore, n);
        let node = best_sustained(steps, Kind::Node, n);
        let show = |v: Option<(f64, bool)>| match v {
            Some((rate, true)) => format!("≥ {rate:.0} (every step kept up)"),
            Some((rate, false)) => format!("{rate:.0}"),
            None => "none".to_owned(),
        };
        let r = match (p, node) {
            (Some((a, lower)), Some((b, _))) => {
                format!("{}{}", if lower { "≥ " } else { "" }, ratio(a, b))
            }
            _ => "–".to_owned(),
        };
        let _ = writeln!(out, "| {n} | {} | {} | {r} |", show(p), show(node));
    }
    out
}

/// A push-core build or setting compared with the default one, delivery by
/// delivery: the default is "on", `kind` is "off".
struct Variant {
    kind: Kind,
    title: &'static str,
}

/// What missed-message recovery costs: push-core with recovery on (its
/// default) against push-core with `--recovery-window 0`.
const RECOVERY: Variant = Variant {
    kind: Kind::PushCoreNoRecovery,
    title: "Recovery on / off: push-core's CPU µs per delivery, user and system, with recovery on (the default) and with `--recovery-window 0`, at the same offered load",
};

/// What accepting socket.io 1.x/2.x clients costs the others: push-core as
/// built by default against a build without its `old-clients` feature.
const OLD_CLIENTS: Variant = Variant {
    kind: Kind::PushCoreNoOldClients,
    title: "Old clients accepted / not built in: push-core's CPU µs per delivery, user and system, with the `old-clients` feature (the default) and without it, at the same offered load, all browsers on socket.io 4",
};

/// A change against what it changes: this build against another build of
/// push-core (`--baseline`), usually an earlier commit's.
const BASELINE: Variant = Variant {
    kind: Kind::PushCoreBaseline,
    title: "This build / the baseline build (`--baseline`): push-core's CPU µs per delivery, user and system, \"on\" being this build and \"off\" the baseline, at the same offered load",
};

/// The table of `variant` against the default push-core at each step
/// both were run at. Empty unless both were.
fn variant_ratios(steps: &[DeliveryStep], variant: Variant, size_name: &str) -> String {
    let pairs: Vec<(&DeliveryStep, &DeliveryStep)> = steps
        .iter()
        .filter(|s| s.kind == Kind::PushCore)
        .filter_map(|on| Some((on, find(steps, variant.kind, on.connections, on.offered)?)))
        .collect();
    if pairs.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{}:\n\n| {size_name} | offered deliveries/s | user on | user off | user on / off | system on | system off | system on / off | total on / off | deliveries/s on / off | p50 on / off | p99 on / off |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        variant.title
    );
    for (on, off) in pairs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.3} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
            on.connections,
            on.offered,
            on.server_user_us_per_delivery,
            off.server_user_us_per_delivery,
            ratio(
                on.server_user_us_per_delivery,
                off.server_user_us_per_delivery
            ),
            on.server_system_us_per_delivery,
            off.server_system_us_per_delivery,
            ratio(
                on.server_system_us_per_delivery,
                off.server_system_us_per_delivery
            ),
            ratio(
                on.server_cpu_us_per_delivery,
                off.server_cpu_us_per_delivery
            ),
            ratio(on.deliveries_per_s, off.deliveries_per_s),
            ratio(on.p50_ms, off.p50_ms),
            ratio(on.p99_ms, off.p99_ms)
        );
    }
    out
}

fn storm_table(storm: &[StormResult]) -> String {
    let mut out = String::from(
        "\n### 4. Connect storm (auth backend on)\n\n| clients | users | server | joined | failed | time until all joined | auth calls made | tabs identified |\n|---|---|---|---|---|---|---|---|\n",
    );
    for s in storm {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} s | {} | {} |",
            s.clients,
            s.users,
            s.kind.label(),
            s.joined,
            s.failed,
            s.all_joined.as_secs_f64(),
            s.auth_calls,
            s.identified
        );
    }
    let get = |kind| storm.iter().find(|s| s.kind == kind);
    if let (Some(p), Some(n)) = (get(Kind::PushCore), get(Kind::Node)) {
        let _ = writeln!(
            out,
            "\npush-core / Node: time until all joined {}, auth calls {}.",
            ratio(p.all_joined.as_secs_f64(), n.all_joined.as_secs_f64()),
            ratio(p.auth_calls as f64, n.auth_calls as f64)
        );
    }
    out
}

/// `kind`'s idle result with the most connections.
fn idle_with_most_connections(results: &Results, kind: Kind) -> Option<&IdleResult> {
    results
        .idle
        .iter()
        .filter(|r| r.kind == kind)
        .max_by_key(|r| r.connections)
}

/// The targets, each with the figure that decides it.
fn targets(results: &Results) -> String {
    let mut out = String::from("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n");
    let mut row = |target: &str, measured: String, met: Option<bool>| {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {target} | {measured} | {met} |");
    };

    let largest_idle = results.idle.iter().map(|r| r.connections).max();
    let idle_pair = largest_idle.and_then(|n| {
        let get = |kind| {
            results
                .idle
                .iter()
                .find(|r| r.kind == kind && r.connections == n)
        };
        Some((n, get(Kind::PushCore)?, get(Kind::Node)?))
    });
    match idle_pair {
        Some((n, p, node)) => {
            let r = p.rss_per_connection() / node.rss_per_connection();
            row(
                "memory per idle connection ≤ 1/4 of Node's",
                format!(
                    "{:.1} KB vs {:.1} KB at {n} connections: {:.2}",
                    p.rss_per_connection() / 1000.0,
                    node.rss_per_connection() / 1000.0,
                    r
                ),
                Some(r <= 0.25),
            );
        }
        None => row(
            "memory per idle connection ≤ 1/4 of Node's",
            "–".to_owned(),
            None,
        ),
    }

    let fan = &results.fanout;
    let largest_fan = fan.iter().map(|s| s.connections).max();
    let common = largest_fan.and_then(|n| Some((n, highest_common_sustained(fan, n)?)));
    match common.and_then(|(n, offered)| {
        Some((
            n,
            offered,
            find(fan, Kind::PushCore, n, offered)?,
            find(fan, Kind::Node, n, offered)?,
        ))
    }) {
        Some((n, offered, p, node)) => {
            let cpu = p.server_cpu_us_per_delivery / node.server_cpu_us_per_delivery;
            row(
                "server CPU per delivery ≤ 1/5 of Node's",
                format!(
                    "{:.2} µs vs {:.2} µs at {n} subscribers, {offered} deliveries/s (highest load both sustained): {cpu:.2}",
                    p.server_cpu_us_per_delivery, node.server_cpu_us_per_delivery
                ),
                Some(cpu <= 0.2),
            );
            let p99 = p.p99_ms / node.p99_ms;
            row(
                "p99 latency at 10k subscribers ≤ 1/5 of Node's at the same offered load",
                format!(
                    "{} ms vs {} ms at {n} subscribers, {offered} deliveries/s: {p99:.2}",
                    ms(p.p99_ms),
                    ms(node.p99_ms)
                ),
                Some(p99 <= 0.2),
            );
        }
        None => {
            row(
                "server CPU per delivery ≤ 1/5 of Node's",
                "no load both sustained".to_owned(),
                None,
            );
            row(
                "p99 latency at 10k subscribers ≤ 1/5 of Node's",
                "no load both sustained".to_owned(),
                None,
            );
        }
    }
    let highest_common_measured = largest_fan.and_then(|n| {
        fan.iter()
            .filter(|s| s.kind == Kind::Node && s.connections == n)
            .filter_map(|node| Some((node, find(fan, Kind::PushCore, n, node.offered)?)))
            .max_by_key(|(node, _)| node.offered)
            .map(|(node, p)| (n, node, p))
    });
    if let Some((n, node, p)) = highest_common_measured
        && !node.sustained
    {
        let p99 = p.p99_ms / node.p99_ms;
        row(
            "p99 latency at 10k subscribers ≤ 1/5 of Node's, at the highest load both were run at",
            format!(
                "{} ms vs {} ms at {n} subscribers, {} deliveries/s, which Node did not sustain: {p99:.2}",
                ms(p.p99_ms),
                ms(node.p99_ms),
                node.offered
            ),
            Some(p99 <= 0.2),
        );
    }
    match largest_fan.and_then(|n| {
        Some((
            n,
            best_sustained(fan, Kind::PushCore, n)?,
            best_sustained(fan, Kind::Node, n)?,
        ))
    }) {
        Some((n, (p, lower), (node, _))) => {
            let r = p / node;
            row(
                "fan-out deliveries/s ≥ 5× Node's",
                format!(
                    "{}{p:.0}/s vs {node:.0}/s at {n} subscribers: {}{r:.1}×",
                    if lower { "≥ " } else { "" },
                    if lower { "≥ " } else { "" }
                ),
                Some(r >= 5.0),
            );
        }
        None => row("fan-out deliveries/s ≥ 5× Node's", "–".to_owned(), None),
    }

    match idle_with_most_connections(results, Kind::PushCore) {
        Some(r) => row(
            "15k concurrent connections held with no disconnects",
            format!(
                "push-core: {} of {} joined, {} dropped over the idle window",
                r.joined, r.connections, r.dropped
            ),
            Some(r.connections >= 15_000 && r.joined == r.connections && r.dropped == 0),
        ),
        None => row(
            "15k concurrent connections held with no disconnects",
            "–".to_owned(),
            None,
        ),
    }
    let misdelivered: u64 = results.private.iter().map(|s| s.misdelivered).sum();
    if !results.private.is_empty() {
        row(
            "private messages: 0 misdeliveries",
            format!("{misdelivered} over every private step of both servers"),
            Some(misdelivered == 0),
        );
    }
    out
}

/// The targets of issue #16 (the private path at the floor, a cheaper
/// fan-out), each with the figure that decides it and, where the run has
/// it, the one-write floor's figure beside it.
fn private_path_targets(results: &Results) -> String {
    let mut out = String::from(
        "\n### Targets of the private path (issue #16)\n\n| target | measured | one-write floor | met |\n|---|---|---|---|\n",
    );
    let mut row = |target: String, measured: String, floor: Option<f64>, met: Option<bool>| {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let floor = floor.map_or_else(|| "–".to_owned(), |us| format!("{us:.1} µs"));
        let _ = writeln!(out, "| {target} | {measured} | {floor} | {met} |");
    };
    let private = |kind, rate: u64| {
        results
            .private
            .iter()
            .find(|s| s.kind == kind && s.offered == rate)
    };
    for (rate, limit) in [(1_000, 25.0), (5_000, 20.0), (20_000, 20.0)] {
        let target = format!("private: server CPU per delivery ≤ {limit} µs at {rate}/s");
        let floor = private(Kind::WriteFloor, rate).map(|s| s.server_cpu_us_per_delivery);
        match private(Kind::PushCore, rate) {
            Some(p) => row(
                target,
                format!("{:.1} µs", p.server_cpu_us_per_delivery),
                floor,
                Some(p.server_cpu_us_per_delivery <= limit),
            ),
            None => row(target, "–".to_owned(), floor, None),
        }
    }
    for rate in [1_000, 5_000] {
        let target = format!("private: server CPU per delivery ≤ 1/5 of Node's at {rate}/s");
        match (private(Kind::PushCore, rate), private(Kind::Node, rate)) {
            (Some(p), Some(node)) => {
                let r = p.server_cpu_us_per_delivery / node.server_cpu_us_per_delivery;
                row(
                    target,
                    format!(
                        "{:.1} µs vs {:.1} µs: {r:.2}",
                        p.server_cpu_us_per_delivery, node.server_cpu_us_per_delivery
                    ),
                    None,
                    Some(r <= 0.2),
                );
            }
            _ => row(target, "–".to_owned(), None, None),
        }
    }
    for rate in [1_000, 5_000, 20_000] {
        let target = format!("private: p99 ≤ Node's at {rate}/s");
        match (private(Kind::PushCore, rate), private(Kind::Node, rate)) {
            (Some(p), Some(node)) => row(
                target,
                format!("{} ms vs {} ms", ms(p.p99_ms), ms(node.p99_ms)),
                None,
                Some(p.p99_ms <= node.p99_ms),
            ),
            _ => row(target, "–".to_owned(), None, None),
        }
    }
    let target =
        "fan-out: user-space CPU per delivery ≤ 2.5 µs at 5,000 subscribers, 5 broadcasts/s"
            .to_owned();
    let floor = find(&results.fanout, Kind::WriteFloor, 5_000, 25_000)
        .map(|s| s.server_user_us_per_delivery);
    match find(&results.fanout, Kind::PushCore, 5_000, 25_000) {
        Some(p) => row(
            target,
            format!(
                "{:.2} µs (system {:.2} µs)",
                p.server_user_us_per_delivery, p.server_system_us_per_delivery
            ),
            floor,
            Some(p.server_user_us_per_delivery <= 2.5),
        ),
        None => row(target, "–".to_owned(), floor, None),
    }
    let target = "fan-out: peak at 10,000 subscribers ≥ 590,000 deliveries/s".to_owned();
    match best_sustained(&results.fanout, Kind::PushCore, 10_000) {
        Some((peak, every_step_kept_up)) => row(
            target,
            format!("{}{peak:.0}/s", if every_step_kept_up { "≥ " } else { "" }),
            None,
            Some(peak >= 590_000.0),
        ),
        None => row(target, "–".to_owned(), None, None),
    }
    let target = "memory per idle connection no worse than before: ≤ 18.3 KB".to_owned();
    match idle_with_most_connections(results, Kind::PushCore) {
        Some(r) => row(
            target,
            format!(
                "{:.1} KB at {} connections",
                r.rss_per_connection() / 1000.0,
                r.connections
            ),
            None,
            Some(r.rss_per_connection() <= 18_300.0),
        ),
        None => row(target, "–".to_owned(), None, None),
    }
    out
}

/// Writes the generated section of `docs/benchmarks.md`, keeping the
/// hand-written text around it.
pub fn write_markdown(
    path: &Path,
    machine: &Machine,
    plan: &Plan,
    results: &Results,
) -> anyhow::Result<()> {
    let mut generated = String::new();
    let _ = writeln!(generated, "{BEGIN}\n");
    let _ = writeln!(generated, "## Results of the last full run\n");
    let _ = writeln!(
        generated,
        "| | |\n|---|---|\n| date | {} |\n| commit | {} |\n| CPU | {} × {} |\n| memory | {:.1} GiB |\n| kernel | Linux {} |\n| Rust | {} |\n| Node | {} |\n| socket.io (npm) | {} |\n| socketioxide | {} |\n| open files | {} |\n| load average before / after | {} / {} |\n| run time | {:.0} s |\n",
        machine.date,
        machine.commit,
        machine.cores,
        machine.cpu,
        machine.memory_gib,
        machine.kernel,
        machine.rustc,
        machine.node,
        machine.socket_io,
        machine.socketioxide,
        machine.open_files,
        machine.load_before,
        machine.load_after,
        machine.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        generated,
        "Plan: idle at {:?} connections over {} s; fan-out steps of {} s; private messages to {} users at {:?} publishes/s; connect storm of {} clients ({} users, two tabs each). The load generator shares the two cores with the server under test.\n",
        plan.idle_sizes,
        plan.idle_window.as_secs(),
        plan.step_duration.as_secs(),
        plan.private_users,
        plan.private_rates,
        plan.storm_clients,
        plan.storm_users
    );
    generated.push_str(&tables(results));
    for note in &results.notes {
        let _ = writeln!(generated, "\n{note}");
    }
    let _ = writeln!(
        generated,
        "\n![latency percentiles against load](benchmarks-latency.svg)\n\n{END}"
    );

    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            format!(
                "{}{}{}",
                &existing[..begin],
                generated,
                &existing[end + END.len()..]
            )
        }
        _ => format!("# Benchmarks\n\n{generated}"),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Latency percentiles against offered load, one panel per subscriber
/// count, both servers on each.
pub fn write_chart(path: &Path, results: &Results) -> anyhow::Result<()> {
    let sizes = dedup(results.fanout.iter().map(|s| s.connections));
    if sizes.is_empty() {
        return Ok(());
    }
    let width = 560 * sizes.len() as u32;
    let root = SVGBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let panels = root.split_evenly((1, sizes.len()));
    for (panel, &n) in panels.iter().zip(&sizes) {
        let steps: Vec<&DeliveryStep> = results
            .fanout
            .iter()
            .filter(|s| s.connections == n)
            .collect();
        let x_max = steps.iter().map(|s| s.offered).max().unwrap_or(1) as f64 * 1.3;
        let x_min = steps.iter().map(|s| s.offered).min().unwrap_or(1) as f64 / 1.3;
        let y_min = steps
            .iter()
            .map(|s| s.p50_ms)
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(f64::MAX, f64::min)
            .min(1.0)
            / 2.0;
        let y_max = steps
            .iter()
            .map(|s| s.p999_ms)
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max)
            * 2.0;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("fan-out to {n} subscribers"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .light_line_style(WHITE)
            .x_desc("offered deliveries/s (hollow: not sustained)")
            .y_desc("publish-to-receive latency, ms")
            .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .y_label_formatter(&|v| format!("{v}"))
            .draw()
            .map_err(chart_error)?;
        let colours = [
            (Kind::PushCore, RGBColor(31, 119, 180)),
            (Kind::PushCoreNoRecovery, RGBColor(44, 160, 44)),
            (Kind::PushCoreNoOldClients, RGBColor(148, 103, 189)),
            (Kind::PushCoreBaseline, RGBColor(255, 127, 14)),
            (Kind::Node, RGBColor(214, 39, 40)),
            (Kind::WriteFloor, RGBColor(127, 127, 127)),
        ];
        for (kind, colour) in colours {
            for (label, pick, width) in [
                (
                    "p50",
                    (|s: &DeliveryStep| s.p50_ms) as fn(&DeliveryStep) -> f64,
                    1,
                ),
                ("p99", |s: &DeliveryStep| s.p99_ms, 2),
                ("p99.9", |s: &DeliveryStep| s.p999_ms, 3),
            ] {
                let points: Vec<(f64, f64, bool)> = steps
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(|s| (s.offered as f64, pick(s).max(y_min), s.sustained))
                    .filter(|(_, y, _)| y.is_finite())
                    .collect();
                let line: Vec<(f64, f64)> = points.iter().map(|&(x, y, _)| (x, y)).collect();
                let style = ShapeStyle::from(&colour).stroke_width(width);
                chart
                    .draw_series(LineSeries::new(line, style))
                    .map_err(chart_error)?
                    .label(format!("{} {label}", kind.label()))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
                chart
                    .draw_series(points.iter().map(|&(x, y, sustained)| {
                        let marker = if sustained {
                            colour.filled()
                        } else {
                            ShapeStyle::from(&colour).stroke_width(1)
                        };
                        Circle::new((x, y), 3, marker)
                    }))
                    .map_err(chart_error)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
    }
    root.present().map_err(chart_error)?;
    Ok(())
}

fn chart_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {error:?}")
}

/// The goals of push-core's own engine.io transport (issue #21), each
/// against Node, the one-write floor or the baseline build of the same run.
fn transport_targets(results: &Results) -> String {
    let mut out = String::from(
        "\n### Targets of the transport (issue #21)\n\n| target | measured | met |\n|---|---|---|\n",
    );
    let mut row = |target: &str, measured: String, met: Option<bool>| {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {target} | {measured} | {met} |");
    };
    let largest_idle = results.idle.iter().map(|r| r.connections).max();
    let idle = |kind, n| {
        results
            .idle
            .iter()
            .find(|r| r.kind == kind && r.connections == n && !r.protocol4)
    };
    let target = "memory per idle connection ≤ 1/4 of Node's (≤ 4.3 KB)";
    match largest_idle.and_then(|n| Some((n, idle(Kind::PushCore, n)?, idle(Kind::Node, n)?))) {
        Some((n, p, node)) => {
            let (mine, theirs) = (p.rss_per_connection(), node.rss_per_connection());
            row(
                target,
                format!(
                    "{:.1} KB vs {:.1} KB at {n} connections: {:.2}",
                    mine / 1000.0,
                    theirs / 1000.0,
                    mine / theirs
                ),
                Some(mine / theirs <= 0.25 && mine <= 4300.0),
            );
        }
        None => row(target, "–".to_owned(), None),
    }
    let fan = |kind| find(&results.fanout, kind, 5_000, 25_000);
    let target = "fan-out, 5,000 subscribers at 5/s: CPU per delivery ≤ 1.3× the one-write floor";
    match (fan(Kind::PushCore), fan(Kind::WriteFloor)) {
        (Some(p), Some(floor)) => {
            let r = p.server_cpu_us_per_delivery / floor.server_cpu_us_per_delivery;
            row(
                target,
                format!(
                    "{:.2} µs vs {:.2} µs: {r:.2}",
                    p.server_cpu_us_per_delivery, floor.server_cpu_us_per_delivery
                ),
                Some(r <= 1.3),
            );
        }
        _ => row(target, "–".to_owned(), None),
    }
    let target = "fan-out, 5,000 subscribers at 5/s: user-space CPU per delivery ≤ 1.0 µs";
    match fan(Kind::PushCore) {
        Some(p) => row(
            target,
            format!("{:.2} µs", p.server_user_us_per_delivery),
            Some(p.server_user_us_per_delivery <= 1.0),
        ),
        None => row(target, "–".to_owned(), None),
    }
    let target = "fan-out, 5,000 subscribers at 5/s: p99 ≤ 1/2 of Node's";
    match (fan(Kind::PushCore), fan(Kind::Node)) {
        (Some(p), Some(node)) => row(
            target,
            format!(
                "{} ms vs {} ms: {:.2}",
                ms(p.p99_ms),
                ms(node.p99_ms),
                p.p99_ms / node.p99_ms
            ),
            Some(p.p99_ms <= node.p99_ms / 2.0),
        ),
        _ => row(target, "–".to_owned(), None),
    }
    let target = "fan-out peak at 10,000 subscribers ≥ 1,000,000 deliveries/s sustained";
    match best_sustained(&results.fanout, Kind::PushCore, 10_000) {
        Some((best, every_step)) => row(
            target,
            format!(
                "{}{best:.0}/s{}",
                if every_step { "≥ " } else { "" },
                if every_step {
                    " (every step kept up)"
                } else {
                    ""
                }
            ),
            Some(best >= 1_000_000.0 * 0.9),
        ),
        None => row(target, "–".to_owned(), None),
    }
    for rate in [1_000, 5_000, 20_000] {
        let target =
            format!("private path at {rate}/s: CPU per delivery no worse than the baseline build");
        let private = |kind| {
            results
                .private
                .iter()
                .find(|s| s.kind == kind && s.offered == rate)
        };
        match (private(Kind::PushCore), private(Kind::PushCoreBaseline)) {
            (Some(p), Some(before)) => {
                let r = p.server_cpu_us_per_delivery / before.server_cpu_us_per_delivery;
                row(
                    &target,
                    format!(
                        "{:.1} µs vs {:.1} µs: {r:.2}",
                        p.server_cpu_us_per_delivery, before.server_cpu_us_per_delivery
                    ),
                    Some(r <= 1.0),
                );
            }
            _ => row(&target, "– (needs --baseline)".to_owned(), None),
        }
    }
    out
}
