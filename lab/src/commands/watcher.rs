//! Noticing that a file under `exercises/` was saved: the kernel's file
//! notifications (inotify, through the `notify` crate), or, where those do
//! not work (a full inotify table, some network and WSL file systems) or
//! when `LAB_WATCH_POLL=1` asks for it, a look at every file's modification
//! time twice a second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};

/// How often the polling fallback looks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A running watcher; watching stops when it is dropped.
pub struct Watcher {
    _inner: Box<dyn notify::Watcher + Send>,
    /// How it watches, for the learner: "file notifications" or "polling".
    pub how: String,
}

/// Watches `dir` and everything below it, calling `on_change` with each
/// path that was created, written, renamed or removed.
pub fn start(
    dir: &Path,
    force_polling: bool,
    on_change: impl Fn(PathBuf) + Send + Sync + 'static,
) -> Result<Watcher, String> {
    let on_change = Arc::new(on_change);
    let handler = {
        let on_change = Arc::clone(&on_change);
        move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && !matches!(event.kind, EventKind::Access(_))
            {
                for path in event.paths {
                    on_change(path);
                }
            }
        }
    };
    let mut problem = String::new();
    if !force_polling {
        match notify::recommended_watcher(handler.clone()) {
            Ok(mut watcher) => match watcher.watch(dir, RecursiveMode::Recursive) {
                Ok(()) => {
                    return Ok(Watcher {
                        _inner: Box::new(watcher),
                        how: "file notifications".to_string(),
                    });
                }
                Err(e) => problem = format!(" (file notifications failed: {e})"),
            },
            Err(e) => problem = format!(" (file notifications failed: {e})"),
        }
    }
    let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
    let mut watcher = notify::PollWatcher::new(handler, config).map_err(|e| e.to_string())?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|e| e.to_string())?;
    Ok(Watcher {
        _inner: Box::new(watcher),
        how: format!("polling every {} ms{problem}", POLL_INTERVAL.as_millis()),
    })
}
