//! Chapter 12: a reactor, and a Redis-protocol server on it.
pub mod resp;
pub mod session;
pub mod store;

#[cfg(test)]
mod alloc_tests;
