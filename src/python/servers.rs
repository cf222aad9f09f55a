//! Which ASGI servers a project installs itself, and what the image must add.
//!
//! The rendered image runs `gunicorn -k uvicorn_worker.UvicornWorker`, so it needs three
//! packages: `gunicorn`, `uvicorn-worker` and `uvicorn`. A project usually lists only some of
//! them — `fastapi[standard]` pulls uvicorn but never gunicorn — so [`Servers::missing`] names
//! the ones ctxbuild installs, pinned to [`PINS`]. A package the project lists (at any version,
//! or through an extra) is never in that list: the project's pin wins. For a `uv.lock` project
//! the lock is the truth (it lists transitive packages too).

use super::deps::{Dependencies, DependencySource};
use crate::python::requirements::Requirement;

/// The server packages and the versions ctxbuild installs when the project does not
/// (current stable releases on PyPI when the template was last revised).
pub const PINS: [(Server, &str); 3] = [
    (Server::Gunicorn, "27.0.1"),
    (Server::UvicornWorker, "0.4.0"),
    (Server::Uvicorn, "0.54.0"),
];

/// The uv release the `uv.lock` template installs.
pub const UV_PIN: &str = "0.13.9";

/// A package the image's command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    Gunicorn,
    UvicornWorker,
    Uvicorn,
}

impl Server {
    /// The PyPI name.
    pub fn package(self) -> &'static str {
        match self {
            Server::Gunicorn => "gunicorn",
            Server::UvicornWorker => "uvicorn-worker",
            Server::Uvicorn => "uvicorn",
        }
    }

    /// The version ctxbuild pins.
    pub fn pin(self) -> &'static str {
        PINS.iter()
            .find(|(s, _)| *s == self)
            .map(|(_, v)| *v)
            .unwrap_or_default()
    }
}

/// How the project gets a server package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum Provided {
    /// Listed by name: `specifier` as written (empty = any version).
    Direct { specifier: String, line: usize },
    /// Pulled in by another requirement's extra (`fastapi[standard]`).
    Extra { requirement: String, line: usize },
    /// Pinned in `uv.lock`.
    Locked { version: Option<String> },
}

/// For each server package, how the project provides it (`None`: it does not).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Servers {
    pub gunicorn: Option<Provided>,
    pub uvicorn_worker: Option<Provided>,
    pub uvicorn: Option<Provided>,
}

/// A package the image installs in its own layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    pub package: &'static str,
    pub version: &'static str,
}

impl Pin {
    /// `package==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// Extras that pull uvicorn in: `fastapi[standard]`, `fastapi[all]`,
/// `fastapi[standard-no-fastapi-cloud-cli]`, `uvicorn[...]` itself is direct.
fn extra_provides(r: &Requirement) -> Option<Server> {
    let pulls_uvicorn = r.name == "fastapi"
        && r.extras
            .iter()
            .any(|e| e == "standard" || e == "all" || e == "standard-no-fastapi-cloud-cli");
    pulls_uvicorn.then_some(Server::Uvicorn)
}

impl Servers {
    /// What the project's dependencies provide.
    pub fn of(deps: &Dependencies) -> Servers {
        let mut s = Servers::default();
        if deps.source == DependencySource::Uv {
            for l in &deps.locked {
                if let Some(server) = by_name(&l.name) {
                    *s.slot(server) = Some(Provided::Locked {
                        version: l.version.clone(),
                    });
                }
            }
            return s;
        }
        s.add_requirements(&deps.direct);
        s
    }

    /// What a list of requirements provides (a hand-written Dockerfile's requirements file).
    pub fn of_requirements(reqs: &[Requirement]) -> Servers {
        let mut s = Servers::default();
        s.add_requirements(reqs);
        s
    }

    fn add_requirements(&mut self, reqs: &[Requirement]) {
        for r in reqs {
            if let Some(server) = by_name(&r.name) {
                *self.slot(server) = Some(Provided::Direct {
                    specifier: r.specifier.clone(),
                    line: r.line,
                });
            }
        }
        for r in reqs {
            if let Some(server) = extra_provides(r) {
                let slot = self.slot(server);
                if slot.is_none() {
                    let extras = r.extras.join(",");
                    *slot = Some(Provided::Extra {
                        requirement: format!("{}[{extras}]", r.name),
                        line: r.line,
                    });
                }
            }
        }
    }

    fn slot(&mut self, server: Server) -> &mut Option<Provided> {
        match server {
            Server::Gunicorn => &mut self.gunicorn,
            Server::UvicornWorker => &mut self.uvicorn_worker,
            Server::Uvicorn => &mut self.uvicorn,
        }
    }

    /// How the project provides `server`.
    pub fn get(&self, server: Server) -> Option<&Provided> {
        match server {
            Server::Gunicorn => self.gunicorn.as_ref(),
            Server::UvicornWorker => self.uvicorn_worker.as_ref(),
            Server::Uvicorn => self.uvicorn.as_ref(),
        }
    }

    /// The packages ctxbuild must install, pinned, in [`PINS`] order.
    pub fn missing(&self) -> Vec<Pin> {
        PINS.iter()
            .filter(|(s, _)| self.get(*s).is_none())
            .map(|(s, v)| Pin {
                package: s.package(),
                version: v,
            })
            .collect()
    }
}

fn by_name(name: &str) -> Option<Server> {
    match name {
        "gunicorn" => Some(Server::Gunicorn),
        "uvicorn-worker" => Some(Server::UvicornWorker),
        "uvicorn" => Some(Server::Uvicorn),
        _ => None,
    }
}
