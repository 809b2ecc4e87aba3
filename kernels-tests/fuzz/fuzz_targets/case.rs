#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hebb_fuzz::case(data));
