//! Fuzz target `framer`: see `fuzz/README.md` and the module `qmp_fuzz::framer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qmp_fuzz::check_target("framer", data);
});
