//! The commented `ctxbuild.toml` `init` writes for a [`Detection`].
//!
//! Every key written carries a comment saying what it is and why this value; every default
//! left out is shown commented, so the file doubles as the reference. An app chosen among
//! several is marked `# QUESTION:`, its alternatives listed. The text must parse with
//! [`crate::service::Config::parse`] (the tests hold it to that for every corpus app).

use super::{Detection, PythonService};
use crate::python::DependencySource;
use crate::service::render::default_base_image;
use crate::service::{Kind, Variant};
use std::fmt::Write;

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders the configuration (see the module doc).
pub fn render_config(d: &Detection) -> String {
    let mut o = String::new();
    o.push_str("# ctxbuild.toml, written by `ctxbuild init`. Paths are relative to this file.\n");
    o.push_str("# Every key is explained; commented keys show their defaults. Reference: the\n");
    o.push_str("# \"Configuration (ctxbuild.toml)\" section of ctxbuild's README.\n");
    if let Some(first) = d
        .services
        .first()
        .map(|s| &s.name)
        .or(d.frontends.first().map(|f| &f.name))
    {
        let _ = writeln!(
            o,
            "# Next: `ctxbuild check`, then `ctxbuild image {first}`."
        );
    }
    for question in &d.questions {
        let _ = writeln!(
            o,
            "# QUESTION: {} (see service `{}` below)",
            question.question, question.service
        );
    }
    o.push('\n');
    if d.compose.is_empty() {
        o.push_str(
            "# Compose files `check` compares with the services (default: a compose.yaml or\n",
        );
        o.push_str("# docker-compose.yml next to this file; none was found).\n");
        o.push_str("# compose = [\"compose.yaml\"]\n");
    } else {
        o.push_str("# Compose files `check` compares with the services (build contexts, ports).\n");
        let list: Vec<String> = d.compose.iter().map(|p| q(&p.to_string_lossy())).collect();
        let _ = writeln!(o, "compose = [{}]", list.join(", "));
    }
    for s in &d.services {
        python_service(&mut o, s);
    }
    for f in &d.frontends {
        o.push('\n');
        let _ = writeln!(
            o,
            "# A Node frontend: `npm run build` ({}), then `node` runs its standalone output.",
            f.build_script.replace('\n', " ")
        );
        let _ = writeln!(o, "[services.{}]", f.name);
        o.push_str(
            "# node: npm ci, npm run build, and a runtime image holding only build_output.\n",
        );
        o.push_str("kind = \"node\"\n");
        context(&mut o, &f.context);
        if !f.lockfile {
            o.push_str(
                "# NOTE: no package-lock.json here; the image runs `npm ci`, which needs one\n",
            );
            o.push_str("# (run `npm install` and commit package-lock.json).\n");
        }
        let why = match f.guessed_from.as_str() {
            "default" => "package.json does not say; this is the default".to_string(),
            from => format!("guessed from {from}; default \"dist\""),
        };
        let _ = writeln!(o, "# The directory `npm run build` writes ({why}).");
        let _ = writeln!(o, "build_output = {}", q(&f.build_output));
        o.push_str("# The file `node` runs inside build_output (default \"server.js\").\n");
        let _ = writeln!(o, "entrypoint = {}", q(&f.entrypoint));
        defaults(&mut o, Kind::Node);
        deploy(&mut o, &f.name);
    }
    o
}

fn context(o: &mut String, rel: &std::path::Path) {
    if rel == std::path::Path::new(".") {
        o.push_str("# The build context sent to Docker (default: this directory).\n");
        o.push_str("# context = \".\"\n");
    } else {
        o.push_str("# The build context sent to Docker: this subdirectory only.\n");
        let _ = writeln!(o, "context = {}", q(&rel.to_string_lossy()));
    }
}

fn python_service(o: &mut String, s: &PythonService) {
    o.push('\n');
    o.push_str("# A Python ASGI service: gunicorn with the Uvicorn worker serves `app`.\n");
    let _ = writeln!(o, "[services.{}]", s.name);
    o.push_str(
        "# python-asgi: the image runs gunicorn -k uvicorn_worker.UvicornWorker, and installs\n",
    );
    o.push_str("# both (pinned, in their own layer) when the project does not list them.\n");
    o.push_str("kind = \"python-asgi\"\n");
    context(o, &s.context);
    let first = &s.candidates[0];
    if s.candidates.len() > 1 {
        let _ = writeln!(
            o,
            "# QUESTION: {} ASGI apps found here; which one does this service serve? The first is",
            s.candidates.len()
        );
        o.push_str("# written below; replace it with another if that is not the one:\n");
        for c in &s.candidates {
            let _ = writeln!(
                o,
                "#   app = {:<28} # {}:{} ({}){}",
                q(&c.app.to_string()),
                c.file.display(),
                c.line,
                c.class,
                launched(c)
            );
        }
    } else {
        let _ = writeln!(
            o,
            "# The ASGI app as gunicorn imports it (module:attr), found at\n# {}:{} ({}){}.",
            first.file.display(),
            first.line,
            first.class,
            launched(first)
        );
    }
    let _ = writeln!(o, "app = {}", q(&s.app));
    let deps = &s.dependencies;
    let files: Vec<String> = deps.files.iter().map(|f| f.display().to_string()).collect();
    let how = match deps.source {
        DependencySource::Uv => "uv sync --frozen from uv.lock",
        DependencySource::Pyproject => "pip from pyproject.toml's [project] dependencies",
        DependencySource::Requirements => "pip install -r requirements.txt",
        DependencySource::None => "nothing but the server",
    };
    let _ = writeln!(
        o,
        "# Dependencies: detected \"{}\" ({how};\n# found: {}). Set `dependencies` to choose another source:",
        deps.source.as_str(),
        if files.is_empty() {
            "no dependency file".into()
        } else {
            files.join(", ")
        }
    );
    if let Some(e) = &deps.error {
        let _ = writeln!(o, "# NOTE: {}", e.replace('\n', " "));
    }
    if let (
        Some(w),
        None
        | Some(super::FoundDockerfile {
            generated: true, ..
        }),
    ) = (&deps.workspace, &s.dockerfile)
    {
        let _ = writeln!(
            o,
            "# NOTE: this context is `{}`, a member of the uv workspace of {}:\n# the \
             template builds the context alone and cannot build it (`ctxbuild check` says what\n# \
             to do).",
            w.name,
            w.root.join("pyproject.toml").display()
        );
    }
    let _ = writeln!(
        o,
        "# dependencies = {}   # \"uv\" | \"pyproject\" | \"requirements\" | \"none\"",
        q(deps.source.as_str())
    );
    o.push_str("# requirements = \"requirements.txt\"   # setting it chooses that file\n");
    match &s.dockerfile {
        Some(df) if df.generated => {
            let _ = writeln!(
                o,
                "# {} is a committed `ctxbuild render` output: the image builds from the template,",
                df.path.display()
            );
            let _ = writeln!(
                o,
                "# and `check` warns when the file goes stale. To build it as is instead:"
            );
            let _ = writeln!(o, "# dockerfile = {}", q(&df.path.to_string_lossy()));
        }
        Some(df) => {
            let _ = writeln!(
                o,
                "# The context's own {} builds this image (relative to the context; `check`",
                df.path.display()
            );
            o.push_str(
                "# lints it). Delete this line to build from ctxbuild's proven template instead.\n",
            );
            let _ = writeln!(o, "dockerfile = {}", q(&df.path.to_string_lossy()));
        }
        None => {
            o.push_str(
                "# No Dockerfile in the context: the image builds from ctxbuild's template\n",
            );
            let _ = writeln!(
                o,
                "# (`ctxbuild render {}` shows it). To use your own:",
                s.name
            );
            o.push_str("# dockerfile = \"Dockerfile\"\n");
        }
    }
    if let Some(g) = &s.gunicorn_conf {
        let mut set = Vec::new();
        if let Some(w) = &g.worker_class {
            set.push(format!("worker_class = {w}"));
        }
        if !g.bind.is_empty() {
            set.push(format!("bind = {}", g.bind.join(", ")));
        }
        let _ = writeln!(
            o,
            "# {} is read by gunicorn from the working directory{}; `check` reads it too.",
            g.path.display(),
            if set.is_empty() {
                String::new()
            } else {
                format!(" ({})", set.join("; "))
            }
        );
    }
    defaults(o, Kind::PythonAsgi);
    match &s.health_route {
        Some(m) => {
            let _ = writeln!(o, "# {}:{} mentions \"/health\"; set health_path to make the probe require 2xx/3xx there:", m.file.display(), m.line);
        }
        None => o.push_str(
            "# The HEALTHCHECK passes on any answer below 500; set a route to require 2xx/3xx:\n",
        ),
    }
    o.push_str("# health_path = \"/health\"\n");
    deploy(o, &s.name);
}

fn launched(c: &crate::python::app::Candidate) -> String {
    if c.launched_by.is_empty() {
        return String::new();
    }
    let l: Vec<String> = c
        .launched_by
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(", started by uvicorn.run in {}", l.join(", "))
}

fn defaults(o: &mut String, kind: Kind) {
    o.push_str("# Defaults, uncomment to change:\n");
    o.push_str("# port = 8080        # the port the server listens on when $PORT is unset\n");
    if kind == Kind::PythonAsgi {
        o.push_str("# workers = 2        # gunicorn workers (1-64)\n");
        o.push_str("# timeout = 300      # gunicorn --timeout, seconds\n");
        o.push_str("# system_packages = []   # build-only apk/apt packages (gcc, musl-dev...)\n");
        o.push_str("# runtime_packages = []  # packages kept in the image (libpq...)\n");
    }
    let _ = writeln!(
        o,
        "# base_image = {{ alpine = {}, slim = {} }}",
        q(default_base_image(kind, Variant::Alpine)),
        q(default_base_image(kind, Variant::Slim))
    );
}

fn deploy(o: &mut String, name: &str) {
    o.push_str(
        "\n# The Cloud Run service `check` compares the image with. Uncomment the header and\n",
    );
    o.push_str("# the keys that differ from Cloud Run's defaults (shown):\n");
    let _ = writeln!(o, "# [services.{name}.deploy]");
    let _ = writeln!(
        o,
        "# service = {}         # the Cloud Run service name",
        q(name)
    );
    o.push_str("# region = \"europe-west1\"\n");
    o.push_str("# cpu = 1                   # vCPUs\n");
    o.push_str("# memory = \"512Mi\"\n");
    o.push_str("# request_timeout = 300     # seconds; keep gunicorn's timeout at least this\n");
    o.push_str("# concurrency = 80          # requests per instance\n");
    o.push_str("# port = 8080               # the port Cloud Run sets $PORT to\n");
}
