//! Checks `-t` image references and `--platform` values before a build, with the grammar the
//! engine applies (docker/distribution's reference grammar, containerd's platform specifiers),
//! so bad input fails before any upload instead of after a build, half tagged.
//!
//! Only syntax: whether a registry or platform is reachable or supported is the engine's call.

use crate::diagnostics::Diagnose;
use crate::diagnostics::ErrorClass;

/// A `-t` or `--platform` value the engine would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("-t `{value}` is not a valid image reference: {why}")]
    Tag { value: String, why: String },
    #[error("--platform `{value}` is not a valid platform: {why}")]
    Platform { value: String, why: String },
}

impl Diagnose for InputError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            InputError::Tag { .. } => "fix the -t value: [HOST[:PORT]/]name[/name…][:TAG][@DIGEST], name in lowercase letters, digits and . _ -, e.g. -t registry.local:5000/team/api:1.2".into(),
            InputError::Platform { .. } => "fix the --platform value: OS[/ARCH[/VARIANT]], e.g. --platform linux/amd64 or linux/arm64/v8".into(),
        })
    }
    fn class(&self) -> ErrorClass {
        ErrorClass::Failed
    }
}

/// Checks one image reference: `[domain[:port]/]path[:tag][@digest]`.
pub fn check_tag(value: &str) -> Result<(), InputError> {
    reference_problem(value).map_or(Ok(()), |why| {
        Err(InputError::Tag {
            value: value.to_string(),
            why,
        })
    })
}

fn reference_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("it is empty".into());
    }
    let (rest, digest) = match value.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (value, None),
    };
    if let Some(d) = digest {
        if !is_digest(d) {
            return Some(format!(
                "`{d}` is not a digest (ALGORITHM:HEX, e.g. sha256:<64 hex digits>)"
            ));
        }
    }
    // A tag is the part after the last `:` that follows the last `/` (a `:` before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        if !is_tag(t) {
            return Some(format!(
                "tag `{t}` must be 1 to 128 letters, digits, _ . or -, not starting with . or -"
            ));
        }
    }
    if name.is_empty() {
        return Some("the repository name is empty".into());
    }
    if name.len() > 255 {
        return Some("the repository name is longer than 255 characters".into());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry host when it looks like one, as the docker CLI decides.
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase())
        {
            if !is_domain(first) {
                return Some(format!("`{first}` is not a registry host[:port]"));
            }
            parts.remove(0);
        }
    }
    for p in parts {
        if p.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some("repository names must be lowercase".into());
        }
        if !is_path_component(p) {
            return Some(format!(
                "`{p}` is not a name component (lowercase letters and digits, separated by . _ __ or -)"
            ));
        }
    }
    None
}

/// `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host(.host)*(:port)?`, each host label `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`.
fn is_domain(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*([+._-][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
fn is_digest(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['+', '.', '_', '-']).all(|c| {
        c.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Operating systems and architectures a lone `--platform WORD` may name (Go's GOOS/GOARCH
/// and the aliases containerd normalizes).
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
    "macos",
];
const KNOWN_ARCH: &[&str] = &[
    "386",
    "i386",
    "amd64",
    "x86_64",
    "x86-64",
    "amd64p32",
    "arm",
    "armhf",
    "armel",
    "armbe",
    "arm64",
    "aarch64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// Checks a platform specifier: `os[/arch[/variant]]`, each part `[A-Za-z0-9_-]+`; a lone
/// word must be a known OS or architecture, as containerd requires.
pub fn check_platform(value: &str) -> Result<(), InputError> {
    let err = |why: String| {
        Err(InputError::Platform {
            value: value.to_string(),
            why,
        })
    };
    let parts: Vec<&str> = value.split('/').collect();
    if parts.len() > 3 {
        return err("at most three parts, OS/ARCH/VARIANT".into());
    }
    for p in &parts {
        if p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return err(format!("`{p}` must be letters, digits, _ or -"));
        }
    }
    if parts.len() == 1 {
        let w = parts[0].to_ascii_lowercase();
        if !KNOWN_OS.contains(&w.as_str()) && !KNOWN_ARCH.contains(&w.as_str()) {
            return err("unknown operating system or architecture".into());
        }
    }
    Ok(())
}

/// The registry host of an image reference, as the Docker CLI decides it: the first path
/// component if it has a `.` or `:` or is `localhost`, else Docker Hub (`docker.io`).
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_the_docker_grammar() {
        for ok in [
            "rv:x",
            "busybox",
            "ctxbuild/demo:latest-build",
            "localhost:5000/a/b:1.0",
            "127.0.0.1:5000/team/api",
            "registry.example.com/a__b/c-d--e.f:V_1.2-rc",
            "Host/name",
            "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a:t@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_tag(ok), Ok(()), "{ok}");
        }
        for bad in [
            "Bad Tag",
            "",
            "UPPER:1",
            "a:",
            "a:.x",
            ":x",
            "a/-b",
            "a//b",
            "a_-b",
            "a@sha256:short",
            "host:port/x",
            &format!("a:{}", "x".repeat(129)),
        ] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
        let e = check_tag("Bad Tag").unwrap_err();
        assert!(e.to_string().starts_with("-t `Bad Tag`"), "{e}");
        assert_eq!(e.class(), ErrorClass::Failed);
        assert!(e.hint().unwrap().contains("-t"));
    }

    #[test]
    fn platforms_are_os_arch_variant() {
        for ok in [
            "linux/amd64",
            "linux/arm/v7",
            "linux",
            "arm64",
            "windows/amd64",
        ] {
            assert_eq!(check_platform(ok), Ok(()), "{ok}");
        }
        for bad in ["bogus", "", "linux/", "linux/amd64/v8/x", "linux/am d64"] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
        let e = check_platform("bogus").unwrap_err();
        assert!(e.hint().unwrap().contains("--platform"));
        assert_eq!(e.class(), ErrorClass::Failed);
    }
}
