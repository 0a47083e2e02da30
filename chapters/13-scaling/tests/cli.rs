//! The command line on tiny sizes: what each tool prints and writes, and
//! what it refuses. No timing is asserted: these check the tools' logic.

use std::path::PathBuf;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin!("ch13-scaling"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ch13-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cells of the table row whose N is `n`.
fn row(text: &str, n: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.starts_with('|') && l.trim_matches('|').split('|').next().unwrap().trim() == n)
        .unwrap_or_else(|| panic!("no row for N = {n} in:\n{text}"))
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn waitbench_writes_a_table_and_a_chart_that_chart_redraws() {
    let dir = scratch("waitbench");
    let prefix = dir.join("run");
    let out = run(&[
        "waitbench",
        "--sizes",
        "3,40,1100,100000000",
        "--blocks",
        "1",
        "--block-ms",
        "0.2",
        "--save",
        prefix.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every call at N = 3, with both ratios.
    let three = row(&text, "3");
    assert_eq!(three.len(), 8, "{three:?}");
    assert!(three.iter().all(|c| c != "-"), "{three:?}");
    assert!(three[6].ends_with('x') && three[7].ends_with('x'));
    // N = 1,100: the watched numbers pass 1023, so no select, and it says so.
    let big = row(&text, "1,100");
    assert_eq!(big[1], "-", "select at 1,100: {big:?}");
    assert!(big[2] != "-" && big[3] != "-");
    assert!(
        text.contains("select at N = 1,100: not measured") && text.contains("FD_SETSIZE"),
        "{text}"
    );
    // An N past the descriptor limit is skipped, with the reason.
    assert!(
        text.contains("N = 100,000,000: skipped") && text.contains("RLIMIT_NOFILE"),
        "{text}"
    );
    assert!(text.contains("- machine: ") && text.contains("- date: "));
    assert!(text.contains("- load average (1 minute): "));

    // The files: the same table, and a chart that `chart` draws again the same.
    let md = std::fs::read_to_string(dir.join("run.md")).unwrap();
    assert_eq!(md, text);
    let svg = std::fs::read_to_string(dir.join("run.svg")).unwrap();
    assert!(svg.starts_with("<svg viewBox="), "{}", &svg[..80]);
    let again = dir.join("again.svg");
    let redraw = run(&[
        "chart",
        dir.join("run.md").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(redraw.status.success());
    assert_eq!(std::fs::read_to_string(&again).unwrap(), svg);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dispatch_reports_each_backend_and_what_it_skipped() {
    let out = run(&[
        "dispatch", "--pairs", "4,600", "--active", "1,2,8", "--writes", "50", "--runs", "1",
    ]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("|") && l.contains(" | ") && !l.contains("select"))
        .filter(|l| !l.contains("--"))
        .collect();
    // N = 4 with A = 1 and 2, N = 600 with A = 1, 2 and 8.
    assert_eq!(rows.len(), 5, "{text}");
    assert!(
        text.contains("N = 4, A = 8: skipped: A must be 1 to N"),
        "{text}"
    );
    // 600 pairs are 1,200 descriptors: select cannot watch the last ones.
    assert!(text.contains("select at N = 600: not measured"), "{text}");
}

#[test]
fn bad_input_is_a_usage_error_and_a_missing_file_says_which() {
    let zero = run(&["waitbench", "--sizes", "0"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("not a size"));

    let missing = run(&["chart", "/nonexistent/ch13.md"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/ch13.md"));

    let listing = run(&[]);
    assert!(stdout(&listing).contains("waitbench") && stdout(&listing).contains("dispatch"));
}
