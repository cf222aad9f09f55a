//! The engine's NDJSON build stream decoder: arbitrary lines, in order, then the end of stream.
#![no_main]
use ctxbuild::engine::events::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut d = Decoder::new();
    for line in text.split('\n') {
        let _ = d.feed_json(line);
    }
    let _ = d.finish();
});
