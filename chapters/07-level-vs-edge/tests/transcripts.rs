//! Every scenario of chapter 07, in both modes where it takes `--mode`, run
//! through the real binary and snapshotted (`partial-read--edge`, ...).

use std::process::Command;

const PACKAGE: &str = "ch07-level-vs-edge";

fn run(args: &[&str]) -> std::process::Output {
    Command::new(assert_cmd::cargo::cargo_bin!("ch07-level-vs-edge"))
        .args(args)
        .output()
        .expect("run the chapter binary")
}

#[test]
fn listing_and_every_scenario_in_each_mode() {
    let listing = run(&[]);
    insta::assert_snapshot!(
        "listing",
        lab_kit::transcript::render(PACKAGE, &[], &listing)
    );
    let scenarios =
        lab_kit::transcript::listed_scenarios(&String::from_utf8_lossy(&listing.stdout));
    assert!(
        scenarios.len() >= 8,
        "expected every scenario listed, got {scenarios:?}"
    );
    let mut with_modes = 0;
    for scenario in scenarios {
        let help = String::from_utf8_lossy(&run(&[&scenario, "--help"]).stdout).to_string();
        let runs: Vec<(String, Vec<&str>)> = if help.contains("--mode") {
            with_modes += 1;
            ["level", "edge"]
                .iter()
                .map(|mode| {
                    (
                        format!("{scenario}--{mode}"),
                        vec![scenario.as_str(), "--mode", mode],
                    )
                })
                .collect()
        } else {
            vec![(scenario.clone(), vec![scenario.as_str()])]
        };
        for (snapshot, args) in runs {
            let output = run(&args);
            assert!(
                output.status.success(),
                "{args:?} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            insta::assert_snapshot!(
                snapshot,
                lab_kit::transcript::render(PACKAGE, &args, &output)
            );
        }
    }
    assert!(
        with_modes >= 6,
        "the pitfalls should each run in both modes"
    );
}
