//! Ctrl-C, `SIGTERM` and `SIGHUP`: close the connection so every blocked call returns
//! and `qmp` unwinds normally, stopping a QEMU it started and removing its private
//! directory, then exits with code 130.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Set once a signal arrived.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The exit code after an interruption (128 + SIGINT, as shells report it).
pub(crate) const INTERRUPTED_EXIT_CODE: u8 = 130;

/// From now on, a signal closes `client` (if it still exists) instead of killing the
/// process outright.
pub(crate) fn close_on_signal(client: &qmp_std::Client) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        // Without the handler the default action still ends qmp; nothing to clean up
        // then but the temporary directory.
        return;
    };
    let client = client.downgrade();
    let spawned = std::thread::Builder::new()
        .name(String::from("qmp-signals"))
        .spawn(move || {
            if signals.forever().next().is_some() {
                INTERRUPTED.store(true, Ordering::SeqCst);
                if let Some(client) = client.upgrade() {
                    client.close();
                }
            }
        });
    drop(spawned);
}

/// Whether a signal asked qmp to stop.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
