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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::link::{Bundles, LinkError, RedisLink};
use crate::config::NodeId;
use crate::metrics::Census;

/// How a node takes the census of its own connections, to answer.
pub type CensusTaker = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Census> + Send>> + Send + Sync>;

/// The other nodes' figures that came back in time.
#[derive(Debug)]
pub struct Gathered {
    pub censuses: Vec<Census>,
    /// Nodes that received the question but did not answer in time.
    pub missing: usize,
}

/// A question, as it travels: where to send the answer.
#[derive(Serialize, Deserialize)]
struct Question {
    id: u64,
    reply_to: String,
}

/// A node's answer to question `id`.
#[derive(Serialize, Deserialize)]
struct Reply {
    id: u64,
    census: Census,
}

/// Answers that may be queued for one question: one per other node. Far
/// above any cluster this is meant for; an answer past it is dropped and
/// the figure is marked partial.
const MAX_NODES: usize = 256;
/// Questions and replies queued in from Redis before this node reads them.
const QUEUE: usize = 1024;

/// Asks the other nodes, and answers them.
pub struct Survey {
    link: RedisLink,
    question_channel: String,
    reply_channel: String,
    wait: Duration,
    next_id: AtomicU64,
    /// Questions asked, by id, waiting for their answers.
    waiting: Mutex<HashMap<u64, mpsc::Sender<Reply>>>,
}

impl Survey {
    pub fn new(link: RedisLink, node: &NodeId, prefix: &str, wait: Duration) -> Arc<Self> {
        // A random part, so two nodes given the same name by mistake still
        // get their own answers.
        let instance = fastrand::u64(..);
        Arc::new(Self {
            link,
            question_channel: format!("{prefix}#survey#"),
            reply_channel: format!("{prefix}#survey#{}#{instance:016x}#", node.as_str()),
            wait,
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// Listens for questions and answers until `shutdown` fires.
    pub async fn run(self: Arc<Self>, census_taker: CensusTaker, shutdown: CancellationToken) {
        let questions =
            self.link
                .subscribe_channel(self.question_channel.clone(), QUEUE, Bundles::Whole);
        let replies =
            self.link
                .subscribe_channel(self.reply_channel.clone(), QUEUE, Bundles::Whole);
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
                self.clone().answer(&body, &census_taker);
            }
        }
    }

    fn take_reply(&self, body: &[u8]) {
        let Ok(reply) = serde_json::from_slice::<Reply>(body) else {
            tracing::warn!("an unreadable survey answer from another node; ignored");
            return;
        };
        // No one waiting: the answer came after `cluster_wait`.
        if let Some(queue) = self.waiting().get(&reply.id) {
            let _ = queue.try_send(reply);
        }
    }

    fn answer(self: Arc<Self>, body: &[u8], census_taker: &CensusTaker) {
        let Ok(question) = serde_json::from_slice::<Question>(body) else {
            tracing::warn!("an unreadable survey question from another node; ignored");
            return;
        };
        if question.reply_to == self.reply_channel {
            return; // Our own question: we count ourselves.
        }
        let census = census_taker();
        tokio::spawn(async move {
            let reply = Reply {
                id: question.id,
                census: census.await,
            };
            let Ok(body) = serde_json::to_vec(&reply) else {
                return;
            };
            if let Err(error) = self.link.publish_to(&question.reply_to, body).await {
                tracing::debug!("a survey answer could not be sent: {error}");
            }
        });
    }

    /// Asks every other node for its figures, waiting at most
    /// `cluster_wait` for their answers.
    pub async fn ask(&self) -> Result<Gathered, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, mut replies) = mpsc::channel(MAX_NODES);
        self.waiting().insert(id, queue);
        // However the wait ends (the caller may give up on it), the
        // question stops taking answers.
        let _waiting = Waiting { survey: self, id };
        let question = serde_json::to_vec(&Question {
            id,
            reply_to: self.reply_channel.clone(),
        })?;
        // Every node subscribed received it, this one included.
        let receivers = self
            .link
            .publish_to(&self.question_channel, question)
            .await?;
        let expected = receivers.saturating_sub(1);
        let mut censuses = Vec::with_capacity(expected);
        let deadline = tokio::time::sleep(self.wait);
        tokio::pin!(deadline);
        while censuses.len() < expected {
            tokio::select! {
                () = &mut deadline => break,
                reply = replies.recv() => match reply {
                    Some(reply) => censuses.push(reply.census),
                    None => break,
                },
            }
        }
        Ok(Gathered {
            missing: expected - censuses.len(),
            censuses,
        })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Reply>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A question waiting for its answers; forgotten when dropped.
struct Waiting<'a> {
    survey: &'a Survey,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.survey.waiting().remove(&self.id);
    }
}
