#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nsq::fuzzing::x509_common_name(data));
