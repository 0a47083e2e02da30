//! Every scenario of chapter 06, run through the real binary (in each
//! mode, for a scenario with `--mode`) and snapshotted: the book includes
//! these snapshots, so it shows exactly what the binary prints.

use std::time::Duration;

#[test]
fn listing_and_every_scenario() {
    let binary = assert_cmd::cargo::cargo_bin!("ch06-epoll-echo-server");
    // The scenarios take well under a second together; a scenario that
    // blocks (a read with nothing to read) fails here instead of hanging.
    let transcripts = lab_kit::watchdog::within(
        Duration::from_secs(60),
        "every scenario of chapter 06 to finish (one is blocked: a read with nothing to read?)",
        move || lab_kit::transcript::all_transcripts("ch06-epoll-echo-server", binary),
    );
    for (name, transcript) in transcripts {
        insta::assert_snapshot!(name, transcript);
    }
}
