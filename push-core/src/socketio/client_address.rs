//! Which address is the browser's.
//!
//! The per-address limits must count browsers, not the proxy in front of
//! push-core. The TCP peer is the browser unless it is one of the
//! `trusted_proxies`; a trusted proxy says whom it forwards for in
//! `X-Forwarded-For` or `Forwarded` (RFC 7239). Both are lists that every
//! proxy on the way appends to, so only their right end is true: the
//! browser is the rightmost address that is not itself a trusted proxy.
//! Anything to its left was written by the browser and is ignored.
//!
//! Decisions, also in docs/security.md:
//! - `X-Forwarded-For` is read when present, `Forwarded` only when it is
//!   not. Every common proxy sets `X-Forwarded-For`; a proxy that sets only
//!   `Forwarded` must drop an `X-Forwarded-For` the browser sent.
//! - A trusted peer that sends neither header is not a browser we can name
//!   ([`ClientAddress::Unnamed`]): per-address limits do not apply to it
//!   rather than counting every browser behind the proxy as one.
//! - A header whose deciding hop cannot be read (garbage, `unknown`, an
//!   obfuscated `_name`, a header that is empty or not text) names no
//!   browser either, but is limited under the proxy's own address
//!   ([`ClientAddress::Unreadable`]): a well-behaved proxy never sends one,
//!   so only a misconfiguration or a forgery is lumped together, and a
//!   forgery cannot slip out of the limits that way.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;
use ipnet::IpNet;

/// The de facto header; see the module documentation for the precedence.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The peers whose forwarding headers are believed.
#[derive(Debug, Clone)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }
}

/// Who a request comes from, as far as the per-address limits are
/// concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    /// The peer is not a trusted proxy: it is the browser, and any
    /// forwarding header it sent is ignored.
    Direct(IpAddr),
    /// A trusted proxy named the browser.
    Forwarded(IpAddr),
    /// A trusted proxy sent no forwarding header.
    Unnamed,
    /// A trusted proxy (this address) sent a forwarding header whose
    /// deciding hop is not an address.
    Unreadable(IpAddr),
}

impl ClientAddress {
    /// The address to count under per-address limits, if any.
    pub fn limit_key(self) -> Option<IpAddr> {
        match self {
            ClientAddress::Direct(address)
            | ClientAddress::Forwarded(address)
            | ClientAddress::Unreadable(address) => Some(address),
            ClientAddress::Unnamed => None,
        }
    }

    /// Works out who sent a request that arrived from `peer` with `headers`.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        // An IPv4 browser reaching a dual-stack listener shows up as
        // ::ffff:a.b.c.d; it is the same browser as a.b.c.d.
        let peer = peer.to_canonical();
        if !trusted.contains(peer) {
            return ClientAddress::Direct(peer);
        }
        let Some(hops) = forwarding_hops(headers) else {
            return ClientAddress::Unnamed;
        };
        for hop in hops.iter().rev() {
            match hop {
                Hop::Address(address) if trusted.contains(*address) => continue,
                Hop::Address(address) => return ClientAddress::Forwarded(*address),
                Hop::Unreadable => return ClientAddress::Unreadable(peer),
            }
        }
        // Every hop is a trusted proxy: the browser itself is on a trusted
        // network, and the leftmost hop is as close to it as we get.
        match hops.first() {
            Some(Hop::Address(address)) => ClientAddress::Forwarded(*address),
            _ => ClientAddress::Unreadable(peer),
        }
    }
}

/// The `X-Forwarded-For` push-core sends to the auth URL: the hops of the
/// header push-core reads (above), then the peer, as a proxy appends
/// itself. The site applies its own trust to the chain; hops that are not
/// addresses are passed as `unknown`.
pub fn forwarded_for_site(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let hops = forwarding_hops(headers).unwrap_or_default();
    let peer = peer.map(|peer| Hop::Address(peer.ip().to_canonical()));
    let chain: Vec<String> = hops
        .into_iter()
        .chain(peer)
        .map(|hop| match hop {
            Hop::Address(address) => address.to_string(),
            Hop::Unreadable => "unknown".to_owned(),
        })
        .collect();
    chain.join(", ")
}

/// One entry of a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Address(IpAddr),
    Unreadable,
}

/// The hops of `X-Forwarded-For`, or else of `Forwarded`, leftmost first;
/// None when neither header is there. Several lines of one header are one
/// list, in order (RFC 9110, section 5.3).
fn forwarding_hops(headers: &HeaderMap) -> Option<Vec<Hop>> {
    if headers.contains_key(X_FORWARDED_FOR) {
        Some(header_elements(
            headers,
            X_FORWARDED_FOR,
            x_forwarded_for_hop,
        ))
    } else if headers.contains_key(FORWARDED) {
        Some(header_elements(headers, FORWARDED.as_str(), forwarded_hop))
    } else {
        None
    }
}

/// Splits every line of header `name` at commas and reads each element.
/// A line that is not text is one unreadable hop.
fn header_elements(headers: &HeaderMap, name: &str, read: fn(&str) -> Hop) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in headers.get_all(name) {
        match line.to_str() {
            Ok(text) => hops.extend(text.split(',').map(read)),
            Err(_) => hops.push(Hop::Unreadable),
        }
    }
    hops
}

/// An `X-Forwarded-For` element: an address, which some proxies write with
/// a port (`192.0.2.1:5000`, `[2001:db8::1]:5000`) or in brackets.
fn x_forwarded_for_hop(element: &str) -> Hop {
    node_address(element.trim()).map_or(Hop::Unreadable, Hop::Address)
}

/// A `Forwarded` element, `for=...;proto=...;by=...`: its `for` node
/// (RFC 7239, section 6), which may be quoted and carry a port.
fn forwarded_hop(element: &str) -> Hop {
    let node = element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim())
    });
    node.map(|node| {
        node.strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or(node)
    })
    .and_then(node_address)
    .map_or(Hop::Unreadable, Hop::Address)
}

/// The address in a node: `a.b.c.d`, `a.b.c.d:port`, `[v6]`, `[v6]:port`,
/// or a bare IPv6 address. `unknown` and obfuscated `_names` are not
/// addresses.
fn node_address(node: &str) -> Option<IpAddr> {
    let address = node
        .parse::<IpAddr>()
        .or_else(|_| node.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .or_else(|| {
            let inner = node.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<IpAddr>().ok()
        })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn loopback_trusted() -> TrustedProxies {
        TrustedProxies::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn from_loopback(pairs: &[(&'static str, &'static str)]) -> ClientAddress {
        ClientAddress::of(ip("127.0.0.1"), &headers(pairs), &loopback_trusted())
    }

    #[test]
    fn an_untrusted_peer_is_the_browser_whatever_it_claims() {
        let claims = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        let peer = ip("203.0.113.9");
        assert_eq!(
            ClientAddress::of(peer, &claims, &loopback_trusted()),
            ClientAddress::Direct(peer)
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        assert_eq!(
            from_loopback(&[("x-forwarded-for", "198.51.100.1, 203.0.113.7")]),
            ClientAddress::Forwarded(ip("203.0.113.7")),
            "what the browser wrote on the left is ignored"
        );
        assert_eq!(
            from_loopback(&[("x-forwarded-for", "203.0.113.7, 127.0.0.5, ::1")]),
            ClientAddress::Forwarded(ip("203.0.113.7")),
            "trusted proxies along the way are skipped"
        );
        assert_eq!(
            from_loopback(&[
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-for", "203.0.113.7")
            ]),
            ClientAddress::Forwarded(ip("203.0.113.7")),
            "a second header line is the continuation of the list"
        );
        assert_eq!(
            from_loopback(&[("x-forwarded-for", "127.0.0.9, 127.0.0.5")]),
            ClientAddress::Forwarded(ip("127.0.0.9")),
            "a browser on a trusted network is the leftmost hop"
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_read() {
        assert_eq!(
            from_loopback(&[("x-forwarded-for", "203.0.113.7:5000")]),
            ClientAddress::Forwarded(ip("203.0.113.7"))
        );
        assert_eq!(
            from_loopback(&[("x-forwarded-for", "[2001:db8::1]:5000")]),
            ClientAddress::Forwarded(ip("2001:db8::1"))
        );
        assert_eq!(
            from_loopback(&[("x-forwarded-for", " [2001:db8::2] ")]),
            ClientAddress::Forwarded(ip("2001:db8::2"))
        );
        assert_eq!(
            from_loopback(&[("x-forwarded-for", "::ffff:203.0.113.8")]),
            ClientAddress::Forwarded(ip("203.0.113.8"))
        );
        let mapped_loopback = ip("::ffff:127.0.0.1");
        assert_eq!(
            ClientAddress::of(mapped_loopback, &HeaderMap::new(), &loopback_trusted()),
            ClientAddress::Unnamed,
            "an IPv4 proxy on a dual-stack listener is still trusted"
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        assert_eq!(
            from_loopback(&[(
                "forwarded",
                "for=198.51.100.1, For=\"[2001:db8:cafe::17]:4711\";proto=https;by=127.0.0.1"
            )]),
            ClientAddress::Forwarded(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            from_loopback(&[("forwarded", "proto=https; for=203.0.113.7:80")]),
            ClientAddress::Forwarded(ip("203.0.113.7"))
        );
        assert_eq!(
            from_loopback(&[
                ("forwarded", "for=198.51.100.1"),
                ("x-forwarded-for", "203.0.113.7")
            ]),
            ClientAddress::Forwarded(ip("203.0.113.7")),
            "X-Forwarded-For wins"
        );
    }

    #[test]
    fn a_trusted_peer_without_a_header_is_unnamed() {
        assert_eq!(from_loopback(&[]), ClientAddress::Unnamed);
        assert_eq!(ClientAddress::Unnamed.limit_key(), None);
    }

    #[test]
    fn unreadable_headers_are_limited_under_the_proxy() {
        let proxy = ClientAddress::Unreadable(ip("127.0.0.1"));
        for value in [
            "",
            "unknown",
            "203.0.113.7, not-an-address",
            "203.0.113.7,",
            "999.1.1.1",
            "203.0.113.7 203.0.113.8",
        ] {
            let value = HeaderValue::from_str(value).unwrap();
            let mut with = HeaderMap::new();
            with.insert("x-forwarded-for", value.clone());
            assert_eq!(
                ClientAddress::of(ip("127.0.0.1"), &with, &loopback_trusted()),
                proxy,
                "{value:?}"
            );
        }
        for value in ["for=_hidden", "for=unknown", "proto=https", "for=\"[::1\""] {
            let mut with = HeaderMap::new();
            with.insert("forwarded", HeaderValue::from_str(value).unwrap());
            assert_eq!(
                ClientAddress::of(ip("127.0.0.1"), &with, &loopback_trusted()),
                proxy,
                "{value:?}"
            );
        }
        let mut not_text = HeaderMap::new();
        not_text.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.\xff").unwrap(),
        );
        assert_eq!(
            ClientAddress::of(ip("127.0.0.1"), &not_text, &loopback_trusted()),
            proxy
        );
        assert_eq!(proxy.limit_key(), Some(ip("127.0.0.1")));
    }

    #[test]
    fn garbage_left_of_the_browser_does_not_matter() {
        assert_eq!(
            from_loopback(&[("x-forwarded-for", "not-an-address, unknown, 203.0.113.7")]),
            ClientAddress::Forwarded(ip("203.0.113.7"))
        );
    }

    #[test]
    fn the_site_sees_the_chain_and_the_peer() {
        let peer = Some(SocketAddr::from(([127, 0, 0, 9], 5000)));
        assert_eq!(forwarded_for_site(&HeaderMap::new(), peer), "127.0.0.9");
        assert_eq!(
            forwarded_for_site(&headers(&[("x-forwarded-for", "203.0.113.7")]), peer),
            "203.0.113.7, 127.0.0.9"
        );
        assert_eq!(
            forwarded_for_site(
                &headers(&[("forwarded", "for=\"[2001:db8::1]:80\", for=_x")]),
                peer
            ),
            "2001:db8::1, unknown, 127.0.0.9"
        );
        assert_eq!(
            forwarded_for_site(&headers(&[("x-forwarded-for", "203.0.113.7")]), None),
            "203.0.113.7"
        );
    }
}
