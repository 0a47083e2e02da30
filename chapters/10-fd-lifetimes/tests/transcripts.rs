//! Every scenario of chapter 10, run through the real binary (in each
//! mode, for a scenario with `--mode`) and snapshotted: the book includes
//! these snapshots, so it shows exactly what the binary prints.

#[test]
fn listing_and_every_scenario() {
    let binary = assert_cmd::cargo::cargo_bin!("ch10-fd-lifetimes");
    for (name, transcript) in lab_kit::transcript::all_transcripts("ch10-fd-lifetimes", binary) {
        insta::assert_snapshot!(name, transcript);
    }
}
