//! `ctxbuild.toml`: parse and validate arbitrary text; errors must carry positions, never panic.
#![no_main]
use ctxbuild::service::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(std::path::Path::new("/nonexistent/ctxbuild.toml"), text);
    }
});
