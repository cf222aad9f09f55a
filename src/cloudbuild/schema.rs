//! Checks a build config file (YAML text) against Cloud Build's documented build schema: the
//! field names of the build, its steps, options and artifacts; step ids and `waitFor`;
//! durations; substitution names and every `$NAME` a step or a substitution value uses.
//!
//! The rules mirror the "Build configuration file schema" and "Substituting variable values"
//! pages of the Cloud Build documentation and the validator of Google's cloud-build-local. It
//! reads what was rendered, not our structs, so it proves the text Cloud Build would receive.

use yaml_rust2::{Yaml, YamlLoader};

/// Top-level fields of a build config.
pub const BUILD_FIELDS: &[&str] = &[
    "steps",
    "timeout",
    "queueTtl",
    "logsBucket",
    "options",
    "substitutions",
    "tags",
    "serviceAccount",
    "secrets",
    "availableSecrets",
    "artifacts",
    "images",
];

/// Fields of a build step.
pub const STEP_FIELDS: &[&str] = &[
    "name",
    "args",
    "env",
    "allowFailure",
    "allowExitCodes",
    "dir",
    "id",
    "waitFor",
    "entrypoint",
    "secretEnv",
    "volumes",
    "timeout",
    "script",
    "automapSubstitutions",
    "results",
];

/// Fields of `options`.
pub const OPTION_FIELDS: &[&str] = &[
    "env",
    "secretEnv",
    "volumes",
    "sourceProvenanceHash",
    "machineType",
    "diskSizeGb",
    "substitutionOption",
    "dynamicSubstitutions",
    "automapSubstitutions",
    "logStreamingOption",
    "logging",
    "defaultLogsBucketBehavior",
    "pool",
    "pubsubTopic",
    "requestedVerifyOption",
];

/// Fields of `artifacts`.
pub const ARTIFACT_FIELDS: &[&str] = &[
    "objects",
    "images",
    "mavenArtifacts",
    "pythonPackages",
    "npmPackages",
    "goModules",
];

/// The built-in substitutions Cloud Build documents (all builds, then triggered builds).
pub const BUILT_INS: &[&str] = &[
    "PROJECT_ID",
    "BUILD_ID",
    "PROJECT_NUMBER",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "REVISION_ID",
    "SHORT_SHA",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
];

const MAX_STEPS: usize = 100;
const MAX_ARGS: usize = 100;
const MAX_ARG_LEN: usize = 4000;
const MAX_SUBSTITUTIONS: usize = 100;
const MAX_TIMEOUT_SECONDS: f64 = 24.0 * 3600.0;

/// Every way `text` breaks the schema, as `field.path: what is wrong`; empty when valid.
pub fn validate(text: &str) -> Vec<String> {
    let docs = match YamlLoader::load_from_str(text) {
        Ok(d) => d,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let [doc] = docs.as_slice() else {
        return vec![format!("expected one YAML document, found {}", docs.len())];
    };
    let mut v = Validator::default();
    v.build(doc);
    v.problems
}

#[derive(Default)]
struct Validator {
    problems: Vec<String>,
    /// User substitutions defined under `substitutions:`.
    defined: Vec<String>,
    /// Names used by step fields, artifacts or substitution values.
    used: Vec<String>,
    /// Names used by step fields and artifacts (what MUST_MATCH counts).
    used_in_template: Vec<String>,
    /// Whether [`Validator::reference`] is scanning a substitution value.
    in_value: bool,
}

impl Validator {
    fn fail(&mut self, at: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{at}: {what}"));
    }

    fn build(&mut self, doc: &Yaml) {
        let Some(map) = doc.as_hash() else {
            self.fail("(root)", "a build config is a mapping");
            return;
        };
        self.fields("(root)", doc, BUILD_FIELDS);

        let loose = doc["options"]["substitutionOption"].as_str() == Some("ALLOW_LOOSE");
        let dynamic = doc["options"]["dynamicSubstitutions"].as_bool() == Some(true);
        self.substitutions(&doc["substitutions"], dynamic);

        let build_timeout = match &doc["timeout"] {
            Yaml::BadValue => MAX_TIMEOUT_SECONDS,
            t => self.duration("timeout", t).unwrap_or(MAX_TIMEOUT_SECONDS),
        };
        match map
            .get(&Yaml::String("steps".into()))
            .and_then(Yaml::as_vec)
        {
            Some(steps) if !steps.is_empty() => self.steps(steps, build_timeout),
            _ => self.fail("steps", "a build needs at least one step"),
        }
        self.options(&doc["options"]);
        self.artifacts(&doc["artifacts"]);

        let defined = self.defined.clone();
        for name in defined {
            if !self.used.contains(&name) {
                self.fail("substitutions", format!("{name} is defined but never used"));
            } else if !loose && !self.used_in_template.contains(&name) {
                self.fail(
                    "substitutions",
                    format!("{name} is used only inside other substitutions, which MUST_MATCH rejects (set substitutionOption: ALLOW_LOOSE)"),
                );
            }
        }
    }

    fn fields(&mut self, at: &str, node: &Yaml, allowed: &[&str]) {
        let Some(map) = node.as_hash() else {
            self.fail(at, "expected a mapping");
            return;
        };
        for key in map.keys() {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => self.fail(at, format!("unknown field `{k}`")),
                None => self.fail(at, format!("field names are strings, not {key:?}")),
            }
        }
    }

    fn substitutions(&mut self, node: &Yaml, dynamic: bool) {
        if node.is_badvalue() {
            return;
        }
        let Some(map) = node.as_hash() else {
            self.fail("substitutions", "expected a mapping of names to strings");
            return;
        };
        if map.len() > MAX_SUBSTITUTIONS {
            self.fail("substitutions", format!("more than {MAX_SUBSTITUTIONS}"));
        }
        // Values may name substitutions defined further down.
        self.defined = map
            .keys()
            .filter_map(Yaml::as_str)
            .map(String::from)
            .collect();
        for (k, val) in map {
            let Some(k) = k.as_str() else {
                self.fail("substitutions", "names are strings");
                continue;
            };
            if !is_user_key(k) {
                self.fail(
                    &format!("substitutions.{k}"),
                    "user substitutions match _[A-Z0-9_]+",
                );
            }
            let Some(val) = val.as_str() else {
                self.fail(&format!("substitutions.{k}"), "values are strings");
                continue;
            };
            if val.contains('$') {
                if !dynamic {
                    self.fail(
                        &format!("substitutions.{k}"),
                        "a value using `$` needs options.dynamicSubstitutions: true",
                    );
                }
                self.in_value = true;
                self.dynamic_value(&format!("substitutions.{k}"), val);
                self.in_value = false;
            }
        }
    }

    fn steps(&mut self, steps: &[Yaml], build_timeout: f64) {
        if steps.len() > MAX_STEPS {
            self.fail("steps", format!("more than {MAX_STEPS} steps"));
        }
        let mut ids: Vec<String> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let at = format!("steps[{i}]");
            self.fields(&at, step, STEP_FIELDS);
            match step["name"].as_str() {
                Some(n) if !n.is_empty() => self.template(&format!("{at}.name"), n),
                _ => self.fail(&at, "every step needs a `name` (the image it runs)"),
            }
            for field in ["dir", "entrypoint"] {
                match &step[field] {
                    Yaml::BadValue => {}
                    Yaml::String(s) => self.template(&format!("{at}.{field}"), s),
                    _ => self.fail(&format!("{at}.{field}"), "expected a string"),
                }
            }
            let args = self.string_list(&format!("{at}.args"), &step["args"]);
            if args.len() > MAX_ARGS {
                self.fail(&format!("{at}.args"), format!("more than {MAX_ARGS} args"));
            }
            for (j, a) in args.iter().enumerate() {
                if a.len() > MAX_ARG_LEN {
                    self.fail(&format!("{at}.args[{j}]"), "longer than 4000 bytes");
                }
                self.template(&format!("{at}.args[{j}]"), a);
            }
            for (j, e) in self
                .string_list(&format!("{at}.env"), &step["env"])
                .iter()
                .enumerate()
            {
                if !e.contains('=') {
                    self.fail(&format!("{at}.env[{j}]"), "entries are KEY=VALUE");
                }
                self.template(&format!("{at}.env[{j}]"), e);
            }
            for w in self.string_list(&format!("{at}.waitFor"), &step["waitFor"]) {
                if w != "-" && !ids.contains(&w) {
                    self.fail(
                        &format!("{at}.waitFor"),
                        format!("`{w}` is not the id of an earlier step"),
                    );
                }
            }
            match &step["id"] {
                Yaml::BadValue => {}
                Yaml::String(id) if id == "-" => {
                    self.fail(&format!("{at}.id"), "`-` is reserved for \"start at once\"")
                }
                Yaml::String(id) if ids.contains(id) => {
                    self.fail(&format!("{at}.id"), format!("`{id}` is not unique"))
                }
                Yaml::String(id) => ids.push(id.clone()),
                _ => self.fail(&format!("{at}.id"), "expected a string"),
            }
            if !step["timeout"].is_badvalue() {
                if let Some(t) = self.duration(&format!("{at}.timeout"), &step["timeout"]) {
                    if t > build_timeout {
                        self.fail(&format!("{at}.timeout"), "longer than the build's timeout");
                    }
                }
            }
        }
    }

    fn options(&mut self, node: &Yaml) {
        if node.is_badvalue() {
            return;
        }
        self.fields("options", node, OPTION_FIELDS);
        match &node["substitutionOption"] {
            Yaml::BadValue => {}
            Yaml::String(s) if s == "MUST_MATCH" || s == "ALLOW_LOOSE" => {}
            other => self.fail(
                "options.substitutionOption",
                format!("MUST_MATCH or ALLOW_LOOSE, not {other:?}"),
            ),
        }
        for b in ["dynamicSubstitutions", "automapSubstitutions"] {
            if !node[b].is_badvalue() && node[b].as_bool().is_none() {
                self.fail(&format!("options.{b}"), "expected true or false");
            }
        }
    }

    fn artifacts(&mut self, node: &Yaml) {
        if node.is_badvalue() {
            return;
        }
        self.fields("artifacts", node, ARTIFACT_FIELDS);
        let objects = &node["objects"];
        if objects.is_badvalue() {
            return;
        }
        self.fields("artifacts.objects", objects, &["location", "paths"]);
        match objects["location"].as_str() {
            // Checked before substitution, so the scheme must be literal.
            Some(l) if l.starts_with("gs://") => self.template("artifacts.objects.location", l),
            _ => self.fail(
                "artifacts.objects.location",
                "a Cloud Storage URL starting with gs://",
            ),
        }
        let paths = self.string_list("artifacts.objects.paths", &objects["paths"]);
        if paths.is_empty() {
            self.fail("artifacts.objects.paths", "list at least one path");
        }
        for (i, p) in paths.iter().enumerate() {
            if p.chars().any(char::is_whitespace) {
                self.fail(
                    &format!("artifacts.objects.paths[{i}]"),
                    "paths contain no whitespace",
                );
            }
            if paths[..i].contains(p) {
                self.fail(
                    &format!("artifacts.objects.paths[{i}]"),
                    format!("`{p}` is listed twice"),
                );
            }
            self.template(&format!("artifacts.objects.paths[{i}]"), p);
        }
    }

    fn string_list(&mut self, at: &str, node: &Yaml) -> Vec<String> {
        match node {
            Yaml::BadValue => Vec::new(),
            Yaml::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, y)| match y {
                    Yaml::String(s) => Some(s.clone()),
                    other => {
                        self.fail(
                            &format!("{at}[{i}]"),
                            format!("expected a string, found {other:?} (quote it)"),
                        );
                        None
                    }
                })
                .collect(),
            _ => {
                self.fail(at, "expected a list of strings");
                Vec::new()
            }
        }
    }

    /// A Duration: seconds with up to nine fractional digits and an `s` suffix.
    fn duration(&mut self, at: &str, node: &Yaml) -> Option<f64> {
        let s = node.as_str();
        let secs = s
            .and_then(|s| s.strip_suffix('s'))
            .filter(|n| {
                let (whole, frac) = n.split_once('.').unwrap_or((n, ""));
                !whole.is_empty()
                    && whole.bytes().all(|b| b.is_ascii_digit())
                    && frac.len() <= 9
                    && frac.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|n| n.parse::<f64>().ok());
        match secs {
            Some(t) if t > MAX_TIMEOUT_SECONDS => {
                self.fail(at, "longer than 24 hours");
                None
            }
            Some(t) => Some(t),
            None => {
                self.fail(at, format!("a duration such as \"600s\", not {node:?}"));
                None
            }
        }
    }

    /// A step field: Cloud Build expands only `$NAME`, `${NAME}` and `$$`; anything else after
    /// a `$` stays in the text as it is, which is never what was meant.
    fn template(&mut self, at: &str, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                i += 1;
                continue;
            }
            if b.get(i + 1) == Some(&b'$') {
                i += 2;
                continue;
            }
            let (name, end) = match b.get(i + 1) {
                Some(b'{') => {
                    let n = name_len(&b[i + 2..]);
                    if n == 0 || b.get(i + 2 + n) != Some(&b'}') {
                        self.fail(
                            at,
                            format!("`{}` is not a substitution Cloud Build expands in a step (only $NAME and ${{NAME}}; bash expansions belong in a substitution value)", &s[i..]),
                        );
                        return;
                    }
                    (&s[i + 2..i + 2 + n], i + 3 + n)
                }
                _ => {
                    let n = name_len(&b[i + 1..]);
                    if n == 0 {
                        self.fail(
                            at,
                            format!("a lone `$` in `{s}`; write `$$` for a literal dollar"),
                        );
                        return;
                    }
                    (&s[i + 1..i + 1 + n], i + 1 + n)
                }
            };
            self.reference(at, name);
            i = end;
        }
    }

    /// A substitution value under dynamicSubstitutions: `$NAME`, `${NAME}` and
    /// `${NAME:-default}` (the default may itself hold such references).
    fn dynamic_value(&mut self, at: &str, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                i += 1;
                continue;
            }
            let braced = b.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let n = name_len(&b[start..]);
            if n == 0 {
                self.fail(at, format!("`{}` does not name a substitution", &s[i..]));
                return;
            }
            self.reference(at, &s[start..start + n]);
            i = start + n;
            if braced {
                match b.get(i) {
                    Some(b'}') => i += 1,
                    // The default's own references are checked as the scan goes on; its
                    // closing brace is skipped as text.
                    Some(b':') if b.get(i + 1) == Some(&b'-') => i += 2,
                    _ => {
                        self.fail(
                            at,
                            format!(
                                "only ${{NAME}} and ${{NAME:-default}} are used here, not `{}`",
                                &s[i..]
                            ),
                        );
                        return;
                    }
                }
            }
        }
    }

    fn reference(&mut self, at: &str, name: &str) {
        if is_user_key(name) {
            if !self.defined.iter().any(|d| d == name) {
                self.fail(at, format!("${name} is not defined under substitutions"));
            }
        } else if !BUILT_INS.contains(&name) {
            self.fail(
                at,
                format!("${name} is neither a built-in substitution nor a user one (_NAME)"),
            );
        }
        if !self.used.iter().any(|u| u == name) {
            self.used.push(name.to_string());
        }
        if !self.in_value && !self.used_in_template.iter().any(|u| u == name) {
            self.used_in_template.push(name.to_string());
        }
    }
}

/// Length of the `[A-Z_][A-Z0-9_]*` name at the start of `b` (Cloud Build's key pattern).
fn name_len(b: &[u8]) -> usize {
    match b.first() {
        Some(c) if c.is_ascii_uppercase() || *c == b'_' => b
            .iter()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_')
            .count(),
        _ => 0,
    }
}

fn is_user_key(k: &str) -> bool {
    k.len() > 1
        && k.starts_with('_')
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
