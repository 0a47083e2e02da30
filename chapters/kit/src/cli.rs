//! What every chapter's command line does the same way.
//!
//! - A mistake in the command line (a bad `--addr`, an unknown scenario) is
//!   a usage error: one `error: ...` message on stderr, exit code 2, never a
//!   backtrace, whatever `RUST_BACKTRACE` says. An unknown scenario also
//!   lists the scenarios there are ([`parse`]).
//! - `--addr` takes a loopback address only ([`loopback_addr`]): these
//!   servers echo anything anyone sends, so they are not reachable from
//!   another machine.
//! - A bind that fails says why and what to do ([`bind_loopback`]): ports
//!   below 1024 need privileges, a port in use needs another one, and
//!   `--addr 127.0.0.1:0` lets the kernel pick a free port (the server
//!   prints it).
//! - Anything else that fails is `error: ...` with its causes and exit code
//!   1, still without a backtrace ([`run_main`]).

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, socket,
    sockopt::ReuseAddr,
};

/// Exit code of a usage error, as clap (and BSD's sysexits tradition of
/// `2` for "incorrect usage") has it.
pub const USAGE: u8 = 2;

/// An error a chapter's command line reports without a backtrace.
#[derive(Debug)]
pub enum CliError {
    /// The command line itself is wrong: exit code 2.
    Usage(String),
    /// The command was fine but could not be done (a bind failed): exit
    /// code 1.
    Failed(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(text) | CliError::Failed(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the command line like `C::parse()`, and on an unknown scenario
/// (an unknown subcommand) also lists the ones there are. Every usage error
/// exits with code 2; `--help` and `--version` print and exit with 0.
pub fn parse<C: Parser>() -> C {
    match C::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::InvalidSubcommand => {
            let command = C::command();
            let names: Vec<&str> = command
                .get_subcommands()
                .map(|c| c.get_name())
                .filter(|name| *name != "help")
                .collect();
            let binary = command.get_name();
            eprint!("{}", e.render());
            eprintln!();
            eprintln!(
                "The scenarios and commands of {binary}: {}",
                names.join(", ")
            );
            eprintln!("Run `{binary}` without arguments to see what each one shows.");
            std::process::exit(USAGE.into());
        }
        Err(e) => e.exit(),
    }
}

/// A clap value parser for `--addr`: a socket address on a loopback
/// interface (`127.0.0.1:7006`, `[::1]:7006`; port 0 lets the kernel pick).
/// Use it as `#[arg(long, value_parser = lab_kit::cli::loopback_addr)]`;
/// clap then reports a bad value as a usage error.
pub fn loopback_addr(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        "not an address and port like 127.0.0.1:7006 (port 0 lets the kernel pick one)".to_string()
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: this lab's servers echo whatever anyone sends, so \
             they listen on 127.0.0.1 (or ::1) only",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// Opens a listening TCP socket on `addr` (which must be loopback), with a
/// hint in the error when that fails. The listen queue is as long as the
/// kernel allows (`SOMAXCONN`, capped by `net.core.somaxconn`), so a burst
/// of connections is queued rather than refused.
///
/// It makes the calls `TcpListener::bind` makes (socket with
/// `SOCK_CLOEXEC`, `SO_REUSEADDR`, bind, listen), except that std asks for
/// a queue of 128.
pub fn bind_loopback(addr: SocketAddr) -> Result<TcpListener, CliError> {
    if !addr.ip().is_loopback() {
        return Err(CliError::Usage(format!(
            "{} is not a loopback address: this lab's servers listen on 127.0.0.1 only",
            addr.ip()
        )));
    }
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let bound = (|| -> nix::Result<OwnedFd> {
        let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        // Without it, a server restarted right after it stopped finds the
        // port still taken by the old connections in TIME_WAIT.
        setsockopt(&fd, ReuseAddr, &true)?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(addr),
        )?;
        listen(&fd, Backlog::MAXCONN)?;
        Ok(fd)
    })();
    match bound {
        Ok(fd) => Ok(TcpListener::from(fd)),
        Err(e) => Err(CliError::Failed(bind_error(addr, io::Error::from(e)))),
    }
}

/// The message for a failed bind of `addr`: what happened, and what to do.
pub fn bind_error(addr: SocketAddr, e: io::Error) -> String {
    let pick = "or `--addr 127.0.0.1:0` to let the kernel pick a free port (the server \
                prints the address it got)";
    let hint = match e.raw_os_error().map(nix::errno::Errno::from_raw) {
        Some(nix::errno::Errno::EACCES) if addr.port() < 1024 => {
            format!(
                "ports below 1024 need privileges (CAP_NET_BIND_SERVICE): use a port of 1024 or more, {pick}"
            )
        }
        Some(nix::errno::Errno::EADDRINUSE) => format!(
            "another socket listens on port {} already (another server still running?): \
             choose another port, {pick}",
            addr.port()
        ),
        Some(nix::errno::Errno::EADDRNOTAVAIL) => {
            format!(
                "no interface of this machine has the address {}: use 127.0.0.1",
                addr.ip()
            )
        }
        _ => format!("try another port, {pick}"),
    };
    let what = match e.raw_os_error() {
        Some(code) => crate::trace::errno(nix::errno::Errno::from_raw(code)),
        None => e.to_string(),
    };
    format!("cannot listen on {addr}: {what}; {hint}")
}

/// Runs a chapter's `main` and turns its error into a message and an exit
/// code: `error: ...` with every cause (`: `-separated) on stderr, exit code
/// 2 for a [`CliError::Usage`], 1 otherwise; never a backtrace (anyhow
/// prints one for `fn main() -> Result` under `RUST_BACKTRACE=1`, which is
/// noise for a mistake in the command line).
///
/// ```no_run
/// fn run() -> anyhow::Result<()> {
///     Ok(())
/// }
/// fn main() -> std::process::ExitCode {
///     lab_kit::cli::run_main(run)
/// }
/// ```
pub fn run_main(main: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.downcast_ref::<CliError>().map_or(1, CliError::exit_code);
            // `{:#}` is anyhow's one-line form: the error and its causes,
            // without the backtrace that `{:?}` would add.
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_or_one_that_is_not_loopback_is_refused_with_the_reason() {
        assert!(
            loopback_addr("notanaddress")
                .unwrap_err()
                .contains("127.0.0.1:7006")
        );
        assert!(
            loopback_addr("0.0.0.0:7006")
                .unwrap_err()
                .contains("not a loopback")
        );
        assert_eq!(
            loopback_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let low: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let denied = bind_error(low, io::Error::from_raw_os_error(nix::libc::EACCES));
        assert!(denied.contains("below 1024") && denied.contains("--addr 127.0.0.1:0"));
        let taken: SocketAddr = "127.0.0.1:7006".parse().unwrap();
        let in_use = bind_error(taken, io::Error::from_raw_os_error(nix::libc::EADDRINUSE));
        assert!(in_use.contains("another port") && in_use.contains("--addr 127.0.0.1:0"));
    }

    #[test]
    fn a_port_in_use_is_a_failure_with_a_hint_and_port_0_gets_a_free_port() {
        let first = bind_loopback("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        assert_ne!(addr.port(), 0, "the kernel picked a port");
        let second = bind_loopback(addr).unwrap_err();
        assert_eq!(second.exit_code(), 1);
        assert!(second.to_string().contains("another port"), "{second}");
    }
}
