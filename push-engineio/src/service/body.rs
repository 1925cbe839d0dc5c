//! Response bodies and futures: the transport's own answers, or whatever
//! the wrapped service answers for paths that are not engine.io's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response from [`EngineIoService`](super::EngineIoService).
    #[project = ResponseBodyProj]
    pub enum ResponseBody<B> {
        /// The transport's own answer, whole.
        Own { data: Option<Bytes> },
        /// The wrapped service's answer.
        Inner { #[pin] body: B },
    }
}

impl<B> ResponseBody<B> {
    fn own(data: Bytes) -> Self {
        ResponseBody::Own {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            ResponseBodyProj::Own { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data))))
            }
            ResponseBodyProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Own { data } => data.is_none(),
            ResponseBody::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Own { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResponseBody::Inner { body } => body.size_hint(),
        }
    }
}

/// Wraps the transport's own answer.
pub(crate) fn own<B>(response: Response<Bytes>) -> Response<ResponseBody<B>> {
    response.map(ResponseBody::own)
}

type Waiting = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// The future of a response from [`EngineIoService`](super::EngineIoService).
    #[project = ResponseFutureProj]
    pub enum ResponseFuture<F, B> {
        /// Answered already.
        Ready { response: Option<Response<ResponseBody<B>>> },
        /// A poll or a POST, answered later.
        Waiting { future: Waiting },
        /// The wrapped service's.
        Inner { #[pin] future: F },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn ready(response: Response<Bytes>) -> Self {
        ResponseFuture::Ready {
            response: Some(own(response)),
        }
    }

    pub(crate) fn waiting(future: impl Future<Output = Response<Bytes>> + Send + 'static) -> Self {
        ResponseFuture::Waiting {
            future: Box::pin(future),
        }
    }

    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture::Inner { future }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ResponseFutureProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            ResponseFutureProj::Waiting { future } => {
                future.as_mut().poll(cx).map(|response| Ok(own(response)))
            }
            ResponseFutureProj::Inner { future } => future.poll(cx).map(|result| {
                result.map(|response| response.map(|body| ResponseBody::Inner { body }))
            }),
        }
    }
}
