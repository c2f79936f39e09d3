#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    miniloki::fuzz::otlp_proto(data);
});
