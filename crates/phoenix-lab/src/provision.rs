//! Provisioning inside the lab's guests: the same [`ProvisionStep`]s `sync all` runs in a real
//! guest ([`phoenix_plan::provision`], executed by [`phoenix_exec::guest::provision::apply_provision`])
//! run against each lab guest's namespace and file root ([`run`]). Root only; does I/O.
//!
//! The lab shares the machine's filesystem, package database and systemd with every guest, so
//! its executor ([`LabExec`]) never installs a package, enables or starts a unit, downloads or
//! writes outside the guest's root. What each kind of step does in the lab (decision):
//!
//! | step | in the lab |
//! |---|---|
//! | file (rendered, inline, material) | **real**: written under the guest root ([`crate::roots::guest_root`]) with its owner, group (chown) and mode (chmod), atomically (a temp file 0600, then rename); checked by content, owner, group and mode, so a file changed behind phoenix's back is rewritten |
//! | package | **not applied**: `Skipped("provided by the lab: …")` when the lab has what the package stands for (nginx, step-ca, dockerd on `PATH`, the lab's own build; other packages by a read-only `dpkg-query` of the host), else `Skipped("not in the lab: …")` |
//! | download (`Fetch`) | **not applied** (the lab downloads nothing): Traefik's binary is `Skipped("provided by the lab: …")` when [`crate::traefik::traefik_binary`] finds one |
//! | service | **no systemd unit** is enabled, started or restarted: `Skipped("provided by the lab: …")` here; the lab's executor ([`crate::executor`]) then starts the real program in the guest's namespace for nginx, Traefik, step-ca and dockerd ([`crate::guest_services`]) |
//! | command `useradd` (step's system user) | **real in the guest root**: an entry in `<root>/etc/passwd` and `<root>/etc/group` (never the host's), so owners like `step` resolve |
//! | command `install -d -o U -g G -m M DIR` | **real**: the directory under the root with that owner and mode |
//! | any other command | `Skipped("no lab equivalent: …")` |
//!
//! Owners are names in the guest: resolved through `<root>/etc/passwd` / `group` first, then
//! the host's (root, daemon, …) — read only. Contents: the lab's running services read their
//! files from the guest roots with in-guest paths rewritten into the root
//! ([`crate::ingress::remap`]), so a file is written the way the lab runs it (the same remap,
//! and for the proxy's Traefik static file the lab's adjustments) and read back in the guest's
//! own form; a running lab service therefore never sees a file it cannot use.
//! Commands (`GuestExec::run`) are never run — any program would act on the shared host —
//! except the few a node's actions run inside a guest, which map to the lab's own services:
//! `systemctl is-active|reload|restart` on a service the lab runs, `update-ca-certificates`
//! (a no-op: the lab's programs read the trust files themselves).
//!
//! Materials (step_ca's files): from the lab's CA (`<state dir>/ca`): the root and
//! intermediate certificates, the intermediate key, the lab's password text, and a `ca.json`
//! rendered by phoenix-pki for the model's `step_ca.ca_dir` with the provisioner key the
//! lab's step-ca uses (when it runs). They land under the model's `ca_dir` in the CA guest's
//! root; the running step-ca keeps its own copy under [`crate::stepca::STEP_DIR`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phoenix_exec::guest::provision::{Contents, Materials, StepOutcome, apply_provision};
use phoenix_model::model::{DesiredState, GuestId};
use phoenix_plan::plan::{FileStatus, PlannedFile};
use phoenix_plan::provision::ProvisionOptions;
use phoenix_render::{FileTarget, RenderOptions, RenderedFile};
use serde::Serialize;

use crate::ingress::TRUST_BUNDLE;
use crate::roots::{guest_root, under};
use crate::topology::{LabTopology, NsRole};
use crate::{LabError, require_root, state_dir};

/// What one step did in the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum LabOutcome {
    /// Already as wanted: nothing changed.
    Kept,
    /// Changed in the guest root.
    Applied,
    /// Not done in the lab, with the reason (provided by the lab, not in the lab, …).
    Skipped(String),
    Failed(String),
}

impl From<StepOutcome> for LabOutcome {
    fn from(o: StepOutcome) -> Self {
        match o {
            StepOutcome::Kept => LabOutcome::Kept,
            StepOutcome::Applied => LabOutcome::Applied,
            StepOutcome::Skipped(r) => LabOutcome::Skipped(r),
            StepOutcome::Failed(r) => LabOutcome::Failed(r),
        }
    }
}

/// One step and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStep {
    /// [`ProvisionStep::key`].
    pub key: String,
    /// The step as `plan` shows it.
    pub step: String,
    #[serde(flatten)]
    pub outcome: LabOutcome,
}

/// One guest's steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestReport {
    pub guest: u32,
    pub ns: String,
    /// The guest's file root (host path).
    pub root: PathBuf,
    pub steps: Vec<LabStep>,
    pub notes: Vec<String>,
}

/// What [`run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LabProvisionReport {
    pub prefix: String,
    pub guests: Vec<GuestReport>,
    pub notes: Vec<String>,
}

impl LabProvisionReport {
    fn count(&self, f: impl Fn(&LabOutcome) -> bool) -> usize {
        self.guests
            .iter()
            .flat_map(|g| &g.steps)
            .filter(|s| f(&s.outcome))
            .count()
    }
    pub fn applied(&self) -> usize {
        self.count(|o| *o == LabOutcome::Applied)
    }
    pub fn kept(&self) -> usize {
        self.count(|o| *o == LabOutcome::Kept)
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, LabOutcome::Skipped(_)))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, LabOutcome::Failed(_)))
    }
    /// The steps of guest `id`.
    pub fn guest(&self, id: u32) -> Option<&GuestReport> {
        self.guests.iter().find(|g| g.guest == id)
    }
}

impl std::fmt::Display for LabProvisionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for g in &self.guests {
            writeln!(f, "guest {} ({}):", g.guest, g.ns)?;
            for s in &g.steps {
                let o = match &s.outcome {
                    LabOutcome::Kept => "kept".to_string(),
                    LabOutcome::Applied => "applied".to_string(),
                    LabOutcome::Skipped(r) => format!("skipped: {r}"),
                    LabOutcome::Failed(r) => format!("FAILED: {r}"),
                };
                writeln!(f, "  {}: {o}", s.step)?;
            }
            for n in &g.notes {
                writeln!(f, "  note: {n}")?;
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        write!(
            f,
            "{} applied, {} kept, {} skipped, {} failed",
            self.applied(),
            self.kept(),
            self.skipped(),
            self.failed()
        )
    }
}

fn err(reason: impl Into<String>) -> LabError {
    LabError::Provision(reason.into())
}

pub use crate::lab_exec::LabExec;
use crate::lab_exec::show;

// ------------------------------------------------------------------------ materials

/// step_ca's apply-time files from the lab's CA (see the module doc).
#[derive(Debug, Default)]
pub struct LabMaterials {
    pub guest: Option<GuestId>,
    pub files: BTreeMap<String, String>,
}

impl Materials for LabMaterials {
    fn material(&self, guest: GuestId, name: &str) -> Option<String> {
        (self.guest == Some(guest))
            .then(|| self.files.get(name).cloned())
            .flatten()
    }
}

/// The lab CA's material for the CA guest of `d`, and notes on what is missing.
pub fn lab_materials(d: &DesiredState, prefix: &str) -> (LabMaterials, Vec<String>) {
    use phoenix_pki::stepca::ca_guest_mesh_address;
    let mut notes = Vec::new();
    let Ok((id, _)) = ca_guest_mesh_address(d) else {
        return (LabMaterials::default(), notes);
    };
    let dir = state_dir(prefix);
    let ca = match phoenix_pki::CaStore::open(&dir.join("ca"), None) {
        Ok(ca) => ca,
        Err(e) => {
            notes.push(format!(
                "step_ca's certificates and key not supplied: the lab has no CA ({e})"
            ));
            return (LabMaterials::default(), notes);
        }
    };
    let lab_password = under(
        &guest_root(prefix, id.0),
        &format!("{}/secrets/password", crate::stepca::STEP_DIR),
    );
    let password = std::fs::read_to_string(&lab_password)
        .unwrap_or_else(|_| "unused: the intermediate key is not encrypted\n".into());
    let key = match crate::stepca::provisioner_key(&d.step_ca.provisioner, &dir) {
        Ok(k) => Some(k.public_jwk()),
        Err(e) => {
            notes.push(format!(
                "guest {id}: ca.json not supplied (no provisioner key: {e})"
            ));
            None
        }
    };
    let public = ca.public();
    let key_pem = ca.intermediate_key_pem();
    let material = phoenix_plan::provision::StepCaMaterial {
        root_pem: public.root_pem(),
        intermediate_pem: public.intermediate_pem(),
        intermediate_key: key_pem.expose(),
        password: &password,
        provisioner: key.as_ref(),
    };
    match phoenix_plan::provision::step_ca_materials(d, &material) {
        Ok((guest, files)) => (
            LabMaterials {
                guest: Some(guest),
                files: files
                    .into_iter()
                    .map(|(name, text)| (name.to_string(), text))
                    .collect(),
            },
            notes,
        ),
        Err(e) => {
            notes.push(format!("step_ca's material not supplied: {e}"));
            (LabMaterials::default(), notes)
        }
    }
}

// ------------------------------------------------------------------------ run

/// The in-guest paths rewritten into guest `g`'s root.
fn known_paths(
    d: &DesiredState,
    g: GuestId,
    rendered: &[RenderedFile],
    roots: &Path,
) -> Vec<String> {
    let mut known = vec![TRUST_BUNDLE.to_string()];
    for c in phoenix_plan::certs::delivered_certificates(d)
        .iter()
        .filter(|c| c.guest == g)
    {
        if let Ok(dst) = phoenix_pki::materialise::destination(d, c, roots) {
            known.push(dst.cert_path);
            known.push(dst.key_path);
        }
    }
    for f in rendered.iter().filter(|f| f.target == FileTarget::Guest(g)) {
        if let Some(parent) = Path::new(&f.path).parent() {
            known.push(show(parent));
        }
    }
    if phoenix_pki::stepca::ca_guest_mesh_address(d).is_ok_and(|(id, _)| id == g) {
        known.push(d.step_ca.ca_dir.trim_end_matches('/').to_string());
    }
    known.retain(|k| k.len() > 1);
    known.sort();
    known.dedup();
    known
}

fn make_exec(
    d: &DesiredState,
    prefix: &str,
    id: GuestId,
    ns: String,
    rendered: &[RenderedFile],
    proxy: Option<GuestId>,
) -> LabExec {
    LabExec {
        guest: id,
        ns,
        root: guest_root(prefix, id.0),
        known: known_paths(d, id, rendered, &state_dir(prefix).join("root")),
        rendered: rendered
            .iter()
            .filter(|f| f.target == FileTarget::Guest(id))
            .map(|f| (f.path.clone(), f.content.clone()))
            .collect(),
        proxy: proxy == Some(id),
        prefix: prefix.to_string(),
        gateway: crate::guest_services::gateway_of(d) == Some(id),
        engine: crate::topology::topology(d, prefix)
            .ok()
            .and_then(|t| crate::swarm::plan(d, &t).ok().flatten())
            .and_then(|p| p.node(id.0).cloned()),
    }
}

/// The executor for guest `id` of the lab topology `t` (`rendered`: the configuration's
/// rendered files); `None` when the guest has no namespace (a template).
pub fn exec_for(
    d: &DesiredState,
    t: &LabTopology,
    id: GuestId,
    rendered: &[RenderedFile],
) -> Option<LabExec> {
    let ns = crate::guest_services::ns_of_guest(t, id)?;
    let proxy = phoenix_render::traefik::ingress::ingress(d)
        .ok()
        .map(|i| i.proxy);
    Some(make_exec(d, &t.prefix, id, ns, rendered, proxy))
}

/// The executor [`run`] uses for guest `id` of the lab `prefix` (to read a guest's files the
/// way provisioning sees them, e.g. for an observation with
/// [`phoenix_exec::guest::provision::observe_provision`]).
pub fn lab_exec(d: &DesiredState, prefix: &str, id: GuestId) -> Result<LabExec, LabError> {
    let t = crate::topology::topology(d, prefix)?;
    let ns = t
        .namespaces
        .iter()
        .find_map(|n| match n.role {
            NsRole::Guest { id: g, .. } if g == id.0 => Some(n.name.clone()),
            _ => None,
        })
        .ok_or_else(|| LabError::UnknownGuest {
            prefix: prefix.to_string(),
            guest: id.to_string(),
        })?;
    let rendered = phoenix_render::render_all(d, &RenderOptions::default())
        .map_err(|e| err(format!("render: {e}")))?;
    let proxy = phoenix_render::traefik::ingress::ingress(d)
        .ok()
        .map(|i| i.proxy);
    Ok(make_exec(d, prefix, id, ns, &rendered, proxy))
}

/// Run every guest's provision steps of `d` in the running lab `prefix` (root only): each
/// step checked first and applied only when the check fails, files under the guest's root,
/// nothing on the host (see the module doc). A second run keeps everything.
pub fn run(
    d: &DesiredState,
    prefix: &str,
    opts: &ProvisionOptions,
) -> Result<LabProvisionReport, LabError> {
    require_root()?;
    let t: LabTopology = crate::topology::topology(d, prefix)?;
    let dir = state_dir(prefix);
    if !dir.is_dir() {
        return Err(err(format!(
            "the lab {prefix:?} is not up (no {}): run `phoenix lab up` first",
            show(&dir)
        )));
    }
    let rendered = phoenix_render::render_all(d, &RenderOptions::default())
        .map_err(|e| err(format!("render: {e}")))?;
    let planned: Vec<PlannedFile> = rendered
        .iter()
        .map(|f| PlannedFile {
            file: f.clone(),
            sha256: phoenix_plan::observed::sha256_hex(&f.content),
            status: FileStatus::Create,
            diff: None,
        })
        .collect();
    let (materials, notes) = lab_materials(d, prefix);
    let contents = Contents {
        rendered: &planned,
        materials: &materials,
    };
    let proxy = phoenix_render::traefik::ingress::ingress(d)
        .ok()
        .map(|i| i.proxy);
    let mut report = LabProvisionReport {
        prefix: prefix.to_string(),
        guests: Vec::new(),
        notes,
    };
    for (id, gp) in phoenix_plan::provision::plan_steps(d, &rendered, opts) {
        let ns = t.namespaces.iter().find_map(|n| match n.role {
            NsRole::Guest { id: g, .. } if g == id.0 => Some(n.name.clone()),
            _ => None,
        });
        let root = guest_root(prefix, id.0);
        let mut g = GuestReport {
            guest: id.0,
            ns: ns.clone().unwrap_or_default(),
            root: root.clone(),
            steps: Vec::new(),
            notes: gp.notes.clone(),
        };
        let running = ns
            .as_deref()
            .is_some_and(|n| Path::new("/run/netns").join(n).exists());
        let outcomes: Vec<LabOutcome> = if !running {
            let why = format!("guest {id} has no namespace in the lab {prefix:?}");
            gp.steps
                .iter()
                .map(|_| LabOutcome::Skipped(why.clone()))
                .collect()
        } else {
            std::fs::create_dir_all(&root).map_err(|e| LabError::io(&root, e))?;
            let exec = make_exec(d, prefix, id, g.ns.clone(), &rendered, proxy);
            apply_provision(&exec, &gp.steps, contents)
                .into_iter()
                .map(LabOutcome::from)
                .collect()
        };
        g.steps = gp
            .steps
            .iter()
            .zip(outcomes)
            .map(|(s, outcome)| LabStep {
                key: s.key(),
                step: s.to_string(),
                outcome,
            })
            .collect();
        report.guests.push(g);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use phoenix_exec::guest::GuestExec;
    use phoenix_exec::shell::HostFile;
    use std::os::unix::fs::MetadataExt;

    fn exec(root: &Path) -> LabExec {
        LabExec {
            guest: GuestId(102),
            ns: "none".into(),
            root: root.to_path_buf(),
            known: vec!["/etc/traefik".into()],
            rendered: BTreeMap::new(),
            proxy: false,
            prefix: "none".into(),
            gateway: false,
            engine: None,
        }
    }

    #[test]
    fn paths_stay_under_the_root() {
        let dir = temp_root("paths");
        let e = exec(&dir);
        assert_eq!(e.host_path("/etc/x").unwrap(), dir.join("etc/x"));
        assert!(e.host_path("etc/x").is_err());
        assert!(e.host_path("/etc/../../x").is_err());
        std::os::unix::fs::symlink("/etc", dir.join("out")).unwrap();
        assert!(e.host_path("/out/passwd").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn contents_are_remapped_and_read_back() {
        let root = Path::new("/run/phoenix-lab/x/root/102");
        let e = exec(root);
        let text = "certFile: /etc/traefik/certs/a.crt\nother: /etc/traefikx\n";
        let lab = e.to_lab("/etc/traefik/dynamic/tls.yml", text);
        assert_eq!(
            lab,
            "certFile: /run/phoenix-lab/x/root/102/etc/traefik/certs/a.crt\nother: /etc/traefikx\n"
        );
        assert_eq!(e.from_lab("/etc/traefik/dynamic/tls.yml", &lab), text);
    }

    fn temp_root(name: &str) -> PathBuf {
        // A random name created 0700: never a predictable one in the shared temp dir.
        tempfile::Builder::new()
            .prefix(&format!("phx-lab-prov-{name}-"))
            .tempdir()
            .unwrap()
            .keep()
    }

    #[test]
    fn a_system_user_lives_in_the_guest_root_only() {
        let dir = temp_root("user");
        let e = exec(&dir);
        let argv: Vec<String> = ["useradd", "--system", "--home-dir", "/var/lib/x", "step"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(matches!(
            e.system_user(&argv, false).unwrap(),
            StepOutcome::Skipped(_)
        ));
        assert_eq!(e.system_user(&argv, true).unwrap(), StepOutcome::Applied);
        assert_eq!(e.system_user(&argv, true).unwrap(), StepOutcome::Kept);
        let passwd = std::fs::read_to_string(dir.join("etc/passwd")).unwrap();
        assert!(passwd.starts_with("step:x:"), "{passwd}");
        assert!(passwd.contains(":/var/lib/x:"), "{passwd}");
        let id = e.id_of("/etc/passwd", "step").unwrap();
        assert_eq!(e.id_of("/etc/group", "step").unwrap(), id);
        assert_eq!(e.name_of("/etc/passwd", id), "step");
        assert!((100..1000).contains(&id));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn packages_downloads_and_services_are_never_applied() {
        let e = exec(Path::new("/nonexistent"));
        let steps = [
            phoenix_plan::provision::package("base_setup", "ca-certificates"),
            phoenix_plan::provision::package("x", "surely-no-such-package-phx"),
        ];
        for s in &steps {
            for apply in [false, true] {
                let Some(Ok(StepOutcome::Skipped(why))) = e.own_step(s, apply) else {
                    panic!("{s} not skipped");
                };
                assert!(
                    why.starts_with("provided by the lab") || why.starts_with("not in the lab"),
                    "{why}"
                );
            }
        }
        let missing = e.own_step(&steps[1], true).unwrap().unwrap();
        assert!(matches!(missing, StepOutcome::Skipped(w) if w.starts_with("not in the lab")));
    }

    #[test]
    fn files_round_trip_with_owner_and_mode() {
        if !crate::is_root() {
            return;
        }
        let dir = temp_root("file");
        let e = exec(&dir);
        let want = HostFile {
            content: "key: /etc/traefik/certs/k.pem\n".into(),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o600,
        };
        assert_eq!(e.read_file("/etc/traefik/k.yml").unwrap(), None);
        e.write_file("/etc/traefik/k.yml", &want).unwrap();
        assert_eq!(e.read_file("/etc/traefik/k.yml").unwrap(), Some(want));
        let host = dir.join("etc/traefik/k.yml");
        let m = std::fs::metadata(&host).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
        let disk = std::fs::read_to_string(&host).unwrap();
        assert!(disk.contains(&format!("{}/etc/traefik/certs", dir.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn package_managers_and_units_are_refused() {
        let e = exec(Path::new("/nonexistent"));
        for p in ["apt-get", "/usr/bin/systemctl", "useradd", "env"] {
            assert!(e.run(&[p.to_string(), "x".into()]).is_err(), "{p}");
        }
    }
}
