//! ch03-select (placeholder)
