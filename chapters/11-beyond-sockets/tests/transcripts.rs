//! Every scenario of chapter 11, run through the real binary and
//! snapshotted: the book includes these snapshots, so it shows exactly what
//! the binary prints.

#[test]
fn listing_and_every_scenario() {
    let binary = assert_cmd::cargo::cargo_bin!("ch11-beyond-sockets");
    for (name, transcript) in lab_kit::transcript::all_transcripts("ch11-beyond-sockets", binary) {
        insta::assert_snapshot!(name, transcript);
    }
}
