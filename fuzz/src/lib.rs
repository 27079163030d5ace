//! The invariant checks behind the fuzz targets, shared with the replay tests in
//! `core/tests/properties.rs` (which include these files by path), so a crashing input
//! kept under `fuzz/regressions/` is replayed through exactly the same checks by
//! `cargo test --workspace`.
//!
//! Every check panics on a violated invariant; libFuzzer reports a panic as a crash.

pub mod encode;
pub mod framer;
pub mod json_checks;
pub mod reference;
pub mod script;
pub mod session;

/// Runs the check of the fuzz target `target` on `data`. Returns `false` for an unknown
/// target name.
pub fn check_target(target: &str, data: &[u8]) -> bool {
    match target {
        "framer" => framer::check(data),
        "classify" => json_checks::check_classify(data),
        "client_session" => session::check(data, session::Mode::Qmp),
        "guest_agent" => session::check(data, session::Mode::GuestAgent),
        "encode_roundtrip" => encode::check(data),
        _ => return false,
    }
    true
}

/// The fuzz targets, by name.
pub const TARGETS: [&str; 5] = [
    "framer",
    "classify",
    "client_session",
    "guest_agent",
    "encode_roundtrip",
];
