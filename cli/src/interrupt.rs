//! Ctrl-C, `SIGTERM` and `SIGHUP`: close the connection so every blocked call returns
//! and `qmp` unwinds normally, stopping a QEMU it started and removing its private
//! directory, then exits with code 130.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Set once a signal arrived.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Set while a `SIGINT` qmp sent itself is on its way (see [`wake_line_editor`]).
static SELF_SENT: AtomicBool = AtomicBool::new(false);

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
            for _ in signals.forever() {
                if SELF_SENT.swap(false, Ordering::SeqCst) {
                    continue;
                }
                INTERRUPTED.store(true, Ordering::SeqCst);
                if let Some(client) = client.upgrade() {
                    client.close();
                }
                break;
            }
        });
    drop(spawned);
}

/// Whether a signal asked qmp to stop.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Wakes the shell's line editor, which returns from waiting for a line when `SIGINT`
/// arrives (rustyline's own handler, installed while it reads), so a lost connection
/// ends the shell at once instead of at the next command. The signal does not count
/// as an interruption if it reaches qmp's own handler instead.
pub(crate) fn wake_line_editor() {
    SELF_SENT.store(true, Ordering::SeqCst);
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::INT);
}
