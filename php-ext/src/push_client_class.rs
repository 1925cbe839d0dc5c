//! The `PushClient` PHP class.
//!
//! A `PushClient` is cheap: a namespace, the settings it was built with, and
//! a ticket into the process-wide connection table (see
//! [`crate::connections`]). Creating one per request, or per publish, costs
//! no connection.
//!
//! Each send either waits for the daemon's answer and returns the number of
//! connections reached, or, between `queue()` and `flush()`, writes its frame
//! and returns at once; `flush()` then returns one result per queued publish.
//!
//! In a cluster a count may be partial (a node's figures may be out of
//! date or missing). The
//! counts stay plain ints, so existing code keeps working; whether the last
//! one was partial is asked separately with `lastCountPartial()`, as PHP's
//! own APIs report a side condition (`json_last_error()`,
//! `preg_last_error()`).

use std::sync::atomic::{AtomicU64, Ordering};

use ext_php_rs::boxed::ZBox;
use ext_php_rs::error::php_error;
use ext_php_rs::flags::ErrorType;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendClassObject, ZendHashTable, Zval};
use push_client::{ClientError, Count, Publish, Target};

use crate::connections::{self, Endpoint, Owner};
use crate::error::PushError;
use crate::json;
use crate::settings::Settings;
use crate::target;

/// Hands out a distinct [`Owner`] to every `PushClient` of the process.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// Publishes to push-core over its Unix socket.
#[php_class]
#[php(name = "PushClient")]
pub struct PushClient {
    endpoint: Endpoint,
    persistent: bool,
    namespace: String,
    owner: Owner,
    /// True between `queue()` and `flush()`.
    queueing: bool,
    /// Publishes this object queued since its last `flush()`.
    queued: usize,
    /// Whether the count the last counting call returned left out cluster
    /// nodes; see `lastCountPartial()`.
    last_count_partial: bool,
}

#[php_impl]
impl PushClient {
    /// `$socket` defaults to the `push.socket` setting; the namespace is the
    /// socket.io namespace messages go to.
    #[php(defaults(namespace = "\"/\""))]
    pub fn __construct(socket: Option<String>, namespace: String) -> PhpResult<Self> {
        let settings = Settings::current()?;
        Ok(Self {
            endpoint: Endpoint {
                socket_path: socket.map_or(settings.socket_path, Into::into),
                timeout: settings.timeout,
            },
            persistent: settings.persistent,
            namespace,
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            queueing: false,
            queued: 0,
            last_count_partial: false,
        })
    }

    /// Publishes to another namespace from now on.
    pub fn set_namespace(
        self_: &mut ZendClassObject<PushClient>,
        ns: String,
    ) -> &mut ZendClassObject<PushClient> {
        self_.namespace = ns;
        self_
    }

    /// Everyone connected to the namespace.
    pub fn send_msg(
        &mut self,
        event: &str,
        msg: &Zval,
        except: Option<&ZendHashTable>,
    ) -> PhpResult<i64> {
        let except = target::except(except)?;
        self.send(
            event,
            msg,
            Recipients::Everyone(Target::everyone().except(except)),
        )
    }

    /// Every connection of one user.
    pub fn send_to_user(
        &mut self,
        user: &Zval,
        event: &str,
        msg: &Zval,
        except: Option<&ZendHashTable>,
    ) -> PhpResult<i64> {
        let users = vec![target::name(user, "the user")?];
        let except = target::except(except)?;
        self.send(
            event,
            msg,
            Recipients::Listed(target::target(users, Vec::new(), except)),
        )
    }

    /// Every connection of each of these users.
    pub fn send_to_users(
        &mut self,
        users: &ZendHashTable,
        event: &str,
        msg: &Zval,
        except: Option<&ZendHashTable>,
    ) -> PhpResult<i64> {
        let users = target::names(users, "the users")?;
        let except = target::except(except)?;
        self.send(
            event,
            msg,
            Recipients::Listed(target::target(users, Vec::new(), except)),
        )
    }

    /// The members of one room, or of any of several rooms.
    pub fn send_to_room(
        &mut self,
        rooms: &Zval,
        event: &str,
        msg: &Zval,
        except: Option<&ZendHashTable>,
    ) -> PhpResult<i64> {
        let rooms = target::rooms(rooms)?;
        let except = target::except(except)?;
        self.send(
            event,
            msg,
            Recipients::Listed(target::target(Vec::new(), rooms, except)),
        )
    }

    /// Whether the user has at least one connection in the namespace.
    pub fn is_online(&mut self, user: &Zval) -> PhpResult<bool> {
        let user = target::name(user, "the user")?;
        let namespace = &self.namespace;
        let connections = self.call(|client| client.online(namespace, &user));
        let connections = self.remember(connections)?;
        Ok(connections.total > 0)
    }

    /// Whether the count behind the last `send*()`, `isOnline()` or
    /// `flush()` of this object may have left out cluster nodes (their
    /// presence out of date, or this node cut off from Redis): the true
    /// number may be higher, and a user `isOnline()` said false for may be
    /// connected to such a node. After
    /// `flush()`, true when any of its counts was. False for a single
    /// daemon, after a call that threw, and for a send that was queued.
    pub fn last_count_partial(&self) -> bool {
        self.last_count_partial
    }

    /// The namespace's current recovery offset, for the page to render: a
    /// browser whose first connect sends it (`auth: {offset}`) receives
    /// every message published after this call. `ns` defaults to the
    /// client's namespace.
    pub fn position(&mut self, ns: Option<String>) -> PhpResult<String> {
        let namespace = ns.as_deref().unwrap_or(&self.namespace);
        Ok(self.call(|client| client.position(namespace))?)
    }

    /// The daemon's counters and gauges.
    pub fn stats(&mut self) -> PhpResult<ZBox<ZendHashTable>> {
        let text = self.call(|client| client.stats())?;
        Ok(json::decode_object(&text)?)
    }

    /// One round trip to the daemon, in seconds.
    pub fn ping(&mut self) -> PhpResult<f64> {
        Ok(self.call(|client| client.ping())?.as_secs_f64())
    }

    /// Closes this process's connection to the daemon; the next call opens a
    /// new one. Queued publishes are written first.
    pub fn close(&mut self) {
        connections::close(&self.endpoint);
    }

    /// Pipelines the following sends until `flush()`: each writes its frame
    /// and returns at once the index its result will have in `flush()`.
    pub fn queue(self_: &mut ZendClassObject<PushClient>) -> &mut ZendClassObject<PushClient> {
        self_.queueing = true;
        self_
    }

    /// Writes every queued publish, ends pipelining and returns one result per
    /// publish, in order: the number of connections reached, or the
    /// `PushException` it failed with.
    ///
    /// The results stay ints, as sends return; `lastCountPartial()` says
    /// whether any of them was partial.
    pub fn flush(&mut self) -> Vec<Zval> {
        self.queueing = false;
        let results = self.take_results();
        self.last_count_partial = results
            .iter()
            .any(|result| result.as_ref().is_ok_and(|count| count.partial));
        results
            .into_iter()
            .map(|result| match result {
                Ok(count) => {
                    let mut value = Zval::new();
                    value.set_long(count.total);
                    value
                }
                Err(error) => PushError::from(error).into_object(),
            })
            .collect()
    }

    /// Publishes queued and never flushed are flushed here, so they are not
    /// left waiting in a persistent connection. Failures become warnings:
    /// there is no caller left to throw to.
    pub fn __destruct(&mut self) {
        if self.queued == 0 {
            return;
        }
        let results = self.take_results();
        let failed: Vec<ClientError> = results.into_iter().filter_map(Result::err).collect();
        if let Some(first) = failed.first() {
            php_error(
                &ErrorType::Warning,
                &format!(
                    "PushClient was destroyed with publishes queued but not flushed; they were sent now and {} failed, the first with: {}. Call flush() to get every result",
                    failed.len(),
                    first
                ),
            );
        }
    }
}

impl PushClient {
    /// Publishes now, or queues in pipelined mode. `recipients` is the
    /// target with its users and rooms, `Recipients::Everyone` for a broadcast.
    fn send(&mut self, event: &str, msg: &Zval, recipients: Recipients<'_>) -> PhpResult<i64> {
        // Encoding first: a message that cannot be encoded sends nothing.
        let payload = json::encode(msg)?;
        let target = match recipients {
            Recipients::Everyone(target) => target,
            // No users and no rooms reaches nobody. It must not reach the
            // daemon, which reads an empty target as "everyone".
            Recipients::Listed(target) if target.is_everyone() => return self.reach_nobody(),
            Recipients::Listed(target) => target,
        };
        let publish = Publish {
            namespace: &self.namespace,
            event,
            target,
            payload: payload.as_bytes(),
        };
        if self.queueing {
            connections::queue(&self.endpoint, self.persistent, self.owner, &publish)?;
            return Ok(self.next_position());
        }
        let recipients = self.call(|client| client.publish(&publish));
        let recipients = self.remember(recipients)?;
        Ok(i64::from(recipients.total))
    }

    fn reach_nobody(&mut self) -> PhpResult<i64> {
        if self.queueing {
            let nobody = Ok(Count::default());
            connections::queue_done(&self.endpoint, self.persistent, self.owner, nobody)?;
            return Ok(self.next_position());
        }
        // Known without asking any node: complete.
        self.last_count_partial = false;
        Ok(0)
    }

    /// Counts a queued publish and returns its index in `flush()`'s result.
    fn next_position(&mut self) -> i64 {
        self.queued += 1;
        i64::try_from(self.queued - 1).unwrap_or(i64::MAX)
    }

    /// Remembers whether a synchronous call's count is partial (a call
    /// that failed has no count: not partial).
    fn remember(&mut self, outcome: Result<Count, PushError>) -> Result<Count, PushError> {
        self.last_count_partial = outcome.as_ref().is_ok_and(|count| count.partial);
        outcome
    }

    /// Runs a synchronous call on the shared client.
    fn call<R>(
        &self,
        operation: impl FnOnce(&mut push_client::Client) -> Result<R, ClientError>,
    ) -> Result<R, PushError> {
        connections::with_client(&self.endpoint, self.persistent, operation)?
            .map_err(PushError::from)
    }

    fn take_results(&mut self) -> Vec<push_client::PipelinedReply> {
        self.queued = 0;
        connections::flush(&self.endpoint, self.owner)
    }
}

/// Who a send is for.
enum Recipients<'a> {
    /// A broadcast to the namespace (minus any excepted users).
    Everyone(Target<'a>),
    /// The listed users and rooms; none listed means nobody.
    Listed(Target<'a>),
}
