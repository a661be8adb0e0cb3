//! Keys phoenix reads but does not act on yet (PHX-W002) and keys nothing ever read
//! (PHX-W003), and what `plan` will ignore, per guest. No I/O.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::model::GuestId;
use crate::raw::{RawLxc, RawVm};
use crate::source::Location;

/// Warn about keys phoenix reads but does not act on yet, and keys nothing ever read.
pub(crate) fn warn_listed(
    obj: &serde_json::Map<String, Value>,
    loc: &Location,
    not_yet: &[&str],
    unused: &[&str],
    diags: &mut Diagnostics,
) {
    for key in obj.keys() {
        if not_yet.contains(&key.as_str()) {
            diags.push(
                Diagnostic::new(
                    Code::NotSupportedYet,
                    &loc.child(key),
                    format!("`{key}` is read but not applied yet"),
                    "phoenix plans and validates it in a later release; nothing changes on the host for it now",
                )
                .at_key(),
            );
        } else if unused.contains(&key.as_str()) {
            diags.push(
                Diagnostic::new(
                    Code::UnusedKey,
                    &loc.child(key),
                    format!("`{key}` is not used"),
                    "no version of the bash system read this key, and phoenix does not either; remove it",
                )
                .at_key(),
            );
        }
    }
}

/// Set to something that would change behaviour (`"none"`, `false`, empty do not).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty() && s != "none",
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Guest keys read but not applied: key, what it is (for `plan`'s summary), and why.
const GUEST_KEYS: &[(&str, &str, &str)] = &[
    (
        "gpu_assignment",
        "GPU passthrough",
        "GPU passthrough is not supported yet",
    ),
    (
        "vllm_engine_config",
        "vLLM services",
        "vLLM services are not supported yet",
    ),
    (
        "ports",
        "port publications",
        "port publications are not supported yet",
    ),
    (
        "trigger_sync_on_completion",
        "sync triggers",
        "phoenix converges everything in one run; this trigger is not needed",
    ),
    (
        "zfs_volumes",
        "ZFS volumes",
        "ZFS volumes are not supported yet",
    ),
    (
        "id_maps",
        "uid/gid maps",
        "uid/gid maps are not applied yet",
    ),
    (
        "application_script",
        "setup scripts",
        "bash setup scripts are not run; phoenix provisions from `features`",
    ),
    (
        "health_check",
        "health checks",
        "declared health checks are not run; `phoenix verify` probes the guest instead",
    ),
    (
        "tests",
        "test scripts",
        "declared test scripts are not run; `phoenix verify` probes the guest instead",
    ),
    (
        "template_file",
        "image exports",
        "exporting a container image is not supported yet",
    ),
    (
        "mount_points",
        "bind mounts",
        "no `mpN` bind mount is created yet; phoenix only uses them to place certificate files",
    ),
    (
        "bootstrap_ca_url",
        "bootstrap CA URLs",
        "phoenix derives the CA URL from the CA guest's address",
    ),
    (
        "portainer_role",
        "Portainer roles",
        "Portainer endpoints are not registered yet",
    ),
    (
        "portainer_environment_name",
        "Portainer environments",
        "Portainer endpoints are not registered yet",
    ),
    (
        "portainer_agent_hostname",
        "Portainer agents",
        "Portainer endpoints are not registered yet",
    ),
    ("volumes", "NFS volumes", "NFS volumes are not mounted yet"),
];

/// The label of a guest key for `plan`'s summary.
pub fn label(key: &str) -> Option<&'static str> {
    GUEST_KEYS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, l, _)| *l)
}

fn warn_guest(obj: &Value, loc: &Location, diags: &mut Diagnostics) {
    for (key, _, why) in GUEST_KEYS {
        if truthy(obj.get(*key)) {
            diags.push(
                Diagnostic::new(
                    Code::NotSupportedYet,
                    &loc.child(key),
                    format!("`{key}` is read but not applied yet: {why}"),
                    "it is kept in the model; nothing changes on the guest for it now",
                )
                .at_key(),
            );
        }
    }
}

/// W002 for one LXC entry.
pub(crate) fn lxc(raw: &RawLxc, loc: &Location, diags: &mut Diagnostics) {
    let mut v = serde_json::Map::new();
    let mut put = |k: &str, x: Option<Value>| {
        if let Some(x) = x {
            v.insert(k.into(), x);
        }
    };
    put("gpu_assignment", raw.gpu_assignment.clone());
    put("vllm_engine_config", raw.vllm_engine_config.clone());
    put("ports", raw.ports.clone());
    put(
        "trigger_sync_on_completion",
        raw.trigger_sync_on_completion.clone(),
    );
    put("zfs_volumes", raw.zfs_volumes.clone());
    put("id_maps", raw.id_maps.clone());
    put("application_script", raw.application_script.clone());
    put("health_check", raw.health_check.clone());
    put("tests", raw.tests.clone());
    put("template_file", raw.template_file.clone());
    put(
        "bootstrap_ca_url",
        raw.bootstrap_ca_url.clone().map(Value::String),
    );
    put(
        "portainer_role",
        raw.portainer_role.clone().map(Value::String),
    );
    if !raw.mount_points.is_empty() {
        put("mount_points", Some(Value::Bool(true)));
    }
    warn_guest(&Value::Object(v), loc, diags);
}

/// W002 for one VM.
pub(crate) fn vm(raw: &RawVm, loc: &Location, diags: &mut Diagnostics) {
    let mut v = serde_json::Map::new();
    let mut put = |k: &str, x: Option<Value>| {
        if let Some(x) = x {
            v.insert(k.into(), x);
        }
    };
    put("volumes", raw.volumes.clone());
    put(
        "trigger_sync_on_completion",
        raw.trigger_sync_on_completion.clone(),
    );
    put(
        "portainer_role",
        raw.portainer_role.clone().map(Value::String),
    );
    put(
        "portainer_environment_name",
        raw.portainer_environment_name.clone().map(Value::String),
    );
    put(
        "portainer_agent_hostname",
        raw.portainer_agent_hostname.clone().map(Value::String),
    );
    warn_guest(&Value::Object(v), loc, diags);
}

/// What a plan leaves out: per kind of setting, the guests that set it, and the host-level
/// keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Label (`GPU passthrough`) → guests.
    pub guests: BTreeMap<&'static str, Vec<GuestId>>,
    /// Host-level keys (`timezone`, `network.nfs_server`, …).
    pub host: Vec<String>,
}

impl Ignored {
    pub fn is_empty(&self) -> bool {
        self.guests.is_empty() && self.host.is_empty()
    }

    /// `GPU passthrough: 8 guests (901, 902, …); …` lines, most guests first.
    pub fn lines(&self) -> Vec<String> {
        let mut by: Vec<_> = self.guests.iter().collect();
        by.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        let mut out: Vec<String> = by
            .into_iter()
            .map(|(label, ids)| {
                let shown: Vec<String> = ids.iter().take(8).map(|i| i.to_string()).collect();
                let more = if ids.len() > 8 { ", …" } else { "" };
                let n = ids.len();
                let noun = if n == 1 { "guest" } else { "guests" };
                format!("{label}: {n} {noun} ({}{more})", shown.join(", "))
            })
            .collect();
        if !self.host.is_empty() {
            out.push(format!("host setup: {}", self.host.join(", ")));
        }
        out
    }
}

/// What `plan` ignores, from the W002/W032 findings of a validation.
pub fn ignored(v: &crate::Validation) -> Ignored {
    let mut out = Ignored::default();
    let vm_ids: BTreeMap<&str, GuestId> = v
        .raw
        .vms
        .iter()
        .map(|l| (l.loc.pointer.as_str(), l.value.vmid))
        .collect();
    for d in v.diagnostics.iter() {
        let crate::diag::Anchor::Pointer { location, .. } = &d.anchor else {
            continue;
        };
        let segs = crate::source::pointer_segments(&location.pointer);
        let (guest, key) = match segs.as_slice() {
            [l, id, key, ..] if l == "lxc_configs" => (GuestId::parse(id).ok(), key.as_str()),
            [l, i, key, ..] if l == "vms" => (
                vm_ids.get(format!("/vms/{i}").as_str()).copied(),
                key.as_str(),
            ),
            _ => (None, ""),
        };
        match (d.code, guest) {
            (Code::NotSupportedYet, Some(g)) => {
                if let Some(label) = label(key) {
                    out.guests.entry(label).or_default().push(g);
                }
            }
            (Code::UnsupportedFeature, Some(g)) => {
                out.guests
                    .entry("features not provisioned")
                    .or_default()
                    .push(g);
            }
            (Code::NotSupportedYet, None) => {
                let name = segs.join(".");
                if !name.is_empty() && !out.host.contains(&name) {
                    out.host.push(name);
                }
            }
            _ => {}
        }
    }
    for ids in out.guests.values_mut() {
        ids.sort();
        ids.dedup();
    }
    out
}
