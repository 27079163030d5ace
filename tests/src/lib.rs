//! Support for the conformance tests in `tests/tests/`: launching real QEMU processes,
//! finding the captured byte vectors, reading whole lines with deadlines, and telling
//! which QEMU release the tests run against ([`qemu_version`]: 10.0.2, the release of the
//! captures, or Debian bookworm's 7.2; see `scripts/test.sh`).
//!
//! Helpers here panic with a clear message instead of returning errors: they are only
//! used by tests, where a panic is a failure with a readable reason. A missing QEMU
//! binary is such a failure (never a skip): the message says to run `scripts/setup.sh`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::time::Duration;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use qmp_std::launch::{LaunchError, Launcher, QemuProcess, ServerKind, DEFAULT_QGA_RPCS};
pub use qmp_std::{fdpass, Transport, TransportKind};

mod versions;
pub use versions::{
    agent_has_allow_rpcs, agent_launcher, agent_rpcs, as_sent_by, assert_known, captured_as_of,
    captured_commands_as_of, expected_from_capture, qemu_build, qemu_version, QemuBuild,
    QemuVersion, COMMANDS_AFTER_7_2,
};

/// How long a test waits for one expected reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The directory of captured vectors: `QMP_VECTORS_DIR` if set, else
/// `../shared/protocol/vectors` beside the repository root (checkouts have `shared/`
/// next to the repository, as in `/work/main` and `/work/shared`).
pub fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QMP_VECTORS_DIR") {
        return PathBuf::from(dir);
    }
    repo_root().join("../shared/protocol/vectors")
}

/// The bytes of vector file `name` (e.g. `"02-negotiation.s2c"`).
///
/// # Panics
/// If the file cannot be read, naming the path and the `QMP_VECTORS_DIR` override.
pub fn read_vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read vector {}: {error} (shared/ must sit beside the repository, \
             or set QMP_VECTORS_DIR)",
            path.display()
        )
    })
}

/// Splits `bytes` after every `\n`, keeping the line ends (`\r\n` or `\n`) so the pieces
/// concatenate back to `bytes` exactly. A trailing piece without `\n` is kept as is.
pub fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|&byte| byte == b'\n').collect()
}

/// Starts a QEMU process with `launcher`, failing the test with the launcher's message
/// (which says to run `scripts/setup.sh` when the binary is missing).
///
/// # Panics
/// If the process cannot be started.
pub fn launch(launcher: Launcher) -> QemuProcess {
    launcher
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start QEMU for this test: {error} ({error:?})"))
}

/// Connects to `process`'s primary socket with a 5 s connect timeout.
///
/// # Panics
/// If the connection fails.
pub fn connect(process: &QemuProcess) -> Transport {
    process
        .connect(Some(Duration::from_secs(5)))
        .unwrap_or_else(|error| {
            panic!(
                "cannot connect to {} at {}: {error}",
                process.kind(),
                process.socket_path().display()
            )
        })
}

/// Reads whole lines from a [`Transport`], keeping bytes that arrive past a line end for
/// the next call.
#[derive(Debug)]
pub struct LineReader {
    transport: Transport,
    pending: Vec<u8>,
}

impl LineReader {
    /// Wraps `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            pending: Vec::new(),
        }
    }

    /// The transport, for writing.
    pub fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    /// The next line including its `\n`, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] if no whole line arrived in time,
    /// [`io::ErrorKind::UnexpectedEof`] if the stream ended first (the partial line is
    /// in the message), or a read error.
    pub fn read_line(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
                return Ok(self.pending.drain(..=end).collect());
            }
            let mut chunk = [0u8; 65536];
            let n = self
                .transport
                .read_with_deadline(&mut chunk, Some(deadline))?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "stream ended with {:?} unterminated",
                        String::from_utf8_lossy(&self.pending)
                    ),
                ));
            }
            self.pending
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Like [`LineReader::read_line`] with [`REPLY_TIMEOUT`], failing the test on error.
    ///
    /// # Panics
    /// If no line arrives.
    pub fn expect_line(&mut self) -> Vec<u8> {
        self.read_line(REPLY_TIMEOUT)
            .unwrap_or_else(|error| panic!("no reply line: {error}"))
    }

    /// Bytes received past the last line returned.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}

/// Shows bytes as a string for assertion messages (invalid UTF-8 replaced).
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_keeps_every_byte() {
        let bytes = b"{\"a\": 1}\r\n{\"b\": 2}\n\xff{\"c\"";
        let lines = split_lines(bytes);
        assert_eq!(
            lines,
            vec![&b"{\"a\": 1}\r\n"[..], b"{\"b\": 2}\n", b"\xff{\"c\""]
        );
        assert_eq!(lines.concat(), bytes);
        assert!(split_lines(b"").is_empty());
    }

    #[test]
    fn vectors_are_found() {
        let greeting = read_vector("01-greeting.s2c");
        assert!(greeting.starts_with(b"{\"QMP\": "));
        assert!(greeting.ends_with(b"\r\n"));
    }

    #[test]
    fn line_reader_splits_and_keeps_the_rest() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut reader = LineReader::new(Transport::from_unix_stream(ours).unwrap());
        io::Write::write_all(&mut theirs, b"one\r\ntwo\nthr").unwrap();
        assert_eq!(reader.expect_line(), b"one\r\n");
        assert_eq!(reader.expect_line(), b"two\n");
        let err = reader.read_line(Duration::from_millis(30)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(reader.pending(), b"thr");
        drop(theirs);
        let err = reader.read_line(REPLY_TIMEOUT).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("thr"));
    }
}
