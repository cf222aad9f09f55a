//! The command line, as clap derive types only. No logic here: `main.rs` resolves these into
//! library configuration and dispatches to `commands/`.

use clap::{Args, Parser, Subcommand};
use ctxbuild::config::{ColorChoice, ProgressChoice};
use std::path::PathBuf;

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
    Completions(CompletionsArgs),
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

/// List the files and symlinks visible to `COPY . /dst/`, exactly as Docker sees the context.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild ls                        # the context of .\n  ctxbuild ls examples/backend --json\n  ctxbuild ls . -f docker/Dockerfile --sizes"
)]
pub struct LsArgs {
    /// The build context (default: the current directory).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The Dockerfile (default: DIR/Dockerfile).
    #[arg(short = 'f', long, value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,

    /// Print type, size, mode and link target as JSON.
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
    /// The build context (default: the current directory).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The Dockerfile (default: DIR/Dockerfile).
    #[arg(short = 'f', long, value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,

    /// Build-time variables, as for docker build (repeatable).
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,

    /// Stop at this stage, as for docker build --target.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,

    /// Save the plan to FILE, for `ctxbuild explain --since FILE`.
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
    /// The build context (default: the current directory).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The Dockerfile (default: DIR/Dockerfile).
    #[arg(short = 'f', long, value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,

    /// The plan saved earlier with `ctxbuild plan --save`.
    #[arg(long, value_name = "FILE")]
    pub since: PathBuf,

    /// Build-time variables, as for docker build (repeatable).
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,

    /// Stop at this stage, as for docker build --target.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

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
    /// The build context (default: the current directory).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The Dockerfile (default: DIR/Dockerfile).
    #[arg(short = 'f', long, value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,

    /// Output file; `-` for stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,

    /// Compress with gzip, optionally at LEVEL (0-9, default 6).
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, default_missing_value = "6",
          value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip: Option<u32>,
}

/// Render a service's Dockerfile from ctxbuild's templates.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild render backend --alpine\n  ctxbuild render auth --slim -o examples/auth/Dockerfile --write-dockerignore"
)]
pub struct RenderArgs {
    /// The service name from ctxbuild.toml.
    pub service: String,

    /// Use the Alpine variant (the default for Python services).
    #[arg(long, conflicts_with = "slim")]
    pub alpine: bool,

    /// Use the Debian slim variant.
    #[arg(long)]
    pub slim: bool,

    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write a .dockerignore into the service's context if it has none.
    #[arg(long)]
    pub write_dockerignore: bool,

    /// Override the base image (e.g. an offline-built image).
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// The configuration file (default: ./ctxbuild.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Lint Dockerfiles, compose files and ctxbuild.toml for the drift that breaks deploys.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild check\n  ctxbuild check backend auth --json\n  ctxbuild check --rules"
)]
pub struct CheckArgs {
    /// Services to check (default: all in ctxbuild.toml).
    pub services: Vec<String>,

    /// Print findings as JSON.
    #[arg(long)]
    pub json: bool,

    /// List every rule (id, severity, what it catches) and exit.
    #[arg(long, conflicts_with = "services")]
    pub rules: bool,

    /// The configuration file (default: ./ctxbuild.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Build a service image through the Docker Engine API, with a per-layer cache report.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxbuild image backend --alpine\n  ctxbuild image backend --alpine -t gcr.io/acme/backend:$SHORT_SHA --push\n  ctxbuild image backend --base-image ctxbuild-test/python:3-bookworm --report report.json"
)]
pub struct ImageArgs {
    /// The service name from ctxbuild.toml.
    pub service: String,

    /// Use the Alpine variant (the default for Python services).
    #[arg(long, conflicts_with = "slim")]
    pub alpine: bool,

    /// Use the Debian slim variant.
    #[arg(long)]
    pub slim: bool,

    /// Use this Dockerfile instead of rendering one.
    #[arg(short = 'f', long, value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,

    /// Image tags (repeatable; default: ctxbuild/SERVICE:latest-build).
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,

    /// Build-time variables (repeatable).
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,

    /// Build up to this stage.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Do not use the layer cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Always try to pull a newer base image.
    #[arg(long)]
    pub pull: bool,

    /// Target platform, e.g. linux/amd64.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Extra image labels (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,

    /// Override the base image.
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// Skip the `check` gate.
    #[arg(long)]
    pub no_check: bool,

    /// Run `ctxbuild clean` on the context first.
    #[arg(long)]
    pub clean: bool,

    /// Push every tag after a successful build.
    #[arg(long)]
    pub push: bool,

    /// Write the cache report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// The Docker engine, as for docker -H (default: $DOCKER_HOST or the local socket).
    #[arg(short = 'H', long, value_name = "HOST")]
    pub host: Option<String>,

    /// The configuration file (default: ./ctxbuild.toml).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Print shell completions.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
