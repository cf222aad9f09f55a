//! The service's `env_file` (ctxbuild.toml): `KEY=VALUE` lines passed to the smoke container,
//! as Cloud Run passes a deploy's environment variables and secrets — never baked into an image.
//!
//! The format is Docker's `--env-file` with the usual `.env` conveniences: blank lines and `#`
//! comments are skipped, an `export ` prefix is allowed, and one pair of matching quotes around
//! the value is removed. No variable expansion: the value is what the file says.

use crate::fsutil;
use std::path::Path;

/// Why an env file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("cannot read the env_file: {0}")]
    Read(#[from] fsutil::ReadError),
    #[error("{file}:{line}: `{text}` is not KEY=VALUE")]
    Syntax {
        file: String,
        line: usize,
        text: String,
    },
}

impl crate::diagnostics::Diagnose for EnvFileError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            EnvFileError::Read(_) => {
                "`env_file` is relative to the directory of ctxbuild.toml; create it or remove the key".into()
            }
            EnvFileError::Syntax { .. } => {
                "write one NAME=value per line (a name of letters, digits and _; # starts a comment)"
                    .into()
            }
        })
    }
}

/// Reads and parses `path`, shown as `shown` in errors.
pub fn read(path: &Path, shown: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    parse(&fsutil::read_text(path)?, shown)
}

/// Parses the text of an env file.
pub fn parse(text: &str, shown: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let bad = || EnvFileError::Syntax {
            file: shown.to_string(),
            line: i + 1,
            text: raw.chars().take(80).collect(),
        };
        let (key, value) = line.split_once('=').ok_or_else(bad)?;
        let key = key.trim_end();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(bad());
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| {
                value
                    .strip_prefix(*q)
                    .and_then(|v| v.strip_suffix(*q))
                    .filter(|_| value.len() >= 2)
            })
            .unwrap_or(value);
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_comments_export_and_quotes() {
        let text = "# db\nDATABASE_URL=postgres://u:p@db/x\n\nexport API_KEY = 'abc=def'\nEMPTY=\nQUOTED=\"a b\"\n";
        assert_eq!(
            parse(text, ".env.smoke").unwrap(),
            vec![
                ("DATABASE_URL".into(), "postgres://u:p@db/x".into()),
                ("API_KEY".into(), "abc=def".into()),
                ("EMPTY".into(), String::new()),
                ("QUOTED".into(), "a b".into()),
            ]
        );
    }

    #[test]
    fn a_line_without_a_pair_names_its_file_and_line() {
        let e = parse("A=1\nnot a pair\n", "env/smoke.env").unwrap_err();
        assert_eq!(
            e.to_string(),
            "env/smoke.env:2: `not a pair` is not KEY=VALUE"
        );
        let e = parse("1BAD=x\n", "f").unwrap_err();
        assert!(e.to_string().starts_with("f:1:"), "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("env");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(matches!(read(&p, "env"), Err(EnvFileError::Read(_))));
    }
}
