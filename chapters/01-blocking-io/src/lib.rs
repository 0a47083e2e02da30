//! ch01-blocking-io (placeholder)
