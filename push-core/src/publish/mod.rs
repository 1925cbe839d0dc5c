//! The ways in for publishes from the site.
//!
//! - [`socket`]: the local Unix socket PHP keeps a connection to, speaking
//!   the framed protocol of the `push-client` crate. This is the fast path.
//! - [`http`]: the same operations as JSON over HTTP with a bearer token,
//!   for app servers on other hosts. Off unless a token is configured.
//!
//! Both hand what they decode to the [`Dispatcher`](crate::Dispatcher).

pub mod http;
pub mod socket;
