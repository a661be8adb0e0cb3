//! Declarative provisioning inside guests: from a guest's `features` (the bash system's
//! application scripts) to a list of [`ProvisionStep`]s — packages to have, files to place,
//! downloads, services to enable and reload, and a command only where nothing declarative
//! fits. Each step carries its `check` (run first; when it passes the step is kept, so a second
//! run changes nothing) and its `apply` (argv vectors, never shell strings). Pure: no I/O; the
//! runner lives in `phoenix_exec::guest::provision`.
//!
//! | feature | steps |
//! |---|---|
//! | `base_setup` | packages `ca-certificates`, `curl` |
//! | `trusted_ca` | package `ca-certificates` (the root itself is placed by the trust wave, which runs `update-ca-certificates`) |
//! | `step_cli` | Smallstep's apt repository (signing key fetched to `/etc/apt/keyrings/smallstep.asc`, deb822 `/etc/apt/sources.list.d/smallstep.sources`), package `step-cli` |
//! | `step_ca` | the repository, package `step-ca`, system user `step`, its database directory `db/`, the CA material under `step_ca.ca_dir` (`config/ca.json` rendered by phoenix-pki, root and intermediate certificates, intermediate key, password file — all supplied at apply time, never in the plan), unit `step-ca.service`, service enabled and restarted when any of them changes |
//! | `traefik` | the binary from [`ProvisionOptions::traefik`] into `/usr/local/bin/traefik`, unit `traefik.service`, the rendered configs, service enabled and restarted when the static config or unit changes (the dynamic directory is watched) |
//! | `nginx` | package `nginx`, the rendered gateway config, service enabled and reloaded when it changes |
//! | `docker` | package `docker.io` (Debian's); on a Swarm VM `/etc/docker/daemon.json` and the `docker.service` drop-in rendered by `phoenix_render::dockerd` (Engine API on the mesh address :2376 with `tlsverify`); service `docker` enabled and restarted when they change (its server certificate comes from the `certificates` wave) |
//! | `docker_proxy` | as `docker`; the bash script's proxy settings are not known, so the plan says so in a note |
//!
//! Every rendered file of the guest (`phoenix_render::render_all`, target `Guest(id)`) becomes a
//! `File` step too, whether or not a feature asks for it. Features not in the table are not steps:
//! `validate` reports them (PHX-W032). Certificates from the manifest are delivered by the
//! `certificates` wave, not here.

use std::collections::BTreeSet;
use std::fmt;

use phoenix_model::model::{DesiredState, Guest, GuestId};
use phoenix_render::{FileTarget, RenderedFile};
use serde::Serialize;

use crate::observed::sha256_hex;

/// Smallstep's apt signing key (<https://smallstep.com/docs/step-ca/installation/>).
pub const SMALLSTEP_KEY_URL: &str = "https://packages.smallstep.com/keys/apt/repo-signing-key.gpg";
pub const SMALLSTEP_KEYRING: &str = "/etc/apt/keyrings/smallstep.asc";
pub const SMALLSTEP_SOURCES: &str = "/etc/apt/sources.list.d/smallstep.sources";
pub const TRAEFIK_BINARY: &str = "/usr/local/bin/traefik";
pub const TRAEFIK_UNIT: &str = "/etc/systemd/system/traefik.service";
pub const STEP_CA_UNIT: &str = "/etc/systemd/system/step-ca.service";
pub const NGINX_SERVICE: &str = "nginx";
pub const DOCKER_DAEMON_JSON: &str = phoenix_render::dockerd::DAEMON_JSON;
pub const DOCKER_DROP_IN: &str = phoenix_render::dockerd::DROP_IN;

/// Where a downloaded binary comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinarySource {
    pub url: String,
    /// Hex SHA-256 of the download; checked before anything is installed when given.
    pub sha256: Option<String>,
    /// The download is a `.tar.gz` holding the binary under the destination's file name.
    pub tar_gz: bool,
}

/// Settings of provisioning that are not part of the configuration files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionOptions {
    pub traefik: BinarySource,
}

impl Default for ProvisionOptions {
    /// Traefik v3.7.0 for linux/amd64 from GitHub's release page (the lab runs 3.7 too).
    fn default() -> Self {
        ProvisionOptions {
            traefik: BinarySource {
                url: "https://github.com/traefik/traefik/releases/download/v3.7.0/traefik_v3.7.0_linux_amd64.tar.gz".into(),
                sha256: None,
                tar_gz: true,
            },
        }
    }
}

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum FileSource {
    /// Text fixed by the feature table (systemd units, apt sources), carried in the step.
    Inline { content: String },
    /// A rendered file of the plan (`Plan::files`, same guest and path).
    Rendered { sha256: String },
    /// Supplied when the plan is applied (CA material, secrets): never in the plan.
    Material { name: String },
}

/// One command whose success means "already done".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub argv: Vec<String>,
    /// When set, stdout (trimmed) must equal this too.
    pub stdout: Option<String>,
}

/// How a step is checked before it changes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Check {
    /// Done when every probe passes.
    Probes { probes: Vec<Probe> },
    /// Done when the file exists with the wanted content, owner, group and mode.
    FileMatches,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepKind {
    /// An apt package, installed (`apt-get update` first: repositories may be new).
    Package { name: String },
    /// A file with owner, group and mode; its parent directory is created when missing.
    File {
        path: String,
        source: FileSource,
        owner: String,
        group: String,
        mode: u32,
    },
    /// Download `source` into the guest at `dest` (verified, then installed with `mode`).
    Fetch {
        source: BinarySource,
        dest: String,
        mode: u32,
    },
    /// A systemd service: enabled and running; restarted (or reloaded) when a file in
    /// `reload_on` was changed by this run.
    Service {
        name: String,
        enable: bool,
        reload_on: Vec<String>,
        /// `systemctl reload` is enough (nginx); otherwise `reload-or-restart`.
        reload: bool,
    },
    /// A command where nothing declarative fits (creating a system user).
    Command { what: String },
}

/// One step inside one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionStep {
    /// The feature that asked for it (`rendered` for rendered files no feature names).
    pub feature: String,
    pub kind: StepKind,
    pub check: Check,
    /// Argv vectors run in order when the check fails (files and fetches are written by the
    /// executor itself after these).
    pub apply: Vec<Vec<String>>,
}

impl ProvisionStep {
    /// A stable identity within a guest (for de-duplication and reload triggers).
    pub fn key(&self) -> String {
        match &self.kind {
            StepKind::Package { name } => format!("package:{name}"),
            StepKind::File { path, .. } => format!("file:{path}"),
            StepKind::Fetch { dest, .. } => format!("file:{dest}"),
            StepKind::Service { name, .. } => format!("service:{name}"),
            StepKind::Command { what } => format!("command:{what}"),
        }
    }

    /// What an observation records when the step's check passed: the key, plus the content
    /// hash for files whose content phoenix knows (a changed file is not done).
    pub fn done_key(&self) -> String {
        match &self.kind {
            StepKind::File {
                source: FileSource::Rendered { sha256 },
                ..
            } => format!("{}#{sha256}", self.key()),
            StepKind::File {
                source: FileSource::Inline { content },
                ..
            } => format!("{}#{}", self.key(), sha256_hex(content)),
            _ => self.key(),
        }
    }

    /// The path a file or fetch step writes.
    pub fn path(&self) -> Option<&str> {
        match &self.kind {
            StepKind::File { path, .. } => Some(path),
            StepKind::Fetch { dest, .. } => Some(dest),
            _ => None,
        }
    }
}

impl fmt::Display for ProvisionStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            StepKind::Package { name } => write!(f, "package {name}"),
            StepKind::File {
                path,
                source,
                owner,
                group,
                mode,
            } => {
                let from = match source {
                    FileSource::Inline { .. } => "phoenix".to_string(),
                    FileSource::Rendered { .. } => "rendered".to_string(),
                    FileSource::Material { name } => format!("{name}, at apply time"),
                };
                write!(f, "file {path} ({owner}:{group} {mode:04o}, {from})")
            }
            StepKind::Fetch { source, dest, .. } => {
                write!(f, "download {} → {dest}", source.url)
            }
            StepKind::Service {
                name,
                enable,
                reload_on,
                ..
            } => {
                let verb = if *enable { "enable and start" } else { "start" };
                write!(f, "service {name}: {verb}")?;
                if !reload_on.is_empty() {
                    write!(f, ", reload when {} change", reload_on.join(", "))?;
                }
                Ok(())
            }
            StepKind::Command { what } => write!(f, "{what}"),
        }?;
        write!(f, " [{}]", self.feature)
    }
}

/// The steps of one guest, and what the table could not cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestProvision {
    pub steps: Vec<ProvisionStep>,
    pub notes: Vec<String>,
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn probe(parts: &[&str], stdout: Option<&str>) -> Probe {
    Probe {
        argv: argv(parts),
        stdout: stdout.map(str::to_string),
    }
}

/// `apt-get install` of one package, with a fresh index (repositories may have just been added).
pub fn package(feature: &str, name: &str) -> ProvisionStep {
    ProvisionStep {
        feature: feature.into(),
        kind: StepKind::Package { name: name.into() },
        check: Check::Probes {
            probes: vec![probe(
                &["dpkg-query", "-W", "-f=${Status}", name],
                Some("install ok installed"),
            )],
        },
        apply: vec![
            argv(&[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "update",
                "-q",
            ]),
            argv(&[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                name,
            ]),
        ],
    }
}

fn file(feature: &str, path: &str, source: FileSource, owner: &str, mode: u32) -> ProvisionStep {
    ProvisionStep {
        feature: feature.into(),
        kind: StepKind::File {
            path: path.into(),
            source,
            owner: owner.into(),
            group: owner.into(),
            mode,
        },
        check: Check::FileMatches,
        apply: Vec::new(),
    }
}

fn inline(feature: &str, path: &str, content: String) -> ProvisionStep {
    file(feature, path, FileSource::Inline { content }, "root", 0o644)
}

fn material(feature: &str, path: &str, name: &str, owner: &str, mode: u32) -> ProvisionStep {
    let source = FileSource::Material { name: name.into() };
    file(feature, path, source, owner, mode)
}

fn service(feature: &str, name: &str, reload_on: Vec<String>, reload: bool) -> ProvisionStep {
    ProvisionStep {
        feature: feature.into(),
        kind: StepKind::Service {
            name: name.into(),
            enable: true,
            reload_on,
            reload,
        },
        check: Check::Probes {
            probes: vec![
                probe(&["systemctl", "is-enabled", name], Some("enabled")),
                probe(&["systemctl", "is-active", name], Some("active")),
            ],
        },
        apply: vec![
            argv(&["systemctl", "daemon-reload"]),
            argv(&["systemctl", "enable", "--now", name]),
        ],
    }
}

fn fetch(feature: &str, source: BinarySource, dest: &str, mode: u32) -> ProvisionStep {
    // An executable must be executable; a key must merely be there.
    let test = if mode & 0o111 != 0 { "-x" } else { "-s" };
    ProvisionStep {
        feature: feature.into(),
        kind: StepKind::Fetch {
            source,
            dest: dest.into(),
            mode,
        },
        check: Check::Probes {
            probes: vec![probe(&["test", test, dest], None)],
        },
        apply: Vec::new(),
    }
}

fn smallstep_repo(feature: &str) -> Vec<ProvisionStep> {
    let key = BinarySource {
        url: SMALLSTEP_KEY_URL.into(),
        sha256: None,
        tar_gz: false,
    };
    let sources = format!(
        "# Managed by phoenix\nTypes: deb\nURIs: https://pkgs.infra.smallstep.com/stable/debian\nSuites: debs\nComponents: main\nSigned-By: {SMALLSTEP_KEYRING}\n"
    );
    vec![
        package(feature, "ca-certificates"),
        package(feature, "curl"),
        fetch(feature, key, SMALLSTEP_KEYRING, 0o644),
        inline(feature, SMALLSTEP_SOURCES, sources),
    ]
}

/// The systemd unit of step-ca (the package ships none).
pub fn step_ca_unit(ca_dir: &str) -> String {
    let d = ca_dir.trim_end_matches('/');
    format!(
        "# Managed by phoenix\n[Unit]\nDescription=step-ca (phoenix)\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nUser=step\nGroup=step\nExecStart=/usr/bin/step-ca {d}/config/ca.json --password-file {d}/secrets/password\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// The systemd unit of Traefik.
pub fn traefik_unit() -> String {
    format!(
        "# Managed by phoenix\n[Unit]\nDescription=Traefik (phoenix)\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nExecStart={TRAEFIK_BINARY} --configFile={}\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n",
        phoenix_render::traefik::STATIC_CONFIG_PATH
    )
}

fn step_ca(d: &DesiredState) -> Vec<ProvisionStep> {
    let f = "step_ca";
    let dir = d.step_ca.ca_dir.trim_end_matches('/').to_string();
    let mut steps = smallstep_repo(f);
    steps.push(package(f, "step-ca"));
    steps.push(ProvisionStep {
        feature: f.into(),
        kind: StepKind::Command {
            what: "system user step".into(),
        },
        check: Check::Probes {
            probes: vec![probe(&["id", "-u", "step"], None)],
        },
        apply: vec![vec![
            "useradd".into(),
            "--system".into(),
            "--user-group".into(),
            "--home-dir".into(),
            dir.clone(),
            "--shell".into(),
            "/usr/sbin/nologin".into(),
            "step".into(),
        ]],
    });
    // step-ca's badger database: written by step-ca itself, so owned by its user.
    let db = format!("{dir}/db");
    steps.push(ProvisionStep {
        feature: f.into(),
        kind: StepKind::Command {
            what: format!("directory {db} owned by step"),
        },
        check: Check::Probes {
            probes: vec![probe(
                &["stat", "-c", "%U:%G:%a", &db],
                Some("step:step:700"),
            )],
        },
        apply: vec![argv(&[
            "install", "-d", "-o", "step", "-g", "step", "-m", "0700", &db,
        ])],
    });
    let ca_json = format!("{dir}/config/ca.json");
    let materials = [
        (ca_json.clone(), "ca.json", 0o600),
        (
            format!("{dir}/certs/root_ca.crt"),
            "root certificate",
            0o644,
        ),
        (
            format!("{dir}/certs/intermediate_ca.crt"),
            "intermediate certificate",
            0o644,
        ),
        (
            format!("{dir}/secrets/intermediate_ca_key"),
            "intermediate key",
            0o600,
        ),
        (format!("{dir}/secrets/password"), "step-ca password", 0o600),
    ];
    let mut reload_on = Vec::new();
    for (path, name, mode) in materials {
        steps.push(material(f, &path, name, "step", mode));
        reload_on.push(path);
    }
    steps.push(inline(f, STEP_CA_UNIT, step_ca_unit(&dir)));
    reload_on.push(STEP_CA_UNIT.into());
    steps.push(service(f, "step-ca", reload_on, false));
    steps
}

/// The steps for `guest`: its features in table order, then its rendered files no feature
/// placed; services last of their feature. Duplicates (a repository two features need) once.
pub fn guest_steps(
    d: &DesiredState,
    guest: &Guest,
    rendered: &[RenderedFile],
    opts: &ProvisionOptions,
) -> GuestProvision {
    let mine: Vec<&RenderedFile> = rendered
        .iter()
        .filter(|f| f.target == FileTarget::Guest(guest.id))
        .collect();
    let rendered_file = |feature: &str, f: &RenderedFile| ProvisionStep {
        feature: feature.into(),
        kind: StepKind::File {
            path: f.path.clone(),
            source: FileSource::Rendered {
                sha256: sha256_hex(&f.content),
            },
            owner: f.owner.clone(),
            group: f.group.clone(),
            mode: f.mode,
        },
        check: Check::FileMatches,
        apply: Vec::new(),
    };
    let under = |prefix: &str| -> Vec<&RenderedFile> {
        mine.iter()
            .copied()
            .filter(|f| f.path.starts_with(prefix))
            .collect()
    };
    let mut out = GuestProvision::default();
    let mut steps = Vec::new();
    for feature in &guest.features {
        let f = feature.as_str();
        match f {
            "base_setup" => {
                steps.push(package(f, "ca-certificates"));
                steps.push(package(f, "curl"));
            }
            "trusted_ca" => steps.push(package(f, "ca-certificates")),
            "step_cli" => {
                steps.extend(smallstep_repo(f));
                steps.push(package(f, "step-cli"));
            }
            "step_ca" => steps.extend(step_ca(d)),
            "traefik" => {
                steps.push(fetch(f, opts.traefik.clone(), TRAEFIK_BINARY, 0o755));
                steps.push(inline(f, TRAEFIK_UNIT, traefik_unit()));
                let configs = under("/etc/traefik/");
                steps.extend(configs.iter().map(|c| rendered_file(f, c)));
                let reload_on = vec![
                    TRAEFIK_BINARY.to_string(),
                    TRAEFIK_UNIT.to_string(),
                    phoenix_render::traefik::STATIC_CONFIG_PATH.to_string(),
                ];
                steps.push(service(f, "traefik", reload_on, false));
            }
            "nginx" => {
                steps.push(package(f, "nginx"));
                let configs = under("/etc/nginx/");
                steps.extend(configs.iter().map(|c| rendered_file(f, c)));
                let reload_on = configs.iter().map(|c| c.path.clone()).collect();
                steps.push(service(f, NGINX_SERVICE, reload_on, true));
            }
            "docker" | "docker_proxy" => {
                steps.push(package(f, "docker.io"));
                // A Swarm VM's daemon.json and drop-in (phoenix_render::dockerd, rendered
                // for the Docker package, not among the guest's other files): the engine
                // restarts when they change (the drop-in has no ExecReload).
                let configs: Vec<RenderedFile> = phoenix_render::dockerd::files(d)
                    .into_iter()
                    .filter(|c| c.target == FileTarget::Guest(guest.id))
                    .collect();
                steps.extend(
                    configs
                        .iter()
                        .map(|c| inline(f, &c.path, c.content.clone())),
                );
                let reload_on = configs.iter().map(|c| c.path.clone()).collect();
                steps.push(service(f, "docker", reload_on, false));
                if f == "docker_proxy" {
                    out.notes.push(format!(
                        "guest {}: docker_proxy installs Docker only; the bash script's proxy settings are not known to phoenix",
                        guest.id
                    ));
                }
            }
            // Not provisioned: `validate` reports it (PHX-W032).
            _ => {}
        }
    }
    for f in &mine {
        steps.push(rendered_file("rendered", f));
    }
    let mut seen = BTreeSet::new();
    steps.retain(|s| seen.insert(s.key()));
    out.steps = steps;
    out
}

/// Every guest's steps, in guest order (templates have none: they never run).
pub fn plan_steps(
    d: &DesiredState,
    rendered: &[RenderedFile],
    opts: &ProvisionOptions,
) -> Vec<(GuestId, GuestProvision)> {
    d.guests
        .values()
        .filter(|g| !g.is_template)
        .map(|g| (g.id, guest_steps(d, g, rendered, opts)))
        .filter(|(_, p)| !p.steps.is_empty() || !p.notes.is_empty())
        .collect()
}

#[cfg(test)]
#[path = "provision_tests.rs"]
mod tests;

/// The CA material step-ca's steps name ([`FileSource::Material`]), for the CA guest: what an
/// executor supplies at apply time. Pure: the caller reads the CA (certificates, the
/// intermediate key as step-ca will read it, the password that opens it) and the JWK
/// provisioner's public key; without a provisioner key there is no `ca.json` (its step is then
/// skipped for want of it).
pub struct StepCaMaterial<'a> {
    pub root_pem: &'a str,
    pub intermediate_pem: &'a str,
    /// The intermediate key file's text (encrypted PKCS#8 when `password` opens it).
    pub intermediate_key: &'a str,
    pub password: &'a str,
    pub provisioner: Option<&'a phoenix_pki::stepca::PublicJwk>,
}

/// Material files by name ([`FileSource::Material`]'s `name`) with their content.
pub type MaterialFiles = Vec<(&'static str, String)>;

/// `(CA guest, [(material name, content)])` for `m`, or why there is none (no CA guest).
pub fn step_ca_materials(
    d: &DesiredState,
    m: &StepCaMaterial<'_>,
) -> Result<(GuestId, MaterialFiles), String> {
    use phoenix_pki::stepca::{CaJsonParams, LeafClaims, StepCaPaths, ca_guest_mesh_address};
    let (id, addr) = ca_guest_mesh_address(d).map_err(|e| e.to_string())?;
    let mut out = vec![
        ("root certificate", m.root_pem.to_string()),
        ("intermediate certificate", m.intermediate_pem.to_string()),
        ("intermediate key", m.intermediate_key.to_string()),
        ("step-ca password", format!("{}\n", m.password.trim_end())),
    ];
    if let Some(key) = m.provisioner {
        let rendered = phoenix_pki::stepca::ca_json(&CaJsonParams {
            settings: &d.step_ca,
            mesh_address: addr,
            paths: &StepCaPaths::under(&d.step_ca.ca_dir),
            provisioner_key: key,
            claims: LeafClaims::default(),
            acme_provisioner: "acme",
        });
        out.push(("ca.json", rendered.to_file_text()));
    }
    Ok((id, out))
}
