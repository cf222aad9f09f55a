//! `--build-arg` and `--label` values: one typed parser each (used at the CLI edge) and one
//! resolution of build args (used by `plan`, `explain` and `image`), matching the docker CLI.
//!
//! `--build-arg K=V` sets K; `--build-arg K` takes K's value from the environment and, when
//! the variable is unset, leaves the arg unset (not sent, so the Dockerfile's default holds).
//! `--label K=V` sets a label; `--label K` sets it to the empty string and never reads the
//! environment. An empty key is an error.

use std::str::FromStr;

/// One `--build-arg` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildArg {
    /// `K=V` (V may be empty: `K=` sets K to "").
    Set { key: String, value: String },
    /// `K`: the value of the environment variable K, or unset.
    FromEnv { key: String },
}

/// A `--build-arg` or `--label` without a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` has no key: expected KEY=VALUE (e.g. PYTHON_VERSION=3.12)")]
pub struct MissingKey(pub String);

impl FromStr for BuildArg {
    type Err = MissingKey;

    fn from_str(s: &str) -> Result<BuildArg, MissingKey> {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(BuildArg::Set {
                key: k.to_string(),
                value: v.to_string(),
            }),
            None if !s.is_empty() => Ok(BuildArg::FromEnv { key: s.to_string() }),
            _ => Err(MissingKey(s.to_string())),
        }
    }
}

/// The build args sent, in order: `K=V` as given, `K` from `env` when it is set there.
pub fn resolve(args: &[BuildArg], env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    args.iter()
        .filter_map(|a| match a {
            BuildArg::Set { key, value } => Some((key.clone(), value.clone())),
            BuildArg::FromEnv { key } => env(key).map(|v| (key.clone(), v)),
        })
        .collect()
}

/// [`resolve`] against the process environment.
pub fn resolve_from_process(args: &[BuildArg]) -> Vec<(String, String)> {
    resolve(args, &|k| std::env::var(k).ok())
}

/// One `--label` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl FromStr for Label {
    type Err = MissingKey;

    fn from_str(s: &str) -> Result<Label, MissingKey> {
        let (k, v) = s.split_once('=').unwrap_or((s, ""));
        if k.is_empty() {
            return Err(MissingKey(s.to_string()));
        }
        Ok(Label {
            key: k.to_string(),
            value: v.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(items: &[&str]) -> Vec<BuildArg> {
        items.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn build_args_resolve_like_the_docker_cli() {
        let env = |k: &str| (k == "IN_ENV").then(|| "from-env".to_string());
        let got = resolve(
            &parse(&["A=1", "B=x=y", "C=", "IN_ENV", "NOT_IN_ENV"]),
            &env,
        );
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("C".into(), "".into()),
                ("IN_ENV".into(), "from-env".into()),
                // NOT_IN_ENV is left unset: not sent as "".
            ]
        );
        assert!("=v".parse::<BuildArg>().is_err());
        assert!("".parse::<BuildArg>().is_err());
    }

    #[test]
    fn a_bare_label_is_empty_and_never_read_from_the_environment() {
        // PATH is set in every test environment; a label must not pick it up.
        let l: Label = "PATH".parse().unwrap();
        assert_eq!(l.value, "");
        let l: Label = "k=v=w".parse().unwrap();
        assert_eq!((l.key.as_str(), l.value.as_str()), ("k", "v=w"));
        assert!("=v".parse::<Label>().is_err());
    }
}
