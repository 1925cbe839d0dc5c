//! The words every layer reports in: how an auth call ended, why a
//! connection was refused, how a proxy failed to name a browser, whether
//! the cluster link is up, how a slow connection's catch-up ended, how a
//! configuration reload ended.
//!
//! Each is said by one layer (`auth`, `socketio`, `cluster`, the server's
//! reload) and counted by `metrics`. They are kept here, at the bottom,
//! importing nothing from the rest of the crate, so that `metrics` depends
//! on the words and not on the layers that say them: every layer can then
//! use `metrics` without an import going round in a circle.

mod auth_outcome;
mod catch_up_outcome;
mod forwarding_problem;
mod link_state;
mod refusal;
mod reload_result;

pub use self::auth_outcome::AuthOutcome;
pub use self::catch_up_outcome::CatchUpOutcome;
pub use self::forwarding_problem::ForwardingProblem;
pub use self::link_state::LinkState;
pub use self::refusal::Refusal;
pub use self::reload_result::ReloadResult;
