//! `cargo lab watch`: checks the exercise being worked on every time a file
//! under `exercises/` is saved, and shows the result and the next step.
//! Keys: h (a hint, one level more each time), n (the next unsolved
//! exercise), r (check again), q (quit).

use std::collections::{BTreeSet, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::{Lab, fix_this, hint, input, print_result, watcher};
use crate::progress::{self, State};
use crate::results::ExerciseResult;

/// How long to wait after a change for more (an editor's save is often
/// several events: a write, a rename, a change of attributes).
const SETTLE: Duration = Duration::from_millis(150);

enum Event {
    Key(char),
    Changed(PathBuf),
}

pub fn run(lab: &Lab) -> Result<ExitCode> {
    if lab.exercises.is_empty() {
        println!("There are no exercises yet: nothing to watch.");
        return Ok(ExitCode::SUCCESS);
    }
    let (send, events) = mpsc::channel();
    let force_polling =
        std::env::var_os("LAB_WATCH_POLL").is_some_and(|v| !v.is_empty() && v != "0");
    let on_change = {
        let send = send.clone();
        move |path| {
            let _ = send.send(Event::Changed(path));
        }
    };
    let watcher = watcher::start(&lab.ws.exercises_dir(), force_polling, on_change)
        .map_err(|e| anyhow!("cannot watch {}: {e}", lab.ws.show(&lab.ws.exercises_dir())))?;
    let terminal = input::start(move |key| {
        let _ = send.send(Event::Key(key));
    });
    let keys_help = if terminal.is_some() {
        "Keys: h hint, n next exercise, r check again, q quit."
    } else {
        "Type h (hint), n (next exercise), r (check again) or q (quit), then Enter."
    };

    let mut session = Session {
        lab,
        results: lab.results(&BTreeSet::new())?,
        current: 0,
        hint_level: 0,
        how: watcher.how.clone(),
        keys_help,
        clear: std::io::stdout().is_terminal(),
    };
    session.current = progress::next(&session.states()).unwrap_or(0);
    session.show();

    let mut pending: VecDeque<Event> = VecDeque::new();
    loop {
        let event = match pending.pop_front() {
            Some(event) => event,
            None => match events.recv() {
                Ok(event) => event,
                Err(_) => break,
            },
        };
        match event {
            Event::Key('q') => break,
            Event::Key('h') => session.hint(),
            Event::Key('n') => session.next(),
            Event::Key('r') => {
                let current = session.current_name();
                session.check([current].into())?;
            }
            Event::Key(other) => println!("`{other}` is not a key of cargo lab watch. {keys_help}"),
            Event::Changed(first) => {
                // Collect the rest of this save; keys wait their turn.
                let mut paths = vec![first];
                while let Ok(event) = events.recv_timeout(SETTLE) {
                    match event {
                        Event::Changed(path) => paths.push(path),
                        key => pending.push_back(key),
                    }
                }
                let changed = session.changed_exercises(&paths);
                if let Some(changed) = changed {
                    session.check(changed)?;
                }
            }
        }
    }
    drop(terminal);
    println!("Stopped watching.");
    Ok(ExitCode::SUCCESS)
}

struct Session<'a> {
    lab: &'a Lab,
    results: Vec<ExerciseResult>,
    /// The exercise being worked on (an index into `lab.exercises`).
    current: usize,
    /// The last hint level shown for it.
    hint_level: u8,
    how: String,
    keys_help: &'static str,
    clear: bool,
}

impl Session<'_> {
    fn states(&self) -> Vec<State> {
        self.results.iter().map(State::of).collect()
    }

    fn current_name(&self) -> String {
        self.lab.exercises[self.current].name.clone()
    }

    /// The exercises whose files are among `paths` (the last one saved
    /// becomes the current exercise); the current one if only the crate's
    /// other files changed; `None` if nothing that matters did.
    fn changed_exercises(&mut self, paths: &[PathBuf]) -> Option<BTreeSet<String>> {
        let dir = self.lab.ws.exercises_dir();
        let src = dir.join("src");
        let mut names = BTreeSet::new();
        let mut crate_changed = false;
        for path in paths {
            let in_src = path.parent() == Some(src.as_path());
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let is_rs = path.extension().is_some_and(|e| e == "rs");
            let position = self.lab.exercises.iter().position(|e| e.name == stem);
            match position {
                Some(i) if in_src && is_rs => {
                    names.insert(stem.to_string());
                    if i != self.current {
                        self.current = i;
                        self.hint_level = 0;
                    }
                }
                _ => crate_changed |= is_crate_file(&dir, path),
            }
        }
        if names.is_empty() && crate_changed {
            names.insert(self.current_name());
        }
        (!names.is_empty()).then_some(names)
    }

    fn check(&mut self, fresh: BTreeSet<String>) -> Result<()> {
        self.results = self.lab.results(&fresh)?;
        self.show();
        Ok(())
    }

    fn show(&self) {
        if self.clear {
            print!("\x1b[2J\x1b[H");
        }
        let states = self.states();
        let solved = states.iter().filter(|s| s.is_solved()).count();
        let exercise = &self.lab.exercises[self.current];
        println!(
            "cargo lab watch: {} ({solved} of {} solved; watching exercises/ by {})",
            exercise.name,
            states.len(),
            self.how
        );
        println!();
        print_result(exercise, &self.results[self.current], true);
        println!();
        if states[self.current].is_solved() {
            println!("{} is solved!", exercise.name);
            match progress::next(&states) {
                Some(i) => println!(
                    "Next: {} (press n to go to the next unsolved one)",
                    self.lab.exercises[i].name
                ),
                None => println!("Every exercise is solved. Well done!"),
            }
        } else {
            let fix = fix_this(&self.lab.ws, exercise, &self.results[self.current], true);
            println!("{fix}");
        }
        println!();
        println!("{}", self.keys_help);
    }

    fn hint(&mut self) {
        let exercise = &self.lab.exercises[self.current];
        let count = exercise.hints.len().min(usize::from(u8::MAX)) as u8;
        if count == 0 {
            println!("{} has no hints.", exercise.name);
            return;
        }
        self.hint_level = self.hint_level % count + 1;
        println!();
        for line in hint::render(exercise, self.hint_level).unwrap_or_default() {
            println!("{line}");
        }
        println!();
        if self.hint_level < count {
            println!("(h again: hint {} of {count})", self.hint_level + 1);
        }
    }

    /// Moves to the next unsolved exercise after the current one (from the
    /// start again past the last).
    fn next(&mut self) {
        let states = self.states();
        let count = states.len();
        let after = (1..=count)
            .map(|step| (self.current + step) % count)
            .find(|&i| !states[i].is_solved());
        match after {
            Some(i) => {
                self.current = i;
                self.hint_level = 0;
                self.show();
            }
            None => println!("Every exercise is solved: there is no next one. Well done!"),
        }
    }
}

/// Whether `path` is a file of the exercises crate other than an exercise
/// (its manifest, `lib.rs`, `info.toml`).
fn is_crate_file(dir: &Path, path: &Path) -> bool {
    ["Cargo.toml", "info.toml", "src/lib.rs"]
        .iter()
        .any(|f| path == dir.join(f))
}
