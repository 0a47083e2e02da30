//! Every scenario of ch04-poll, run through the real binary and
//! snapshotted: the book includes these snapshots, so it shows exactly what
//! the binary prints on the reader's kernel.

use std::process::Command;

use lab_kit::transcript::{listed_scenarios, render};

const PACKAGE: &str = "ch04-poll";

fn run(args: &[&str]) -> String {
    let output = Command::new(assert_cmd::cargo::cargo_bin!("ch04-poll"))
        .args(args)
        .output()
        .expect("run ch04-poll");
    render(PACKAGE, args, &output)
}

#[test]
fn listing_and_every_scenario() {
    let listing = run(&[]);
    insta::assert_snapshot!("listing", listing);
    let scenarios = listed_scenarios(&listing);
    assert!(!scenarios.is_empty(), "no scenarios listed:\n{listing}");
    for scenario in scenarios {
        let transcript = run(&[&scenario]);
        insta::assert_snapshot!(scenario.as_str(), transcript);
    }
}
