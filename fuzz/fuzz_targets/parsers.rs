#![no_main]
//! Record and name parsers never panic and round-trip (`leaseq::check::check_parsers`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| leaseq::check::check_parsers(data));
