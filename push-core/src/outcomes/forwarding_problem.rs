//! How a trusted proxy failed to name a browser: what
//! `push_forwarding_header_problems_total` is labelled with.

/// How a trusted proxy failed to name the browser it forwards for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardingProblem {
    /// No X-Forwarded-For or Forwarded header: no per-IP limits.
    Missing,
    /// A header whose deciding hop is not an address: limited as the proxy.
    Unreadable,
}

impl ForwardingProblem {
    pub const ALL: [ForwardingProblem; 2] =
        [ForwardingProblem::Missing, ForwardingProblem::Unreadable];

    pub fn label(self) -> &'static str {
        match self {
            ForwardingProblem::Missing => "missing",
            ForwardingProblem::Unreadable => "unreadable",
        }
    }
}
