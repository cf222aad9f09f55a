//! `.dockerignore` parse + match: any bytes as the file, then match paths derived from the input.
#![no_main]
use ctxbuild::context::dockerignore::Matcher;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line's bytes double as paths to match, so matching sees input-shaped paths.
    if let Ok(m) = Matcher::parse(data, ".dockerignore") {
        for line in data.split(|&b| b == b'\n').take(64) {
            let _ = m.is_excluded(line);
            let _ = m.matches_or_parent_matches(line);
        }
        let _ = m.is_excluded(b"a/b/c.pyc");
    }
});
