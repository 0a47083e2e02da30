//! The things scenarios and tests watch: connected sockets, pipes, a loopback
//! listener, a regular file. Each is created for real and named, and says so
//! in the transcript (`socketpair(AF_UNIX, SOCK_STREAM) -> (a, b)`).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::names::{name, name_of};
use crate::trace::{bytes, emit, view};

/// A connected pair of Unix stream sockets, named `a` and `b`
/// ([socketpair(2)](https://man7.org/linux/man-pages/man2/socketpair.2.html)).
/// Both are blocking, like every new socket.
pub fn socketpair(a: &str, b: &str) -> io::Result<(UnixStream, UnixStream)> {
    let (left, right) = UnixStream::pair()?;
    name(&left, a);
    name(&right, b);
    emit("socketpair", || {
        format!(
            "socketpair(AF_UNIX, SOCK_STREAM) -> ({}, {})",
            name_of(left.as_raw_fd()),
            name_of(right.as_raw_fd())
        )
    });
    Ok((left, right))
}

/// A pipe: `(read end, write end)`
/// ([pipe(2)](https://man7.org/linux/man-pages/man2/pipe.2.html)).
pub fn pipe(read_end: &str, write_end: &str) -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe()?;
    name(&r, read_end);
    name(&w, write_end);
    emit("pipe", || {
        format!(
            "pipe() -> ({}, {})",
            name_of(r.as_raw_fd()),
            name_of(w.as_raw_fd())
        )
    });
    Ok((r, w))
}

/// A TCP listener on 127.0.0.1 with a port the kernel picks (never
/// 0.0.0.0: nothing here should be reachable from another machine).
/// The port is not printed: it differs on every run.
pub fn listener(listener_name: &str) -> io::Result<TcpListener> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    name(&listener, listener_name);
    // Several calls (socket, setsockopt SO_REUSEADDR, bind, listen): a
    // `[setup]` line, not a `->` line.
    view("listen", "setup", || {
        format!(
            "socket+setsockopt(SO_REUSEADDR)+bind+listen(127.0.0.1:0) => {}",
            name_of(listener.as_raw_fd())
        )
    });
    Ok(listener)
}

/// A client connected to `addr`, named `client_name`
/// ([connect(2)](https://man7.org/linux/man-pages/man2/connect.2.html)).
/// On loopback the handshake completes inside connect, so the connection is
/// already in the listener's accept queue when this returns.
pub fn connect(addr: SocketAddr, client_name: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    name(&stream, client_name);
    // socket then connect: two calls, so a `[setup]` line.
    view("connect", "setup", || {
        format!(
            "socket+connect(listener's address) => {}",
            name_of(stream.as_raw_fd())
        )
    });
    Ok(stream)
}

/// A regular file holding `contents`: a new file in the temporary directory,
/// unlinked at once so nothing is left behind when the process exits.
pub fn regular_file(file_name: &str, contents: &[u8]) -> io::Result<File> {
    use std::io::{Seek, Write};
    let path = std::env::temp_dir().join(format!("epoll-lab-{}-{}", std::process::id(), file_name));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    file.write_all(contents)?;
    file.rewind()?;
    name(&file, file_name);
    view("open", "setup", || {
        format!(
            "open(new temporary file, O_RDWR)+unlink+write({})+lseek(0) => {}",
            bytes(contents),
            name_of(file.as_fd().as_raw_fd())
        )
    });
    Ok(file)
}

/// Sets this process's soft limit on open descriptors (`RLIMIT_NOFILE`) to
/// exactly `soft`, keeping the hard limit, so that descriptor numbers below
/// `soft` can be opened ([getrlimit(2)](https://man7.org/linux/man-pages/man2/getrlimit.2.html)).
/// A scenario that needs descriptor 1024 or 5000 calls it first. Setting it
/// always, not only when it is too low, keeps the transcript the same on every
/// machine. A hard limit below `soft` fails (the line shows `EINVAL`, what
/// setrlimit answers to a soft limit above the hard one).
///
/// Two calls (getrlimit to learn the hard limit, then setrlimit), so a
/// `[setup]` line: `[setup] getrlimit+setrlimit(RLIMIT_NOFILE, soft=2048, hard kept) => ok`.
pub fn descriptor_limit(soft: u64) -> io::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // A soft limit above the hard one is refused by setrlimit (EINVAL).
    let r = getrlimit(Resource::RLIMIT_NOFILE)
        .and_then(|(_, hard)| setrlimit(Resource::RLIMIT_NOFILE, soft, hard));
    view("setrlimit", "setup", || {
        let shown = crate::trace::result(&r, |_| "ok".to_string());
        format!("getrlimit+setrlimit(RLIMIT_NOFILE, soft={soft}, hard kept) => {shown}")
    });
    r.map_err(|e| {
        io::Error::other(format!(
            "this scenario needs descriptors up to {}: setting the soft RLIMIT_NOFILE to {soft} \
             failed ({e}); is the hard limit (`ulimit -Hn`) lower?",
            soft - 1
        ))
    })
}
