//! Comparing Proxmox config values: property strings compare as sets of `key=value` pairs
//! (Proxmox reorders them), and a MAC address Proxmox generated is kept when the
//! configuration names none (`guestparams::carry_observed_macs`). No I/O.

use std::collections::BTreeMap;

use phoenix_model::model::GuestKind;
use phoenix_render::guestparams::carry_observed_macs;
use phoenix_render::propstring::{
    PropertyString, QEMU_MEMORY_DEFAULT_KEY, QEMU_NET_DEFAULT_KEY, ROOTFS_DEFAULT_KEY,
};

use crate::action::KeyChange;

/// Keys of `observed` that differ from `desired` (only the keys phoenix manages), with the
/// value to set.
pub fn config_changes(
    kind: GuestKind,
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> Vec<KeyChange> {
    let desired = carry_observed_macs(kind, desired, observed);
    let mut out = Vec::new();
    for (key, want) in &desired {
        let have = observed.get(key);
        if have.is_some_and(|h| same_value(kind, key, h, want)) {
            continue;
        }
        out.push(KeyChange {
            key: key.clone(),
            from: have.cloned(),
            to: Some(want.clone()),
        });
    }
    out
}

fn default_key(kind: GuestKind, key: &str) -> Option<&'static str> {
    match (kind, key) {
        (GuestKind::Vm, k) if k.starts_with("net") => Some(QEMU_NET_DEFAULT_KEY),
        (GuestKind::Vm, "memory") => Some(QEMU_MEMORY_DEFAULT_KEY),
        (_, "rootfs") => Some(ROOTFS_DEFAULT_KEY),
        _ => None,
    }
}

/// Equal as plain text, or as property strings when both parse as one.
pub fn same_value(kind: GuestKind, key: &str, a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if !(a.contains('=') || b.contains('=') || a.contains(',') || b.contains(',')) {
        return false;
    }
    let dk = default_key(kind, key);
    match (PropertyString::parse(a, dk), PropertyString::parse(b, dk)) {
        (Ok(pa), Ok(pb)) => pa == pb,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn property_strings_compare_as_sets() {
        assert!(same_value(
            GuestKind::Lxc,
            "net0",
            "name=eth0,bridge=vmbr0",
            "bridge=vmbr0,name=eth0"
        ));
        assert!(!same_value(
            GuestKind::Lxc,
            "net0",
            "name=eth0,bridge=vmbr0",
            "bridge=vmbr1,name=eth0"
        ));
        assert!(same_value(GuestKind::Vm, "memory", "2048", "current=2048"));
        assert!(!same_value(GuestKind::Lxc, "memory", "2048", "4096"));
    }

    #[test]
    fn generated_mac_is_kept() {
        let desired = map(&[(
            "net0",
            "name=eth0,bridge=vmbr100,ip=172.16.100.12/24,type=veth",
        )]);
        let observed = map(&[(
            "net0",
            "name=eth0,bridge=vmbr100,hwaddr=BC:24:11:00:00:01,ip=172.16.100.12/24,type=veth",
        )]);
        assert!(config_changes(GuestKind::Lxc, &desired, &observed).is_empty());
        // A real change keeps the generated MAC in the value to set.
        let desired = map(&[(
            "net0",
            "name=eth0,bridge=vmbr100,ip=172.16.100.13/24,type=veth",
        )]);
        let changes = config_changes(GuestKind::Lxc, &desired, &observed);
        assert_eq!(changes.len(), 1);
        assert!(
            changes[0]
                .to
                .as_deref()
                .is_some_and(|t| t.contains("hwaddr=BC:24:11:00:00:01"))
        );
        // VMs: a NIC without a MAC inherits the generated one.
        let desired = map(&[("net0", "virtio,bridge=vmbr0")]);
        let observed = map(&[("net0", "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0")]);
        assert!(config_changes(GuestKind::Vm, &desired, &observed).is_empty());
    }

    #[test]
    fn only_changed_keys_are_set() {
        let desired = map(&[("memory", "2048"), ("cores", "2")]);
        let observed = map(&[("memory", "1024"), ("cores", "2"), ("digest", "x")]);
        let changes = config_changes(GuestKind::Lxc, &desired, &observed);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].key, "memory");
    }
}
