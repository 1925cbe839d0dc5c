//! Which web pages may open a connection.
//!
//! Connections are authenticated by cookies, and browsers attach cookies to
//! a WebSocket opened by any site. Without an Origin check, a hostile page
//! could open a socket as its visitor and read their private messages
//! (cross-site WebSocket hijacking). So when `allowed_origins` is set, every
//! socket.io request carrying another Origin is refused with 403, on both
//! transports. A request with no Origin at all comes from a non-browser
//! client or a same-origin page, and is let through.
//!
//! Long-polling from another origin also needs CORS headers with
//! credentials; [`cors_layer`] answers those for allowed origins only.
//!
//! One more page may connect whatever the list says: the Admin UI's, served
//! by the admin listener (`admin_ui_files`), so that it works with no
//! origin setting. It is recognised by its origin: the host the request was
//! sent to (its `Host`) on the admin listener's port, which nothing but
//! push-core serves. Such a request is marked [`AdminPage`], and admission
//! refuses it every namespace but `/admin`: it can log in to the UI, never
//! ride on a visitor's cookies.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::log_throttle::{Line, LogThrottle, Source};
use crate::metrics::Metrics;
use crate::outcomes::Refusal;

/// A request refused for its origin.
const REFUSED_LINE: Line = Line {
    kind: "origin_not_allowed",
    level: tracing::Level::INFO,
};

/// The configured allow-list; empty allows every origin. Clones share
/// one list, which a reload replaces ([`OriginPolicy::set`]): the guard
/// and the CORS layer read it at each request.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Arc<ArcSwap<Vec<String>>>,
    /// The admin listener's port, when it serves the Admin UI's page.
    admin_page_port: Option<u16>,
    metrics: Arc<Metrics>,
    /// Refusals' lines: one per address and interval.
    refusal_lines: LogThrottle,
}

/// Marks a socket.io request from the Admin UI's page that the allow-list
/// alone would have refused: it may join `/admin` only.
#[derive(Debug, Clone, Copy)]
pub struct AdminPage;

impl OriginPolicy {
    pub fn new(allowed: Vec<String>, admin_page_port: Option<u16>, metrics: Arc<Metrics>) -> Self {
        Self {
            allowed: Arc::new(ArcSwap::from_pointee(allowed)),
            admin_page_port,
            metrics,
            refusal_lines: LogThrottle::default(),
        }
    }

    /// Allows `allowed` from the next request on. Connections already
    /// open stay: the Origin is checked when a connection opens.
    pub fn set(&self, allowed: Vec<String>) {
        self.allowed.store(Arc::new(allowed));
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        let allowed = self.allowed.load();
        allowed.is_empty()
            || origin
                .to_str()
                .is_ok_and(|origin| allowed.iter().any(|a| a == origin))
    }

    /// True when `origin` is the Admin UI's page: the host `host` names,
    /// on the admin listener's port.
    fn is_admin_page(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let (Some(port), Some(host)) = (self.admin_page_port, host) else {
            return false;
        };
        let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
            return false;
        };
        let (Ok(origin), Ok(request)) = (
            url::Url::parse(origin),
            url::Url::parse(&format!("http://{host}")),
        ) else {
            return false;
        };
        origin.port_or_known_default() == Some(port)
            && origin.host().is_some()
            && origin.host() == request.host()
    }
}

/// Refuses socket.io requests from pages of origins not allowed.
pub async fn guard_origin(
    State(policy): State<OriginPolicy>,
    mut request: Request,
    next: Next,
) -> Response {
    let is_socketio = request.uri().path().starts_with("/socket.io");
    if let Some(origin) = request.headers().get(ORIGIN)
        && is_socketio
        && !policy.allows(origin)
    {
        if !policy.is_admin_page(origin, request.headers().get(HOST)) {
            policy.metrics.connection_refused(Refusal::Origin);
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
            if policy
                .refusal_lines
                .allow(REFUSED_LINE, Source(peer.map(|peer| peer.0.ip())))
            {
                tracing::info!(origin = ?origin, "refused a socket.io request from an origin that is not allowed");
            }
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
        request.extensions_mut().insert(AdminPage);
    }
    next.run(request).await
}

/// CORS with credentials for the allowed origins (every origin when the
/// list is empty), so polling works from the site's pages.
pub fn cors_layer(policy: &OriginPolicy) -> CorsLayer {
    let policy = policy.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, request| {
            policy.allows(origin) || policy.is_admin_page(origin, request.headers.get(HOST))
        }))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([CONTENT_TYPE])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], admin_page_port: Option<u16>) -> OriginPolicy {
        let allowed = allowed.iter().map(|a| (*a).to_owned()).collect();
        OriginPolicy::new(allowed, admin_page_port, Arc::new(Metrics::default()))
    }

    fn value(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    #[test]
    fn the_admin_page_is_its_host_on_the_admin_port() {
        let policy = policy(&["https://www.example.com"], Some(9464));
        let host = value("push.example.com:3000");
        for (origin, admin_page) in [
            ("http://push.example.com:9464", true),
            ("https://push.example.com:9464", true),
            ("http://PUSH.example.com:9464", true),
            ("http://push.example.com:9465", false),
            ("http://push.example.com", false),
            ("http://evil.example:9464", false),
            ("null", false),
        ] {
            assert_eq!(
                policy.is_admin_page(&value(origin), Some(&host)),
                admin_page,
                "{origin}"
            );
        }
        assert!(!policy.is_admin_page(&value("http://push.example.com:9464"), None));
        let loopback = value("127.0.0.1:3000");
        assert!(policy.is_admin_page(&value("http://127.0.0.1:9464"), Some(&loopback)));
        let ipv6 = value("[::1]:3000");
        assert!(policy.is_admin_page(&value("http://[::1]:9464"), Some(&ipv6)));
    }

    #[test]
    fn without_a_served_page_no_origin_is_the_admin_page() {
        let policy = policy(&["https://www.example.com"], None);
        let host = value("127.0.0.1:3000");
        assert!(!policy.is_admin_page(&value("http://127.0.0.1:9464"), Some(&host)));
    }
}
