//! Dockerfile parse, step model and shell expansion of every word with the build args in effect.
#![no_main]
use ctxbuild::dockerfile::{parse, shell};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(df) = parse(text, "Dockerfile") {
        let _ = df.stages();
        let _ = df.steps(None);
        let env = vec![
            ("A".to_string(), "x".to_string()),
            ("PORT".to_string(), "8080".to_string()),
        ];
        for line in text.lines().take(256) {
            let _ = shell::expand(line, &env, '\\');
            let _ = shell::expand(line, &env, '`');
        }
    }
});
