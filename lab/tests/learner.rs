//! The learner's loop, end to end: the real `lab` binary on a scratch copy
//! of this workspace, with exercises solved, broken and spinning, watched
//! and reset. Every wait has a limit, so nothing here can hang.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{Running, ScratchWorkspace};
use lab::contract::{self, FILE_CHECKS, runs};

/// Generous: the first build of a scratch copy compiles its exercises
/// crate (the chapters it uses are compiled already).
const BUILD: Duration = Duration::from_secs(180);

/// `name` with its first `todo!(` turned into a loop that never ends.
fn spin(scratch: &ScratchWorkspace, name: &str) {
    let text = String::from_utf8(scratch.read(name)).unwrap();
    let spinning = text.replacen(
        "todo!(",
        "loop {}\n    #[allow(unreachable_code)]\n    todo!(",
        1,
    );
    assert_ne!(text, spinning, "{name} has no todo!()");
    scratch.write(name, spinning);
}

/// The "done when" of issue 8: three exercises solved, one that does not
/// compile, one that spins; `cargo lab` still shows every exercise, the
/// compile error with its place, and what the spin did; another exercise
/// can be checked; and the contract (what `cargo test` runs) holds just as
/// it did for the untouched copy.
#[test]
fn solved_broken_and_spinning_exercises_stop_nothing() {
    let Some(scratch) = ScratchWorkspace::new("status") else {
        return;
    };
    let ws = scratch.ws();
    // What the contract says of the untouched copy (on a branch where some
    // exercises still break a rule, it says the same afterwards).
    let verdict = || {
        let shipped = contract::shipped(&ws).unwrap();
        let mut counts: Vec<usize> = FILE_CHECKS
            .iter()
            .map(|(_, check)| check(&ws, &shipped).len())
            .collect();
        counts.push(
            runs::shipped_exercises_fail(&ws, &shipped, &|_| {})
                .unwrap()
                .len(),
        );
        counts
    };
    let untouched = verdict();

    let names = &scratch.exercises;
    for name in &names[..3] {
        scratch.solve(name);
    }
    let broken = &names[3];
    let mut text = scratch.read(broken);
    text.extend_from_slice(b"\npub fn half_written( {\n");
    scratch.write(broken, text);
    let spinning = &names[4];
    spin(&scratch, spinning);

    let started = Instant::now();
    let (code, out, err) = scratch.run(&[]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{out}\n{err}");
    for name in names {
        assert!(out.contains(name.as_str()), "{name} missing:\n{out}");
    }
    for name in &names[..3] {
        let line = out.lines().find(|l| l.contains(name.as_str())).unwrap();
        assert!(line.contains("[x]") && line.contains("solved"), "{line}");
    }
    let broken_line = out.lines().find(|l| l.contains(broken.as_str())).unwrap();
    assert!(
        broken_line.contains(&format!("does not compile (exercises/src/{broken}.rs:")),
        "{broken_line}"
    );
    assert!(
        out.contains(&format!(
            "{broken} does not compile (the others are checked without it):"
        )),
        "{out}"
    );
    let spinning_line = out.lines().find(|l| l.contains(spinning.as_str())).unwrap();
    assert!(
        spinning_line.contains("[ ]") && spinning_line.contains("fail"),
        "{spinning_line}"
    );
    assert!(
        out.contains("3 of 15 exercises solved.") || names.len() != 15,
        "{out}"
    );
    assert!(took < Duration::from_secs(150), "cargo lab took {took:?}");

    // Another exercise, untouched, is checked normally.
    let other = &names[5];
    let (code, out, err) = scratch.run(&["check", other]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains(&format!("{other}: all ")), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(
        out.contains(&format!("the first test of {other} marked FAILED")),
        "{out}"
    );

    // The contract sees the shipped exercises: nothing the learner did
    // changes what it says.
    assert_eq!(verdict(), untouched);
}

/// `cargo lab watch`, keys read from lines (no terminal), with the
/// kernel's file notifications or by polling.
fn watch(test: &str, polling: bool) {
    let Some(scratch) = ScratchWorkspace::new(test) else {
        return;
    };
    let mut command = scratch.lab();
    command.arg("watch");
    if polling {
        command.env("LAB_WATCH_POLL", "1");
    }
    let mut lab = Running::start(command);
    let first = &scratch.exercises[0];
    let header = lab.wait_for("cargo lab watch: ", BUILD);
    assert!(
        header.contains(&format!("cargo lab watch: {first} (0 of")),
        "{header}"
    );
    assert!(
        header.contains(if polling {
            "polling"
        } else {
            "file notifications"
        }),
        "{header}"
    );
    lab.wait_for(
        "Type h (hint), n (next exercise), r (check again) or q (quit)",
        BUILD,
    );

    // Saving a solution re-checks the exercise.
    scratch.solve(first);
    lab.wait_for(&format!("{first} is solved!"), BUILD);
    let next = lab.wait_for("Next: ", Duration::from_secs(10));
    assert!(next.contains(&scratch.exercises[1]), "{next}");

    lab.type_line("h");
    lab.wait_for(
        &format!("{first}, hint 1 of 3 (a nudge):"),
        Duration::from_secs(10),
    );
    lab.type_line("n");
    let moved = lab.wait_for("cargo lab watch: ", BUILD);
    assert!(
        moved.contains(&format!("cargo lab watch: {} (1 of", scratch.exercises[1])),
        "{moved}"
    );

    // A file that does not compile is shown as such, not a blank screen.
    let second = &scratch.exercises[1];
    let mut text = scratch.read(second);
    text.extend_from_slice(b"\nfn broken( {\n");
    scratch.write(second, text);
    lab.wait_for(
        &format!("{second}: does not compile (exercises/src/{second}.rs:"),
        BUILD,
    );

    lab.type_line("q");
    lab.wait_for("Stopped watching.", Duration::from_secs(20));
    assert_eq!(lab.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn watch_rechecks_on_save_with_file_notifications() {
    watch("watch-notify", false);
}

#[test]
fn watch_rechecks_on_save_by_polling() {
    watch("watch-poll", true);
}

/// `cargo lab reset` restores the shipped bytes (not `HEAD`'s: the learner
/// committed their work) and keeps the learner's file as a backup.
#[test]
fn reset_restores_the_shipped_file_and_keeps_a_backup() {
    let Some(scratch) = ScratchWorkspace::new("reset") else {
        return;
    };
    let name = &scratch.exercises[0];
    let shipped = scratch.read(name);
    scratch.write(name, "// my work, committed\n");
    scratch.git(&["commit", "--quiet", "-am", "my work"]);

    let (code, out, err) = scratch.run(&["reset", name]);
    assert_eq!(code, 0, "{out}\n{err}");
    let backup = format!("exercises/backups/{name}-1.rs");
    assert!(
        out.contains(&format!("Restored exercises/src/{name}.rs as shipped.")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Your version is kept in {backup}.")),
        "{out}"
    );
    assert_eq!(scratch.read(name), shipped);
    assert_eq!(
        fs::read_to_string(scratch.root.join(&backup)).unwrap(),
        "// my work, committed\n"
    );

    let (code, out, _) = scratch.run(&["reset", name]);
    assert_eq!(code, 0);
    assert!(
        out.contains("is already as shipped: nothing to do."),
        "{out}"
    );

    // A deleted file comes back too, with no backup to make.
    fs::remove_file(scratch.exercise_file(name)).unwrap();
    let (code, out, err) = scratch.run(&["reset", name]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(scratch.read(name), shipped);
    assert!(
        !scratch
            .root
            .join(format!("exercises/backups/{name}-2.rs"))
            .exists()
    );
}

#[test]
fn mistakes_on_the_command_line_exit_2_without_a_backtrace() {
    let Some(scratch) = ScratchWorkspace::new("usage") else {
        return;
    };
    let name = scratch.exercises[0].clone();
    let typo = &name[..name.len() - 1];
    for args in [
        vec!["check", typo],
        vec!["reset", typo],
        vec!["solution", typo],
        vec!["hint", typo],
    ] {
        let (code, out, err) = scratch.run(&args);
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(
            err.contains(&format!("Did you mean `{name}`?")),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
    for args in [
        vec!["hint", name.as_str(), "--level", "0"],
        vec!["nonsense"],
        vec!["reset"],
    ] {
        let (code, _, err) = scratch.run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = scratch.run(&["hint", &name, "--level", "4"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ask for --level 1 to 3"), "{err}");
    let (code, _, err) = scratch.run(&["reset", "ch01"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a chapter"), "{err}");
}

/// `cargo lab solution` shows the solution only once the exercise is solved.
#[test]
fn the_solution_is_shown_once_solved() {
    let Some(scratch) = ScratchWorkspace::new("solution") else {
        return;
    };
    let name = &scratch.exercises[0];
    let (code, out, _) = scratch.run(&["solution", name]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{name} is not solved yet")), "{out}");
    assert!(
        out.contains(&format!("cargo lab hint {name} --level 1")),
        "{out}"
    );

    scratch.solve(name);
    let (code, out, err) = scratch.run(&["solution", name]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{name} is solved. The reference solution, solutions/src/{name}.rs:"
        )),
        "{out}"
    );
    assert!(
        !out.contains("don't change anything below this line"),
        "{out}"
    );
}
