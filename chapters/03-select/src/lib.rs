//! Chapter 03: select(2), the first multiplexer.
pub mod poller;
