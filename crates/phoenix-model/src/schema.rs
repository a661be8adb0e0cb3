//! JSON Schema of the format (`phoenix schema`): one standalone schema per file, generated from
//! the raw types and their doc comments, and a bundle that accepts any of the files. No I/O.
//!
//! The schemas describe what the loader accepts: unknown keys are allowed (phoenix warns about
//! them instead), ids may be integers or strings of digits, secrets may be plain strings or
//! `{"env": …}`/`{"file": …}` references. schemars 1.x emits JSON Schema draft 2020-12.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::raw::{RawCertificate, RawHypervisor, RawLxcFile, RawStack, RawStacksFile, RawVmFile};

/// The dialect every schema declares in `$schema`.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// One file of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `phoenix_hypervisor_config.json`.
    Hypervisor,
    /// `phoenix_lxc_configs.json`.
    Lxc,
    /// `phoenix_vm_configs.json`.
    Vm,
    /// `phoenix_stacks_config.json`.
    Stacks,
    /// `certificate-manifest.json`.
    Manifest,
    /// `stacks/<name>/phoenix.json`: one stack's definition (the older per-stack layout).
    StackDefinition,
}

impl FileKind {
    /// Every kind, in the order of the bundle.
    pub const ALL: [FileKind; 6] = [
        FileKind::Hypervisor,
        FileKind::Lxc,
        FileKind::Vm,
        FileKind::Stacks,
        FileKind::Manifest,
        FileKind::StackDefinition,
    ];

    /// The file's usual name (relative to the config directory for the five main files).
    pub fn file_name(self) -> &'static str {
        match self {
            FileKind::Hypervisor => "phoenix_hypervisor_config.json",
            FileKind::Lxc => "phoenix_lxc_configs.json",
            FileKind::Vm => "phoenix_vm_configs.json",
            FileKind::Stacks => "phoenix_stacks_config.json",
            FileKind::Manifest => "certificate-manifest.json",
            FileKind::StackDefinition => "stacks/<name>/phoenix.json",
        }
    }

    fn description(self) -> &'static str {
        match self {
            FileKind::Hypervisor => {
                "The Proxmox host: domain, management bridge, public VLAN, mesh bridge with NAT, mesh DNS (dnsmasq), cluster firewall, Portainer and Step-CA settings, guest roles and Traefik entrypoints. Host-setup sections (timezone, samba, nfs, users, zfs) are applied by `phoenix setup`; nvidia_driver, proxmox_storage_ids and mount_point_base are read but not applied yet"
            }
            FileKind::Lxc => {
                "The LXC containers, keyed by CTID: resources, template or clone source, NICs (net0 from network_config, net1 from secondary_network_config), features, dependencies, Traefik route, guest firewall and bind mounts"
            }
            FileKind::Vm => {
                "The QEMU VMs: defaults, then one entry per VM with template or clone source, resources, cloud-init NICs, Docker Swarm role, stacks, dependencies and guest firewall"
            }
            FileKind::Stacks => {
                "The Docker Swarm stacks, keyed by name; each is deployed on the Swarm manager as <env>_<stack> from stacks/<name>/docker-compose.yml"
            }
            FileKind::Manifest => {
                "The certificates the internal CA issues: one entry per certificate with its names (common name and SANs), the guest it belongs to and where the files go"
            }
            FileKind::StackDefinition => {
                "One stack's definition in the older per-stack layout (stacks/<name>/phoenix.json), used when phoenix_stacks_config.json does not define the stack"
            }
        }
    }

    /// The schema of this file inside `generator` (a `$ref` or an inline schema).
    fn subschema(self, generator: &mut SchemaGenerator) -> Schema {
        match self {
            FileKind::Hypervisor => generator.subschema_for::<RawHypervisor>(),
            FileKind::Lxc => generator.subschema_for::<RawLxcFile>(),
            FileKind::Vm => generator.subschema_for::<RawVmFile>(),
            FileKind::Stacks => generator.subschema_for::<RawStacksFile>(),
            FileKind::Manifest => generator.subschema_for::<Vec<RawCertificate>>(),
            FileKind::StackDefinition => generator.subschema_for::<RawStack>(),
        }
    }
}

fn root_for<T: JsonSchema>() -> Schema {
    SchemaGenerator::default().into_root_schema_for::<T>()
}

/// The standalone schema of one file, with `$schema`, `title` (the file name) and a
/// `description`.
pub fn for_file(kind: FileKind) -> Schema {
    let mut schema = match kind {
        FileKind::Hypervisor => root_for::<RawHypervisor>(),
        FileKind::Lxc => root_for::<RawLxcFile>(),
        FileKind::Vm => root_for::<RawVmFile>(),
        FileKind::Stacks => root_for::<RawStacksFile>(),
        FileKind::Manifest => root_for::<Vec<RawCertificate>>(),
        FileKind::StackDefinition => root_for::<RawStack>(),
    };
    let obj = schema.ensure_object();
    // Keep the keys in a readable order: `$schema`, `title`, `description`, then the rest.
    let mut out = Map::new();
    out.insert("$schema".into(), Value::from(DIALECT));
    out.insert("title".into(), Value::from(kind.file_name()));
    out.insert("description".into(), Value::from(kind.description()));
    for (k, v) in std::mem::take(obj) {
        if !matches!(k.as_str(), "$schema" | "title" | "description") {
            out.insert(k, v);
        }
    }
    Schema::from(out)
}

/// One schema accepting any of the files.
///
/// Every file but the manifest is an object whose keys are all optional and unknown keys are
/// allowed, so a plain `anyOf` would accept anything an object schema accepts (a broken LXC
/// file would pass as a hypervisor file). The bundle therefore picks the file by shape, as an
/// `if`/`then`/`else` chain: an array is a certificate manifest; an object with `lxc_configs`,
/// `vms`, `docker_stacks` or `environments` is the LXC, VM, stacks file or a stack
/// definition; any other object is the hypervisor file.
pub fn bundle() -> Schema {
    let mut generator = SchemaGenerator::default();
    let mut chain = FileKind::Hypervisor.subschema(&mut generator).to_value();
    // The key whose presence identifies each file, built from the innermost `else` outwards.
    let order = [
        (FileKind::StackDefinition, "environments"),
        (FileKind::Stacks, "docker_stacks"),
        (FileKind::Vm, "vms"),
        (FileKind::Lxc, "lxc_configs"),
    ];
    for (kind, key) in order {
        let then = kind.subschema(&mut generator).to_value();
        chain = serde_json::json!({
            "if": {"type": "object", "required": [key]},
            "then": then,
            "else": chain,
        });
    }
    let manifest = FileKind::Manifest.subschema(&mut generator).to_value();
    let defs = generator.take_definitions(true);
    schemars::json_schema!({
        "$schema": DIALECT,
        "title": "Phoenix configuration",
        "description": "Any one file of the Phoenix format: phoenix_hypervisor_config.json, phoenix_lxc_configs.json, phoenix_vm_configs.json, phoenix_stacks_config.json, certificate-manifest.json, or a stack definition stacks/<name>/phoenix.json. The file is recognised by its shape: an array is a certificate manifest; an object with lxc_configs, vms, docker_stacks or environments is the LXC, VM or stacks file or a stack definition; any other object is the hypervisor file",
        "if": {"type": "array"},
        "then": manifest,
        "else": chain,
        "$defs": defs,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn standalone_headers() {
        for kind in FileKind::ALL {
            let s = serde_json::to_value(for_file(kind)).unwrap();
            let keys: Vec<&String> = s.as_object().unwrap().keys().take(3).collect();
            assert_eq!(keys, ["$schema", "title", "description"], "{kind:?}");
            assert_eq!(s["title"], kind.file_name());
        }
    }

    #[test]
    fn bundle_has_every_file() {
        let s = serde_json::to_value(bundle()).unwrap();
        let defs = s["$defs"].as_object().unwrap();
        for name in [
            "RawHypervisor",
            "RawLxcFile",
            "RawVmFile",
            "RawStacksFile",
            "RawStack",
            "RawCertificate",
        ] {
            assert!(defs.contains_key(name), "{name} missing");
        }
    }
}
