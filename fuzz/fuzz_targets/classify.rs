//! Fuzz target `classify`: see `fuzz/README.md` and the module `qmp_fuzz::json_checks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qmp_fuzz::check_target("classify", data);
});
