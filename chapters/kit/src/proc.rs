//! Where a thread is right now, read from `/proc`: the system call it sleeps
//! in, with its arguments.
//!
//! Scenarios and tests use this to act only once another thread is really
//! asleep in the kernel (in `read`, `poll`, `epoll_wait`...), instead of
//! sleeping for a while and hoping. The kernel shows it in two files
//! ([proc_pid_stat(5)], [proc_pid_syscall(5)]):
//! - `/proc/self/task/TID/stat`: the state, `S` for an interruptible sleep;
//! - `/proc/self/task/TID/syscall`: the number of the system call the thread
//!   is blocked in and its six arguments in hex, or `running`.
//!
//! A thread that waits for a lock another thread holds sleeps in `futex`;
//! that is not the call a scenario waits for, so it does not count.
//!
//! [proc_pid_stat(5)]: https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
//! [proc_pid_syscall(5)]: https://man7.org/linux/man-pages/man5/proc_pid_syscall.5.html

use std::time::{Duration, Instant};

use nix::libc;
use nix::unistd::Pid;

/// A system call a thread is asleep in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asleep {
    /// The call's number (`libc::SYS_read`, ...).
    pub number: libc::c_long,
    /// Its six arguments, as the registers held them.
    pub args: [u64; 6],
}

impl Asleep {
    /// Argument `i` (0-based) read as a C `int` (the low 32 bits), as a
    /// descriptor or a millisecond timeout is passed.
    pub fn int_arg(&self, i: usize) -> i32 {
        self.args[i] as u32 as i32
    }

    /// Whether the call is one of the ways to wait on an epoll instance
    /// (`epoll_wait` exists only on some architectures; the others use
    /// `epoll_pwait`, and `epoll_pwait2` is the nanosecond variant).
    pub fn is_epoll_wait(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.number == libc::SYS_epoll_wait {
            return true;
        }
        self.number == libc::SYS_epoll_pwait || self.number == libc::SYS_epoll_pwait2
    }
}

/// The system call thread `tid` of this process is asleep in, if it is
/// asleep in one (state `S`), leaving out `futex` (a lock, not the thread's
/// own call). `None` while it runs, has ended, or sleeps in `futex`.
pub fn asleep_in(tid: Pid) -> Option<Asleep> {
    let task = format!("/proc/self/task/{tid}");
    let stat = std::fs::read_to_string(format!("{task}/stat")).ok()?;
    // The state is the first field after the thread's name, which is in
    // parentheses and may itself contain spaces or ')'.
    let (_, after_name) = stat.rsplit_once(')')?;
    if after_name.split_whitespace().next()? != "S" {
        return None;
    }
    let syscall = std::fs::read_to_string(format!("{task}/syscall")).ok()?;
    let mut fields = syscall.split_whitespace();
    // "running", or -1 for a sleep outside any system call.
    let number: libc::c_long = fields.next()?.parse().ok()?;
    if number < 0 || number == libc::SYS_futex {
        return None;
    }
    let mut args = [0u64; 6];
    for arg in &mut args {
        *arg = u64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok()?;
    }
    Some(Asleep { number, args })
}

/// Waits, yielding the CPU and never sleeping, until thread `tid` is asleep
/// in a call that `wanted` accepts, for at most `limit`. `None` if it never
/// was (it is spinning, or sleeps in some other call, or has ended).
pub fn wait_until_asleep(
    tid: Pid,
    limit: Duration,
    wanted: impl Fn(&Asleep) -> bool,
) -> Option<Asleep> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(asleep) = asleep_in(tid).filter(|a| wanted(a)) {
            return Some(asleep);
        }
        std::thread::yield_now();
    }
    None
}

/// The thread id of this process's thread named `name` (a Rust thread's
/// name, cut to 15 bytes by the kernel), from `/proc/self/task/*/comm`.
pub fn thread_named(name: &str) -> std::io::Result<Pid> {
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?;
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if comm.trim_end() == name
            && let Ok(tid) = task.file_name().to_string_lossy().parse::<i32>()
        {
            return Ok(Pid::from_raw(tid));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("no thread named {name} in /proc/self/task"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    #[test]
    fn sees_a_thread_asleep_in_read_with_its_descriptor() {
        use std::os::fd::AsRawFd;
        let (mut reader, mut writer) = UnixStream::pair().unwrap();
        let fd = reader.as_raw_fd();
        let (tid_send, tid) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            tid_send.send(nix::unistd::gettid()).unwrap();
            let mut byte = [0u8; 1];
            reader.read_exact(&mut byte).unwrap();
        });
        let tid = tid.recv().unwrap();
        let asleep = wait_until_asleep(tid, Duration::from_secs(5), |a| {
            a.number == libc::SYS_read || a.number == libc::SYS_recvfrom
        })
        .expect("the reader never slept in read within 5 s");
        assert_eq!(asleep.int_arg(0), fd, "read's first argument is the fd");
        assert!(!asleep.is_epoll_wait());
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        thread.join().unwrap();
        // A thread that has ended is asleep in nothing.
        assert_eq!(asleep_in(tid), None);
    }

    #[test]
    fn a_running_thread_is_not_asleep() {
        assert_eq!(asleep_in(nix::unistd::gettid()), None);
    }

    #[test]
    fn finds_threads_by_name() {
        let (tid_send, tid) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::Builder::new()
            .name("proc-named".into())
            .spawn(move || {
                tid_send.send(nix::unistd::gettid()).unwrap();
                stopped.recv().unwrap()
            })
            .unwrap();
        let tid = tid.recv().unwrap();
        assert_eq!(thread_named("proc-named").unwrap(), tid);
        assert!(thread_named("no-such-thread").is_err());
        stop.send(()).unwrap();
        helper.join().unwrap();
    }
}
