#![no_main]
//! The simulated-NFS invariants (`leaseq::check::check_nfs_model`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| leaseq::check::check_nfs_model(data));
