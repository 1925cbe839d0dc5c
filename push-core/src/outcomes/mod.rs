//! The words every layer reports in: how an auth call ended, why a
//! connection was refused, how a proxy failed to name a browser, whether
//! the cluster link is up.
//!
//! Each is said by one layer (`auth`, `socketio`, `cluster`) and counted by
//! `metrics`. They are kept here, at the bottom, importing nothing from the
//! rest of the crate, so that `metrics` depends on the words and not on the
//! layers that say them: every layer can then use `metrics` without an
//! import going round in a circle.

mod auth_outcome;
mod forwarding_problem;
mod link_state;
mod refusal;

pub use self::auth_outcome::AuthOutcome;
pub use self::forwarding_problem::ForwardingProblem;
pub use self::link_state::LinkState;
pub use self::refusal::Refusal;
