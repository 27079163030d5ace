//! Which QEMU the tests run against.
//!
//! The suite runs twice in `scripts/test.sh`: against the machine's QEMU 10.0.2 (the
//! release the captured vectors come from) and against Debian bookworm's QEMU 7.2, which
//! `scripts/setup.sh` unpacks into a private directory and `QMP_QEMU_SYSTEM`, `QMP_QSD`
//! and `QMP_QGA` select. A test that asserts output that differs between releases asks
//! [`qemu_version`] which one it talks to and expects that release's output; every
//! assertion holds on both.
//!
//! The version comes from the program itself (`PROGRAM --version`, run once per program),
//! not from the server under test, so a test can also check that what the server says
//! about itself (the QMP greeting, `query-version`) agrees.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use core::fmt;

use crate::{Launcher, ServerKind, DEFAULT_QGA_RPCS};

/// A QEMU release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QemuVersion {
    /// The major version (10 in 10.0.2).
    pub major: u32,
    /// The minor version (0 in 10.0.2).
    pub minor: u32,
    /// The micro version (2 in 10.0.2).
    pub micro: u32,
}

impl QemuVersion {
    /// The release the captured vectors in `../shared/protocol/vectors` come from, and
    /// the one `scripts/setup.sh` installs.
    pub const CAPTURED: QemuVersion = QemuVersion::new(10, 0, 2);

    /// `major.minor.micro`.
    pub const fn new(major: u32, minor: u32, micro: u32) -> Self {
        Self {
            major,
            minor,
            micro,
        }
    }

    /// The first word of `text` that reads `N.N.N` (as in `QEMU emulator version 7.2.22
    /// (Debian 1:7.2+dfsg-7+deb12u18+b3)` or `QEMU Guest Agent 10.0.2`).
    pub fn parse(text: &str) -> Option<Self> {
        text.split_whitespace().find_map(|word| {
            let mut parts = word.split('.').map(|part| part.parse::<u32>().ok());
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(Some(major)), Some(Some(minor)), Some(Some(micro)), None) => {
                    Some(Self::new(major, minor, micro))
                }
                _ => None,
            }
        })
    }

    /// Whether this is the release of the captured vectors (10.0.2).
    pub fn is_captured(self) -> bool {
        self == Self::CAPTURED
    }

    /// Whether this release is `major.minor` or later.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Whether the suite knows what this release says: the captured 10.0.2 or Debian
    /// bookworm's 7.2 (any 7.2.x stable release).
    pub fn is_known(self) -> bool {
        self.is_captured() || (self.major, self.minor) == (7, 2)
    }

    /// The version as `query-version` and the greeting give it
    /// (`{"micro": 2, "minor": 0, "major": 10}`).
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({"micro": self.micro, "minor": self.minor, "major": self.major})
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// What a QEMU program says about itself with `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuBuild {
    /// The program that was asked ([`ServerKind::program`]: the environment override
    /// or the installed one).
    pub program: PathBuf,
    /// Its release.
    pub version: QemuVersion,
    /// Its package string (`Debian 1:7.2+dfsg-7+deb12u18+b3`), as QMP's greeting and
    /// `query-version` report it: the parenthesised text after the version, empty when
    /// there is none (qemu-ga prints none).
    pub package: String,
}

impl QemuBuild {
    /// Runs `program --version`.
    ///
    /// # Panics
    /// If the program does not run or prints no version.
    pub fn probe(program: PathBuf) -> Self {
        let output = Command::new(&program)
            .arg("--version")
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run {} --version: {error} (run scripts/setup.sh)",
                    program.display()
                )
            });
        let text = String::from_utf8_lossy(&output.stdout);
        let first_line = text.lines().next().unwrap_or_default();
        let version = QemuVersion::parse(first_line).unwrap_or_else(|| {
            panic!(
                "{} --version printed no version: {text:?}",
                program.display()
            )
        });
        let package = first_line
            .split_once(" (")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .unwrap_or_default()
            .to_owned();
        Self {
            program,
            version,
            package,
        }
    }
}

/// The build of the program the tests start for `kind` (probed once per kind).
///
/// # Panics
/// If the program does not run or prints no version.
pub fn qemu_build(kind: ServerKind) -> &'static QemuBuild {
    static BUILDS: [OnceLock<QemuBuild>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let index = match kind {
        ServerKind::StorageDaemon => 0,
        ServerKind::System => 1,
        _ => 2,
    };
    BUILDS[index].get_or_init(|| QemuBuild::probe(kind.program()))
}

/// The release of the program the tests start for `kind`.
///
/// # Panics
/// If the program does not run or prints no version.
pub fn qemu_version(kind: ServerKind) -> QemuVersion {
    qemu_build(kind).version
}

/// `bytes` captured from QEMU 10.0.2 (a greeting, a `query-version` reply, compact or
/// pretty, or qemu-ga's `guest-info`) as `build` sends them: the `micro`, `minor` and
/// `major` numbers, qemu-ga's `"version": "10.0.2"` and the `package` value replaced by
/// `build`'s. Bytes of the captured release come back unchanged when `build` is the
/// capture's build.
pub fn as_sent_by(bytes: &[u8], build: &QemuBuild) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let numbers = [
        ("micro", build.version.micro),
        ("minor", build.version.minor),
        ("major", build.version.major),
    ];
    for (key, number) in numbers {
        bytes = replace_values(
            &bytes,
            format!("\"{key}\": ").as_bytes(),
            |byte| byte.is_ascii_digit(),
            number.to_string().as_bytes(),
        );
    }
    // qemu-ga's guest-info has the version as a string.
    let bytes = replace_bytes(
        &bytes,
        format!("\"version\": \"{}\"", QemuVersion::CAPTURED).as_bytes(),
        format!("\"version\": \"{}\"", build.version).as_bytes(),
    );
    replace_values(
        &bytes,
        b"\"package\": \"",
        |byte| byte != b'"',
        build.package.as_bytes(),
    )
}

/// `bytes` with the value after each `key` (the longest run of bytes for which
/// `in_value` holds) replaced by `value`. Bytes are bytes: qemu-ga's raw 0xFF stays.
fn replace_values(
    bytes: &[u8],
    key: &[u8],
    in_value: impl Fn(u8) -> bool,
    value: &[u8],
) -> Vec<u8> {
    let mut result = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(start) = find(rest, key) {
        let value_start = start + key.len();
        let value_end = rest[value_start..]
            .iter()
            .position(|&byte| !in_value(byte))
            .map_or(rest.len(), |end| value_start + end);
        result.extend_from_slice(&rest[..value_start]);
        result.extend_from_slice(value);
        rest = &rest[value_end..];
    }
    result.extend_from_slice(rest);
    result
}

/// `bytes` with every `from` replaced by `to`.
fn replace_bytes(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut result = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(start) = find(rest, from) {
        result.extend_from_slice(&rest[..start]);
        result.extend_from_slice(to);
        rest = &rest[start + from.len()..];
    }
    result.extend_from_slice(rest);
    result
}

/// Where `needle` (not empty) first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// How QEMU 7.2's replies differ from the 10.0.2 captures, beyond the version numbers
/// and the package string: `(what changed, text in the capture, text from 7.2)`, applied
/// by [`captured_as_of`] in this order. Each is a genuine difference between the two
/// releases, seen on the wire (the release that made the change is from QEMU's
/// documentation).
const CAPTURE_TO_7_2: &[(&str, &str, &str)] = &[
    (
        "query-status: 7.2 still has StatusInfo's `singlestep` member (deprecated in 8.1, \
         absent from 10.0.2)",
        "\", \"running\": ",
        "\", \"singlestep\": false, \"running\": ",
    ),
    (
        "query-named-block-nodes: BlockDeviceInfo's `active` member is new in 10.0",
        "\"active\": true, ",
        "",
    ),
    (
        "query-block-jobs: a mirror job's `actively-synced` member is new in 8.2",
        ", \"actively-synced\": false",
        "",
    ),
    (
        "migrate-pause outside postcopy: 10.0.2 also accepts the postcopy-recover state \
         (new in 8.2) and says so",
        "only supported during postcopy-active or postcopy-recover state",
        "only supported during postcopy-active state",
    ),
    (
        "guest-info: guest-network-get-route (new in 9.1) is not a 7.2 command",
        "{\"enabled\": false, \"name\": \"guest-network-get-route\", \"success-response\": true}, ",
        "",
    ),
    (
        "guest-info: guest-get-load (new in 9.1) is not a 7.2 command",
        "{\"enabled\": false, \"name\": \"guest-get-load\", \"success-response\": true}, ",
        "",
    ),
    (
        "guest-info: 7.2 lists guest-get-devices on Linux too (10.0.2 builds it for Windows only)",
        "{\"enabled\": false, \"name\": \"guest-get-osinfo\"",
        "{\"enabled\": false, \"name\": \"guest-get-devices\", \"success-response\": true}, \
         {\"enabled\": false, \"name\": \"guest-get-osinfo\"",
    ),
    (
        "a command disabled by qemu-ga's RPC list: 10.0.2 adds the reason (allow-rpcs is new in 8.0)",
        "has been disabled: the command is not allowed\"",
        "has been disabled\"",
    ),
];

/// Commands of the captured 10.0.2 servers that 7.2 lacks, with the release that added
/// each (from QEMU 10.0.2's QMP reference): qemu-storage-daemon 7.2 offers the 76
/// commands of capture 06 minus these two.
pub const COMMANDS_AFTER_7_2: &[(&str, QemuVersion)] = &[
    ("block-job-change", QemuVersion::new(8, 2, 0)),
    ("blockdev-set-active", QemuVersion::new(10, 0, 0)),
];

/// The commands of `captured` (names from a 10.0.2 capture) that a server of `version`
/// offers: all of them on 10.0.2, all but [`COMMANDS_AFTER_7_2`] on 7.2.
///
/// # Panics
/// For a release the suite does not know ([`QemuVersion::is_known`]).
pub fn captured_commands_as_of<'a>(
    captured: impl IntoIterator<Item = &'a str>,
    version: QemuVersion,
) -> std::collections::BTreeSet<String> {
    assert_known(version);
    captured
        .into_iter()
        .filter(|name| {
            COMMANDS_AFTER_7_2
                .iter()
                .all(|(newer, since)| name != newer || version >= *since)
        })
        .map(str::to_owned)
        .collect()
}

/// Server bytes captured from 10.0.2 as a server of `version` sends them: unchanged on
/// 10.0.2; on 7.2 with every difference of `CAPTURE_TO_7_2` applied. Combine with
/// [`as_sent_by`] for the version numbers and the package string
/// ([`expected_from_capture`]).
///
/// # Panics
/// For a release the suite does not know ([`QemuVersion::is_known`]).
pub fn captured_as_of(bytes: &[u8], version: QemuVersion) -> Vec<u8> {
    assert_known(version);
    if version.is_captured() {
        return bytes.to_vec();
    }
    let mut bytes = bytes.to_vec();
    for (_, captured, old) in CAPTURE_TO_7_2 {
        bytes = replace_bytes(&bytes, captured.as_bytes(), old.as_bytes());
    }
    bytes
}

/// Server bytes captured from 10.0.2 as `build` sends them: [`as_sent_by`], then
/// [`captured_as_of`].
pub fn expected_from_capture(bytes: &[u8], build: &QemuBuild) -> Vec<u8> {
    captured_as_of(&as_sent_by(bytes, build), build.version)
}

/// Fails the test for a release the suite has no expectations for.
pub fn assert_known(version: QemuVersion) {
    assert!(
        version.is_known(),
        "QEMU {version}: the suite knows what QEMU 10.0.2 and 7.2 say, not this release \
         (run scripts/setup.sh, or point QMP_QSD, QMP_QEMU_SYSTEM and QMP_QGA at one of those)"
    );
}

/// Whether this `qemu-ga` has `--allow-rpcs` (8.0 and later; 7.2 has only
/// `--block-rpcs`), asked once from its `--help`.
pub fn agent_has_allow_rpcs() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let program = ServerKind::GuestAgent.program();
        let output = Command::new(&program)
            .arg("--help")
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run {} --help: {error} (run scripts/setup.sh)",
                    program.display()
                )
            });
        String::from_utf8_lossy(&output.stdout).contains("--allow-rpcs")
    })
}

/// Every RPC this `qemu-ga` has (`--block-rpcs=help`), asked once.
pub fn agent_rpcs() -> &'static [String] {
    static RPCS: OnceLock<Vec<String>> = OnceLock::new();
    RPCS.get_or_init(|| {
        let program = ServerKind::GuestAgent.program();
        let output = Command::new(&program)
            .arg("--block-rpcs=help")
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run {} --block-rpcs=help: {error}",
                    program.display()
                )
            });
        let rpcs: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert!(
            DEFAULT_QGA_RPCS
                .iter()
                .all(|rpc| rpcs.iter().any(|known| known == rpc)),
            "{} --block-rpcs=help lists {rpcs:?}, without all of {DEFAULT_QGA_RPCS:?}",
            program.display()
        );
        rpcs
    })
}

/// A [`Launcher`] for `qemu-ga` that enables exactly [`DEFAULT_QGA_RPCS`], on any
/// `qemu-ga` the tests run: `Launcher::new(ServerKind::GuestAgent)`, which passes the
/// policy as `--allow-rpcs` or, to a qemu-ga without it (7.2), as `--block-rpcs` with
/// every other RPC the agent lists. A qemu-ga run by the tests executes on this host, so
/// nothing beyond the harmless default RPCs (sync, ping, info) may be left enabled
/// (conformance_agent checks that on both versions).
pub fn agent_launcher() -> Launcher {
    Launcher::new(ServerKind::GuestAgent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every difference in the table rewrites text that some capture holds, so none is
    /// dead or misspelt.
    #[test]
    fn every_difference_from_7_2_matches_a_capture() {
        let mut captures = Vec::new();
        for entry in std::fs::read_dir(crate::vectors_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "s2c") {
                captures.push(String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned());
            }
        }
        assert!(captures.len() > 20, "{} captures", captures.len());
        for (what, captured, _) in CAPTURE_TO_7_2 {
            assert!(
                captures.iter().any(|capture| capture.contains(captured)),
                "no capture holds {captured:?} ({what})"
            );
        }
        let old = captured_as_of(
            b"{\"return\": {\"status\": \"running\", \"running\": true}}",
            QemuVersion::new(7, 2, 22),
        );
        assert_eq!(
            old,
            b"{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}"
        );
        let same = captured_as_of(
            b"{\"return\": {\"status\": \"running\", \"running\": true}}",
            QemuVersion::CAPTURED,
        );
        assert_eq!(
            same,
            b"{\"return\": {\"status\": \"running\", \"running\": true}}"
        );
        let commands = captured_commands_as_of(
            ["query-version", "block-job-change", "blockdev-set-active"],
            QemuVersion::new(7, 2, 0),
        );
        assert_eq!(commands.into_iter().collect::<Vec<_>>(), ["query-version"]);
        assert_eq!(
            captured_commands_as_of(
                ["block-job-change", "blockdev-set-active"],
                QemuVersion::CAPTURED
            )
            .len(),
            2
        );
    }

    #[test]
    fn versions_parse_from_every_program() {
        let parsed = |text| QemuVersion::parse(text).unwrap();
        assert_eq!(
            parsed("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"),
            QemuVersion::new(7, 2, 22)
        );
        assert_eq!(
            parsed("qemu-storage-daemon version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"),
            QemuVersion::CAPTURED
        );
        assert_eq!(
            parsed("QEMU Guest Agent 7.2.22"),
            QemuVersion::new(7, 2, 22)
        );
        assert_eq!(QemuVersion::parse("QEMU emulator version 10.0"), None);
        assert!(QemuVersion::new(7, 2, 22).is_known());
        assert!(!QemuVersion::new(8, 2, 0).is_known());
        assert!(QemuVersion::CAPTURED.at_least(9, 1));
        assert!(!QemuVersion::new(7, 2, 22).at_least(8, 0));
        assert_eq!(QemuVersion::new(7, 2, 22).to_string(), "7.2.22");
    }

    #[test]
    fn captured_bytes_become_another_builds() {
        let captured = br#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}, "capabilities": ["oob"]}}"#;
        let old = QemuBuild {
            program: PathBuf::from("qemu-storage-daemon"),
            version: QemuVersion::new(7, 2, 22),
            package: "Debian 1:7.2+dfsg-7+deb12u18+b3".into(),
        };
        assert_eq!(
            String::from_utf8(as_sent_by(captured, &old)).unwrap(),
            r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#
        );
        let same = QemuBuild {
            version: QemuVersion::CAPTURED,
            package: "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1".into(),
            ..old.clone()
        };
        assert_eq!(as_sent_by(captured, &same), captured);
        // qemu-ga's sentinel byte survives.
        let sentinel = b"\xff{\"return\": {\"version\": \"10.0.2\"}}\n";
        assert_eq!(
            as_sent_by(sentinel, &old),
            b"\xff{\"return\": {\"version\": \"7.2.22\"}}\n"
        );
        assert_eq!(
            captured_as_of(sentinel, QemuVersion::new(7, 2, 22)),
            sentinel
        );
        let pretty = b"{\r\n    \"QMP\": {\r\n        \"version\": {\r\n            \"qemu\": {\r\n                \"micro\": 2,\r\n                \"minor\": 0,\r\n                \"major\": 10\r\n            },\r\n            \"package\": \"\"\r\n";
        let pretty_old = String::from_utf8(as_sent_by(pretty, &old)).unwrap();
        assert!(pretty_old.contains("\"micro\": 22,\r\n"), "{pretty_old}");
        assert!(pretty_old.contains("\"minor\": 2,\r\n"), "{pretty_old}");
        assert!(pretty_old.contains("\"major\": 7\r\n"), "{pretty_old}");
        assert!(
            pretty_old.contains("\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"\r\n"),
            "{pretty_old}"
        );
    }
}
