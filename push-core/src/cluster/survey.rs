//! Asking every node of the cluster for its STATS figures.
//!
//! Publish counts and `isOnline` come from the nodes' replicated presence
//! (`presence`), at once. STATS wants more than presence carries (each
//! node's connections by transport and protocol), and is asked for rarely
//! (an operator, a monitoring scrape), so a node that serves it asks the
//! others on a channel of its own and adds up their answers. It waits at
//! most `cluster_wait`: a node slower than that is left out and the figure
//! is marked partial, never silently low.
//!
//! Redis tells the asker how many nodes received the question (the reply
//! to PUBLISH), so it knows how many answers to wait for without keeping a
//! list of nodes.
//!
//! Questions are asked in batches: whatever was asked while the previous
//! batch was being sent goes out as one message, identical questions once,
//! and each node answers the whole batch in one reply.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::link::{LinkError, RedisLink};
use crate::config::NodeId;
use crate::metrics::Census;

/// What one node is asked about its own connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Question {
    /// Connection figures by namespace.
    Stats,
}

/// One node's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    Stats(Census),
}

/// How a node answers questions about its own connections.
pub type Answerer =
    Arc<dyn Fn(Question) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// The answers to one question that came back in time.
#[derive(Debug)]
pub struct Gathered {
    /// Every node's replies to the batch the question was in, shared by
    /// all its askers.
    replies: Arc<Vec<Reply>>,
    /// The question's place in the batch.
    at: usize,
    /// Nodes that received the question but did not answer in time.
    pub missing: usize,
}

impl Gathered {
    /// Each node's answer, with the node's name.
    pub fn answers(&self) -> impl Iterator<Item = (&str, &Answer)> {
        self.replies
            .iter()
            .filter_map(|reply| Some((reply.node.as_str(), reply.answers.get(self.at)?)))
    }
}

/// A question on its way: its answers, once gathered.
type Asking = oneshot::Receiver<Result<Gathered, LinkError>>;

/// A batch of questions, as it travels.
#[derive(Serialize, Deserialize)]
struct Envelope {
    id: u64,
    reply_to: String,
    questions: Vec<Question>,
}

/// A node's answers to a batch, in the order of its questions.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    id: u64,
    node: String,
    answers: Vec<Answer>,
}

/// A question waiting to be sent, and where its answers go.
struct Asked {
    question: Question,
    answered: oneshot::Sender<Result<Gathered, LinkError>>,
}

/// Answers that may be queued for one question: one per other node. Far
/// above any cluster this is meant for; an answer past it is dropped and
/// the figure is marked partial.
const MAX_NODES: usize = 256;
/// Questions and replies queued in from Redis before this node reads them.
const QUEUE: usize = 1024;
/// Questions sent in one batch at most: a pipelining publisher's burst in
/// a few messages, each small enough for every node to answer at once.
const MAX_BATCH: usize = 512;

/// Asks the other nodes, and answers them.
pub struct Survey {
    link: RedisLink,
    node: NodeId,
    question_channel: String,
    reply_channel: String,
    wait: Duration,
    next_id: AtomicU64,
    /// Batches sent, by id, waiting for their answers.
    waiting: Mutex<HashMap<u64, mpsc::Sender<Reply>>>,
    /// Questions waiting to be sent.
    asking: mpsc::UnboundedSender<Asked>,
    /// The other end of `asking`, until [`Survey::run`] takes it.
    asked: Mutex<Option<mpsc::UnboundedReceiver<Asked>>>,
}

impl Survey {
    pub fn new(link: RedisLink, node: NodeId, prefix: &str, wait: Duration) -> Arc<Self> {
        // A random part, so two nodes given the same name by mistake still
        // get their own answers.
        let instance = fastrand::u64(..);
        let (asking, asked) = mpsc::unbounded_channel();
        Arc::new(Self {
            link,
            question_channel: format!("{prefix}#survey#"),
            reply_channel: format!("{prefix}#survey#{}#{instance:016x}#", node.as_str()),
            node,
            wait,
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            asking,
            asked: Mutex::new(Some(asked)),
        })
    }

    /// Sends questions, and listens for questions and answers, until
    /// `shutdown` fires.
    pub async fn run(self: Arc<Self>, answerer: Answerer, shutdown: CancellationToken) {
        let asked = self.asked.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(asked) = asked {
            tokio::spawn(self.clone().send_batches(asked, shutdown.clone()));
        }
        let questions = self
            .link
            .subscribe_channel(self.question_channel.clone(), QUEUE);
        let replies = self
            .link
            .subscribe_channel(self.reply_channel.clone(), QUEUE);
        let mut messages = futures_util::stream::select(questions, replies);
        loop {
            let (channel, body) = tokio::select! {
                () = shutdown.cancelled() => return,
                message = messages.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            if channel == self.reply_channel {
                self.take_reply(&body);
            } else {
                self.clone().answer(&body, &answerer);
            }
        }
    }

    fn take_reply(&self, body: &[u8]) {
        let Ok(reply) = serde_json::from_slice::<Reply>(body) else {
            tracing::warn!("an unreadable survey answer from another node; ignored");
            return;
        };
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // No one waiting: the answer came after `cluster_wait`.
        if let Some(queue) = waiting.get(&reply.id) {
            let _ = queue.try_send(reply);
        }
    }

    fn answer(self: Arc<Self>, body: &[u8], answerer: &Answerer) {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
            tracing::warn!("an unreadable survey question from another node; ignored");
            return;
        };
        if envelope.reply_to == self.reply_channel {
            return; // Our own question: we count ourselves.
        }
        let answering = join_all(
            envelope
                .questions
                .into_iter()
                .map(|question| answerer(question)),
        );
        tokio::spawn(async move {
            let reply = Reply {
                id: envelope.id,
                node: self.node.as_str().to_owned(),
                answers: answering.await,
            };
            let Ok(body) = serde_json::to_vec(&reply) else {
                return;
            };
            if let Err(error) = self.link.publish_to(&envelope.reply_to, body).await {
                tracing::debug!("a survey answer could not be sent: {error}");
            }
        });
    }

    /// Asks every other node, waiting at most `cluster_wait`.
    pub async fn ask(&self, question: Question) -> Result<Gathered, LinkError> {
        gathered(self.start_asking(question)).await
    }

    /// Queues `question` for the next batch; the answers come on the
    /// receiver (see [`gathered`]).
    fn start_asking(&self, question: Question) -> Asking {
        let (answered, asking) = oneshot::channel();
        // Fails only once the sender has stopped (at shutdown), and then
        // the receiver says so.
        let _ = self.asking.send(Asked { question, answered });
        asking
    }

    /// Sends what was asked, a batch each time the previous one is sent.
    async fn send_batches(
        self: Arc<Self>,
        mut asked: mpsc::UnboundedReceiver<Asked>,
        shutdown: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = asked.recv_many(&mut batch, MAX_BATCH) => received,
            };
            if received == 0 {
                return;
            }
            self.send_batch(std::mem::take(&mut batch)).await;
        }
    }

    /// Sends one batch and leaves gathering its answers to a task of its
    /// own, so that the next batch can go meanwhile.
    async fn send_batch(self: &Arc<Self>, batch: Vec<Asked>) {
        let mut questions: Vec<Question> = Vec::new();
        let mut index: HashMap<Question, usize> = HashMap::new();
        let mut askers = Vec::with_capacity(batch.len());
        for Asked { question, answered } in batch {
            let at = *index.entry(question).or_insert_with_key(|question| {
                questions.push(question.clone());
                questions.len() - 1
            });
            askers.push((at, answered));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, replies) = mpsc::channel(MAX_NODES);
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, queue);
        match self.send(id, questions).await {
            // Every node subscribed received it, this one included.
            Ok(receivers) => {
                let expected = receivers.saturating_sub(1);
                tokio::spawn(self.clone().gather(id, replies, expected, askers));
            }
            Err(error) => {
                self.waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                for (_, answered) in askers {
                    let _ = answered.send(Err(error.clone()));
                }
            }
        }
    }

    /// Waits at most `cluster_wait` for the `expected` nodes' answers to
    /// batch `id`, and hands each asker its own.
    async fn gather(
        self: Arc<Self>,
        id: u64,
        mut replies: mpsc::Receiver<Reply>,
        expected: usize,
        askers: Vec<(usize, oneshot::Sender<Result<Gathered, LinkError>>)>,
    ) {
        let mut received = Vec::with_capacity(expected);
        let deadline = tokio::time::sleep(self.wait);
        tokio::pin!(deadline);
        while received.len() < expected {
            tokio::select! {
                () = &mut deadline => break,
                reply = replies.recv() => match reply {
                    Some(reply) => received.push(reply),
                    None => break,
                },
            }
        }
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let replies = Arc::new(received);
        for (at, answered) in askers {
            let answers = replies
                .iter()
                .filter(|reply| reply.answers.len() > at)
                .count();
            // A node whose reply lacks this answer counts as silent.
            let gathered = Gathered {
                replies: replies.clone(),
                at,
                missing: expected - answers,
            };
            let _ = answered.send(Ok(gathered));
        }
    }

    /// Publishes a batch of questions; returns how many nodes received it.
    async fn send(&self, id: u64, questions: Vec<Question>) -> Result<usize, LinkError> {
        let envelope = Envelope {
            id,
            reply_to: self.reply_channel.clone(),
            questions,
        };
        let body = serde_json::to_vec(&envelope)?;
        self.link.publish_to(&self.question_channel, body).await
    }
}

/// The answers to a question asked with [`Survey::start_asking`].
async fn gathered(asking: Asking) -> Result<Gathered, LinkError> {
    asking.await.unwrap_or(Err(LinkError::Down))
}
