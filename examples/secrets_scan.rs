//! Measures the secret scan on a context: walks it as `ctxbuild ls` does, then scans every
//! regular file it sends with `ctxbuild::secrets::scan`, and prints the findings and the wall and
//! CPU (user + system, all threads) time of each stage — the scan's CPU over the walk's is the
//! ratio issue 12 bounds. Used by `scripts/bench-secrets.sh` on the CPython corpus.
//!
//! Usage: cargo run --release --example secrets_scan -- DIR [REPEAT]

use ctxbuild::context::{self, ContextOptions, Detail, EntryKind};
use std::time::{Duration, Instant};

/// CPU time of this process so far (every thread), from `getrusage`.
fn cpu() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct; valid out-pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: secrets_scan DIR [REPEAT]");
    let repeat: u32 = args
        .next()
        .map_or(1, |r| r.parse().expect("REPEAT is a number"));
    let (mut walk_wall, mut walk_cpu, mut scan_wall, mut scan_cpu) = Default::default();
    let mut found = Vec::new();
    let mut files = Vec::new();
    for _ in 0..repeat {
        let (t0, c0) = (Instant::now(), cpu());
        let ctx = context::scan_with(&ContextOptions::new(&dir), Detail::NamesOnly)
            .expect("scan the context");
        let (t1, c1) = (Instant::now(), cpu());
        // Sizes as check's walk has them (it lstats every entry); taken outside the timing.
        files = ctx
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| {
                let size = std::fs::symlink_metadata(ctx.root.join(&e.path)).map_or(1, |m| m.len());
                (e.path.clone(), size)
            })
            .collect();
        let (t2, c2) = (Instant::now(), cpu());
        found = ctxbuild::secrets::scan(&ctx.root, &files);
        let (t3, c3) = (Instant::now(), cpu());
        walk_wall += t1 - t0;
        walk_cpu += c1 - c0;
        scan_wall += t3 - t2;
        scan_cpu += c3 - c2;
    }
    for f in &found {
        let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
        println!("{}{line}\t{}", f.path.display(), f.kind.describe());
    }
    let per = |d: Duration| d.as_secs_f64() / f64::from(repeat);
    eprintln!(
        "{} files, {} finding(s); per run of {repeat}: walk {:.3} s wall {:.3} s cpu, secret scan {:.3} s wall {:.3} s cpu; scan/walk cpu {:.2}",
        files.len(),
        found.len(),
        per(walk_wall),
        per(walk_cpu),
        per(scan_wall),
        per(scan_cpu),
        scan_cpu.as_secs_f64() / walk_cpu.as_secs_f64(),
    );
}
