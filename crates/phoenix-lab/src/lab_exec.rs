//! The lab's [`GuestExec`]: a lab guest's inside is its namespace and its file root under
//! the lab's state dir. Files are written for real (owner, group, mode, atomically) with
//! in-guest paths remapped into the root and read back in the guest's own form; no command
//! runs on the shared host except the few a node's actions run in a guest, mapped to the
//! lab's own services (the table in [`crate::provision`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use phoenix_exec::guest::provision::{GuestExec, ProvisionError, StepOutcome};
use phoenix_exec::shell::{CommandOutput, HostFile};
use phoenix_model::model::GuestId;
use phoenix_plan::provision::{ProvisionStep, StepKind, TRAEFIK_BINARY};

use crate::roots::under;

/// A lab guest's inside: files under its root, commands in its namespace (see the module doc).
#[derive(Debug)]
pub struct LabExec {
    pub guest: GuestId,
    pub ns: String,
    pub root: PathBuf,
    /// In-guest paths rewritten into the root in file contents ([`crate::ingress::remap`]).
    pub known: Vec<String>,
    /// The rendered files of this guest (path → content): read back in their own form.
    pub rendered: BTreeMap<String, String>,
    /// This guest is the ingress proxy (Traefik's static file gets the lab's adjustments).
    pub proxy: bool,
    /// The lab it belongs to (its services' records).
    pub prefix: String,
    /// This guest is the ingress gateway (its nginx is the lab's `nginx-gw`).
    pub gateway: bool,
    /// This guest's engine when it is a Swarm VM (its `docker` service is that dockerd).
    pub engine: Option<crate::swarm::SwarmNode>,
}

fn guest_err(guest: GuestId, what: impl Into<String>) -> ProvisionError {
    ProvisionError::Guest {
        guest,
        what: what.into(),
    }
}

/// One `name:x:id:…` database (`/etc/passwd` or `/etc/group`): (name, id).
fn id_db(path: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split(':');
            let name = it.next()?;
            let id = it.nth(1)?.parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn host_package_installed(name: &str) -> bool {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"install ok installed")
}

pub(crate) fn show(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl LabExec {
    /// `in_guest` under the root; refuses relative paths, `..` and symlinks leading out.
    pub fn host_path(&self, in_guest: &str) -> Result<PathBuf, ProvisionError> {
        let p = Path::new(in_guest);
        if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(guest_err(
                self.guest,
                format!("{in_guest}: not an absolute path inside the guest"),
            ));
        }
        let host = under(&self.root, in_guest);
        let root = self
            .root
            .canonicalize()
            .map_err(|e| guest_err(self.guest, format!("{}: {e}", show(&self.root))))?;
        let existing = host.ancestors().find(|a| a.exists()).unwrap_or(&self.root);
        let real = existing
            .canonicalize()
            .map_err(|e| guest_err(self.guest, format!("{}: {e}", show(existing))))?;
        if !real.starts_with(&root) {
            return Err(guest_err(
                self.guest,
                format!("{in_guest}: leads out of the guest root ({})", show(&real)),
            ));
        }
        Ok(host)
    }

    /// The file's text as the lab runs it.
    pub fn to_lab(&self, path: &str, content: &str) -> String {
        let mut text = crate::ingress::remap(content, &self.root, &self.known);
        if self.proxy && path == phoenix_render::traefik::STATIC_CONFIG_PATH {
            text = crate::traefik::with_short_grace(&crate::traefik::without_swarm(&text).0).0;
        }
        text
    }

    /// The file's text in the guest's own form.
    pub fn from_lab(&self, path: &str, text: &str) -> String {
        if let Some(r) = self.rendered.get(path)
            && self.to_lab(path, r) == text
        {
            return r.clone();
        }
        text.replace(&format!("{}/", show(&self.root)), "/")
    }

    fn db(&self, which: &str) -> Vec<(String, u32)> {
        let mut v = id_db(&under(&self.root, which));
        v.extend(id_db(Path::new(which)));
        v
    }

    pub(crate) fn id_of(&self, which: &str, name: &str) -> Result<u32, ProvisionError> {
        if let Ok(n) = name.parse() {
            return Ok(n);
        }
        self.db(which)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id)
            .ok_or_else(|| guest_err(self.guest, format!("no {name} in the guest's {which}")))
    }

    pub(crate) fn name_of(&self, which: &str, id: u32) -> String {
        self.db(which)
            .into_iter()
            .find(|(_, i)| *i == id)
            .map_or_else(|| id.to_string(), |(n, _)| n)
    }

    fn chown_chmod(
        &self,
        p: &Path,
        owner: &str,
        group: &str,
        mode: u32,
    ) -> Result<(), ProvisionError> {
        let uid = self.id_of("/etc/passwd", owner)?;
        let gid = self.id_of("/etc/group", group)?;
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .map_err(|e| guest_err(self.guest, format!("chown {}: {e}", show(p))))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| guest_err(self.guest, format!("chmod {}: {e}", show(p))))
    }

    fn mkdirs(&self, p: &Path) -> Result<(), ProvisionError> {
        std::fs::create_dir_all(p).map_err(|e| guest_err(self.guest, format!("{}: {e}", show(p))))
    }

    /// `useradd --system … NAME` as entries in the guest root's passwd and group.
    pub(crate) fn system_user(
        &self,
        argv: &[String],
        apply: bool,
    ) -> Result<StepOutcome, ProvisionError> {
        let name = argv.last().cloned().unwrap_or_default();
        let passwd = under(&self.root, "/etc/passwd");
        let group = under(&self.root, "/etc/group");
        if id_db(&passwd).iter().any(|(n, _)| *n == name) {
            return Ok(StepOutcome::Kept);
        }
        if !apply {
            return Ok(StepOutcome::Skipped(format!("no user {name}")));
        }
        let flag = |f: &str| {
            argv.iter()
                .position(|a| a == f)
                .and_then(|i| argv.get(i + 1))
                .cloned()
        };
        let home = flag("--home-dir").unwrap_or_else(|| "/".into());
        let shell = flag("--shell").unwrap_or_else(|| "/usr/sbin/nologin".into());
        // A system id (as useradd --system: the highest free below 1000), free in the guest's
        // databases and in the host's, so a number never names two users.
        let taken: Vec<u32> = [self.db("/etc/passwd"), self.db("/etc/group")]
            .concat()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let id = (100..1000u32)
            .rev()
            .find(|i| !taken.contains(i))
            .ok_or_else(|| guest_err(self.guest, "no free system id"))?;
        let append = |p: &Path, line: String| -> Result<(), ProvisionError> {
            self.mkdirs(p.parent().unwrap_or(&self.root))?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(p)
                .map_err(|e| guest_err(self.guest, format!("{}: {e}", show(p))))?;
            f.write_all(line.as_bytes())
                .map_err(|e| guest_err(self.guest, format!("{}: {e}", show(p))))
        };
        append(&group, format!("{name}:x:{id}:\n"))?;
        append(&passwd, format!("{name}:x:{id}:{id}::{home}:{shell}\n"))?;
        Ok(StepOutcome::Applied)
    }

    /// `install -d -o U -g G -m M DIR` under the root.
    pub(crate) fn directory(
        &self,
        argv: &[String],
        apply: bool,
    ) -> Result<StepOutcome, ProvisionError> {
        let flag = |f: &str| {
            argv.iter()
                .position(|a| a == f)
                .and_then(|i| argv.get(i + 1))
                .cloned()
        };
        let owner = flag("-o").unwrap_or_else(|| "root".into());
        let group = flag("-g").unwrap_or_else(|| "root".into());
        let mode = flag("-m")
            .and_then(|m| u32::from_str_radix(&m, 8).ok())
            .unwrap_or(0o755);
        let dir = argv.last().cloned().unwrap_or_default();
        let host = self.host_path(&dir)?;
        if let Ok(m) = std::fs::metadata(&host)
            && m.is_dir()
            && m.mode() & 0o7777 == mode
            && self.name_of("/etc/passwd", m.uid()) == owner
            && self.name_of("/etc/group", m.gid()) == group
        {
            return Ok(StepOutcome::Kept);
        }
        if !apply {
            return Ok(StepOutcome::Skipped(format!("{dir} not as wanted")));
        }
        self.mkdirs(&host)?;
        self.chown_chmod(&host, &owner, &group, mode)?;
        Ok(StepOutcome::Applied)
    }

    /// What the lab does for a package, download or service (never applied; see the table).
    fn provided(&self, step: &ProvisionStep) -> String {
        let lab = |what: &str, found: Option<PathBuf>| match found {
            Some(p) => format!(
                "provided by the lab: {what} from {} (run in {} by its service step, not installed in the guest)",
                show(&p),
                self.ns
            ),
            None => format!(
                "not in the lab: {what} is not available on this machine and the lab never installs"
            ),
        };
        match &step.kind {
            StepKind::Package { name } => match name.as_str() {
                "nginx" => lab("nginx", on_path("nginx")),
                "step-ca" => lab("step-ca", crate::stepca::step_ca_binary()),
                "docker.io" => lab("dockerd", on_path("dockerd")),
                _ if host_package_installed(name) => format!(
                    "provided by the lab: the host's package {name} (the lab's guests share the host's filesystem; the lab never installs packages)"
                ),
                _ => format!(
                    "not in the lab: package {name} is not installed on this machine, and the lab never installs packages"
                ),
            },
            StepKind::Fetch { dest, source, .. } if dest == TRAEFIK_BINARY => {
                match crate::traefik::traefik_binary() {
                    Some(p) => format!(
                        "provided by the lab: Traefik from {} (the lab downloads nothing; {} not fetched)",
                        show(&p),
                        source.url
                    ),
                    None => format!(
                        "not in the lab: no Traefik binary (the lab downloads nothing; {} not fetched)",
                        source.url
                    ),
                }
            }
            StepKind::Fetch { source, .. } => {
                format!(
                    "not in the lab: the lab downloads nothing ({} not fetched)",
                    source.url
                )
            }
            StepKind::Service { name, .. } => {
                let what = match name.as_str() {
                    "nginx" => "nginx",
                    "traefik" => "Traefik",
                    "step-ca" => "step-ca",
                    "docker" => "dockerd",
                    _ => {
                        return format!(
                            "not in the lab: service {name} (the lab never enables or starts systemd units)"
                        );
                    }
                };
                format!(
                    "provided by the lab: {what} runs as a process in {}, not as a systemd unit; the lab never enables, starts or restarts units",
                    self.ns
                )
            }
            _ => String::new(),
        }
    }
}

impl GuestExec for LabExec {
    fn guest(&self) -> GuestId {
        self.guest
    }

    /// The lab runs no command for a provision step: a guest namespace shares this machine's
    /// filesystem, packages and services, so any program would act on the host (and a check
    /// such as `stat` would look at the host's file, not the guest root's). Every step kind is
    /// handled by [`GuestExec::own_step`] or through the file root instead.
    fn run(&self, argv: &[String]) -> Result<CommandOutput, ProvisionError> {
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let name =
            |svc: &str| crate::guest_services::record_name_for(self.gateway, self.guest, svc);
        let status = |status: i32, said: &str| CommandOutput {
            status,
            stdout: said.to_string(),
            stderr: String::new(),
        };
        // The commands a node's actions run inside a guest, on the lab's own services.
        if let (Some(n), ["systemctl", verb, .., "docker"]) = (&self.engine, words.as_slice()) {
            return match *verb {
                "is-active" => Ok(status(
                    if crate::swarm::engine_pid(n).is_some() {
                        0
                    } else {
                        3
                    },
                    "",
                )),
                // dockerd re-reads neither hosts nor TLS files on SIGHUP: always a restart.
                "reload" | "restart" | "reload-or-restart" => match crate::swarm::restart_node(n) {
                    Ok(true) => Ok(status(0, "")),
                    Ok(false) => Ok(status(3, "docker is not running in the lab")),
                    Err(e) => Err(guest_err(self.guest, e.to_string())),
                },
                _ => Err(guest_err(
                    self.guest,
                    format!("`{}`: not a lab service command", argv.join(" ")),
                )),
            };
        }
        match words.as_slice() {
            ["systemctl", "is-active", "--quiet", svc] => {
                let on = crate::guest_services::running(&self.prefix, &name(svc)).is_some();
                return Ok(status(if on { 0 } else { 3 }, ""));
            }
            [
                "systemctl",
                verb @ ("reload" | "restart" | "reload-or-restart"),
                svc,
            ] => {
                let hup = *verb == "reload" || *svc == "nginx";
                return match crate::guest_services::reload_named(&self.prefix, &name(svc), hup) {
                    Ok(true) => Ok(status(0, "")),
                    Ok(false) => Ok(status(3, &format!("{svc} is not running in the lab"))),
                    Err(e) => Err(guest_err(self.guest, e.to_string())),
                };
            }
            ["update-ca-certificates"] => {
                return Ok(status(
                    0,
                    "the lab's programs read the trust files themselves",
                ));
            }
            _ => {}
        }
        Err(guest_err(
            self.guest,
            format!(
                "`{}`: the lab runs no command for provisioning (it would act on the host shared \
                 by every guest)",
                argv.join(" ")
            ),
        ))
    }

    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ProvisionError> {
        let host = self.host_path(path)?;
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(guest_err(self.guest, format!("{}: {e}", show(&host)))),
        };
        if !meta.is_file() {
            return Err(guest_err(
                self.guest,
                format!("{path}: not a regular file in the guest root"),
            ));
        }
        let text = std::fs::read_to_string(&host)
            .map_err(|e| guest_err(self.guest, format!("{}: {e}", show(&host))))?;
        Ok(Some(HostFile {
            content: self.from_lab(path, &text),
            owner: self.name_of("/etc/passwd", meta.uid()),
            group: self.name_of("/etc/group", meta.gid()),
            mode: meta.mode() & 0o7777,
        }))
    }

    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ProvisionError> {
        let host = self.host_path(path)?;
        let parent = host.parent().unwrap_or(&self.root).to_path_buf();
        self.mkdirs(&parent)?;
        let name = host
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.phoenix-tmp"));
        let io = |e: std::io::Error| guest_err(self.guest, format!("{}: {e}", show(&tmp)));
        // Readable by root alone until owner and mode are set (it may be a key).
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        let written = f
            .write_all(self.to_lab(path, &file.content).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io)
            .and_then(|()| self.chown_chmod(&tmp, &file.owner, &file.group, file.mode))
            .and_then(|()| {
                std::fs::rename(&tmp, &host)
                    .map_err(|e| guest_err(self.guest, format!("{}: {e}", show(&host))))
            });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn own_step(
        &self,
        step: &ProvisionStep,
        apply: bool,
    ) -> Option<Result<StepOutcome, ProvisionError>> {
        match &step.kind {
            StepKind::File { .. } => None,
            StepKind::Package { .. } | StepKind::Fetch { .. } | StepKind::Service { .. } => {
                Some(Ok(StepOutcome::Skipped(self.provided(step))))
            }
            StepKind::Command { what } => {
                let argv = step.apply.first().cloned().unwrap_or_default();
                match argv.first().map(String::as_str) {
                    Some("useradd") => Some(self.system_user(&argv, apply)),
                    Some("install") if argv.iter().any(|a| a == "-d") => {
                        Some(self.directory(&argv, apply))
                    }
                    _ => Some(Ok(StepOutcome::Skipped(format!(
                        "no lab equivalent: {what}"
                    )))),
                }
            }
        }
    }
}
