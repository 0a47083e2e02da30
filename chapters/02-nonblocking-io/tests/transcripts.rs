//! Runs the real binary: its scenario listing and every listed scenario,
//! snapshotted as the book shows them.

use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use lab_kit::transcript::{listed_scenarios, render};

const PACKAGE: &str = "ch02-nonblocking-io";

fn run(args: &[&str]) -> String {
    let output = Command::new(cargo_bin!("ch02-nonblocking-io"))
        .args(args)
        .output()
        .expect("run the chapter binary");
    render(PACKAGE, args, &output)
}

#[test]
fn listing_and_every_scenario() {
    let listing = run(&[]);
    insta::assert_snapshot!("listing", listing);
    let scenarios = listed_scenarios(&listing);
    assert!(
        scenarios.len() >= 4,
        "expected at least 4 scenarios in:\n{listing}"
    );
    for scenario in scenarios {
        let transcript = run(&[&scenario]);
        insta::assert_snapshot!(scenario.clone(), transcript);
    }
}
