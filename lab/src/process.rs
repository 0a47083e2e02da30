//! Running a child process (cargo, a test binary) with a time limit: its
//! output is read as it comes, and after the limit it is killed together
//! with every process it started.
//!
//! The children stay in the lab's process group, so a Ctrl-C at the
//! terminal stops them with the lab.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::LabError;

/// Why a child produced no result.
#[derive(Debug)]
pub enum RunFailure {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It was still running after the limit, and was killed.
    TimedOut,
}

impl RunFailure {
    /// The lab error for `command` failing this way.
    pub fn into_lab_error(self, command: &str, limit: Duration) -> LabError {
        match self {
            RunFailure::Spawn(source) => LabError::Spawn {
                command: command.to_string(),
                source,
            },
            RunFailure::TimedOut => LabError::TimedOut {
                command: command.to_string(),
                limit,
            },
        }
    }
}

/// How long to keep reading after the child exited, in case a process it
/// left behind still holds the pipe.
const GRACE: Duration = Duration::from_millis(500);

enum Line {
    Out(String),
    Err(String),
}

/// Runs `command`, handing each line of its stdout and stderr to the
/// callbacks as it comes. After `limit` the command and its descendants are
/// killed.
pub fn run_streaming(
    mut command: Command,
    limit: Duration,
    on_stdout: &mut dyn FnMut(&str),
    on_stderr: &mut dyn FnMut(&str),
) -> Result<ExitStatus, RunFailure> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(&mut command).map_err(RunFailure::Spawn)?;
    let (send, lines) = mpsc::channel();
    let readers = [
        child.stdout.take().map(|out| {
            let send = send.clone();
            thread::spawn(move || forward(out, &send, Line::Out))
        }),
        child.stderr.take().map(|err| {
            let send = send.clone();
            thread::spawn(move || forward(err, &send, Line::Err))
        }),
    ];
    drop(send);

    let deadline = Instant::now() + limit;
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(Line::Out(line)) => on_stdout(&line),
            Ok(Line::Err(line)) => on_stderr(&line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if exited.is_none()
            && let Ok(Some(status)) = child.try_wait()
        {
            exited = Some((status, now));
        }
        match exited {
            Some((_, at)) if now > at + GRACE => break,
            None if now > deadline => {
                kill_tree(&mut child);
                return Err(RunFailure::TimedOut);
            }
            _ => {}
        }
    }
    for reader in readers.into_iter().flatten() {
        if reader.is_finished() {
            let _ = reader.join();
        }
    }
    match exited {
        Some((status, _)) => Ok(status),
        None => child.wait().map_err(RunFailure::Spawn),
    }
}

fn forward(stream: impl Read, send: &mpsc::Sender<Line>, wrap: fn(String) -> Line) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if send.send(wrap(line)).is_err() {
            break;
        }
    }
}

/// `command.spawn()`, retried a few times on ETXTBSY ("Text file busy").
/// A test binary the lab has just written can still be open for writing in
/// a child that another thread forked in the meantime (the descriptor lives
/// until that child's exec closes it), and exec refuses a file open for
/// writing. The window is short, so a retry after a moment succeeds (cargo
/// does the same).
fn spawn(command: &mut Command) -> std::io::Result<Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Runs `command` with stdout and stderr in one pipe (so their lines stay in
/// order), and returns how it exited and what it printed. After `limit` the
/// command and every process it started are killed.
pub fn run_merged(
    mut command: Command,
    limit: Duration,
) -> Result<(ExitStatus, String), RunFailure> {
    let (mut reader, writer) = std::io::pipe().map_err(RunFailure::Spawn)?;
    let writer_for_stderr = writer.try_clone().map_err(RunFailure::Spawn)?;
    command.stdout(writer).stderr(writer_for_stderr);
    let spawned = spawn(&mut command);
    // Our copies of the write end must go, or the pipe never reports EOF.
    drop(command);
    let mut child = spawned.map_err(RunFailure::Spawn)?;

    let (send, received) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = send.send(bytes);
    });

    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                kill_tree(&mut child);
                return Err(RunFailure::TimedOut);
            }
        }
    };
    // A process the child left behind could keep the pipe open; don't wait
    // for it for long.
    let bytes = received.recv_timeout(GRACE).unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Kills `child` and all its descendants, found through the parent pids in
/// `/proc`.
pub fn kill_tree(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = parent_of(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![child.id()];
    let mut seen = HashSet::new();
    let mut i = 0;
    while i < tree.len() {
        if let Some(found) = children.get(&tree[i]) {
            tree.extend(found.iter().filter(|pid| seen.insert(**pid)));
        }
        i += 1;
    }
    for pid in tree.iter().rev() {
        if let Ok(raw) = i32::try_from(*pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// The parent pid from `/proc/PID/stat` (the field after the `(comm)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_runs_too_long_is_stopped_with_its_children() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; sleep 30 & wait"]);
        let started = Instant::now();
        let result = run_merged(command, Duration::from_millis(300));
        assert!(matches!(result, Err(RunFailure::TimedOut)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_of_both_streams_is_kept_in_order() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo one; echo two >&2; echo three; exit 3"]);
        let (status, output) = run_merged(command, Duration::from_secs(10)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(output, "one\ntwo\nthree\n");
    }

    #[test]
    fn streaming_hands_over_each_line() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out1; echo err1 >&2; echo out2"]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = run_streaming(
            command,
            Duration::from_secs(10),
            &mut |l| out.push(l.to_string()),
            &mut |l| err.push(l.to_string()),
        )
        .unwrap();
        assert!(status.success());
        assert_eq!(out, ["out1", "out2"]);
        assert_eq!(err, ["err1"]);
    }

    #[test]
    fn streaming_stops_a_command_that_runs_too_long() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; sleep 30"]);
        let started = Instant::now();
        let result = run_streaming(
            command,
            Duration::from_millis(300),
            &mut |_| {},
            &mut |_| {},
        );
        assert!(matches!(result, Err(RunFailure::TimedOut)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
