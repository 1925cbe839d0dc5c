//! The history on disk, so that a restart of the daemon loses nothing.
//!
//! With `state_dir` set, every message recorded for recovery is also
//! appended to a journal there, and a daemon that starts on the same
//! directory reads the journal back: same epoch, same sequence numbers, so
//! offsets that pages hold from before the restart still mean the same.
//!
//! The store is a plain append-only file of JSON lines, one message each,
//! cut into segments. We chose it over an embedded database because the
//! access pattern is exactly a log: appended in order, read whole once at
//! start, dropped from the front by age. A segment is closed after
//! [`SEGMENT_SPAN`] (or [`SEGMENT_BYTES`]) and deleted once everything in it
//! is older than the recovery window, so the journal holds about one window
//! of messages and no compaction is needed.
//!
//! Appending happens on a thread of its own, fed by a channel, so a publish
//! never waits for the disk. What it guarantees:
//! - a clean stop (SIGTERM) writes and syncs everything: nothing is lost;
//! - the daemon crashing (or being killed) loses only messages still in
//!   the channel, which the thread empties as fast as they come (each batch
//!   is written before the thread waits again);
//! - the machine crashing loses at most the last [`SYNC_INTERVAL`] of
//!   messages, since the file is synced that often while messages arrive.
//!   A line torn by such a crash is skipped when reading back.
//!
//! The files hold private messages, so the directory is made `0700` and
//! the files `0600`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use thiserror::Error;

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

const EPOCH_FILE: &str = "epoch";
const SEGMENT_PREFIX: &str = "journal-";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// Why the state directory cannot be used.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error("cannot use the state directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the epoch file {path} is not one this daemon wrote; remove the state directory's files to start afresh"
    )]
    BadEpoch { path: PathBuf },
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
    sender: Mutex<Option<Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Opens the journal in `dir` (made if missing), reads back what it
    /// holds, and starts its writer thread. Messages older than `window`
    /// are neither read back nor kept.
    pub fn open(dir: &Path, window: Duration) -> Result<(Self, Loaded), JournalError> {
        let io_error = |source| JournalError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
        let epoch = read_or_make_epoch(dir)?;
        let segments = list_segments(dir).map_err(io_error)?;
        let mut loaded = Loaded::empty(epoch);
        for path in segments.values() {
            read_segment(path, &mut loaded.streams).map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
        }
        let next_number = segments.keys().next_back().map_or(1, |last| last + 1);
        let mut segment = Segment::create(dir, next_number).map_err(io_error)?;
        segment.retire_old(&segments, window);

        let (sender, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("push-journal".to_owned())
            .spawn(move || write_until_closed(segment, receiver, window))
            .map_err(io_error)?;
        let journal = Self {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        };
        Ok((journal, loaded))
    }

    /// Queues a message to be written.
    pub fn append(&self, namespace: &str, entry: Arc<Entry>) {
        if let Ok(sender) = self.sender.lock()
            && let Some(sender) = sender.as_ref()
        {
            let _ = sender.send(Command::Append(namespace.into(), entry));
        }
    }

    /// Writes and syncs everything queued, and stops the writer.
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
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
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
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(dir, number))?;
        Ok(Self {
            dir: dir.to_owned(),
            number,
            file: BufWriter::new(file),
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

    /// Starts the next segment once this one is old or big enough.
    fn rotate_if_due(&mut self, window: Duration) -> io::Result<()> {
        if self.opened.elapsed() < SEGMENT_SPAN && self.bytes < SEGMENT_BYTES {
            return Ok(());
        }
        self.sync()?;
        let closed = std::mem::take(&mut self.closed);
        let previous = (segment_path(&self.dir, self.number), SystemTime::now());
        let number = self.number;
        *self = Self::create(&self.dir, number + 1)?;
        self.closed = closed;
        self.closed.insert(number, previous);
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

/// The writer thread: appends what comes, syncs every [`SYNC_INTERVAL`]
/// while there is something to sync, and everything at the close.
fn write_until_closed(mut segment: Segment, commands: Receiver<Command>, window: Duration) {
    let mut unsynced = false;
    let mut last_sync = Instant::now();
    let report = |error: io::Error| {
        tracing::error!(%error, "could not write the recovery journal; messages published now will not survive a restart");
    };
    loop {
        let command = match commands.recv_timeout(SYNC_INTERVAL) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Command::Close),
        };
        let mut next = command;
        // Take everything already queued before writing it out.
        while let Some(command) = next {
            match command {
                Command::Append(namespace, entry) => {
                    if let Err(error) = segment.append(&namespace, &entry) {
                        report(error);
                    }
                    unsynced = true;
                }
                Command::Close => {
                    if let Err(error) = segment.sync() {
                        report(error);
                    }
                    return;
                }
            }
            next = commands.try_recv().ok();
        }
        if let Err(error) = segment.file.flush() {
            report(error);
        }
        if unsynced && last_sync.elapsed() >= SYNC_INTERVAL {
            if let Err(error) = segment.sync() {
                report(error);
            }
            unsynced = false;
            last_sync = Instant::now();
        }
        if let Err(error) = segment.rotate_if_due(window) {
            report(error);
        }
    }
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

/// Adds a segment's messages to `streams`. A line that does not parse (torn
/// by a crash) is skipped, and so is the history before a gap: a stream
/// continues only from messages that follow each other.
fn read_segment(path: &Path, streams: &mut HashMap<String, History>) -> io::Result<()> {
    let mut skipped = 0usize;
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        let Ok(LineIn { ns, entry }) = serde_json::from_str::<LineIn>(&line) else {
            skipped += 1;
            continue;
        };
        let history = streams
            .entry(ns)
            .or_insert_with(|| History::starting_after(entry.seq.saturating_sub(1)));
        if entry.seq != history.last_seq() + 1 {
            *history = History::starting_after(entry.seq.saturating_sub(1));
        }
        history.push(Arc::new(entry));
    }
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "skipped journal lines that could not be read (torn by a crash?)");
    }
    Ok(())
}

/// The epoch of the journal in `dir`, made (and synced) on first use.
fn read_or_make_epoch(dir: &Path) -> Result<u64, JournalError> {
    let path = dir.join(EPOCH_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16)
            .map_err(|_| JournalError::BadEpoch { path: path.clone() }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let epoch = new_epoch();
            let io_error = |source| JournalError::Io {
                path: path.clone(),
                source,
            };
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_error)?;
            writeln!(file, "{epoch:x}").map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            Ok(epoch)
        }
        Err(source) => Err(JournalError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn entry(seq: u64) -> Arc<Entry> {
        Arc::new(Entry {
            seq,
            published_ms: Entry::now_ms(),
            event: "e".into(),
            payload: RawValue::from_string(format!("{{\"n\":{seq}}}")).unwrap(),
            users: vec!["42".into()],
            rooms: Vec::new(),
            except_users: Vec::new(),
        })
    }

    #[test]
    fn a_reopened_journal_has_the_same_epoch_and_messages() {
        let dir = tempfile::tempdir().unwrap();
        let window = Duration::from_secs(120);
        let (journal, loaded) = Journal::open(dir.path(), window).unwrap();
        assert!(loaded.streams.is_empty());
        for seq in 1..=3 {
            journal.append("/", entry(seq));
        }
        journal.append("/chat", entry(1));
        journal.close();

        let (_journal, again) = Journal::open(dir.path(), window).unwrap();
        assert_eq!(again.epoch, loaded.epoch);
        assert_eq!(again.streams["/"].last_seq(), 3);
        assert_eq!(again.streams["/"].len(), 3);
        assert_eq!(again.streams["/chat"].last_seq(), 1);
    }

    #[test]
    fn a_torn_line_and_a_gap_are_survived() {
        let dir = tempfile::tempdir().unwrap();
        let window = Duration::from_secs(120);
        let (journal, _) = Journal::open(dir.path(), window).unwrap();
        journal.append("/", entry(1));
        journal.append("/", entry(2));
        journal.append("/", entry(5));
        journal.close();
        let segment = list_segments(dir.path())
            .unwrap()
            .into_values()
            .next()
            .unwrap();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(b"{\"ns\":\"/\",\"entry\":{\"seq\":6,\"publ")
            .unwrap();

        let (_journal, loaded) = Journal::open(dir.path(), window).unwrap();
        let history = &loaded.streams["/"];
        assert_eq!(history.last_seq(), 5);
        assert_eq!(history.len(), 1, "only what follows the gap is a stream");
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (journal, _) = Journal::open(&state, Duration::from_secs(120)).unwrap();
        journal.close();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(EPOCH_FILE)), 0o600);
        for segment in list_segments(&state).unwrap().values() {
            assert_eq!(mode(segment), 0o600);
        }
    }
}
