//! Every scenario of chapter 12, run through the real binary and
//! snapshotted: the book includes these snapshots, so it shows exactly what
//! the binary prints.

#[test]
fn listing_and_every_scenario() {
    let binary = assert_cmd::cargo::cargo_bin!("ch12-reactor");
    for (name, transcript) in lab_kit::transcript::all_transcripts("ch12-reactor", binary) {
        insta::assert_snapshot!(name, transcript);
    }
}
