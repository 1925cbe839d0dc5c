//! The life of a WebSocket connection's task: waiting for hyper to hand
//! the connection over, serving it ([`Connection`]), and closing it.
//!
//! The task is a future written by hand, not an `async` block. The
//! compiler gives an async block's values separate places when they move
//! from one await to the next (a connection moved into a closing step, say),
//! which made each idle connection's task about three times the size of
//! what it holds (docs/benchmarks.md, "Idle memory per connection"). Here
//! the stages share one place, and one timer serves each in turn: the
//! heartbeat or the probe while serving, then the deadlines of closing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::connection::{Connection, Ending, Purpose};
use super::wire::Wire;
use crate::engine::Engine;
use crate::handler::EngineIoHandler;
use crate::socket::{DisconnectReason, Socket};

/// How long writing the close frame may take before the connection is
/// dropped without it.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the server waits for the client to close after the server
/// closed: reading until then avoids resetting the connection over bytes
/// the client still had in flight, which could cost the client the last
/// packets written to it.
const LINGER: Duration = Duration::from_secs(2);

pin_project! {
    /// The future a WebSocket connection's task runs.
    pub(crate) struct ConnectionTask<H: EngineIoHandler> {
        #[pin]
        timer: Sleep,
        stage: Stage<H>,
    }
}

enum Stage<H: EngineIoHandler> {
    /// The 101 is on its way; hyper hands the stream over after it.
    Upgrading {
        upgrade: OnUpgrade,
        engine: Arc<Engine<H>>,
        socket: Arc<Socket<H::Data>>,
        purpose: Purpose,
    },
    Serving(Connection<H>),
    Closing {
        connection: Connection<H>,
        ending: Ending,
        step: Closing,
    },
    Done,
}

/// The steps of closing, the last three bounded by the timer.
#[derive(Clone, Copy)]
enum Closing {
    /// Waiting for a flush still writing to the stream to finish.
    Detaching,
    /// Writing the close frame.
    Telling { linger: bool },
    /// Ending the sending side.
    ShuttingDown { linger: bool },
    /// Waiting for the client to close its side.
    Lingering,
}

impl<H: EngineIoHandler> ConnectionTask<H> {
    /// A task for a WebSocket whose upgrade hyper completes with `upgrade`.
    pub(crate) fn after_upgrade(
        upgrade: OnUpgrade,
        engine: Arc<Engine<H>>,
        socket: Arc<Socket<H::Data>>,
        purpose: Purpose,
    ) -> Self {
        Self {
            timer: tokio::time::sleep(engine.config.upgrade_timeout),
            stage: Stage::Upgrading {
                upgrade,
                engine,
                socket,
                purpose,
            },
        }
    }

    /// A task for a stream that is a WebSocket already.
    pub(crate) fn on_stream(
        engine: Arc<Engine<H>>,
        socket: Arc<Socket<H::Data>>,
        wire: Wire,
        purpose: Purpose,
    ) -> Self {
        let connection = Connection::new(engine, socket, wire, purpose);
        Self {
            timer: tokio::time::sleep_until(connection.timer_deadline()),
            stage: Stage::Serving(connection),
        }
    }
}

impl<H: EngineIoHandler> Future for ConnectionTask<H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            match this.stage {
                Stage::Upgrading { upgrade, .. } => {
                    let upgraded = ready!(Pin::new(upgrade).poll(cx));
                    let Stage::Upgrading {
                        engine,
                        socket,
                        purpose,
                        ..
                    } = std::mem::replace(this.stage, Stage::Done)
                    else {
                        return Poll::Ready(());
                    };
                    let upgraded = match upgraded {
                        Ok(upgraded) => upgraded,
                        Err(error) => {
                            tracing::debug!(sid = %socket.id, %error, "a WebSocket upgrade did not complete");
                            match purpose {
                                Purpose::Opening => {
                                    engine.end_session(&socket, DisconnectReason::TransportError)
                                }
                                Purpose::Upgrading => super::release(&socket),
                            }
                            return Poll::Ready(());
                        }
                    };
                    let (wire, early) = Wire::from_upgraded(upgraded);
                    let mut connection = Connection::new(engine, socket, wire, purpose);
                    *this.stage = match connection.start(early) {
                        Ok(()) => {
                            this.timer.as_mut().reset(connection.timer_deadline());
                            Stage::Serving(connection)
                        }
                        Err(ending) => close(connection, ending),
                    };
                }
                Stage::Serving(connection) => {
                    let ending = ready!(connection.poll_serve(cx, this.timer.as_mut()));
                    let Stage::Serving(connection) = std::mem::replace(this.stage, Stage::Done)
                    else {
                        return Poll::Ready(());
                    };
                    *this.stage = close(connection, ending);
                }
                Stage::Closing {
                    connection,
                    ending,
                    step,
                } => match *step {
                    Closing::Detaching => {
                        ready!(connection.poll_detach(cx));
                        // The session is told first, so nothing waits for
                        // the close frame to be written.
                        connection.end(ending);
                        *step = if ending.close.is_some() {
                            this.timer
                                .as_mut()
                                .reset(Instant::now() + CLOSE_WRITE_TIMEOUT);
                            Closing::Telling {
                                linger: ending.linger,
                            }
                        } else {
                            Closing::ShuttingDown {
                                linger: ending.linger,
                            }
                        };
                    }
                    Closing::Telling { linger } => {
                        let written = connection.poll_write_remaining(cx).is_ready();
                        if !written && this.timer.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        *step = Closing::ShuttingDown { linger };
                    }
                    Closing::ShuttingDown { linger } => {
                        ready!(connection.poll_shutdown(cx));
                        if !linger {
                            return Poll::Ready(());
                        }
                        this.timer.as_mut().reset(Instant::now() + LINGER);
                        *step = Closing::Lingering;
                    }
                    Closing::Lingering => {
                        if connection.poll_discard(cx).is_pending()
                            && this.timer.as_mut().poll(cx).is_pending()
                        {
                            return Poll::Pending;
                        }
                        return Poll::Ready(());
                    }
                },
                Stage::Done => return Poll::Ready(()),
            }
        }
    }
}

/// The closing stage for `ending`.
fn close<H: EngineIoHandler>(connection: Connection<H>, ending: Ending) -> Stage<H> {
    Stage::Closing {
        connection,
        ending,
        step: Closing::Detaching,
    }
}
