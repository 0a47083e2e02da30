//! ch02-nonblocking-io (placeholder)
