//! The keys of `cargo lab watch`, read on a thread of their own.
//!
//! On a terminal a key acts at once: the terminal is put in non-canonical
//! mode without echo (and given back as it was when the guard is dropped).
//! Ctrl-C, which that mode delivers as a byte, gives the terminal back and
//! then interrupts the process group as Ctrl-C would have. Without a
//! terminal (a pipe, a test) each line is one key: its first letter.

use std::io::{BufRead, IsTerminal, Read};

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

/// Gives the terminal back its settings when dropped.
pub struct TerminalGuard {
    original: Termios,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore(&self.original);
    }
}

fn restore(original: &Termios) {
    let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, original);
}

/// Reads keys from stdin on a new thread, calling `on_key` with each (as
/// a lowercase letter; Ctrl-D as `q`). Returns the guard of the terminal
/// if stdin is one.
pub fn start(on_key: impl Fn(char) + Send + 'static) -> Option<TerminalGuard> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Some(key) = line.trim().chars().next() {
                    on_key(key.to_ascii_lowercase());
                }
            }
            // End of input: keep watching files (stop with Ctrl-C or `q`).
        });
        return None;
    }
    let original = termios::tcgetattr(&stdin).ok()?;
    let mut keys = original.clone();
    keys.local_flags
        .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
    keys.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    keys.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcsetattr(&stdin, SetArg::TCSANOW, &keys).ok()?;
    let for_thread = original.clone();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while let Ok(1) = std::io::stdin().read(&mut byte) {
            match byte[0] {
                // Ctrl-C: what the terminal would have done, terminal first.
                3 => {
                    restore(&for_thread);
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::getpgrp(),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
                4 => on_key('q'),
                b if b.is_ascii_graphic() => on_key((b as char).to_ascii_lowercase()),
                _ => {}
            }
        }
    });
    Some(TerminalGuard { original })
}
