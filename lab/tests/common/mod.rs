//! A scratch copy of this workspace for the end-to-end tests, so they can
//! solve, break and reset exercises without touching the real ones: the
//! exercises as shipped (copied), the chapters, the book and the solutions
//! (linked), a root `Cargo.toml` whose dependency paths point at the real
//! chapter crates (so the lab's builds reuse what is compiled already), a
//! manifest, and a git repository with everything committed.

#![allow(dead_code)] // each test file uses part of it

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lab::Workspace;
use lab::contract;
use lab::manifest::{Manifest, exercise_path};

pub struct ScratchWorkspace {
    pub root: PathBuf,
    /// The real workspace.
    pub real: Workspace,
    /// The exercises, in order.
    pub exercises: Vec<String>,
}

impl ScratchWorkspace {
    /// A new scratch copy named after `test`, or `None` (said on stderr)
    /// if the shipped exercises cannot be read here (outside a git
    /// checkout, with exercises changed).
    pub fn new(test: &str) -> Option<ScratchWorkspace> {
        let real = Workspace::locate();
        let shipped = contract::shipped(&real).expect("the manifest of the real workspace");
        if let Some((path, why)) = shipped.unavailable().first() {
            let _ = writeln!(
                std::io::stderr(),
                "note: {test} skipped: the shipped version of exercises/{path} cannot be read ({why})"
            );
            return None;
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lab-e2e-{test}"));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("exercises")).unwrap();

        for (path, file) in &shipped.files {
            let target = root.join("exercises").join(path);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(target, file.bytes.as_ref().unwrap()).unwrap();
        }
        fs::copy(real.info_toml(), root.join("exercises/info.toml")).unwrap();
        fs::copy(real.root().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
        fs::write(root.join("Cargo.toml"), scratch_manifest(real.root())).unwrap();
        for linked in ["chapters", "book", "solutions"] {
            std::os::unix::fs::symlink(real.root().join(linked), root.join(linked)).unwrap();
        }
        let ws = Workspace::at(&root);
        let exercises = ws.exercises().unwrap();
        Manifest::of_working_tree(&ws, &exercises)
            .unwrap()
            .save(&ws)
            .unwrap();
        let scratch = ScratchWorkspace {
            root,
            real,
            exercises: exercises.into_iter().map(|e| e.name).collect(),
        };
        scratch.git(&["init", "--quiet"]);
        scratch.git(&["add", "-A"]);
        scratch.git(&["commit", "--quiet", "-m", "as shipped"]);
        Some(scratch)
    }

    pub fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .args(["-c", "user.name=lab", "-c", "user.email=lab@localhost"])
            .args(args)
            .current_dir(&self.root)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    /// The scratch workspace, building in the real workspace's lab build
    /// directory (warm).
    pub fn ws(&self) -> Workspace {
        Workspace::at(&self.root).with_build_dir(self.real.build_dir())
    }

    pub fn exercise_file(&self, name: &str) -> PathBuf {
        self.root.join("exercises").join(exercise_path(name))
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.exercise_file(name)).unwrap()
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        fs::write(self.exercise_file(name), bytes).unwrap();
    }

    /// Copies the solution of `name` over the exercise.
    pub fn solve(&self, name: &str) {
        let solution = fs::read(self.real.solution_file(name)).unwrap();
        self.write(name, solution);
    }

    /// The `lab` binary, run on this scratch workspace.
    pub fn lab(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lab"));
        // build_dir is TARGET/lab/build: the lab adds `lab/build` itself.
        let target = self.real.build_dir().parent().unwrap().parent().unwrap();
        command
            .env("LAB_WORKSPACE", &self.root)
            .env("CARGO_TARGET_DIR", target)
            .env_remove("LAB_WATCH_POLL")
            .current_dir(&self.root);
        command
    }

    /// Runs `lab ARGS` to the end: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.lab().args(args).stdin(Stdio::null()).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for ScratchWorkspace {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A root manifest with the real workspace's `[workspace.package]` and
/// `[workspace.dependencies]`, every path made absolute.
fn scratch_manifest(real_root: &Path) -> String {
    let text = fs::read_to_string(real_root.join("Cargo.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    let workspace = table
        .get_mut("workspace")
        .and_then(|w| w.as_table_mut())
        .unwrap();
    workspace.insert("members".into(), toml::Value::Array(Vec::new()));
    workspace.remove("default-members");
    if let Some(deps) = workspace
        .get_mut("dependencies")
        .and_then(|d| d.as_table_mut())
    {
        for (_, dep) in deps.iter_mut() {
            if let Some(path) = dep.get("path").and_then(|p| p.as_str()) {
                let absolute = real_root.join(path).display().to_string();
                dep.as_table_mut()
                    .unwrap()
                    .insert("path".into(), absolute.into());
            }
        }
    }
    let mut out = toml::Table::new();
    out.insert("workspace".into(), workspace.clone().into());
    toml::to_string(&out).unwrap()
}

/// A running `lab` whose output lines are collected as they come, killed
/// when dropped.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line seen so far (stdout and stderr).
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let (send, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits at most `limit` for a line containing `text`; fails the test
    /// with everything seen if none comes.
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {text:?} within {limit:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits at most `limit` for the process to end; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "still running after {limit:?}; seen:\n{}",
            self.seen.join("\n")
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
