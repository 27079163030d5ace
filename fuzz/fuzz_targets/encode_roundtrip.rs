//! Fuzz target `encode_roundtrip`: see `fuzz/README.md` and the module `qmp_fuzz::encode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qmp_fuzz::check_target("encode_roundtrip", data);
});
