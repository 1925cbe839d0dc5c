//! What a chaos run found: every page's record against what the site had
//! acknowledged, and each node's memory over time, as a table.
//!
//! A page must receive every acknowledged message meant for it (every
//! broadcast, and its user's private messages), each once, in the order of
//! their offsets, and nothing meant for another user. A message it did not
//! receive is **told** when a `push:recovery` with `recovered: false`
//! reached the page between the messages around it (the page reloads its
//! state then), and **silent** otherwise: the failure the run looks for.
//!
//! Two kinds of miss cannot be told at once, because nobody knows of them
//! until a node's link to Redis is back:
//! - a publish the site was answered `partial` for (Redis out of reach, so
//!   only the pages of the node that took it got it);
//! - a message missed by a page whose node could not reach Redis just
//!   then (the next thing the page received came without an offset).
//!
//! Once the link is back, every page is told to reload. Such a miss counts
//! as told if the reset reached the page before anything published
//! [`TOLD_ONCE_LINKED_WITHIN`] after it, and is shown in a row of its own.

use std::fmt::Write as _;
use std::time::Duration;

use super::page::{PageRecord, Receipt};
use super::publisher::Sent;

/// How soon a page must be told of a miss made while a link to Redis was
/// down (see the module's doc): longer than Redis stays down in a run,
/// plus the link's reconnect.
pub const TOLD_ONCE_LINKED_WITHIN: Duration = Duration::from_secs(10);

/// Faults made, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct FaultCounts {
    pub killed: u32,
    pub stopped: u32,
    pub redis_restarts: u32,
    pub cuts: u32,
    pub stalls: u32,
    /// Pages per cut or stall.
    pub pages_each: usize,
}

/// One reading of a node's memory.
#[derive(Debug, Clone, Copy)]
pub struct RssSample {
    pub at_secs: u64,
    /// Which start of the node this reading is of (1 until a restart).
    pub start: u32,
    pub rss: u64,
}

/// What one page got wrong, or right.
#[derive(Debug, Default, Clone, Copy)]
struct PageFigures {
    received: u64,
    silent: u64,
    /// Of `silent`, messages the site was told reached only some pages.
    silent_partial: u64,
    told: u64,
    /// Of `told`, misses made while a link was down, told once it was back.
    told_late: u64,
    duplicated: u64,
    out_of_order: u64,
    resets: u64,
    misdelivered: u64,
    connects: u64,
}

/// Compares `record` with what was sent to `user`, published at `rate`
/// a second (so a message's id tells when it was published).
fn judge(record: &PageRecord, user: u32, sent: &[Sent], rate: f64) -> PageFigures {
    let link_window = (TOLD_ONCE_LINKED_WITHIN.as_secs_f64() * rate).ceil() as usize;
    let receipts = &record.receipts;
    let receipt = |id: usize| receipts.get(id).copied().unwrap_or_default();
    // The nearest received message after each id, scanning backwards.
    let mut next_received: Vec<Option<Receipt>> = vec![None; sent.len()];
    let mut after: Option<Receipt> = None;
    for id in (0..sent.len()).rev() {
        next_received[id] = after;
        if receipt(id).count > 0 {
            after = Some(receipt(id));
        }
    }
    let mut figures = PageFigures {
        received: record.received,
        out_of_order: record.out_of_order,
        resets: u64::from(record.resets),
        misdelivered: record.misdelivered,
        connects: record.connects,
        ..PageFigures::default()
    };
    let mut before: Option<Receipt> = None;
    for (id, message) in sent.iter().enumerate() {
        let got = receipt(id);
        if got.count > 1 {
            figures.duplicated += u64::from(got.count - 1);
        }
        let meant = message.acknowledged && message.to.is_none_or(|to| to == user);
        if meant && got.count == 0 {
            // Told if a reset came after the message before it and before
            // the message after it (or by the end).
            // A miss made while a link was down: before anything
            // published a window later.
            let resets_then = before.map_or(0, |b| b.resets_before);
            let told_by = |last: usize| {
                next_received
                    .get(last)
                    .copied()
                    .flatten()
                    .map_or(record.resets, |a| a.resets_before)
                    > resets_then
            };
            if told_by(id) {
                figures.told += 1;
            } else if (message.partial || next_received[id].is_some_and(|r| r.unnumbered))
                && told_by(id + link_window)
            {
                figures.told += 1;
                figures.told_late += 1;
            } else {
                figures.silent += 1;
                figures.silent_partial += u64::from(message.partial);
                if std::env::var_os("CHAOS_DEBUG").is_some() {
                    eprintln!(
                        "DEBUG silent: user {user} id {id} to {:?} partial {} before {:?} after {:?} resets {} connects {}",
                        message.to,
                        message.partial,
                        before,
                        next_received[id],
                        record.resets,
                        record.connects
                    );
                }
            }
        }
        if got.count > 0 {
            before = Some(got);
        }
    }
    figures
}

/// A column of the per-page table: the sum, the pages with any, and the
/// spread.
struct Column {
    total: u64,
    pages_with_any: usize,
    min: u64,
    median: u64,
    max: u64,
}

fn column(values: impl Iterator<Item = u64>) -> Column {
    let mut values: Vec<u64> = values.collect();
    values.sort_unstable();
    Column {
        total: values.iter().sum(),
        pages_with_any: values.iter().filter(|&&v| v > 0).count(),
        min: values.first().copied().unwrap_or(0),
        median: values.get(values.len() / 2).copied().unwrap_or(0),
        max: values.last().copied().unwrap_or(0),
    }
}

/// The run's settings, for the table's heading.
pub struct RunShape {
    pub seconds: u64,
    pub nodes: usize,
    pub pages: usize,
    pub rate: f64,
    pub queue: usize,
}

/// The outcome: the report, and whether the run passed.
pub struct Verdict {
    pub report: String,
    pub passed: bool,
}

/// Judges every page and writes the report.
pub fn verdict(
    shape: &RunShape,
    faults: FaultCounts,
    pages: &[(u32, PageRecord)],
    sent: &[Sent],
    rss: &[(String, Vec<RssSample>)],
) -> Verdict {
    let joined: Vec<PageFigures> = pages
        .iter()
        .filter(|(_, record)| record.joined)
        .map(|(user, record)| judge(record, *user, sent, shape.rate))
        .collect();
    let never_joined = pages.len() - joined.len();
    let acknowledged = sent.iter().filter(|s| s.acknowledged).count();
    let partial = sent.iter().filter(|s| s.acknowledged && s.partial).count();
    let published = sent.len().saturating_sub(1);

    let mut out = String::new();
    let minutes = shape.seconds as f64 / 60.0;
    let _ = writeln!(
        out,
        "Chaos run: {minutes:.1} min, {} nodes and one Redis, {} pages with recovery, {} publishes/s (one in ten private), max_buffered_messages {}.\n",
        shape.nodes, shape.pages, shape.rate, shape.queue
    );
    let _ = writeln!(out, "| fault | times |\n|---|---|");
    let _ = writeln!(
        out,
        "| a node killed (`kill -9`) and started again | {} |",
        faults.killed
    );
    let _ = writeln!(
        out,
        "| a node stopped (SIGSTOP), then continued | {} |",
        faults.stopped
    );
    let _ = writeln!(
        out,
        "| Redis killed and started again, empty | {} |",
        faults.redis_restarts
    );
    let _ = writeln!(
        out,
        "| {} pages' network cut at the relay | {} |",
        faults.pages_each, faults.cuts
    );
    let _ = writeln!(
        out,
        "| {} pages stop reading | {} |\n",
        faults.pages_each, faults.stalls
    );
    let _ = writeln!(out, "| publishes | |\n|---|---|");
    let _ = writeln!(out, "| sent | {published} |");
    let _ = writeln!(out, "| acknowledged | {acknowledged} |");
    let _ = writeln!(
        out,
        "| not acknowledged (a node killed or stopped under it) | {} |",
        published.saturating_sub(acknowledged)
    );
    let _ = writeln!(
        out,
        "| acknowledged as partial (Redis out of reach) | {partial} |\n"
    );

    let rows: [(&str, Column); 10] = [
        (
            "messages received",
            column(joined.iter().map(|f| f.received)),
        ),
        ("missed, silently", column(joined.iter().map(|f| f.silent))),
        (
            "of them, publishes acknowledged as partial",
            column(joined.iter().map(|f| f.silent_partial)),
        ),
        (
            "missed, and told (`recovered: false`)",
            column(joined.iter().map(|f| f.told)),
        ),
        (
            "of them, made while a link to Redis was down, told once it was back",
            column(joined.iter().map(|f| f.told_late)),
        ),
        ("duplicated", column(joined.iter().map(|f| f.duplicated))),
        (
            "out of order",
            column(joined.iter().map(|f| f.out_of_order)),
        ),
        (
            "resync notices (`recovered: false`)",
            column(joined.iter().map(|f| f.resets)),
        ),
        (
            "misdelivered (another user's)",
            column(joined.iter().map(|f| f.misdelivered)),
        ),
        ("connections", column(joined.iter().map(|f| f.connects))),
    ];
    let _ = writeln!(
        out,
        "| per page ({} pages) | total | pages with any | min | median | max |\n|---|---|---|---|---|---|",
        joined.len()
    );
    for (what, c) in &rows {
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} | {} |",
            c.total, c.pages_with_any, c.min, c.median, c.max
        );
    }
    if never_joined > 0 {
        let _ = writeln!(out, "\n{never_joined} pages never joined.");
    }

    let (rss_table, flat) = rss_table(rss);
    let _ = write!(out, "\n{rss_table}");

    let silent = rows[1].1.total;
    let duplicated = rows[5].1.total;
    let out_of_order = rows[6].1.total;
    let misdelivered = rows[8].1.total;
    let passed = silent == 0
        && duplicated == 0
        && out_of_order == 0
        && misdelivered == 0
        && never_joined == 0
        && flat;
    let _ = writeln!(
        out,
        "\nVerdict: {} (silent gaps {silent}, duplicates {duplicated}, out of order {out_of_order}, misdelivered {misdelivered}, RSS {}).",
        if passed { "PASS" } else { "FAIL" },
        if flat { "flat" } else { "growing" }
    );
    Verdict {
        report: out,
        passed,
    }
}

/// How much a node's memory may grow over a run after its first minute
/// and still count as flat: allocator noise and caches that fill once.
const RSS_SLACK_SHARE: f64 = 0.25;
const RSS_SLACK_BYTES: u64 = 16 * 1024 * 1024;

/// Each node's RSS by minute, and whether every node stayed flat: since its
/// last start, the last reading is within [`RSS_SLACK_SHARE`] plus
/// [`RSS_SLACK_BYTES`] of the first reading a minute or more after it.
fn rss_table(rss: &[(String, Vec<RssSample>)]) -> (String, bool) {
    let mut out = String::new();
    let end = rss
        .iter()
        .flat_map(|(_, samples)| samples.last())
        .map(|sample| sample.at_secs)
        .max()
        .unwrap_or(0);
    let minutes: Vec<u64> = (0..=end / 60).map(|m| m * 60).collect();
    let _ = write!(out, "| node RSS (MiB) |");
    for minute in &minutes {
        let _ = write!(out, " {} min |", minute / 60);
    }
    let _ = writeln!(out, " end | starts | flat |");
    let _ = writeln!(out, "|---|{}---|---|---|", "---|".repeat(minutes.len()));
    let mut all_flat = true;
    for (name, samples) in rss {
        let _ = write!(out, "| {name} |");
        for minute in &minutes {
            let sample = samples.iter().rev().find(|s| s.at_secs <= *minute);
            match sample {
                Some(s) => {
                    let _ = write!(out, " {:.1} |", mib(s.rss));
                }
                None => {
                    let _ = write!(out, " – |");
                }
            }
        }
        let last = samples.last();
        let starts = last.map_or(0, |s| s.start);
        let flat = last.and_then(|last| {
            let segment: Vec<&RssSample> =
                samples.iter().filter(|s| s.start == last.start).collect();
            let began = segment.first()?.at_secs;
            let settled = segment.iter().find(|s| s.at_secs >= began + 60)?;
            (last.at_secs >= settled.at_secs + 120).then_some({
                last.rss as f64
                    <= settled.rss as f64 * (1.0 + RSS_SLACK_SHARE) + RSS_SLACK_BYTES as f64
            })
        });
        all_flat &= flat.unwrap_or(true);
        let _ = writeln!(
            out,
            " {:.1} | {starts} | {} |",
            last.map_or(0.0, |s| mib(s.rss)),
            match flat {
                Some(true) => "yes",
                Some(false) => "no",
                None => "too short to tell",
            }
        );
    }
    (out, all_flat)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(to: Option<u32>) -> Sent {
        Sent {
            to,
            acknowledged: true,
            partial: false,
        }
    }

    fn record(received: &[(usize, u16)], resets: u16) -> PageRecord {
        let mut record = PageRecord::default();
        record.resets = resets;
        record.joined = true;
        for &(id, resets_before) in received {
            if record.receipts.len() <= id {
                record.receipts.resize(id + 1, Receipt::default());
            }
            record.receipts[id] = Receipt {
                count: 1,
                resets_before,
                unnumbered: false,
            };
        }
        record
    }

    #[test]
    fn a_gap_is_silent_unless_a_reset_came_between_its_neighbours() {
        let unused = Sent {
            acknowledged: false,
            ..sent(None)
        };
        let messages = [unused, sent(None), sent(None), sent(None), sent(Some(9))];
        // 2 missed with no reset around it: silent. 4 is another user's.
        let figures = judge(&record(&[(1, 0), (3, 0)], 0), 7, &messages, 10.0);
        assert_eq!((figures.silent, figures.told), (1, 0));
        // A reset between 1 and 3: told.
        let figures = judge(&record(&[(1, 0), (3, 1)], 1), 7, &messages, 10.0);
        assert_eq!((figures.silent, figures.told), (0, 1));
        // 3 missed at the end, a reset after 2: told.
        let figures = judge(&record(&[(1, 0), (2, 0)], 1), 7, &messages, 10.0);
        assert_eq!((figures.silent, figures.told), (0, 1));
    }

    #[test]
    fn a_miss_while_a_link_was_down_must_be_told_within_the_window() {
        // One a second: the window is ten messages. 2 missed; the page
        // receives every other message, and a reset before message `reset_at`.
        let judged = |partial: bool, reset_at: usize| {
            let mut messages = vec![sent(None); 30];
            messages[0].acknowledged = false;
            messages[2].partial = partial;
            let received: Vec<(usize, u16)> = (1..30)
                .filter(|&id| id != 2)
                .map(|id| (id, u16::from(id >= reset_at)))
                .collect();
            judge(&record(&received, 1), 7, &messages, 1.0)
        };
        let told_soon = judged(true, 8);
        assert_eq!(
            (told_soon.silent, told_soon.told, told_soon.told_late),
            (0, 1, 1)
        );
        let told_too_late = judged(true, 20);
        assert_eq!((told_too_late.silent, told_too_late.silent_partial), (1, 1));
        // A message the site was told reached everyone gets no window.
        let not_partial = judged(false, 8);
        assert_eq!((not_partial.silent, not_partial.told), (1, 0));
        // The same, but the page's node was off the link after the miss.
        let mut messages = vec![sent(None); 5];
        messages[0].acknowledged = false;
        let mut record = record(&[(1, 0), (3, 0), (4, 1)], 1);
        record.receipts[3].unnumbered = true;
        let cut_off = judge(&record, 7, &messages, 1.0);
        assert_eq!((cut_off.silent, cut_off.told_late), (0, 1));
    }
}
