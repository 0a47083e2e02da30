//! ch04-poll (placeholder)
