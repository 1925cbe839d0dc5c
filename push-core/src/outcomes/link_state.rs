//! Whether the node can reach the cluster's Redis: what the cluster link
//! reports and `push_cluster_link_up` shows.

/// Whether the node can reach the cluster right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet, or connection lost: reconnecting.
    Down,
    /// Connected and subscribed to every channel.
    Up,
}
