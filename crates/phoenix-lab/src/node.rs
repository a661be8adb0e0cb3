//! The lab's own Proxmox node: a directory under the lab's state dir
//! (`/run/phoenix-lab/<prefix>/node/`) standing for the node's root, so the lab is observed
//! and changed through the same files a node has:
//! - guest configs in PVE's `key: value` form at `etc/pve/lxc/<id>.conf` and
//!   `etc/pve/qemu-server/<id>.conf`, written from the plan's API calls (raw `lxc.*` lines
//!   in the same file, so [`phoenix_exec::shell::files::ensure_raw_lxc`] works unchanged);
//! - the managed host files at their node paths (through a [`LocalShell`] on this root);
//! - `firewall.json`: the firewall as the lab holds it (the API's state on a node);
//! - `run/started/<id>`: guests started (a guest runs while its namespace exists too);
//! - its storages ([`storages`]): `local`, as a node's operator sets it up for phoenix.
//!
//! Pure parse/render plus small file I/O; nothing here touches a namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phoenix_exec::shell::LocalShell;
use phoenix_model::model::{GuestId, GuestKind};
use phoenix_plan::firewall_api::FirewallState;
use phoenix_render::guestparams::ApiCall;

use crate::{LabError, state_dir};

/// Keys of a create or clone call that a node does not keep in the guest's config (they
/// say how to make the guest, or are secrets PVE stores elsewhere).
const CREATE_ONLY: &[&str] = &[
    "vmid",
    "newid",
    "ostemplate",
    "storage",
    "password",
    "ssh-public-keys",
    "cipassword",
    "full",
    "target",
    "pool",
    "start",
    "unique",
    "force",
    "restore",
    "ignore-unpack-errors",
    "snapname",
    "import-from",
];

/// The lab node of `prefix`.
#[derive(Debug, Clone)]
pub struct LabNode {
    pub root: PathBuf,
}

impl LabNode {
    pub fn new(prefix: &str) -> Self {
        LabNode {
            root: state_dir(prefix).join("node"),
        }
    }

    /// The node's shell for host files (a root of its own, never this machine's `/`).
    pub fn shell(&self) -> LocalShell {
        LocalShell::new(&self.root)
    }

    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }

    /// Where guest `id`'s config lives.
    pub fn conf_path(&self, id: GuestId, kind: GuestKind) -> PathBuf {
        let dir = match kind {
            GuestKind::Lxc => "etc/pve/lxc",
            GuestKind::Vm => "etc/pve/qemu-server",
        };
        self.root.join(dir).join(format!("{id}.conf"))
    }

    /// Every guest config on the node: id, kind and text.
    pub fn confs(&self) -> Vec<(GuestId, GuestKind, String)> {
        let mut out = Vec::new();
        for (dir, kind) in [
            ("etc/pve/lxc", GuestKind::Lxc),
            ("etc/pve/qemu-server", GuestKind::Vm),
        ] {
            let Ok(entries) = std::fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(id) = name
                    .strip_suffix(".conf")
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    out.push((GuestId(id), kind, text));
                }
            }
        }
        out.sort_by_key(|(id, _, _)| *id);
        out
    }

    pub fn read_conf(&self, id: GuestId, kind: GuestKind) -> Option<String> {
        std::fs::read_to_string(self.conf_path(id, kind)).ok()
    }

    pub fn write_conf(&self, id: GuestId, kind: GuestKind, text: &str) -> Result<(), LabError> {
        write(&self.conf_path(id, kind), text)
    }

    pub fn remove_conf(&self, id: GuestId, kind: GuestKind) -> Result<(), LabError> {
        let p = self.conf_path(id, kind);
        remove(&p)?;
        remove(&self.started_path(id))
    }

    fn started_path(&self, id: GuestId) -> PathBuf {
        self.root.join("run/started").join(id.to_string())
    }

    /// Was guest `id` started (and not stopped since)?
    pub fn started(&self, id: GuestId) -> bool {
        self.started_path(id).exists()
    }

    pub fn set_started(&self, id: GuestId, on: bool) -> Result<(), LabError> {
        let p = self.started_path(id);
        if on { write(&p, "") } else { remove(&p) }
    }

    fn firewall_path(&self) -> PathBuf {
        self.root.join("firewall.json")
    }

    /// The firewall as the lab holds it (empty, as a new node's, when never written).
    pub fn firewall(&self) -> Result<FirewallState, LabError> {
        let p = self.firewall_path();
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text).map_err(LabError::State),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FirewallState::default()),
            Err(e) => Err(LabError::io(&p, e)),
        }
    }

    pub fn set_firewall(&self, fw: &FirewallState) -> Result<(), LabError> {
        let text = serde_json::to_string_pretty(fw).map_err(LabError::State)?;
        write(&self.firewall_path(), &text)
    }
}

/// The storages the lab's node has: PVE's `local` directory storage, with the content
/// types phoenix asks a node's operator for (snippets for the VMs' vendor data, import for
/// cloud images) — the node the plan is made for.
pub fn storages() -> Vec<phoenix_plan::observed::ObservedStorage> {
    vec![phoenix_plan::observed::ObservedStorage {
        name: "local".into(),
        content: ["iso", "vztmpl", "backup", "import", "snippets"]
            .into_iter()
            .map(str::to_string)
            .collect(),
        path: Some("/var/lib/vz".into()),
    }]
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| LabError::io(path, e))
}

fn remove(path: &Path) -> Result<(), LabError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(path, e)),
    }
}

/// The `key: value` settings of a config's current section (raw `lxc.*` lines and snapshot
/// sections left out). Pure.
pub fn parse_conf(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('[') {
            break;
        }
        if line.starts_with('#') || line.starts_with("lxc.") {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

/// A config's text from its settings, keeping the raw `lxc.*` lines and the snapshot
/// sections of `previous`. Pure.
pub fn render_conf(settings: &BTreeMap<String, String>, previous: &str) -> String {
    let mut text: String = settings
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    for l in phoenix_exec::shell::raw_lxc_lines(previous) {
        text.push_str(&l);
        text.push('\n');
    }
    let sections = snapshot_sections(previous);
    if !sections.is_empty() {
        text.push('\n');
        text.push_str(sections);
    }
    text
}

/// The snapshot sections of a config (from its first `[name]` line on).
fn snapshot_sections(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('[') {
            return &text[offset..];
        }
        offset += line.len();
    }
    ""
}

/// The names of a config's snapshot sections, in order, as PVE writes them (`[name]`).
pub fn snapshot_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim_end().strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_string)
        .collect()
}

/// The config after taking snapshot `name`, as PVE records one: a section `[name]` with the
/// current settings, and `parent: name` in the current config. Pure.
pub fn with_snapshot(text: &str, name: &str) -> String {
    let mut settings = parse_conf(text);
    let frozen = render_conf(&settings, "");
    settings.insert("parent".into(), name.into());
    let mut out = render_conf(&settings, text);
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(&format!("[{name}]\n{frozen}"));
    out
}

/// The settings a node keeps after the create's `calls` (create or clone, config, resize),
/// starting from the clone source's settings `source` for a clone. Pure.
pub fn settings_after_create(
    calls: &[ApiCall],
    source: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    use phoenix_render::guestparams::GuestEndpoint as E;
    let mut s = BTreeMap::new();
    for call in calls {
        let params = call.params.clone();
        match call.endpoint {
            E::LxcClone | E::QemuClone => {
                if let Some(src) = source {
                    s.extend(src.clone());
                }
                s.remove("template");
                s.remove("parent");
                for (k, v) in params {
                    let key = match (call.endpoint, k.as_str()) {
                        (E::LxcClone, "hostname") => "hostname",
                        (_, "name") => "name",
                        _ => continue,
                    };
                    s.insert(key.to_string(), v);
                }
            }
            E::LxcResize | E::QemuResize => resized(&mut s, &params),
            _ => {
                for (k, v) in params {
                    if k == "delete" {
                        for d in v.split(',') {
                            s.remove(d.trim());
                        }
                    } else if !CREATE_ONLY.contains(&k.as_str()) {
                        s.insert(k, v);
                    }
                }
            }
        }
    }
    s
}

/// `settings` after a `resize` call's `params`: the disk's size, as a node shows it on the
/// disk's own key (`…,size=16G`).
pub fn resized(settings: &mut BTreeMap<String, String>, params: &BTreeMap<String, String>) {
    if let (Some(disk), Some(size)) = (params.get("disk"), params.get("size")) {
        let current = settings.get(disk).cloned().unwrap_or_default();
        let kept: Vec<&str> = current
            .split(',')
            .filter(|p| !p.is_empty() && !p.starts_with("size="))
            .collect();
        let mut v = kept.join(",");
        if !v.is_empty() {
            v.push(',');
        }
        v.push_str(&format!("size={size}"));
        settings.insert(disk.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_round_trip_keeps_raw_lines() {
        let prev = "hostname: a\nlxc.net.1.type: macvlan\n\n[snap]\nhostname: old\n";
        let mut s = parse_conf(prev);
        assert_eq!(s.get("hostname").map(String::as_str), Some("a"));
        assert_eq!(
            s.len(),
            1,
            "the snapshot section and raw lines are not settings"
        );
        s.insert("memory".into(), "512".into());
        let text = render_conf(&s, prev);
        assert_eq!(
            text,
            "hostname: a\nmemory: 512\nlxc.net.1.type: macvlan\n\n[snap]\nhostname: old\n"
        );
    }

    #[test]
    fn a_snapshot_is_a_section_and_the_parent() {
        let prev = "hostname: a\nlxc.net.1.type: macvlan\n";
        let one = with_snapshot(prev, "pre-configured");
        let two = with_snapshot(&one, "final-form");
        assert_eq!(snapshot_names(&two), ["pre-configured", "final-form"]);
        let s = parse_conf(&two);
        assert_eq!(s.get("parent").map(String::as_str), Some("final-form"));
        assert_eq!(s.get("hostname").map(String::as_str), Some("a"));
        assert_eq!(phoenix_exec::shell::raw_lxc_lines(&two).len(), 1);
        assert!(snapshot_names(prev).is_empty());
    }
}
