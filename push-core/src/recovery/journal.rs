//! The history on disk, so that a restart of the daemon loses nothing.
//!
//! With `state_dir` set, every message recorded for recovery is also
//! appended to a journal there, and a daemon that starts on the same
//! directory after a clean stop reads it back: same epoch, same sequence
//! numbers, so offsets that pages hold from before the restart still mean
//! the same.
//!
//! The store is a plain append-only file of JSON lines, one message each,
//! cut into segments. We chose it over an embedded database because the
//! access pattern is exactly a log: appended in order, read whole once at
//! start, dropped from the front by age. A segment is closed after
//! [`SEGMENT_SPAN`] (or [`SEGMENT_BYTES`]) and deleted once everything in it
//! is older than the recovery window, so the journal holds about one window
//! of messages and no compaction is needed.
//!
//! A clean stop also writes where every namespace's numbering stands
//! ([`CLEAN_STOP_FILE`]), which the next start reads and removes. Without
//! it the daemon did not stop cleanly, and messages it handed to pages may
//! be missing from the journal: numbering them again would let a page that
//! saw the lost ones skip their new namesakes. So such a start begins a new
//! epoch instead, and every page is told to reload its state.
//!
//! Appending happens on a thread of its own, fed by a bounded queue, so a
//! publish never waits for the disk. What it guarantees:
//! - a clean stop (SIGTERM) writes and syncs everything: nothing is lost;
//! - a crash, `kill -9` or a power loss loses the history: the next start is
//!   a new epoch and pages reload their state (as without `state_dir`);
//! - the queue holds [`QUEUE_LENGTH`] messages; if the disk falls that far
//!   behind, messages are left out of the journal (counted and logged), and
//!   pages whose offset precedes such a gap are told to reload after a
//!   restart.
//!
//! The files hold private messages, so the directory is made `0700` and
//! the files `0600`. One daemon at a time uses a directory ([`DirLock`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::dir_lock::{DirLock, LockError};
use super::history::{Entry, History};
use super::offset::new_epoch;

/// How often written messages are synced to the disk while messages come.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How long one segment is appended to before the next is started. Shorter
/// than any sensible window, so that old messages leave the disk in steps
/// of this size.
const SEGMENT_SPAN: Duration = Duration::from_secs(30);

/// A segment is also closed at this size, so a burst does not make one
/// huge file that can only go when its newest line has aged out.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Messages waiting for the writer. A disk that far behind is failing; the
/// bound keeps it from taking the daemon's memory with it.
const QUEUE_LENGTH: usize = 65_536;

const EPOCH_FILE: &str = "epoch";
const CLEAN_STOP_FILE: &str = "clean-stop.json";
const SEGMENT_PREFIX: &str = "journal-";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// Why the state directory cannot be used.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("cannot use the state directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the state directory {path} is in use by another push-core ({holder}); two daemons writing one journal would mix up their histories: stop that one, or give this one a state_dir of its own"
    )]
    InUse { path: PathBuf, holder: String },
}

/// What a journal held when the daemon started.
#[derive(Debug)]
pub struct Loaded {
    pub epoch: u64,
    pub streams: HashMap<String, History>,
}

impl Loaded {
    pub fn empty(epoch: u64) -> Self {
        Self {
            epoch,
            streams: HashMap::new(),
        }
    }
}

/// How much of a journal is worth reading back.
#[derive(Debug, Clone, Copy)]
pub struct Keep<'a> {
    pub window: Duration,
    pub max_messages: usize,
    /// Namespaces served now; others' lines are skipped.
    pub namespaces: &'a [String],
}

/// One line of a segment, as written.
#[derive(Serialize)]
struct LineOut<'a> {
    ns: &'a str,
    entry: &'a Entry,
}

/// One line of a segment, as read back.
#[derive(Deserialize)]
struct LineIn {
    ns: String,
    entry: Entry,
}

enum Command {
    Append(Box<str>, Arc<Entry>),
    Close,
}

/// The writing end of a journal.
pub struct Journal {
    sender: Mutex<Option<SyncSender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Messages left out because the writer was [`QUEUE_LENGTH`] behind.
    dropped: AtomicU64,
    /// Held while the journal is open; let go after the writer's last
    /// write.
    lock: Mutex<Option<DirLock>>,
}

impl Journal {
    /// Opens the journal in `dir` (made if missing), reads back what it
    /// holds after a clean stop, or starts a new epoch after any other, and
    /// starts its writer thread.
    pub fn open(dir: &Path, keep: Keep<'_>) -> Result<(Self, Loaded), JournalError> {
        let io_error = |source| JournalError::Io {
            path: dir.to_owned(),
            source,
        };
        prepare_dir(dir).map_err(io_error)?;
        let lock = DirLock::take(dir).map_err(|error| match error {
            LockError::Held { pid } => JournalError::InUse {
                path: dir.to_owned(),
                holder: pid.map_or_else(
                    || "its pid is not written yet".to_owned(),
                    |pid| format!("pid {pid}"),
                ),
            },
            LockError::Io(source) => io_error(source),
        })?;
        let segments = list_segments(dir).map_err(io_error)?;
        let loaded = match (read_epoch(dir), read_clean_stop(dir)) {
            (Some(epoch), Some(positions)) => {
                let mut loaded = Loaded::empty(epoch);
                for path in segments.values() {
                    read_segment(path, keep, &mut loaded.streams).map_err(|source| {
                        JournalError::Io {
                            path: path.clone(),
                            source,
                        }
                    })?;
                }
                for (namespace, last_seq) in positions {
                    let history = loaded
                        .streams
                        .entry(namespace)
                        .or_insert_with(|| History::starting_after(last_seq));
                    if history.last_seq() < last_seq {
                        *history = History::starting_after(last_seq);
                    }
                }
                remove_synced(dir, CLEAN_STOP_FILE).map_err(io_error)?;
                loaded
            }
            (had_epoch, _) => {
                if had_epoch.is_some() {
                    tracing::warn!(dir = %dir.display(), "push-core did not stop cleanly last time: its recovery history cannot be trusted, so a new epoch begins and pages will be told to reload their state");
                }
                for path in segments.values() {
                    fs::remove_file(path).map_err(io_error)?;
                }
                let epoch = new_epoch();
                write_synced(dir, EPOCH_FILE, format!("{epoch:x}\n").as_bytes())
                    .map_err(io_error)?;
                Loaded::empty(epoch)
            }
        };
        let next_number = segments.keys().next_back().map_or(1, |last| last + 1);
        let mut segment = Segment::create(dir, next_number).map_err(io_error)?;
        segment.retire_old(&list_segments(dir).map_err(io_error)?, keep.window);
        let positions: HashMap<String, u64> = loaded
            .streams
            .iter()
            .map(|(namespace, history)| (namespace.clone(), history.last_seq()))
            .collect();

        let (sender, receiver) = mpsc::sync_channel(QUEUE_LENGTH);
        let window = keep.window;
        let writer = std::thread::Builder::new()
            .name("push-journal".to_owned())
            .spawn(move || Writer::new(segment, positions).run(receiver, window))
            .map_err(io_error)?;
        let journal = Self {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            dropped: AtomicU64::new(0),
            lock: Mutex::new(Some(lock)),
        };
        Ok((journal, loaded))
    }

    /// Queues a message to be written; never waits.
    pub fn append(&self, namespace: &str, entry: Arc<Entry>) {
        let Ok(sender) = self.sender.lock() else {
            return;
        };
        let Some(sender) = sender.as_ref() else {
            return;
        };
        if let Err(TrySendError::Full(_)) =
            sender.try_send(Command::Append(namespace.into(), entry))
            && self.dropped.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::error!(
                "the recovery journal's writer is {QUEUE_LENGTH} messages behind the disk; messages are left out of it until it catches up"
            );
        }
    }

    /// Writes and syncs everything queued, records where each namespace
    /// stands, and stops the writer. Blocks until that is done.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.lock()
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(Command::Close);
        }
        if let Ok(mut writer) = self.writer.lock()
            && let Some(writer) = writer.take()
        {
            let _ = writer.join();
        }
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state.
struct Writer {
    segment: Segment,
    /// The last sequence number written, per namespace.
    positions: HashMap<String, u64>,
    /// Set while writes fail, so that a failing disk is reported once.
    failing: bool,
}

impl Writer {
    fn new(segment: Segment, positions: HashMap<String, u64>) -> Self {
        Self {
            segment,
            positions,
            failing: false,
        }
    }

    /// Appends what comes, syncs every [`SYNC_INTERVAL`] while there is
    /// something to sync, and everything at the close.
    fn run(mut self, commands: Receiver<Command>, window: Duration) {
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        loop {
            let mut next = match commands.recv_timeout(SYNC_INTERVAL) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Command::Close),
            };
            // Take everything already queued before writing it out.
            while let Some(command) = next {
                match command {
                    Command::Append(namespace, entry) => {
                        let written = self.segment.append(&namespace, &entry);
                        self.report(written);
                        self.positions.insert(namespace.into(), entry.seq);
                        unsynced = true;
                    }
                    Command::Close => {
                        let closed = self.segment.sync().and_then(|()| self.write_positions());
                        self.report(closed);
                        return;
                    }
                }
                next = commands.try_recv().ok();
            }
            let flushed = self.segment.file.flush();
            self.report(flushed);
            if unsynced && last_sync.elapsed() >= SYNC_INTERVAL {
                let synced = self.segment.sync();
                self.report(synced);
                unsynced = false;
                last_sync = Instant::now();
            }
            let rotated = self.segment.rotate_if_due(window);
            self.report(rotated);
        }
    }

    /// Where every namespace stands, for the next start.
    fn write_positions(&self) -> io::Result<()> {
        let text = serde_json::to_vec(&self.positions).map_err(io::Error::other)?;
        write_synced(&self.segment.dir, CLEAN_STOP_FILE, &text)
    }

    /// Logs the first failure of a streak, and the recovery after it.
    fn report(&mut self, result: io::Result<()>) {
        match (result, self.failing) {
            (Err(error), false) => {
                self.failing = true;
                tracing::error!(%error, "could not write the recovery journal; messages published now may not survive a restart");
            }
            (Ok(()), true) => {
                self.failing = false;
                tracing::info!("the recovery journal is written again");
            }
            _ => {}
        }
    }
}

/// The segment being appended to.
struct Segment {
    dir: PathBuf,
    number: u64,
    file: BufWriter<File>,
    opened: Instant,
    bytes: u64,
    /// Segments closed earlier, by number, with when they were last written.
    closed: BTreeMap<u64, (PathBuf, SystemTime)>,
}

impl Segment {
    fn create(dir: &Path, number: u64) -> io::Result<Self> {
        Ok(Self {
            dir: dir.to_owned(),
            number,
            file: BufWriter::new(open_segment(dir, number)?),
            opened: Instant::now(),
            bytes: 0,
            closed: BTreeMap::new(),
        })
    }

    fn append(&mut self, namespace: &str, entry: &Entry) -> io::Result<()> {
        let line = LineOut {
            ns: namespace,
            entry,
        };
        let mut text = serde_json::to_vec(&line).map_err(io::Error::other)?;
        text.push(b'\n');
        self.bytes += text.len() as u64;
        self.file.write_all(&text)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// Starts the next segment once this one is old or big enough. The next
    /// file is opened first, so a failure leaves the segment as it was.
    fn rotate_if_due(&mut self, window: Duration) -> io::Result<()> {
        if self.opened.elapsed() < SEGMENT_SPAN && self.bytes < SEGMENT_BYTES {
            return Ok(());
        }
        self.sync()?;
        let next = open_segment(&self.dir, self.number + 1)?;
        let finished = segment_path(&self.dir, self.number);
        self.closed
            .insert(self.number, (finished, SystemTime::now()));
        self.number += 1;
        self.file = BufWriter::new(next);
        self.opened = Instant::now();
        self.bytes = 0;
        let listed = self
            .closed
            .iter()
            .map(|(number, (path, _))| (*number, path.clone()))
            .collect();
        self.retire_old(&listed, window);
        Ok(())
    }

    /// Deletes closed segments whose newest message is older than `window`.
    fn retire_old(&mut self, segments: &BTreeMap<u64, PathBuf>, window: Duration) {
        for (number, path) in segments {
            if *number == self.number {
                continue;
            }
            let written = self
                .closed
                .get(number)
                .map(|(_, written)| *written)
                .or_else(|| fs::metadata(path).and_then(|m| m.modified()).ok());
            let expired = written
                .and_then(|written| written.elapsed().ok())
                .is_some_and(|age| age > window);
            if expired {
                if let Err(error) = fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), %error, "could not remove an old journal segment");
                }
                self.closed.remove(number);
            } else if let Some(written) = written {
                self.closed.insert(*number, (path.clone(), written));
            }
        }
    }
}

fn open_segment(dir: &Path, number: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(segment_path(dir, number))
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{number:012}{SEGMENT_SUFFIX}"))
}

/// The segments in `dir`, by number.
fn list_segments(dir: &Path) -> io::Result<BTreeMap<u64, PathBuf>> {
    let mut segments = BTreeMap::new();
    for item in fs::read_dir(dir)? {
        let path = item?.path();
        let number = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix(SEGMENT_PREFIX))
            .and_then(|name| name.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(number) = number {
            segments.insert(number, path);
        }
    }
    Ok(segments)
}

/// Adds a segment's messages to `streams`, keeping what `keep` asks for.
/// A line that does not parse (torn by a crash, even inside a character) is
/// skipped, and so is the history before a gap: a stream continues only
/// from messages that follow each other. Old messages still move a
/// stream's numbering on, so the next message follows the last one written.
fn read_segment(
    path: &Path,
    keep: Keep<'_>,
    streams: &mut HashMap<String, History>,
) -> io::Result<()> {
    let oldest_ms =
        Entry::now_ms().saturating_sub(u64::try_from(keep.window.as_millis()).unwrap_or(u64::MAX));
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    let mut skipped = 0usize;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let Ok(LineIn { ns, entry }) = serde_json::from_slice::<LineIn>(&line) else {
            skipped += 1;
            continue;
        };
        if entry.seq == 0 || !keep.namespaces.contains(&ns) {
            continue;
        }
        let history = streams
            .entry(ns)
            .or_insert_with(|| History::starting_after(entry.seq - 1));
        if Some(entry.seq) != history.last_seq().checked_add(1) {
            *history = History::starting_after(entry.seq - 1);
        }
        if entry.published_ms < oldest_ms {
            *history = History::starting_after(entry.seq);
        } else {
            history.push(Arc::new(entry));
            history.expire(oldest_ms, keep.max_messages);
        }
    }
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "skipped journal lines that could not be read (torn by a crash?)");
    }
    Ok(())
}

/// Makes `dir` if missing, private; says so if an existing one is not.
fn prepare_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:04o}"), "the state directory is open to other users; it holds private messages: chmod 700 it");
    }
    Ok(())
}

/// The epoch a clean stop left, if the file reads as one.
fn read_epoch(dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join(EPOCH_FILE)).ok()?;
    u64::from_str_radix(text.trim(), 16).ok()
}

/// Where each namespace stood at the last clean stop, if there was one.
fn read_clean_stop(dir: &Path) -> Option<HashMap<String, u64>> {
    let text = fs::read(dir.join(CLEAN_STOP_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Replaces `dir/name` with `contents` so that a crash leaves either the
/// old file or the new one: a synced temporary file, renamed over it.
fn write_synced(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Removes `dir/name`, and makes the removal durable.
fn remove_synced(dir: &Path, name: &str) -> io::Result<()> {
    fs::remove_file(dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    const WINDOW: Duration = Duration::from_secs(120);

    fn keep(namespaces: &[String]) -> Keep<'_> {
        Keep {
            window: WINDOW,
            max_messages: 1000,
            namespaces,
        }
    }

    fn served() -> Vec<String> {
        vec!["/".to_owned(), "/chat".to_owned()]
    }

    fn entry(seq: u64, text: &str) -> Arc<Entry> {
        Arc::new(Entry {
            seq,
            published_ms: Entry::now_ms(),
            event: "e".into(),
            payload: RawValue::from_string(format!("{text:?}")).unwrap(),
            users: vec!["42".into()],
            rooms: Vec::new(),
            except_users: Vec::new(),
        })
    }

    #[test]
    fn after_a_clean_stop_the_epoch_numbering_and_messages_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let namespaces = served();
        let (journal, first) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        assert!(first.streams.is_empty());
        for seq in 1..=3 {
            journal.append("/", entry(seq, "hello"));
        }
        journal.append("/chat", entry(1, "hi"));
        journal.close();

        let (journal, again) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        assert_eq!(again.epoch, first.epoch);
        assert_eq!(again.streams["/"].last_seq(), 3);
        assert_eq!(again.streams["/"].len(), 3);
        assert_eq!(again.streams["/chat"].last_seq(), 1);
        journal.close();
    }

    #[test]
    fn a_quiet_namespace_keeps_its_numbering_when_its_messages_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let namespaces = served();
        let (journal, _) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        journal.append("/chat", entry(7, "old"));
        journal.close();
        for segment in list_segments(dir.path()).unwrap().values() {
            fs::remove_file(segment).unwrap();
        }
        let (journal, again) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        assert_eq!(again.streams["/chat"].last_seq(), 7);
        assert_eq!(again.streams["/chat"].len(), 0);
        journal.close();
    }

    #[test]
    fn after_a_stop_that_was_not_clean_a_new_epoch_begins() {
        let dir = tempfile::tempdir().unwrap();
        let namespaces = served();
        let (journal, first) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        journal.append("/", entry(1, "a"));
        journal.close();
        // As if killed: no record of a clean stop.
        fs::remove_file(dir.path().join(CLEAN_STOP_FILE)).unwrap();
        let (journal, again) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        assert_ne!(again.epoch, first.epoch);
        assert!(again.streams.is_empty());
        journal.close();
        // And the stop after it was clean again.
        let (_journal, third) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        assert_eq!(third.epoch, again.epoch);
    }

    #[test]
    fn a_torn_line_even_inside_a_character_and_a_gap_are_survived() {
        let dir = tempfile::tempdir().unwrap();
        let namespaces = served();
        let (journal, _) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        journal.append("/", entry(1, "caf\u{e9}"));
        journal.append("/", entry(2, "b"));
        journal.append("/", entry(5, "c"));
        journal.close();
        let segment = list_segments(dir.path())
            .unwrap()
            .into_values()
            .next_back()
            .unwrap();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(b"{\"ns\":\"/\",\"entry\":{\"seq\":6,\"payload\":\"caf\xc3")
            .unwrap();

        let (_journal, loaded) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        let history = &loaded.streams["/"];
        assert_eq!(history.last_seq(), 5);
        assert_eq!(history.len(), 1, "only what follows the gap is a stream");
    }

    #[test]
    fn a_second_journal_on_the_directory_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let namespaces = served();
        let (journal, _) = Journal::open(dir.path(), keep(&namespaces)).unwrap();
        match Journal::open(dir.path(), keep(&namespaces)) {
            Err(JournalError::InUse { holder, .. }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()));
            }
            Err(other) => panic!("expected the directory to be in use: {other}"),
            Ok(_) => panic!("expected the directory to be in use"),
        }
        journal.close();
        assert!(Journal::open(dir.path(), keep(&namespaces)).is_ok());
    }

    #[test]
    fn files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let namespaces = served();
        let (journal, _) = Journal::open(&state, keep(&namespaces)).unwrap();
        journal.append("/", entry(1, "x"));
        journal.close();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(EPOCH_FILE)), 0o600);
        assert_eq!(mode(&state.join(CLEAN_STOP_FILE)), 0o600);
        for segment in list_segments(&state).unwrap().values() {
            assert_eq!(mode(segment), 0o600);
        }
    }
}
