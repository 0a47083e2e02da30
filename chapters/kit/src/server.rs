//! A chapter's `serve` command, run as a real process for its tests.
//!
//! [`ServerProcess::start`] runs the binary with `serve --addr 127.0.0.1:0`
//! (plus any flags), reads the address it prints on its first line, and
//! collects the rest of its log. The process is killed when the value is
//! dropped, so a failing test never leaves a server behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to print its address or stop.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// A running `serve` process.
pub struct ServerProcess {
    child: Child,
    /// The address the server printed on its first line.
    pub addr: SocketAddr,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl ServerProcess {
    /// Starts `binary serve --addr 127.0.0.1:0 EXTRA...` and waits for its
    /// first line, `listening on 127.0.0.1:PORT`. Panics with what it saw if
    /// the line does not come within [`STARTUP_LIMIT`].
    pub fn start(binary: &Path, extra_args: &[&str]) -> ServerProcess {
        let mut child = Command::new(binary)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let first = match lines.recv_timeout(STARTUP_LIMIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{} serve printed no first line within {STARTUP_LIMIT:?}; \
                     a server must print `listening on ADDR` as soon as it is bound",
                    binary.display()
                );
            }
        };
        let addr = first
            .rsplit(' ')
            .next()
            .and_then(|word| word.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the first line should be `listening on ADDR`, it was {first:?}")
            });
        ServerProcess {
            child,
            addr,
            lines,
            log: vec![first],
        }
    }

    /// Lowers the server's limit on open descriptors (RLIMIT_NOFILE, soft
    /// and hard) to `limit`, from outside, as `prlimit --nofile=N --pid PID`
    /// does: the way to put a running server under descriptor pressure
    /// without touching the test process's own limit.
    pub fn set_fd_limit(&self, limit: u64) {
        let new = nix::libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: prlimit reads one rlimit struct from a valid pointer and,
        // with a null old-limit pointer, writes nothing. nix has no prlimit
        // wrapper.
        let rc = unsafe {
            nix::libc::prlimit(
                self.pid() as nix::libc::pid_t,
                nix::libc::RLIMIT_NOFILE,
                &new,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    /// The server's process id (for `/proc/PID/...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server logs a line for which `wanted` is true and
    /// returns it; panics with `expected` and the log so far after `limit`.
    pub fn wait_for_line(
        &mut self,
        limit: Duration,
        expected: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "waited {limit:?} for the server to log {expected}; its log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Like [`wait_for_line`](Self::wait_for_line), but gives up quietly:
    /// `None` if no such line came within `limit`.
    pub fn try_wait_for_line(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            self.log.push(line.clone());
            if wanted(&line) {
                return Some(line);
            }
        }
    }

    /// Sends `signal` to the server and returns the first line it then logs
    /// that starts with `prefix` (e.g. SIGUSR1 and `stats:`). A signal that
    /// lands just before a server enters its wait may be seen only at the
    /// next one, so it is sent again every 500 ms, up to 20 times; panics
    /// if no such line comes.
    pub fn signal_for_line(&mut self, signal: nix::sys::signal::Signal, prefix: &str) -> String {
        use nix::sys::signal::kill;
        use nix::unistd::Pid;
        let pid = Pid::from_raw(self.pid() as i32);
        for _ in 0..20 {
            kill(pid, signal).expect("signal the server");
            let line =
                self.try_wait_for_line(Duration::from_millis(500), |l| l.starts_with(prefix));
            if let Some(line) = line {
                return line;
            }
        }
        panic!(
            "sent {signal:?} 20 times, and the server logged no line starting with {prefix:?}; \
             its log so far:\n{}",
            self.log.join("\n")
        )
    }

    /// Every line the server has logged so far (the first is the address).
    pub fn log(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// Waits until the server has logged `count` lines `conn-N closed: ...`
    /// (counting from the start of its log) and returns the whole log.
    pub fn wait_for_closed(&mut self, count: usize) -> Vec<String> {
        let closed = |log: &[String]| log.iter().filter(|l| l.contains(" closed: ")).count();
        while closed(self.log()) < count {
            let want = format!("{count} `closed` lines");
            self.wait_for_line(STARTUP_LIMIT * 2, &want, |line| line.contains(" closed: "));
        }
        self.log().to_vec()
    }

    /// The server's descriptors above stdin, stdout and stderr, from
    /// `/proc/PID/fd`, as `7 -> socket:[12345]`. A process can inherit more
    /// than stdio from whoever started it (a build tool's pipe, say), so a
    /// leak check compares this list before and after, rather than with a
    /// fixed expectation.
    pub fn descriptors_above_stdio(&self) -> Vec<String> {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut fds: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let number: i32 = entry.file_name().to_str()?.parse().ok()?;
                let target = std::fs::read_link(entry.path()).ok()?;
                (number > 2).then(|| format!("{number} -> {}", target.display()))
            })
            .collect();
        fds.sort();
        fds
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits for the process to end;
    /// panics if it is still running after [`STARTUP_LIMIT`].
    pub fn interrupt(mut self) -> ExitStatus {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGINT);
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("the server was still running {STARTUP_LIMIT:?} after SIGINT (Ctrl-C)");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl ServerProcess {
    /// Waits for the process to end by itself (after a signal the test
    /// sent, say) and returns its status; panics if it is still running
    /// after `limit`. The log stays readable through [`log`](Self::log).
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "the server was still running {limit:?} later; its log so far:\n{}",
                    self.log().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
