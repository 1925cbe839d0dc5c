//! The HTTP face of the transport: a tower (and hyper) service that takes
//! requests under the engine.io path and hands every other request to the
//! service it wraps.
//!
//! A request is routed ([`request`]): a polling handshake, a poll, a POST,
//! or a WebSocket that opens a session or upgrades one. What cannot be
//! served is refused as the reference server refuses it ([`Refusal`]).
//! socketioxide builds its `SocketIoService` on [`EngineIoService`].

mod body;
mod refusal;
mod request;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Empty;
use hyper::upgrade::OnUpgrade;
use tokio::io::{AsyncRead, AsyncWrite};

pub use self::body::{ResponseBody, ResponseFuture};
pub use self::refusal::Refusal;
use self::request::{Route, is_engine_path, route};
use crate::config::EngineIoConfig;
use crate::engine::Engine;
use crate::handler::EngineIoHandler;
use crate::{polling, websocket};

/// Serves engine.io under the configured path; everything else goes to
/// `S`.
pub struct EngineIoService<H: EngineIoHandler, S = NotFoundService> {
    inner: S,
    engine: Arc<Engine<H>>,
}

impl<H: EngineIoHandler, S: Clone> Clone for EngineIoService<H, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            engine: self.engine.clone(),
        }
    }
}

impl<H: EngineIoHandler> EngineIoService<H, NotFoundService> {
    /// A service answering 404 outside the engine.io path.
    pub fn new(handler: Arc<H>) -> Self {
        Self::with_config(handler, EngineIoConfig::default())
    }

    /// [`EngineIoService::new`] with settings.
    pub fn with_config(handler: Arc<H>, config: EngineIoConfig) -> Self {
        Self::with_config_inner(NotFoundService, handler, config)
    }
}

impl<H: EngineIoHandler, S> EngineIoService<H, S> {
    /// A service handing requests outside the engine.io path to `inner`.
    pub fn with_inner(inner: S, handler: Arc<H>) -> Self {
        Self::with_config_inner(inner, handler, EngineIoConfig::default())
    }

    /// [`EngineIoService::with_inner`] with settings.
    pub fn with_config_inner(inner: S, handler: Arc<H>, config: EngineIoConfig) -> Self {
        Self {
            inner,
            engine: Arc::new(Engine::new(handler, config)),
        }
    }

    /// A service that makes this service for each connection (hyper's
    /// `MakeService` shape).
    pub fn into_make_service(self) -> MakeEngineIoService<H, S> {
        MakeEngineIoService::new(self)
    }

    /// Answers an engine.io request.
    fn dispatch<B, F, R>(&self, request: Request<B>) -> ResponseFuture<F, R>
    where
        B: Body + Send + Unpin + 'static,
    {
        let engine = &self.engine;
        let upgrade = request.extensions().get::<OnUpgrade>().is_some();
        let routed = route(engine, request.method(), request.uri().query(), upgrade);
        match routed {
            Err(refusal) => ResponseFuture::ready(refusal.response(upgrade)),
            Ok(Route::Handshake {
                protocol,
                supports_binary,
            }) => {
                let (parts, _) = request.into_parts();
                ResponseFuture::ready(polling::open(engine, protocol, parts, supports_binary))
            }
            Ok(Route::OpenWebSocket { protocol }) => ResponseFuture::ready(answer(
                websocket::accept(engine, protocol, None, request),
                true,
            )),
            Ok(Route::Upgrade(socket)) => {
                let accepted = websocket::claim_for_upgrade(&socket).and_then(|()| {
                    websocket::accept(engine, socket.protocol, Some(socket), request)
                });
                ResponseFuture::ready(answer(accepted, true))
            }
            Ok(Route::Poll(socket)) => {
                let engine = engine.clone();
                ResponseFuture::waiting(async move {
                    answer(polling::poll(engine, socket).await, false)
                })
            }
            Ok(Route::Post(socket)) => {
                let engine = engine.clone();
                ResponseFuture::waiting(async move {
                    answer(polling::post(engine, socket, request).await, false)
                })
            }
        }
    }

    /// Serves a WebSocket on a stream whose upgrade happened elsewhere.
    fn serve_stream<St>(&self, stream: St, request: Request<()>) -> Result<(), Refusal>
    where
        St: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let engine = &self.engine;
        let (parts, ()) = request.into_parts();
        match route(engine, &parts.method, parts.uri.query(), true)? {
            Route::OpenWebSocket { protocol } => {
                websocket::serve_stream(engine, protocol, None, parts, stream)
            }
            Route::Upgrade(socket) => {
                websocket::claim_for_upgrade(&socket)?;
                websocket::serve_stream(engine, socket.protocol, Some(socket), parts, stream);
            }
            _ => return Err(Refusal::BadRequest),
        }
        Ok(())
    }
}

fn answer(result: Result<Response<Bytes>, Refusal>, upgrade: bool) -> Response<Bytes> {
    result.unwrap_or_else(|refusal| refusal.response(upgrade))
}

impl<H, ReqBody, ResBody, S> tower_service::Service<Request<ReqBody>> for EngineIoService<H, S>
where
    H: EngineIoHandler,
    ReqBody: Body + Send + Unpin + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: std::fmt::Debug,
    ResBody: Body + Send + 'static,
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if is_engine_path(request.uri().path(), &self.engine.config.req_path) {
            self.dispatch(request)
        } else {
            ResponseFuture::inner(self.inner.call(request))
        }
    }
}

impl<H, ReqBody, ResBody, S> hyper::service::Service<Request<ReqBody>> for EngineIoService<H, S>
where
    H: EngineIoHandler,
    ReqBody: Body + Send + Unpin + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: std::fmt::Debug,
    ResBody: Body + Send + 'static,
    S: hyper::service::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn call(&self, request: Request<ReqBody>) -> Self::Future {
        if is_engine_path(request.uri().path(), &self.engine.config.req_path) {
            self.dispatch(request)
        } else {
            ResponseFuture::inner(self.inner.call(request))
        }
    }
}

impl<St, H, S> tower_service::Service<(St, Request<()>)> for EngineIoService<H, S>
where
    H: EngineIoHandler,
    St: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Response = ();
    type Error = Refusal;
    type Future = Ready<Result<(), Refusal>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (stream, request): (St, Request<()>)) -> Self::Future {
        ready(self.serve_stream(stream, request))
    }
}

impl<St, H, S> hyper::service::Service<(St, Request<()>)> for EngineIoService<H, S>
where
    H: EngineIoHandler,
    St: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Response = ();
    type Error = Refusal;
    type Future = Ready<Result<(), Refusal>>;

    fn call(&self, (stream, request): (St, Request<()>)) -> Self::Future {
        ready(self.serve_stream(stream, request))
    }
}

/// Makes an [`EngineIoService`] per connection.
pub struct MakeEngineIoService<H: EngineIoHandler, S> {
    service: EngineIoService<H, S>,
}

impl<H: EngineIoHandler, S> MakeEngineIoService<H, S> {
    /// Makes clones of `service`.
    pub fn new(service: EngineIoService<H, S>) -> Self {
        Self { service }
    }
}

impl<H: EngineIoHandler, S: Clone, T> tower_service::Service<T> for MakeEngineIoService<H, S> {
    type Response = EngineIoService<H, S>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: T) -> Self::Future {
        ready(Ok(self.service.clone()))
    }
}

/// Answers `404 Not Found` to everything: the service an
/// [`EngineIoService`] wraps when it is used alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFoundService;

impl<ReqBody> tower_service::Service<Request<ReqBody>> for NotFoundService {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<ReqBody>) -> Self::Future {
        ready(Ok(not_found()))
    }
}

impl<ReqBody> hyper::service::Service<Request<ReqBody>> for NotFoundService {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn call(&self, _: Request<ReqBody>) -> Self::Future {
        ready(Ok(not_found()))
    }
}

fn not_found() -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}
