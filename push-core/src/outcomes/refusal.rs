//! Why a socket.io connection was turned away: the text a refused page
//! receives, and the label of `push_connections_refused_total`.

/// Why a socket.io connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `auth_required` and the site said guest: at connect, or later about a
    /// connection admitted while it could not answer (then disconnected).
    Unauthorized,
    /// `auth_required`, admitted while the site could not answer, and every
    /// background attempt failed too: disconnected.
    AuthUnavailable,
    /// The page's Origin is not allowed.
    Origin,
    /// `max_connections` reached.
    TooManyConnections,
    /// `max_connections_per_ip` reached for the client's address.
    TooManyFromAddress,
    /// `handshakes_per_ip_per_minute` exceeded.
    HandshakeRate,
    /// The session was disconnected for flooding events in the last minute.
    Flooding,
    /// A join to the Admin UI's `/admin` with a wrong user name, password
    /// or session id.
    AdminUiLogin,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Unauthorized,
        Refusal::AuthUnavailable,
        Refusal::Origin,
        Refusal::TooManyConnections,
        Refusal::TooManyFromAddress,
        Refusal::HandshakeRate,
        Refusal::Flooding,
        Refusal::AdminUiLogin,
    ];

    /// The label in metrics, and the text a refused page receives.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::AuthUnavailable => "auth_unavailable",
            Refusal::Origin => "origin_not_allowed",
            Refusal::TooManyConnections => "too_many_connections",
            Refusal::TooManyFromAddress => "too_many_connections_from_address",
            Refusal::HandshakeRate => "handshake_rate_exceeded",
            Refusal::Flooding => "event_flood",
            Refusal::AdminUiLogin => "admin_ui_login",
        }
    }
}
