//! The command line, as clap derive types only. No logic here: `main.rs` resolves these into
//! settings and dispatches to `commands/`. Argument groups several commands share (the context
//! and its Dockerfile, build inputs, the service and its template) are defined once and
//! flattened.

use clap::{Args, Parser, Subcommand};
use ctxbuild::buildargs::{BuildArg, Label};
use ctxbuild::builder::BuilderChoice;
use std::path::PathBuf;

/// When to use colour, as given by `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How to show progress, as given by `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressChoice {
    /// Live bars on a terminal, plain lines elsewhere.
    Auto,
    /// Live bars (only drawn on a terminal).
    Tty,
    /// One plain line per event, for CI and Cloud Build logs.
    Plain,
    /// No progress output at all.
    None,
}

/// The build context and its Dockerfile (`ls`, `plan`, `explain`, `context`).
#[derive(Debug, Args)]
pub struct ContextDirArgs {
    /// The build context (default: the current directory).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The Dockerfile (default: DIR/Dockerfile).
    #[arg(short = 'f', long, value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,
}

/// What a build is given (`plan`, `explain`, `image`).
#[derive(Debug, Args)]
pub struct BuildInputArgs {
    /// Build-time variables, as for docker build (repeatable): K=V, or K to take K's value
    /// from the environment (left unset when K is not set there).
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<BuildArg>,

    /// Stop at this stage, as for docker build --target.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// The builder: classic, buildkit, or auto (BuildKit only when the Dockerfile uses
    /// BuildKit-only syntax such as RUN --mount and the engine has it). Default: the service's
    /// `builder` in ctxbuild.toml, else auto.
    #[arg(long, value_name = "BUILDER", value_parser = parse_builder)]
    pub builder: Option<BuilderChoice>,
}

fn parse_builder(s: &str) -> Result<BuilderChoice, String> {
    s.parse()
}

/// A service of ctxbuild.toml and its template (`render`, `image`).
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service name from ctxbuild.toml.
    pub service: String,

    /// Use the Alpine variant (the default for Python services).
    #[arg(long, conflicts_with = "slim")]
    pub alpine: bool,

    /// Use the Debian slim variant.
    #[arg(long)]
    pub slim: bool,

    /// Override the base image (e.g. an offline-built image).
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// The configuration file (default: ./ctxbuild.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Parser)]
#[command(
    name = "ctxbuild",
    version,
    about = "Docker build contexts done right: clean, key, render, check and build.",
    long_about = "ctxbuild sees a build context exactly as Docker does, removes bytecode pollution, \
predicts which Dockerfile step will miss the layer cache and why, renders proven \
gunicorn + UvicornWorker Dockerfiles, lints for the drift that breaks Cloud Run deploys, \
and builds through the Docker Engine API with a per-layer cache report.",
    after_help = "Examples:\n  ctxbuild clean --check .\n  ctxbuild ls examples/backend\n  ctxbuild plan examples/backend\n  ctxbuild check\n  ctxbuild image backend --alpine"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// When to use colours on stderr.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        global = true,
        env = "CTXBUILD_COLOR"
    )]
    pub color: ColorChoice,

    /// How to show progress: live bars on a terminal, plain lines for CI logs, or none.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub progress: ProgressChoice,

    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail (repeatable).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Worker threads for walking, hashing and removing, 1 to 256 (default: the number of CPUs).
    #[arg(short = 'j', long, global = true, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Clean(CleanArgs),
    Ls(LsArgs),
    Plan(PlanArgs),
    Explain(ExplainArgs),
    Context(ContextArgs),
    Render(RenderArgs),
    Check(CheckArgs),
    Image(ImageArgs),
    Smoke(SmokeArgs),
    Completions(CompletionsArgs),
    #[command(hide = true)]
    Man(ManArgs),
    Cloudbuild(CloudbuildArgs),
    Init(InitArgs),
}

/// Remove Python bytecode pollution (*.pyc, *.pyo, __pycache__) from a tree, in parallel.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild clean                 # remove bytecode under .\n  ctxbuild clean --dry-run api/  # list what would go\n  ctxbuild clean --check .       # exit 1 if any pollution exists (CI, pre-commit)\n  ctxbuild clean --debris pytest,mypy --json"
)]
pub struct CleanArgs {
    /// Roots to clean (default: the current directory).
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,

    /// List what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Remove nothing; exit 1 when pollution exists.
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Also remove opt-in debris topics (comma-separated): pytest, mypy, ruff, coverage, tox,
    /// egg-info, jupyter, htmlcov, all.
    #[arg(long, value_delimiter = ',', value_name = "TOPIC")]
    pub debris: Vec<String>,

    /// Also remove paths matching this glob (repeatable). Without `/` it matches names at any
    /// depth (`*.log`); with `/` the path from the root (`docs/_build`); `**` crosses
    /// directories; a trailing `/` matches directories only.
    #[arg(long, value_name = "GLOB")]
    pub erase: Vec<String>,

    /// Never remove paths matching this glob, nor anything below a matching directory
    /// (relative to the root; repeatable).
    #[arg(long, value_name = "GLOB")]
    pub keep: Vec<String>,

    /// Only clean what Docker would send in the build context (honours .dockerignore).
    #[arg(long)]
    pub context_only: bool,

    /// Also descend into virtualenvs (directories holding a pyvenv.cfg).
    #[arg(long)]
    pub include_venv: bool,

    /// Threads removing files, 1 to 256 (default: 8 per walk thread, 8 to 64). Removal waits
    /// on the filesystem, not the CPU, so more threads than cores help.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub remove_threads: Option<u16>,

    /// Also clean inside other filesystems and mount points (bind mounts included) below the
    /// root. By default they are skipped, like `rm --one-file-system`.
    #[arg(long)]
    pub cross_filesystems: bool,
}

/// List the files, symlinks, pipes and devices visible to `COPY . /dst/`, exactly as Docker sees the context.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild ls                        # the context of .\n  ctxbuild ls examples/backend --json\n  ctxbuild ls . -f docker/Dockerfile --sizes"
)]
pub struct LsArgs {
    #[command(flatten)]
    pub context: ContextDirArgs,

    /// Print type, size, mode (in the context), copy_mode (in the image), link target and device number as JSON.
    #[arg(long)]
    pub json: bool,

    /// Print the heaviest directories and the bytes pollution adds to the context.
    #[arg(long)]
    pub sizes: bool,

    /// Use BuildKit's rules (a <Dockerfile>.dockerignore next to the Dockerfile wins).
    #[arg(long)]
    pub buildkit: bool,
}

/// Compute per-step cache keys that predict Docker's layer cache.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild plan examples/backend\n  ctxbuild plan . --build-arg PY=3.12 --target runtime --json\n  ctxbuild plan . --save .ctxbuild-plan.json"
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub context: ContextDirArgs,

    #[command(flatten)]
    pub build: BuildInputArgs,

    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,

    /// Save the plan to FILE, for `ctxbuild explain --since FILE` (`-`: to stdout, instead of
    /// the table).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,

    /// Do not read or write the stat cache.
    #[arg(long)]
    pub no_stat_cache: bool,
}

/// Say which step will rebuild since a saved plan, and which files are the reason.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild plan . --save before.json && edit app/main.py\n  ctxbuild explain . --since before.json"
)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub context: ContextDirArgs,

    /// The plan saved earlier with `ctxbuild plan --save`.
    #[arg(long, value_name = "FILE")]
    pub since: PathBuf,

    #[command(flatten)]
    pub build: BuildInputArgs,

    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Write the context as the deterministic tar Docker would receive.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild context . -o ctx.tar\n  ctxbuild context . -o - --gzip | wc -c"
)]
pub struct ContextArgs {
    #[command(flatten)]
    pub context: ContextDirArgs,

    /// Output file; `-` for stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,

    /// Compress with gzip, optionally at LEVEL (0-9, default 6).
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, default_missing_value = "6",
          value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip: Option<u32>,

    /// Print what was written as JSON (schema `ctxbuild.context/v1`); needs `-o FILE`.
    #[arg(long)]
    pub json: bool,
}

/// Render a service's Dockerfile from ctxbuild's templates.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild render backend --alpine\n  ctxbuild render auth --slim -o examples/auth/Dockerfile --write-dockerignore"
)]
pub struct RenderArgs {
    #[command(flatten)]
    pub service: ServiceArgs,

    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write a .dockerignore into the service's context if it has none.
    #[arg(long)]
    pub write_dockerignore: bool,

    /// `buildkit` renders the BuildKit flavour (cache mounts for pip, uv and npm); classic and
    /// auto render the classic one. Default: the service's `builder` in ctxbuild.toml.
    #[arg(long, value_name = "BUILDER", value_parser = parse_builder)]
    pub builder: Option<BuilderChoice>,

    /// Print the rendering as JSON (schema `ctxbuild.render/v1`: template, version, base
    /// image, the Dockerfile text) instead of the Dockerfile.
    #[arg(long)]
    pub json: bool,
}

/// Lint Dockerfiles, compose files and ctxbuild.toml for the drift that breaks deploys.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild check\n  ctxbuild check backend auth --json\n  ctxbuild check --format sarif > ctxbuild.sarif\n  ctxbuild check --format github\n  ctxbuild check --rules"
)]
pub struct CheckArgs {
    /// Services to check (default: all in ctxbuild.toml).
    pub services: Vec<String>,

    /// Print findings as JSON (same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Output format: human, json, sarif (SARIF 2.1.0 for code scanning) or github (workflow
    /// annotations).
    #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
    pub format: CheckFormat,

    /// List every rule (id, severity, what it catches) and exit.
    #[arg(long, conflicts_with = "services")]
    pub rules: bool,

    /// Check for this builder (classic, buildkit, auto): BuildKit-only syntax is an error only
    /// for classic. Default: each service's `builder` in ctxbuild.toml, else auto.
    #[arg(long, value_name = "BUILDER", value_parser = parse_builder)]
    pub builder: Option<BuilderChoice>,

    /// The configuration file (default: ./ctxbuild.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The formats of `check --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    Sarif,
    Github,
}

/// Build a service image through the Docker Engine API, with a per-layer cache report.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild image backend --alpine\n  ctxbuild image backend --alpine -t gcr.io/acme/backend:$SHORT_SHA --push\n  ctxbuild image backend --base-image ctxbuild-test/python:3-bookworm --report report.json"
)]
pub struct ImageArgs {
    #[command(flatten)]
    pub service: ServiceArgs,

    /// Use this Dockerfile instead of rendering one.
    #[arg(short = 'f', long, value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,

    /// Image tags (repeatable; default: ctxbuild/SERVICE:latest-build).
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,

    #[command(flatten)]
    pub build: BuildInputArgs,

    /// Do not use the layer cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Build even when nothing changed since the last build of this service (by default such
    /// a build is skipped: the tags are re-applied and the report says "up to date").
    #[arg(long)]
    pub force: bool,

    /// Always try to pull a newer base image.
    #[arg(long)]
    pub pull: bool,

    /// Take cached steps from this image (repeatable), pulled when absent with the push
    /// credentials; a missing one is a warning. For cold builders (Cloud Build).
    #[arg(long = "cache-from", value_name = "IMAGE")]
    pub cache_from: Vec<String>,

    /// Target platform, e.g. linux/amd64.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Extra image labels (repeatable); a bare K sets K to "".
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<Label>,

    /// Skip the `check` gate.
    #[arg(long)]
    pub no_check: bool,

    /// Run `ctxbuild clean` on the context first.
    #[arg(long)]
    pub clean: bool,

    /// Push every tag after a successful build.
    #[arg(long)]
    pub push: bool,

    /// Write the cache report as JSON to FILE (`-`: to stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Print the result as JSON (schema `ctxbuild.image/v1`: buildx-style metadata keys and
    /// the report) on stdout instead of the table; progress stays on stderr.
    #[arg(long)]
    pub json: bool,

    /// The Docker engine, as for docker -H (default: $DOCKER_HOST or the local socket).
    #[arg(short = 'H', long, value_name = "HOST")]
    pub host: Option<String>,
}

/// Print a man page (roff) generated from this command line: ctxbuild(1), whose SUBCOMMANDS
/// section names every command, or ctxbuild-COMMAND(1) with one command's options.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ctxbuild man | man -l -\n  ctxbuild man ls > ctxbuild-ls.1")]
pub struct ManArgs {
    /// The command whose page to print (default: the ctxbuild(1) overview).
    pub command: Option<String>,
}

/// Start a service's image under its Cloud Run limits and prove it is ready in time.
///
/// Builds the image (or takes --image), runs it with the deploy's memory (no swap), CPUs and
/// $PORT on linux/amd64, and measures time to the first TCP connection (Cloud Run's default
/// startup probe), to the first HTTP answer and to health_path 200, peak memory, OOM kills,
/// exits, and sockets on the wrong port or on 127.0.0.1 only. The container is always removed.
/// Exits 1 when it does not listen within the budget, is OOM-killed, exits, or health_path is
/// not 200.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild smoke backend\n  ctxbuild smoke backend --base-image ctxbuild-test/python:3-bookworm --json\n  ctxbuild smoke backend --image ctxbuild/backend:latest-build --sweep"
)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub service: ServiceArgs,

    /// Run this image instead of building the service's.
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,

    /// Seconds the container may take to listen on $PORT and answer (Cloud Run's default
    /// startup probe allows 240).
    #[arg(long, value_name = "SECS", default_value_t = 240,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub budget: u64,

    /// Try Cloud Run's CPU/memory profiles from the smallest up and report the smallest that
    /// passes with margin.
    #[arg(long)]
    pub sweep: bool,

    /// Print the result as JSON on stdout (every run with --sweep).
    #[arg(long)]
    pub json: bool,

    /// The Docker engine, as for docker -H (default: $DOCKER_HOST or the local socket).
    #[arg(short = 'H', long, value_name = "HOST")]
    pub host: Option<String>,
}

/// Print shell completions.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Generate a Google Cloud Build config: a `clean --check` gate, one `image --push` step per
/// service in parallel, and optionally `gcloud run deploy` steps from each service's [deploy].
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild cloudbuild -o cloudbuild.yaml\n  ctxbuild cloudbuild backend auth --deploy -o cloudbuild.yaml\n  ctxbuild cloudbuild --step-image europe-docker.pkg.dev/acme/tools/ctxbuild:1 --json\n  gcloud builds submit --config cloudbuild.yaml ."
)]
pub struct CloudbuildArgs {
    /// Services to build (default: all in ctxbuild.toml).
    pub services: Vec<String>,

    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Add a `gcloud run deploy` step per service, with port, CPU, memory, concurrency and
    /// request timeout from its [deploy] table.
    #[arg(long)]
    pub deploy: bool,

    /// Print Cloud Build's JSON form of the config instead of YAML.
    #[arg(long)]
    pub json: bool,

    /// The image that runs ctxbuild's steps.
    #[arg(long, value_name = "IMAGE", default_value = ctxbuild::cloudbuild::DEFAULT_STEP_IMAGE)]
    pub step_image: String,

    /// Pass --base-image IMAGE to every image step.
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// Build the Debian slim variant instead of Alpine.
    #[arg(long)]
    pub slim: bool,

    /// The configuration file, relative to the repository root (default: ./ctxbuild.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Detect the services of a repository and write a commented ctxbuild.toml (never over one).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild init                # detect in ., write ./ctxbuild.toml\n  ctxbuild init services/ --print\n  ctxbuild init --json | jq '.services[].app'"
)]
pub struct InitArgs {
    /// The repository (default: the current directory); ctxbuild.toml is written there.
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Print what was detected as JSON on stdout instead of the summary (still writes the file).
    #[arg(long, conflicts_with = "print")]
    pub json: bool,

    /// Print the ctxbuild.toml init would write on stdout; write nothing.
    #[arg(long)]
    pub print: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn shared_groups_parse_the_same_everywhere() {
        let cli = Cli::try_parse_from([
            "ctxbuild",
            "image",
            "svc",
            "--slim",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B",
            "--label",
            "k",
            "-c",
            "x.toml",
        ])
        .unwrap();
        let Command::Image(a) = cli.command else {
            panic!("not image")
        };
        assert!(a.service.slim);
        assert_eq!(
            a.build.build_args,
            vec![
                BuildArg::Set {
                    key: "A".into(),
                    value: "1".into()
                },
                BuildArg::FromEnv { key: "B".into() }
            ]
        );
        assert_eq!(a.labels[0].value, "");
        assert!(Cli::try_parse_from(["ctxbuild", "plan", "--build-arg", "=v"]).is_err());
    }
}
