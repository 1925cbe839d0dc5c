//! The state of a pipeline: publishes queued, replies owed, results kept.
//!
//! [`super::Client::queue_publish`] encodes a frame and returns without
//! waiting. The frames are written in pieces of [`PIPELINE_WRITE_BYTES`];
//! replies are read only when more than [`PIPELINE_BATCH_BYTES`] of written
//! frames would be unanswered, so the daemon works on one piece while the
//! caller encodes the next. [`super::Client::flush`] returns one result per
//! queued publish, in queue order, whatever happened to the connection.
//!
//! This module is the bookkeeping alone: which publishes are unwritten,
//! which are in flight and in which piece, which results are in. The client
//! does the reading and writing and tells it what happened, so every rule
//! here can be tested without a socket.
//!
//! The methods called once per publish are `#[inline]`: this bookkeeping
//! used to be written inline in the client, and a pipelined publish costs
//! little enough (docs/benchmarks.md, "PHP publish path") that a call for
//! each of them showed in its instruction count.

use std::collections::VecDeque;
use std::path::Path;

use super::ClientError;
use super::reply::Count;
use super::retry::lost_with_connection;

/// The most bytes of pipelined frames written and not yet answered.
///
/// Before writing more, the client reads replies until the frames in flight
/// fit under this bound again. Keeping it well under a Unix socket's buffer
/// (about 200 KiB on Linux) means the replies to what is in flight always fit
/// in the daemon's send buffer, so neither side can block waiting on the
/// other.
pub const PIPELINE_BATCH_BYTES: usize = 64 * 1024;

/// Queued frames are written once this many bytes are waiting.
///
/// Writing in pieces amortises the system call, and a piece well under
/// [`PIPELINE_BATCH_BYTES`] lets the daemon decode and deliver one piece
/// while the caller is still encoding the next, instead of the two taking
/// turns.
pub const PIPELINE_WRITE_BYTES: usize = 16 * 1024;

/// The outcome of one pipelined publish: the number of connections reached,
/// and whether that count is partial.
pub type PipelinedReply = Result<Count, ClientError>;

/// Frames written together, whose replies are read together.
#[derive(Debug)]
struct Piece {
    publishes: usize,
    bytes: usize,
}

/// Publishes queued and not yet flushed, and what became of them.
#[derive(Debug, Default)]
pub(super) struct Pipeline {
    /// Encoded frames of queued publishes, not yet written.
    unwritten_frames: Vec<u8>,
    /// Publishes whose frames are in `unwritten_frames`; they are the last
    /// ones of `owed`.
    unwritten: usize,
    /// Request ids of queued publishes whose results are not in, oldest
    /// first: those in flight, then the unwritten ones.
    owed: VecDeque<u32>,
    /// Pieces written and not yet answered, oldest first.
    in_flight: VecDeque<Piece>,
    /// The bytes of `in_flight`.
    in_flight_bytes: usize,
    /// Results of queued publishes, in queue order, waiting for a flush.
    completed: Vec<PipelinedReply>,
}

impl Pipeline {
    /// Queues the publish with request id `id`; `encode` appends its frame.
    /// If encoding fails, nothing is queued.
    #[inline]
    pub(super) fn push<E>(
        &mut self,
        id: u32,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        encode(&mut self.unwritten_frames)?;
        self.owed.push_back(id);
        self.unwritten += 1;
        Ok(())
    }

    /// Publishes queued and not yet flushed, whether answered or not.
    pub(super) fn queued(&self) -> usize {
        self.owed.len() + self.completed.len()
    }

    /// Whether any queued publish still waits for its reply.
    #[inline]
    pub(super) fn owes_replies(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Whether enough frames are waiting to be written as a piece now.
    #[inline]
    pub(super) fn piece_is_ready(&self) -> bool {
        self.unwritten_frames.len() >= PIPELINE_WRITE_BYTES
    }

    pub(super) fn unwritten_frames(&self) -> &[u8] {
        &self.unwritten_frames
    }

    /// Before the unwritten frames go out: if writing them would put more
    /// than [`PIPELINE_BATCH_BYTES`] in flight, takes the oldest piece off
    /// the books and returns how many replies to read for it. The caller
    /// reads those and asks again until this says `None`.
    pub(super) fn retire_piece_over_bound(&mut self) -> Option<usize> {
        if self.in_flight_bytes + self.unwritten_frames.len() <= PIPELINE_BATCH_BYTES {
            return None;
        }
        let piece = self.in_flight.pop_front()?;
        self.in_flight_bytes -= piece.bytes;
        Some(piece.publishes)
    }

    /// The unwritten frames went out whole: they are a piece in flight now.
    pub(super) fn wrote_unwritten(&mut self) {
        let piece = Piece {
            publishes: std::mem::take(&mut self.unwritten),
            bytes: self.unwritten_frames.len(),
        };
        self.in_flight_bytes += piece.bytes;
        self.in_flight.push_back(piece);
        self.unwritten_frames.clear();
    }

    /// Writing the unwritten frames failed with `error`, and the connection
    /// is gone. The first publish of the failed write gets `error`; those
    /// written before it and the rest of the write are lost with the
    /// connection.
    pub(super) fn write_failed(&mut self, error: ClientError, path: &Path) {
        let written_earlier = self.owed.len() - self.unwritten;
        for _ in 0..written_earlier {
            self.complete(Err(lost_with_connection(path)));
        }
        self.complete(Err(error));
        self.connection_lost(path);
    }

    /// The request id of the oldest publish whose reply is owed: the next
    /// reply on the connection answers it.
    #[inline]
    pub(super) fn next_owed(&self) -> Option<u32> {
        self.owed.front().copied()
    }

    /// Records the result of the oldest publish still owed.
    #[inline]
    pub(super) fn complete(&mut self, result: PipelinedReply) {
        if self.owed.pop_front().is_some() {
            self.completed.push(result);
        }
    }

    /// Every reply owed has been read: nothing is in flight any more.
    pub(super) fn all_read(&mut self) {
        self.in_flight.clear();
        self.in_flight_bytes = 0;
    }

    /// The connection ended. Publishes still owed a reply can no longer get
    /// one, so each is completed as lost right away: a later connection never
    /// receives replies meant for this one, and the flush still returns
    /// exactly one result per queued publish.
    pub(super) fn connection_lost(&mut self, path: &Path) {
        self.unwritten_frames.clear();
        self.unwritten = 0;
        self.all_read();
        while self.owed.pop_front().is_some() {
            self.completed.push(Err(lost_with_connection(path)));
        }
    }

    /// Hands over the results recorded so far, in queue order.
    pub(super) fn take_results(&mut self) -> Vec<PipelinedReply> {
        std::mem::take(&mut self.completed)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    const PATH: &str = "/run/push-core/push.sock";

    /// Queues `count` publishes of `bytes` each, with ids from `first_id`.
    fn queue(pipeline: &mut Pipeline, first_id: u32, count: u32, bytes: usize) {
        for id in first_id..first_id + count {
            pipeline
                .push(id, |out| {
                    out.resize(out.len() + bytes, 0);
                    Ok::<(), ClientError>(())
                })
                .unwrap();
        }
    }

    /// Reads replies the way the client does, answering each with its id.
    fn answer(pipeline: &mut Pipeline, replies: usize) {
        for _ in 0..replies {
            let id = pipeline.next_owed().expect("a reply is owed");
            pipeline.complete(Ok(Count {
                total: id,
                partial: false,
            }));
        }
    }

    /// What each result is: the recipients of a success, or the error's kind.
    fn outcomes(results: &[PipelinedReply]) -> Vec<String> {
        results
            .iter()
            .map(|result| match result {
                Ok(count) => format!("ok {}", count.total),
                Err(ClientError::ConnectionLost { .. }) => "lost".to_owned(),
                Err(ClientError::Timeout { .. }) => "timeout".to_owned(),
                Err(ClientError::Unreachable { .. }) => "unreachable".to_owned(),
                Err(other) => format!("{other:?}"),
            })
            .collect()
    }

    fn timeout() -> ClientError {
        ClientError::Timeout {
            path: PathBuf::from(PATH),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_queued_publish_is_counted_until_it_is_flushed() {
        let mut pipeline = Pipeline::default();
        queue(&mut pipeline, 1, 3, 10);
        assert_eq!(pipeline.queued(), 3);
        assert!(pipeline.owes_replies());
        assert_eq!(pipeline.unwritten_frames().len(), 30);

        pipeline.wrote_unwritten();
        answer(&mut pipeline, 2);
        // Answered but not flushed still counts.
        assert_eq!(pipeline.queued(), 3);
        assert_eq!(pipeline.next_owed(), Some(3));

        answer(&mut pipeline, 1);
        assert!(!pipeline.owes_replies());
        assert_eq!(outcomes(&pipeline.take_results()), ["ok 1", "ok 2", "ok 3"]);
        assert_eq!(pipeline.queued(), 0);
        assert!(pipeline.take_results().is_empty());
    }

    #[test]
    fn a_publish_that_fails_to_encode_is_not_queued() {
        let mut pipeline = Pipeline::default();
        let refused = pipeline.push(1, |_| Err(ClientError::FrameTooLarge { len: 2, max: 1 }));
        assert!(refused.is_err());
        assert_eq!(pipeline.queued(), 0);
        assert!(pipeline.next_owed().is_none());
    }

    #[test]
    fn a_piece_is_ready_at_the_write_size() {
        let mut pipeline = Pipeline::default();
        queue(&mut pipeline, 1, 1, PIPELINE_WRITE_BYTES - 1);
        assert!(!pipeline.piece_is_ready());
        queue(&mut pipeline, 2, 1, 1);
        assert!(pipeline.piece_is_ready());
        pipeline.wrote_unwritten();
        assert!(!pipeline.piece_is_ready());
        assert!(pipeline.unwritten_frames().is_empty());
    }

    #[test]
    fn replies_are_read_oldest_piece_first_to_stay_within_the_bound() {
        let mut pipeline = Pipeline::default();
        let piece = PIPELINE_WRITE_BYTES;
        let pieces_within_bound = PIPELINE_BATCH_BYTES / piece;
        let mut id = 1;
        // Fill the bound exactly, one piece of 4 publishes at a time: no
        // reply needs reading yet.
        for _ in 0..pieces_within_bound {
            queue(&mut pipeline, id, 4, piece / 4);
            id += 4;
            assert_eq!(pipeline.retire_piece_over_bound(), None);
            pipeline.wrote_unwritten();
        }
        // One piece of 2 more would pass it: the oldest piece's 4 replies
        // are to be read first, and then it fits again.
        queue(&mut pipeline, id, 2, piece / 2);
        assert_eq!(pipeline.retire_piece_over_bound(), Some(4));
        answer(&mut pipeline, 4);
        assert_eq!(pipeline.retire_piece_over_bound(), None);
        pipeline.wrote_unwritten();
        assert_eq!(pipeline.next_owed(), Some(5));
    }

    #[test]
    fn a_piece_larger_than_the_bound_goes_out_once_nothing_is_in_flight() {
        let mut pipeline = Pipeline::default();
        queue(&mut pipeline, 1, 1, PIPELINE_BATCH_BYTES);
        pipeline.wrote_unwritten();
        queue(&mut pipeline, 2, 1, PIPELINE_BATCH_BYTES + 1);
        assert_eq!(pipeline.retire_piece_over_bound(), Some(1));
        answer(&mut pipeline, 1);
        // Over the bound on its own, with nothing left to wait for.
        assert_eq!(pipeline.retire_piece_over_bound(), None);
    }

    #[test]
    fn a_failed_write_blames_its_first_publish_and_loses_the_rest() {
        let mut pipeline = Pipeline::default();
        queue(&mut pipeline, 1, 2, 10);
        pipeline.wrote_unwritten();
        answer(&mut pipeline, 1);
        // Publish 2 is in flight; 3, 4 and 5 are in the write that fails.
        queue(&mut pipeline, 3, 3, 10);
        pipeline.write_failed(timeout(), Path::new(PATH));

        assert_eq!(
            outcomes(&pipeline.take_results()),
            ["ok 1", "lost", "timeout", "lost", "lost"]
        );
        assert!(!pipeline.owes_replies());
        assert!(pipeline.unwritten_frames().is_empty());
    }

    #[test]
    fn a_lost_connection_completes_every_owed_publish_after_the_one_being_read() {
        let mut pipeline = Pipeline::default();
        queue(&mut pipeline, 1, 4, 10);
        pipeline.wrote_unwritten();
        queue(&mut pipeline, 5, 1, 10);
        answer(&mut pipeline, 1);
        // Reading the reply to publish 2 timed out: that publish gets the
        // timeout, and only then are the others lost with the connection.
        pipeline.complete(Err(timeout()));
        pipeline.connection_lost(Path::new(PATH));

        assert_eq!(
            outcomes(&pipeline.take_results()),
            ["ok 1", "timeout", "lost", "lost", "lost"]
        );
        assert!(pipeline.unwritten_frames().is_empty());
        assert_eq!(pipeline.retire_piece_over_bound(), None);
    }

    #[test]
    fn a_lost_connection_forgets_the_pieces_in_flight() {
        let mut pipeline = Pipeline::default();
        queue(&mut pipeline, 1, 1, PIPELINE_BATCH_BYTES);
        pipeline.wrote_unwritten();
        pipeline.connection_lost(Path::new(PATH));
        // A new pipeline on a fresh connection starts with nothing in flight.
        queue(&mut pipeline, 2, 1, 1);
        assert_eq!(pipeline.retire_piece_over_bound(), None);
        assert_eq!(outcomes(&pipeline.take_results()), ["lost"]);
    }

    #[test]
    fn a_result_with_nothing_owed_is_not_recorded() {
        let mut pipeline = Pipeline::default();
        pipeline.complete(Ok(Count {
            total: 1,
            partial: false,
        }));
        pipeline.write_failed(
            ClientError::Unreachable {
                path: PathBuf::from(PATH),
                source: io::Error::from(io::ErrorKind::NotFound),
            },
            Path::new(PATH),
        );
        assert_eq!(pipeline.queued(), 0);
        assert!(pipeline.take_results().is_empty());
    }
}
