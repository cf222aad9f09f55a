//! Measures the secret scan on a context: walks it as `ctxbuild ls` does, then scans every
//! regular file it sends with `ctxbuild::secrets::scan`, and prints the findings and timings.
//! Used by `scripts/bench-secrets.sh` to compare against `ctxbuild ls` on the CPython corpus.
//!
//! Usage: cargo run --release --example secrets_scan -- DIR

use ctxbuild::context::{self, ContextOptions, EntryKind};
use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: secrets_scan DIR");
    let t0 = Instant::now();
    let ctx = context::scan(&ContextOptions::new(&dir)).expect("scan the context");
    let files: Vec<_> = ctx
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.path.clone())
        .collect();
    let walked = t0.elapsed();
    let found = ctxbuild::secrets::scan(&ctx.root, &files);
    let scanned = t0.elapsed() - walked;
    for f in &found {
        let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
        println!("{}{line}\t{}", f.path.display(), f.kind.describe());
    }
    eprintln!(
        "{} files, walk {:.3} s, secret scan {:.3} s, {} finding(s)",
        files.len(),
        walked.as_secs_f64(),
        scanned.as_secs_f64(),
        found.len()
    );
}
