//! Colours and units: the one place that styles text and formats byte counts for people.

/// `s` in `style` when colour is on.
pub fn paint(color: bool, s: &str, style: console::Style) -> String {
    if color {
        style.force_styling(true).apply_to(s).to_string()
    } else {
        s.to_string()
    }
}

/// Bytes for people, the one formatter every command uses: 1000-based like the docker CLI
/// ("191MB" there, "191 MB" here).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.2} {}", UNITS[u])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// `1 file`, `2 files`, `2 directories`, `1 bytecode entry`, `0 bytecode entries`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        return format!("1 {word}");
    }
    // A consonant and `y`: `entry` → `entries` (but `day` → `days`).
    let mut rev = word.chars().rev();
    match (rev.next(), rev.next()) {
        (Some('y'), Some(c)) if !"aeiou".contains(c) => {
            format!("{n} {}ies", &word[..word.len() - 1])
        }
        _ => format!("{n} {word}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_the_docker_cli() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1_982_485), "1.98 MB");
        assert_eq!(bytes(191_000_000), "191 MB");
        assert_eq!(bytes(12_345), "12.3 kB");
        assert_eq!(plural(1, "directory"), "1 directory");
        assert_eq!(plural(2, "directory"), "2 directories");
        assert_eq!(plural(0, "file"), "0 files");
        assert_eq!(plural(1, "bytecode entry"), "1 bytecode entry");
        assert_eq!(plural(212, "bytecode entry"), "212 bytecode entries");
        assert_eq!(plural(2, "key"), "2 keys");
    }
}
