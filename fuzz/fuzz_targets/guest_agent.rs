//! Fuzz target `guest_agent`: see `fuzz/README.md` and the module `qmp_fuzz::session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qmp_fuzz::check_target("guest_agent", data);
});
