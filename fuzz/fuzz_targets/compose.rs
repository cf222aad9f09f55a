//! Compose YAML: the loader ctxbuild's compose checks read files with.
#![no_main]
use ctxbuild::check::compose;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = compose::parse(text);
    }
});
