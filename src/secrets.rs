//! Secrets in a build context, recognised by file name and by content.
//!
//! Given a context root and the relative paths of the regular files it sends, [`scan`] says
//! which hold credentials: PEM private keys and Google service-account keys under any name,
//! AWS secret keys and access-key ids, registry tokens in `.npmrc`/`.pypirc`, `.netrc`
//! passwords, docker `config.json` logins, and environment files (`.env`, `.env.local`,
//! `prod.env`). It reads files and returns data; what to tell the user is `check`'s job.
//!
//! Cost is bounded so a big context costs about what listing it does: files that cannot carry a
//! text secret are skipped without being opened — by extension (bytecode, images, archives) or
//! because the walk saw them empty — a known binary signature or a NUL in the first block marks
//! the rest as binary, and a file is read in [`BLOCK`]-sized pieces (one buffer per worker
//! thread) up to [`SCAN_LIMIT`] bytes — a key hidden after 64 KiB of padding is still found.
//! Each file costs three system calls (`openat` by its bare name from its directory's handle,
//! `read`, `close`): the walk's size says when the read reached the end. Files are scanned in
//! parallel on the current rayon pool, a directory's files (up to 64) by one task. Ordinary files are searched only for the markers that are
//! secrets under any name; the `password`/`_auth` markers only in the files whose name gives
//! them that meaning (`.npmrc`, `.pypirc`, `.netrc`).

use aho_corasick::AhoCorasick;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Bytes read at a time.
pub const BLOCK: usize = 64 * 1024;
/// Bytes of one file searched at most (the start of the file).
pub const SCAN_LIMIT: u64 = 16 << 20;
/// Bytes of the previous block kept in front of the next, so a marker split across two reads
/// is still seen whole together with the start of its line.
const OVERLAP: usize = 512;

/// What kind of credential a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// `.env`, `.env.production`, `prod.env` (templates such as `.env.example` excepted).
    EnvFile,
    /// `-----BEGIN … PRIVATE KEY-----`.
    PrivateKey,
    /// A Google service-account key (`"type": "service_account"`).
    ServiceAccountKey,
    /// `aws_secret_access_key = …`.
    AwsSecretKey,
    /// An AWS access-key id (`AKIA` + 16 characters).
    AwsAccessKeyId,
    /// An auth token or password in `.npmrc` or `.pypirc`.
    RegistryToken,
    /// A `password` in `.netrc`.
    Netrc,
    /// Registry logins (`"auths"` with an `"auth"` value) in a docker `config.json`.
    DockerAuth,
}

impl SecretKind {
    /// A noun phrase for messages: "a private key".
    pub fn describe(self) -> &'static str {
        match self {
            SecretKind::EnvFile => "an environment file (.env)",
            SecretKind::PrivateKey => "a private key",
            SecretKind::ServiceAccountKey => "a Google service-account key",
            SecretKind::AwsSecretKey => "an AWS secret access key",
            SecretKind::AwsAccessKeyId => "an AWS access key id",
            SecretKind::RegistryToken => "a package-registry token",
            SecretKind::Netrc => "a .netrc password",
            SecretKind::DockerAuth => "docker registry credentials",
        }
    }
}

/// A secret found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: SecretKind,
    /// 1-based line of the evidence; `None` when the name alone decides (`.env`).
    pub line: Option<u32>,
}

/// A secret found in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFinding {
    /// As given to [`scan`] (relative to the context root).
    pub path: PathBuf,
    pub kind: SecretKind,
    pub line: Option<u32>,
}

/// A regular file of the context to scan: its path relative to the root, and its size as the
/// walk saw it (an `lstat`ed walk, `Detail::Full`: a size of 0 means empty and the file is not
/// opened).
pub type Candidate<P> = (P, u64);

/// Scans the regular files (relative to `root`, with the walk's sizes) in parallel; findings
/// come back in the order of `files`. Files that vanished or cannot be read are skipped: the
/// walk that produced the paths reports unreadable files itself.
pub fn scan<P: AsRef<Path> + Sync>(root: &Path, files: &[Candidate<P>]) -> Vec<SecretFinding> {
    // Every file is opened relative to a handle: no lookup of the root's own path per file,
    // and a root swapped after the walk is not followed.
    let Ok(root_dir) = Handle::open_root(root) else {
        return Vec::new();
    };
    // Names decide first; the files worth reading are grouped by directory, so each is opened
    // by its bare name from its directory's handle (a one-component lookup instead of a walk
    // down from the root per file, which was most of the scan's cost).
    let mut found: Vec<(usize, Found)> = Vec::new();
    let mut dirs: Vec<(&Path, Vec<usize>)> = Vec::new();
    let mut dir_index: HashMap<&Path, usize> = HashMap::new();
    for (i, (p, size)) in files.iter().enumerate() {
        let rel = p.as_ref();
        let Some(name) = rel.file_name() else {
            continue;
        };
        match by_name(name.as_bytes(), *size) {
            ByName::Found(f) => found.push((i, f)),
            ByName::Skip => {}
            ByName::Read(_) => {
                let dir = rel.parent().unwrap_or(Path::new(""));
                let at = *dir_index.entry(dir).or_insert_with(|| {
                    dirs.push((dir, Vec::new()));
                    dirs.len() - 1
                });
                dirs[at].1.push(i);
            }
        }
    }
    // The unit of parallel work: up to DIR_CHUNK files of one directory.
    const DIR_CHUNK: usize = 64;
    let chunks: Vec<(&Path, &[usize])> = dirs
        .iter()
        .flat_map(|(d, ix)| ix.chunks(DIR_CHUNK).map(move |c| (*d, c)))
        .collect();
    let read: Vec<(usize, Found)> = chunks
        .par_iter()
        .flat_map_iter(|&(dir, ix)| {
            // One file alone is opened from the root: a directory handle would not pay.
            let handle = (ix.len() > 1 && !dir.as_os_str().is_empty())
                .then(|| root_dir.open_dir(dir))
                .flatten();
            let root_dir = &root_dir;
            ix.iter().filter_map(move |&i| {
                let (p, size) = &files[i];
                let rel = p.as_ref();
                let name = rel.file_name()?;
                let file = match &handle {
                    Some(h) => h.open_file(Path::new(name)),
                    None => root_dir.open_file(rel),
                }?;
                search(file.take(SCAN_LIMIT), NamedFile::of(name.as_bytes()), *size).map(|f| (i, f))
            })
        })
        .collect();
    found.extend(read);
    found.sort_unstable_by_key(|(i, _)| *i);
    found
        .into_iter()
        .map(|(i, f)| SecretFinding {
            path: files[i].0.as_ref().to_path_buf(),
            kind: f.kind,
            line: f.line,
        })
        .collect()
}

/// What one file holds, judging by `name` (its final component) and its content at `path`.
pub fn scan_file(path: &Path, name: &OsStr) -> Option<Found> {
    let size = std::fs::symlink_metadata(path).ok()?.len();
    let named = match by_name(name.as_bytes(), size) {
        ByName::Found(f) => return Some(f),
        ByName::Skip => return None,
        ByName::Read(named) => named,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = Handle::open_root(dir.unwrap_or(Path::new("."))).ok()?;
    let file = dir.open_file(Path::new(path.file_name()?))?;
    search(file.take(SCAN_LIMIT), named, size)
}

/// What a file's name (and the walk's size) says before it is opened.
enum ByName {
    /// The name alone is the finding (`.env`).
    Found(Found),
    /// Nothing to find: empty, or a format that cannot carry a text credential.
    Skip,
    /// Read it, as this kind of file.
    Read(NamedFile),
}

fn by_name(name: &[u8], size: u64) -> ByName {
    if is_env_file(name) {
        return ByName::Found(Found {
            kind: SecretKind::EnvFile,
            line: None,
        });
    }
    if size == 0 || cannot_hold_text(name) {
        return ByName::Skip;
    }
    ByName::Read(NamedFile::of(name))
}

/// An open directory that files are opened relative to.
struct Handle(std::os::fd::OwnedFd);

impl Handle {
    fn open_root(root: &Path) -> std::io::Result<Handle> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(root)?;
        Ok(Handle(f.into()))
    }

    fn open_at(&self, rel: &Path, flags: libc::c_int) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let c = std::ffi::CString::new(rel.as_os_str().as_bytes()).ok()?;
        // SAFETY: a valid directory descriptor and C string; the new descriptor is ours.
        let fd = unsafe { libc::openat(self.0.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC) };
        // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
        (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }

    /// The directory `rel`, as a handle to open its files from (`O_PATH`: nothing is read
    /// through it, so it costs no permission check on the directory's content).
    fn open_dir(&self, rel: &Path) -> Option<Handle> {
        self.open_at(rel, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .map(Handle)
    }

    /// Opens `rel` for reading: never blocks on a FIFO swapped in after the walk, never follows
    /// a symlink swapped in for the file. No fstat: what is opened is judged by its bytes — a
    /// directory swapped in fails to read (EISDIR), a FIFO reads as empty (no writer), a
    /// device's bytes are not text.
    fn open_file(&self, rel: &Path) -> Option<std::fs::File> {
        self.open_at(rel, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .map(std::fs::File::from)
    }
}

/// `.env`, `.env.<anything>`, `<anything>.env`, except the templates people commit on purpose.
pub fn is_env_file(name: &[u8]) -> bool {
    const TEMPLATES: [&[u8]; 6] = [
        b"example",
        b"sample",
        b"template",
        b"dist",
        b"defaults",
        b"tpl",
    ];
    if name == b".env" {
        return true;
    }
    if let Some(suffix) = name.strip_prefix(b".env.") {
        return !TEMPLATES.contains(&suffix);
    }
    if let Some(stem) = name.strip_suffix(b".env") {
        let stem = stem.strip_prefix(b".").unwrap_or(stem);
        return !stem.is_empty()
            && !TEMPLATES
                .iter()
                .any(|t| stem.eq_ignore_ascii_case(t) || stem.ends_with(&[b".", *t].concat()));
    }
    false
}

/// Files not worth opening: formats that cannot carry a text credential (compiled code, media,
/// archives, fonts), and program source, where a key would be a string literal of a test fixture
/// far more often than a deployment secret, and which makes up most of a Python context's bytes
/// (reading it would cost several times the walk). Skipped without being opened.
fn cannot_hold_text(name: &[u8]) -> bool {
    const BINARY: &[&[u8]] = &[
        b"pyc", b"pyo", b"so", b"dylib", b"dll", b"exe", b"o", b"a", b"class", b"jar", b"whl",
        b"egg", b"zip", b"gz", b"tgz", b"bz2", b"xz", b"zst", b"7z", b"tar", b"png", b"jpg",
        b"jpeg", b"gif", b"bmp", b"ico", b"icns", b"webp", b"woff", b"woff2", b"ttf", b"otf",
        b"eot", b"pdf", b"mp3", b"mp4", b"wav", b"ogg", b"flac", b"mov", b"avi", b"mo", b"sqlite",
        b"db", b"pickle", b"pkl", b"npy", b"npz", b"parquet", b"onnx", b"pt", b"wasm", b"aifc",
        b"aiff", b"au", // Program source.
        b"py", b"pyi", b"pyx", b"pxd", b"c", b"h", b"cc", b"cpp", b"hpp", b"rs", b"go", b"java",
        b"kt", b"swift", b"cs", b"rb", b"php", b"pl", b"lua", b"scala", b"decTest",
    ];
    match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => {
            let ext = &name[i + 1..];
            BINARY.iter().any(|b| ext.eq_ignore_ascii_case(b))
        }
        _ => false,
    }
}

/// Files whose name gives their format, and so what a credential in them looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamedFile {
    Npmrc,
    Pypirc,
    Netrc,
    Other,
}

impl NamedFile {
    fn of(name: &[u8]) -> NamedFile {
        match name {
            b".npmrc" | b"npmrc" => NamedFile::Npmrc,
            b".pypirc" | b"pypirc" => NamedFile::Pypirc,
            b".netrc" | b"_netrc" | b"netrc" => NamedFile::Netrc,
            _ => NamedFile::Other,
        }
    }
}

/// The markers searched, in one pass. Each hit is then confirmed on its line. The first
/// [`GENERAL`] are secrets under any name; the rest only mean one in a file named for them.
const MARKERS: &[&str] = &[
    "PRIVATE KEY-----",
    "service_account",
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "AKIA",
    "\"auths\"",
    "_authToken",
    "_auth",
    "_password",
    "password",
];
const GENERAL: usize = 6;
const M_PEM: usize = 0;
const M_SA: usize = 1;
const M_AWS_SECRET: usize = 2;
const M_AWS_SECRET_UPPER: usize = 3;
const M_AKIA: usize = 4;
const M_AUTHS: usize = 5;
const M_NPM_TOKEN: usize = 6;
const M_NPM_AUTH: usize = 7;
const M_NPM_PASSWORD: usize = 8;
const M_PASSWORD: usize = 9;

/// The automaton for a file: all markers for `.npmrc`/`.pypirc`/`.netrc`, else only the
/// [`GENERAL`] ones — `password` is common in ordinary text and would only cost confirmations
/// that cannot succeed. Pattern ids are indices into [`MARKERS`] either way.
fn markers(named: NamedFile) -> &'static AhoCorasick {
    static ALL: OnceLock<AhoCorasick> = OnceLock::new();
    static ANY_NAME: OnceLock<AhoCorasick> = OnceLock::new();
    // Leftmost-longest: `_authToken` wins over `_auth`, `_password` over `password`, so one
    // non-overlapping pass (which keeps the SIMD prefilter fully effective) sees each marker once.
    let build = |patterns: &[&str]| {
        AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(patterns)
            .expect("fixed patterns")
    };
    match named {
        NamedFile::Other => ANY_NAME.get_or_init(|| build(&MARKERS[..GENERAL])),
        _ => ALL.get_or_init(|| build(MARKERS)),
    }
}

/// Whether `head` (a file's first bytes) starts with the signature of a binary format that
/// carries no text credential: compressed data, archives, images, executables, databases.
/// Catches what the extension does not say (`libfoo.so.1`, `data.bin`, a file with no name
/// extension) before the block is searched.
fn binary_signature(head: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"\x1f\x8b",            // gzip
        b"PK\x03\x04",          // zip, wheel, jar
        b"\x89PNG\r\n\x1a\n",   // PNG
        b"\xff\xd8\xff",        // JPEG
        b"GIF8",                // GIF
        b"\x7fELF",             // ELF
        b"\xcf\xfa\xed\xfe",    // Mach-O
        b"\xfd7zXZ\x00",        // xz
        b"\x28\xb5\x2f\xfd",    // zstd
        b"7z\xbc\xaf\x27\x1c",  // 7-zip
        b"SQLite format 3\x00", // SQLite
        b"\x00asm",             // WebAssembly
        b"%PDF-",               // PDF
        b"RIFF",                // WAV, WebP, AVI
        b"OggS",                // Ogg
        b"wOFF",                // WOFF
        b"wOF2",                // WOFF2
        b"\x93NUMPY",           // NumPy
    ];
    // bzip2: `BZh`, the block size digit, then the block magic (π's digits in BCD).
    let bzip2 = head.len() >= 10
        && head.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && &head[4..10] == b"\x31\x41\x59\x26\x53\x59";
    bzip2 || MAGIC.iter().any(|m| head.starts_with(m))
}

/// Streams `r` block by block through the marker automaton; stops at the first confirmed
/// secret. `size` is the file's size as the walk saw it: a short read that reaches it is the
/// end, without one more `read` to hear so. Memory: one block plus [`OVERLAP`] per thread.
fn search(mut r: impl Read, named: NamedFile, size: u64) -> Option<Found> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let automaton = markers(named);
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        buf.resize(OVERLAP + BLOCK, 0);
        // Bytes of the window that came from the previous block.
        let mut carried = 0usize;
        // Newlines in everything before the window.
        let mut lines_before = 0u32;
        // Whether the docker `"auths"` object was seen (its `"auth"` values may come later).
        let mut auths_seen = false;
        let mut first = true;
        let mut total = 0u64;
        let mut at_end = false;
        loop {
            if at_end {
                return None;
            }
            let (n, eof) = read_full(&mut r, &mut buf[carried..], total, size)?;
            total += n as u64;
            at_end = eof;
            if n == 0 {
                return None;
            }
            let window = &buf[..carried + n];
            if first && (binary_signature(window) || memchr::memchr(0, window).is_some()) {
                return None;
            }
            first = false;
            for m in automaton.find_iter(window) {
                // A marker well inside the carried part was already judged, with context.
                if m.end() + 64 <= carried {
                    continue;
                }
                let kind = confirm(
                    m.pattern().as_usize(),
                    window,
                    m.start(),
                    m.end(),
                    named,
                    &mut auths_seen,
                );
                if let Some(kind) = kind {
                    let line = lines_before
                        + memchr::memchr_iter(b'\n', &window[..m.start()]).count() as u32
                        + 1;
                    return Some(Found {
                        kind,
                        line: Some(line),
                    });
                }
            }
            // Docker's config: the `"auth"` values follow `"auths"`, maybe in a later block.
            if auths_seen {
                if let Some(line) = docker_auth_value(window) {
                    return Some(Found {
                        kind: SecretKind::DockerAuth,
                        line: Some(lines_before + line),
                    });
                }
            }
            let keep = OVERLAP.min(window.len());
            let drop = window.len() - keep;
            lines_before += memchr::memchr_iter(b'\n', &window[..drop]).count() as u32;
            buf.copy_within(drop..drop + keep, 0);
            carried = keep;
        }
    })
}

/// Reads until `buf` is full or the end; `None` on an error. `done` bytes were read before and
/// the file held `size`: a short read that brings the total to `size` is taken as the end
/// (`true` in the answer), which saves the `read` that would return 0.
fn read_full(r: &mut impl Read, buf: &mut [u8], done: u64, size: u64) -> Option<(usize, bool)> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => return Some((n, true)),
            Ok(k) => {
                n += k;
                if n < buf.len() && done + n as u64 >= size {
                    return Some((n, true));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some((n, false))
}

/// The line around `start..end` in `window` (as far as the window reaches).
fn line_of(window: &[u8], start: usize, end: usize) -> (&[u8], &[u8]) {
    let from = memchr::memrchr(b'\n', &window[..start]).map_or(0, |i| i + 1);
    let to = memchr::memchr(b'\n', &window[end..]).map_or(window.len(), |i| end + i);
    (&window[from..start], &window[end..to])
}

/// Whether the marker `pattern` at `start..end` is a real secret, and which.
fn confirm(
    pattern: usize,
    window: &[u8],
    start: usize,
    end: usize,
    named: NamedFile,
    auths_seen: &mut bool,
) -> Option<SecretKind> {
    let (before, after) = line_of(window, start, end);
    match pattern {
        M_PEM => {
            // The armour line itself: nothing after the marker but the end of the line (the
            // body follows), or an escaped `\n` and the body (a key inside JSON or YAML). Prose
            // and code that only name the marker ("… '-----BEGIN RSA PRIVATE KEY-----' and")
            // are not keys.
            let body_follows = match trim_end(after) {
                [] => true,
                [b'\\', b'n', rest @ ..] => rest
                    .first()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'),
                _ => false,
            };
            (contains(before, b"-----BEGIN ") && body_follows).then_some(SecretKind::PrivateKey)
        }
        M_SA => {
            // `"type": "service_account"`: the value right after `"type"` and a colon.
            let b = trim_end(before);
            let b = b.strip_suffix(b"\"")?;
            let b = trim_end(b).strip_suffix(b":")?;
            let ok = trim_end(b).ends_with(b"\"type\"") && after.first() == Some(&b'"');
            ok.then_some(SecretKind::ServiceAccountKey)
        }
        M_AWS_SECRET | M_AWS_SECRET_UPPER => {
            // `aws_secret_access_key = VALUE` / `AWS_SECRET_ACCESS_KEY=VALUE`, a 40-char value.
            let v = assigned_value(after)?;
            let v = v.strip_prefix(b"\"").unwrap_or(v);
            let len = v
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'/' || **b == b'+')
                .count();
            (len >= 40).then_some(SecretKind::AwsSecretKey)
        }
        M_AKIA => {
            let boundary = |b: Option<&u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric());
            let id = window.get(end..end + 16)?;
            let ok = boundary(before.last())
                && id
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && boundary(window.get(end + 16))
                && !contains(id, b"EXAMPLE");
            ok.then_some(SecretKind::AwsAccessKeyId)
        }
        M_AUTHS => {
            *auths_seen = true;
            None
        }
        M_NPM_TOKEN | M_NPM_AUTH | M_NPM_PASSWORD if named == NamedFile::Npmrc => {
            let v = assigned_value(after)?;
            (!v.is_empty()).then_some(SecretKind::RegistryToken)
        }
        M_PASSWORD if named == NamedFile::Pypirc => {
            // An ini key at the start of the line: `password = …` / `password: …`.
            let at_start = trim_end(before).is_empty();
            let v = assigned_value(after)?;
            (at_start && !v.is_empty()).then_some(SecretKind::RegistryToken)
        }
        M_PASSWORD if named == NamedFile::Netrc => {
            // `machine h login u password p`: the token, then whitespace and a value.
            let token_start = before.last().is_none_or(|b| b.is_ascii_whitespace());
            let value_follows = after.first().is_some_and(|b| b.is_ascii_whitespace())
                && after.iter().any(|b| !b.is_ascii_whitespace());
            (token_start && value_follows).then_some(SecretKind::Netrc)
        }
        _ => None,
    }
}

/// The value in `after` when it starts with `=` or `:` (spaces around allowed), trimmed.
fn assigned_value(after: &[u8]) -> Option<&[u8]> {
    let a = trim_start(after);
    let a = a.strip_prefix(b"=").or_else(|| a.strip_prefix(b":"))?;
    Some(trim_end(trim_start(a)))
}

/// `"auth": "<non-empty>"` in `window`: the line number (1-based, within the window).
fn docker_auth_value(window: &[u8]) -> Option<u32> {
    for i in memchr::memmem::find_iter(window, b"\"auth\"") {
        let rest = trim_start(&window[i + 6..]);
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        let rest = trim_start(rest);
        if rest.starts_with(b"\"") && rest.get(1).is_some_and(|&b| b != b'"') {
            return Some(memchr::memchr_iter(b'\n', &window[..i]).count() as u32 + 1);
        }
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

fn trim_start(s: &[u8]) -> &[u8] {
    let i = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    &s[i..]
}

fn trim_end(s: &[u8]) -> &[u8] {
    let i = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..i]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str, content: &[u8]) -> Option<Found> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(name);
        std::fs::write(&p, content).unwrap();
        scan_file(&p, OsStr::new(name))
    }

    fn kind(name: &str, content: &str) -> Option<SecretKind> {
        find(name, content.as_bytes()).map(|f| f.kind)
    }

    const PEM: &str =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";
    const SA: &str = "{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\",\n  \"private_key_id\": \"abc\"\n}\n";

    #[test]
    fn private_keys_under_any_name() {
        for name in ["private.txt", "server.crt", "notes", "key.pem", "README.md"] {
            assert_eq!(kind(name, PEM), Some(SecretKind::PrivateKey), "{name}");
        }
        assert_eq!(
            find("x.txt", format!("a\nb\n{PEM}").as_bytes())
                .unwrap()
                .line,
            Some(3)
        );
        let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n";
        assert_eq!(kind("deploy", openssh), Some(SecretKind::PrivateKey));
        // A certificate or a public key is not a secret.
        assert_eq!(
            kind("server.crt", "-----BEGIN CERTIFICATE-----\nMII\n"),
            None
        );
        assert_eq!(kind("k.pub", "-----BEGIN PUBLIC KEY-----\nMII\n"), None);
        // Prose and code that only name the marker are not keys.
        assert_eq!(
            kind(
                "ssh.txt",
                "START = b\"-----BEGIN OPENSSH PRIVATE KEY-----\"\n"
            ),
            None
        );
        assert_eq!(
            kind(
                "doc.txt",
                "when your file has '-----BEGIN RSA PRIVATE KEY-----' and\n"
            ),
            None
        );
        // Inside JSON, with escaped newlines.
        assert_eq!(
            kind("x.json", "{\"k\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvQ\\n-----END PRIVATE KEY-----\\n\"}\n"),
            Some(SecretKind::PrivateKey)
        );
        assert_eq!(
            kind("doc.txt", "look for 'PRIVATE KEY-----' markers\n"),
            None
        );
    }

    #[test]
    fn service_account_under_any_name_and_after_64_kib() {
        assert_eq!(kind("creds.txt", SA), Some(SecretKind::ServiceAccountKey));
        assert_eq!(kind("data", SA), Some(SecretKind::ServiceAccountKey));
        let padded = format!(
            "{{{}\n\"x\": 1,\n\"type\": \"service_account\"\n}}\n",
            " ".repeat(200_000)
        );
        let f = find("blob.json", padded.as_bytes()).unwrap();
        assert_eq!((f.kind, f.line), (SecretKind::ServiceAccountKey, Some(3)));
        // The marker split across two reads is still found.
        for shift in [BLOCK - 10, BLOCK - 3, BLOCK + OVERLAP - 5] {
            let mut s = "\n".repeat(shift);
            s.push_str("\"type\": \"service_account\"\n");
            assert_eq!(
                kind("f.json", &s),
                Some(SecretKind::ServiceAccountKey),
                "{shift}"
            );
        }
        assert_eq!(kind("u.json", "{\"type\": \"authorized_user\"}"), None);
        assert_eq!(kind("doc.yaml", "kind = 'service_account'\n"), None);
    }

    #[test]
    fn aws_credentials() {
        let ini = "[default]\naws_access_key_id = AKIAIOSFODNN7REALKEY\naws_secret_access_key = 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\n";
        let f = find("credentials", ini.as_bytes()).unwrap();
        assert_eq!((f.kind, f.line), (SecretKind::AwsAccessKeyId, Some(2)));
        assert_eq!(
            kind(
                "deploy.sh",
                "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz\n"
            ),
            Some(SecretKind::AwsSecretKey)
        );
        assert_eq!(
            kind("conf.yaml", "id: AKIAZZZZZZZZZZZZZZZZ\n"),
            Some(SecretKind::AwsAccessKeyId)
        );
        // AWS's documented example id, a longer token, and a bare mention are not.
        assert_eq!(kind("docs.txt", "AKIAIOSFODNN7EXAMPLE\n"), None);
        assert_eq!(
            kind("docs.txt", "Credential=AKIAEXAMPLEPBUMBC3GA%2F\n"),
            None
        );
        assert_eq!(kind("x.txt", "AKIAZZZZZZZZZZZZZZZZZZZ\n"), None);
        assert_eq!(kind("x.sh", "os.environ['AWS_SECRET_ACCESS_KEY']\n"), None);
    }

    #[test]
    fn registry_tokens_netrc_and_docker_logins() {
        assert_eq!(
            kind(".npmrc", "//registry.npmjs.org/:_authToken=npm_abcdef\n"),
            Some(SecretKind::RegistryToken)
        );
        assert_eq!(
            kind(".npmrc", "registry=https://registry.npmjs.org/\n"),
            None
        );
        assert_eq!(
            kind(
                ".pypirc",
                "[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmc\n"
            ),
            Some(SecretKind::RegistryToken)
        );
        assert_eq!(kind(".pypirc", "[pypi]\nusername = me\n"), None);
        assert_eq!(
            kind(".netrc", "machine example.com login me password s3cret\n"),
            Some(SecretKind::Netrc)
        );
        assert_eq!(kind(".netrc", "machine example.com login me\n"), None);
        let docker = "{\n  \"auths\": {\n    \"ghcr.io\": {\n      \"auth\": \"dXNlcjpwYXNz\"\n    }\n  }\n}\n";
        let f = find("config.json", docker.as_bytes()).unwrap();
        assert_eq!((f.kind, f.line), (SecretKind::DockerAuth, Some(4)));
        assert_eq!(
            kind(
                "config.json",
                "{\"auths\": {\"ghcr.io\": {}}, \"credsStore\": \"pass\"}"
            ),
            None
        );
    }

    #[test]
    fn env_file_names() {
        for yes in [
            ".env",
            ".env.local",
            ".env.production",
            "prod.env",
            ".prod.env",
        ] {
            assert!(is_env_file(yes.as_bytes()), "{yes}");
        }
        for no in [
            ".env.example",
            "example.env",
            ".env.sample",
            "env",
            ".envrc",
            ".venv",
            "sample.env",
            "x.env.example",
        ] {
            assert!(!is_env_file(no.as_bytes()), "{no}");
        }
        assert_eq!(kind("prod.env", ""), Some(SecretKind::EnvFile));
    }

    #[test]
    fn binaries_are_skipped() {
        let mut bin = b"\x00\x01".to_vec();
        bin.extend_from_slice(PEM.as_bytes());
        assert_eq!(find("blob", &bin), None, "NUL in the first block");
        assert_eq!(kind("m.cpython-312.pyc", PEM), None, "skipped by extension");
        assert_eq!(
            kind("fixtures.py", PEM),
            None,
            "program source is not opened"
        );
    }

    #[test]
    fn binary_formats_are_known_by_their_signature() {
        // No NUL in the first block and a name that says nothing: the signature decides.
        for magic in [
            &b"\x1f\x8b\x08"[..],
            b"PK\x03\x04",
            b"%PDF-1.7\n",
            b"\x7fELF\x02",
        ] {
            let mut data = magic.to_vec();
            data.extend_from_slice(b"\n");
            data.extend_from_slice(PEM.as_bytes());
            assert_eq!(find("blob", &data), None, "{magic:?}");
        }
        // Text that merely starts like one is still read.
        let text = format!("BZh is a prefix\n{PEM}");
        assert_eq!(kind("notes", &text), Some(SecretKind::PrivateKey));
        let bz = b"BZh91AY&SY".to_vec();
        assert!(binary_signature(&bz));
        assert!(!binary_signature(b"BZh9 not bzip2"));
    }

    #[test]
    fn the_walks_size_decides_what_is_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("key.txt"), PEM).unwrap();
        // Seen empty by the walk: not opened at all.
        assert!(scan(d.path(), &[("key.txt", 0)]).is_empty());
        // Grown since the walk: the whole file is still read (the size only ends a short read).
        let got = scan(d.path(), &[("key.txt", 5)]);
        assert_eq!(got.len(), 1);
        // Across several blocks, the end found by size or by a zero read alike.
        let big = format!("{}\n{SA}", "x".repeat(3 * BLOCK + 17));
        std::fs::write(d.path().join("big"), &big).unwrap();
        for size in [big.len() as u64, 1, u64::MAX] {
            let got = scan(d.path(), &[("big", size)]);
            assert_eq!(got[0].kind, SecretKind::ServiceAccountKey, "{size}");
            assert_eq!(got[0].line, Some(3), "{size}");
        }
    }

    #[test]
    fn a_symlink_in_place_of_a_file_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("id_rsa"), PEM).unwrap();
        std::os::unix::fs::symlink(outside.path().join("id_rsa"), d.path().join("k.txt")).unwrap();
        assert!(scan(d.path(), &[("k.txt", PEM.len() as u64)]).is_empty());
        // A root that is not a directory scans nothing (and does not fail).
        assert!(scan(&d.path().join("k.txt"), &[("x", 1)]).is_empty());
    }

    #[test]
    fn files_of_one_directory_are_opened_from_its_handle_in_order() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("id_rsa"), PEM).unwrap();
        std::fs::create_dir_all(d.path().join("sub/deeper")).unwrap();
        let mut files: Vec<(PathBuf, u64)> = Vec::new();
        // More files than one task takes, so the directory is split between tasks.
        for i in 0..150 {
            let rel = PathBuf::from(format!("sub/f{i:03}.txt"));
            let body = if i % 50 == 7 { PEM } else { "plain\n" };
            std::fs::write(d.path().join(&rel), body).unwrap();
            files.push((rel, body.len() as u64));
            if i == 60 {
                std::fs::write(d.path().join("sub/deeper/sa"), SA).unwrap();
                files.push(("sub/deeper/sa".into(), SA.len() as u64));
            }
        }
        // A link in place of a file is not followed from a directory's handle either.
        std::os::unix::fs::symlink(outside.path().join("id_rsa"), d.path().join("sub/link"))
            .unwrap();
        files.push(("sub/link".into(), PEM.len() as u64));
        let got: Vec<(String, SecretKind)> = scan(d.path(), &files)
            .into_iter()
            .map(|f| (f.path.display().to_string(), f.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("sub/f007.txt".to_string(), SecretKind::PrivateKey),
                ("sub/f057.txt".to_string(), SecretKind::PrivateKey),
                ("sub/deeper/sa".to_string(), SecretKind::ServiceAccountKey),
                ("sub/f107.txt".to_string(), SecretKind::PrivateKey),
            ]
        );
    }

    #[test]
    fn scan_keeps_order_and_skips_missing_and_fifos() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), PEM).unwrap();
        std::fs::write(d.path().join("b.txt"), "nothing\n").unwrap();
        std::fs::write(d.path().join("c"), SA).unwrap();
        let fifo = d.path().join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Sizes as a walk saw them; the FIFO's is a regular file's size swapped for a FIFO.
        let files = [
            ("c", SA.len() as u64),
            ("a.txt", PEM.len() as u64),
            ("b.txt", 8),
            ("gone", 10),
            ("pipe", 100),
        ];
        let got = scan(d.path(), &files);
        let kinds: Vec<(&str, SecretKind)> = got
            .iter()
            .map(|f| (f.path.to_str().unwrap(), f.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("c", SecretKind::ServiceAccountKey),
                ("a.txt", SecretKind::PrivateKey)
            ]
        );
    }
}
