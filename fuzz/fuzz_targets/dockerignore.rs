//! `.dockerignore` parse + match: any bytes as the file, then match paths derived from the input.
#![no_main]
use ctxbuild::context::dockerignore::Matcher;
use libfuzzer_sys::fuzz_target;

/// Lines of the input parsed as patterns. Each wildcard pattern compiles a regexp (about half a
/// millisecond under ASAN), so a 4 KiB input of short patterns took ~350 ms per run and the
/// target crawled at a few hundred runs/s. Even at 32 patterns it ran at ~1,500 runs/s without
/// a sanitizer, the regexp compiler being nearly all of the time; 8 patterns still exercise
/// every pattern form and how exclusions and re-inclusions combine (the corpus keeps the
/// longer inputs: only their first lines count).
const PATTERNS: usize = 8;
/// Lines also matched as paths: each is matched against every pattern at every ancestor.
const PATHS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let end = data
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(PATTERNS - 1)
        .map_or(data.len(), |(i, _)| i);
    let text = &data[..end];
    if let Ok(m) = Matcher::parse(text, ".dockerignore") {
        for line in data.split(|&b| b == b'\n').take(PATHS) {
            let _ = m.is_excluded(line);
            let _ = m.matches_or_parent_matches(line);
        }
        let _ = m.is_excluded(b"a/b/c.pyc");
    }
});
