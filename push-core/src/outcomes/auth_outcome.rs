//! How one call to the auth URL ended: what the auth counters and the
//! latency histogram are labelled with.

/// How an auth call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The site named a user.
    User,
    /// The site answered 401 or 403.
    Guest,
    /// No answer in time.
    Timeout,
    /// Connection refused, reset, or similar.
    Unreachable,
    /// An unexpected status, such as a 5xx or a redirect.
    BadStatus,
    /// A 200 whose body was not the documented JSON.
    BadBody,
    /// Not asked: the site failed repeatedly and the breaker is open.
    CircuitOpen,
}

impl AuthOutcome {
    pub const ALL: [AuthOutcome; 7] = [
        AuthOutcome::User,
        AuthOutcome::Guest,
        AuthOutcome::Timeout,
        AuthOutcome::Unreachable,
        AuthOutcome::BadStatus,
        AuthOutcome::BadBody,
        AuthOutcome::CircuitOpen,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AuthOutcome::User => "user",
            AuthOutcome::Guest => "guest",
            AuthOutcome::Timeout => "timeout",
            AuthOutcome::Unreachable => "unreachable",
            AuthOutcome::BadStatus => "bad_status",
            AuthOutcome::BadBody => "bad_body",
            AuthOutcome::CircuitOpen => "circuit_open",
        }
    }

    pub fn is_failure(self) -> bool {
        !matches!(self, AuthOutcome::User | AuthOutcome::Guest)
    }
}
