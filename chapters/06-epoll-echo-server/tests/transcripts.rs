//! Every scenario of chapter 06, run through the real binary and snapshotted.

use std::process::Command;

const PACKAGE: &str = "ch06-epoll-echo-server";

fn run(args: &[&str]) -> std::process::Output {
    Command::new(assert_cmd::cargo::cargo_bin!("ch06-epoll-echo-server"))
        .args(args)
        .output()
        .expect("run the chapter binary")
}

#[test]
fn listing_and_every_scenario() {
    let listing = run(&[]);
    insta::assert_snapshot!(
        "listing",
        lab_kit::transcript::render(PACKAGE, &[], &listing)
    );
    let scenarios =
        lab_kit::transcript::listed_scenarios(&String::from_utf8_lossy(&listing.stdout));
    assert!(
        scenarios.len() >= 5,
        "expected the listing to name every scenario, got {scenarios:?}"
    );
    for scenario in scenarios {
        let output = run(&[&scenario]);
        assert!(
            output.status.success(),
            "{scenario} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        insta::assert_snapshot!(
            scenario.clone(),
            lab_kit::transcript::render(PACKAGE, &[&scenario], &output)
        );
    }
}
