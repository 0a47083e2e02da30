//! Every scenario of chapter 06, run through the real binary (in each
//! mode, for a scenario with `--mode`) and snapshotted: the book includes
//! these snapshots, so it shows exactly what the binary prints.

#[test]
fn listing_and_every_scenario() {
    let binary = assert_cmd::cargo::cargo_bin!("ch06-epoll-echo-server");
    for (name, transcript) in lab_kit::transcript::all_transcripts("ch06-epoll-echo-server", binary)
    {
        insta::assert_snapshot!(name, transcript);
    }
}
