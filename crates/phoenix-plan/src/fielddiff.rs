//! A changed guest key shown field by field: `net0.ip: 172.16.100.12/24 → 172.16.100.13/24`
//! when both values are Proxmox property strings, the unchanged fields only counted; the whole
//! value otherwise. For the text of plans and status; no I/O.

use std::fmt;

use phoenix_model::model::GuestKind;
use phoenix_render::propstring::{
    PropertyString, QEMU_MEMORY_DEFAULT_KEY, QEMU_NET_DEFAULT_KEY, ROOTFS_DEFAULT_KEY,
};

use crate::action::KeyChange;

/// Name given to a positional first item when the key has no default key of its own.
pub const POSITIONAL_NAME: &str = "value";

/// Keys whose values are free text, never property strings (a description may hold `a=b`).
const FREE_TEXT_KEYS: &[&str] = &[
    "description",
    "tags",
    "name",
    "hostname",
    "nameserver",
    "searchdomain",
    "sshkeys",
    "ciuser",
    "cipassword",
    "args",
    "lock",
];

/// One changed key, by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// The key (`net0`).
    pub key: String,
    /// The changed fields as `key.field` changes, or the whole key when its values are not
    /// property strings.
    pub changes: Vec<KeyChange>,
    /// Fields equal on both sides (0 for a whole-value change).
    pub unchanged: usize,
}

impl fmt::Display for FieldDiff {
    /// One line per changed field, then `(key: N fields unchanged)` when N > 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.changes.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{c}")?;
        }
        if self.unchanged > 0 {
            let s = if self.unchanged == 1 { "" } else { "s" };
            write!(f, "\n({}: {} field{s} unchanged)", self.key, self.unchanged)?;
        }
        Ok(())
    }
}

/// The name of a guest key's positional first item (`rootfs: local-lvm:8,…` → `volume`).
pub fn positional_name(kind: GuestKind, key: &str) -> &'static str {
    let numbered = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match kind {
        GuestKind::Vm if numbered("net") => QEMU_NET_DEFAULT_KEY,
        GuestKind::Vm if key == "memory" => QEMU_MEMORY_DEFAULT_KEY,
        GuestKind::Vm
            if ["scsi", "virtio", "sata", "ide"]
                .iter()
                .any(|p| numbered(p))
                || key == "efidisk0"
                || key == "tpmstate0" =>
        {
            // PVE's drive format: `file` is its default key.
            "file"
        }
        GuestKind::Lxc if key == "rootfs" || numbered("mp") => ROOTFS_DEFAULT_KEY,
        _ => POSITIONAL_NAME,
    }
}

/// `change` of a guest of `kind`, by field.
pub fn guest_key(kind: GuestKind, change: &KeyChange) -> FieldDiff {
    by_field(change, positional_name(kind, &change.key))
}

/// `change` by field, a positional first item named `positional`; the whole value when either
/// side is absent or not a property string.
pub fn by_field(change: &KeyChange, positional: &str) -> FieldDiff {
    let whole = || FieldDiff {
        key: change.key.clone(),
        changes: vec![change.clone()],
        unchanged: 0,
    };
    let (Some(from), Some(to)) = (&change.from, &change.to) else {
        return whole();
    };
    if FREE_TEXT_KEYS.contains(&change.key.as_str()) || !(from.contains('=') || to.contains('=')) {
        return whole();
    }
    let (Some(old), Some(new)) = (parse(from, positional), parse(to, positional)) else {
        return whole();
    };
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (field, want) in new.iter() {
        match old.get(field) {
            Some(have) if have == want => unchanged += 1,
            have => changes.push(field_change(&change.key, field, have, Some(want))),
        }
    }
    for (field, have) in old.iter().filter(|(k, _)| !new.contains_key(k)) {
        changes.push(field_change(&change.key, field, Some(have), None));
    }
    if changes.is_empty() {
        // Equal as property strings yet planned: show what the planner saw.
        return whole();
    }
    FieldDiff {
        key: change.key.clone(),
        changes,
        unchanged,
    }
}

/// A property string whose keys all look like Proxmox's (`[a-z][a-z0-9_-]*`), else `None`.
fn parse(s: &str, positional: &str) -> Option<PropertyString> {
    let p = PropertyString::parse(s, Some(positional)).ok()?;
    let is_key = |k: &str| {
        k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    let keyed = p.iter().all(|(k, _)| is_key(k));
    keyed.then_some(p)
}

fn field_change(key: &str, field: &str, from: Option<&str>, to: Option<&str>) -> KeyChange {
    KeyChange {
        key: format!("{key}.{field}"),
        from: from.map(str::to_string),
        to: to.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, from: Option<&str>, to: Option<&str>) -> KeyChange {
        KeyChange {
            key: key.into(),
            from: from.map(Into::into),
            to: to.map(Into::into),
        }
    }

    fn text(kind: GuestKind, key: &str, from: Option<&str>, to: Option<&str>) -> String {
        guest_key(kind, &change(key, from, to)).to_string()
    }

    #[test]
    fn an_lxc_address_change_names_only_the_field() {
        let from = "name=eth0,bridge=vmbr100,gw=172.16.100.1,hwaddr=BC:24:11:00:00:01,ip=172.16.100.12/24,firewall=1,type=veth";
        let to = "name=eth0,bridge=vmbr100,gw=172.16.100.1,hwaddr=BC:24:11:00:00:01,ip=172.16.100.13/24,firewall=1,type=veth";
        assert_eq!(
            text(GuestKind::Lxc, "net0", Some(from), Some(to)),
            "net0.ip: 172.16.100.12/24 → 172.16.100.13/24\n(net0: 6 fields unchanged)"
        );
    }

    #[test]
    fn fields_added_and_removed_are_marked() {
        let d = guest_key(
            GuestKind::Lxc,
            &change(
                "net1",
                Some("name=eth1,tag=20,bridge=vmbr0"),
                Some("bridge=vmbr0,name=eth1,rate=10"),
            ),
        );
        assert_eq!(
            d.to_string(),
            "net1.rate = 10 (new)\nnet1.tag: 20 → (removed)\n(net1: 2 fields unchanged)"
        );
        assert_eq!(d.unchanged, 2);
    }

    #[test]
    fn a_vm_nic_keeps_its_model_key_and_a_bare_model_is_named() {
        assert_eq!(
            text(
                GuestKind::Vm,
                "net0",
                Some("virtio=02:00:00:00:00:01,bridge=vmbr0"),
                Some("virtio=02:00:00:00:00:01,bridge=vmbr100,firewall=1")
            ),
            "net0.bridge: vmbr0 → vmbr100\nnet0.firewall = 1 (new)\n(net0: 1 field unchanged)"
        );
        assert_eq!(
            text(
                GuestKind::Vm,
                "net0",
                Some("e1000,bridge=vmbr0"),
                Some("virtio,bridge=vmbr0")
            ),
            "net0.model: e1000 → virtio\n(net0: 1 field unchanged)"
        );
    }

    #[test]
    fn a_positional_volume_or_disk_is_named() {
        assert_eq!(
            text(
                GuestKind::Lxc,
                "rootfs",
                Some("local-lvm:8,size=8G"),
                Some("local-lvm:8,size=16G")
            ),
            "rootfs.size: 8G → 16G\n(rootfs: 1 field unchanged)"
        );
        assert_eq!(
            text(
                GuestKind::Vm,
                "scsi0",
                Some("local-lvm:vm-9000-disk-0,size=32G"),
                Some("nvme:vm-9000-disk-0,size=32G")
            ),
            "scsi0.file: local-lvm:vm-9000-disk-0 → nvme:vm-9000-disk-0\n(scsi0: 1 field unchanged)"
        );
        assert_eq!(positional_name(GuestKind::Lxc, "mp0"), "volume");
        assert_eq!(positional_name(GuestKind::Lxc, "net0"), POSITIONAL_NAME);
        assert_eq!(positional_name(GuestKind::Vm, "network"), POSITIONAL_NAME);
    }

    #[test]
    fn an_unknown_positional_item_is_called_value() {
        assert_eq!(
            text(GuestKind::Lxc, "startup", Some("1,up=30"), Some("2,up=30")),
            "startup.value: 1 → 2\n(startup: 1 field unchanged)"
        );
    }

    #[test]
    fn quoted_values_compare_unquoted() {
        assert_eq!(
            text(
                GuestKind::Vm,
                "cicustom",
                Some("user=local:snippets/a.yml,meta=\"x,y\""),
                Some("user=local:snippets/b.yml,meta=\"x,y\"")
            ),
            "cicustom.user: local:snippets/a.yml → local:snippets/b.yml\n(cicustom: 1 field unchanged)"
        );
    }

    #[test]
    fn plain_values_and_free_text_stay_whole() {
        assert_eq!(
            text(GuestKind::Lxc, "cores", Some("1"), Some("2")),
            "cores: 1 → 2"
        );
        assert_eq!(
            text(
                GuestKind::Lxc,
                "description",
                Some("a=b,c=d"),
                Some("a=b,c=e")
            ),
            "description: a=b,c=d → a=b,c=e"
        );
        // Not Proxmox keys (a space), a duplicate key, a lone side: whole.
        assert_eq!(
            text(GuestKind::Lxc, "x", Some("allow a=b"), Some("allow a=c")),
            "x: allow a=b → allow a=c"
        );
        assert_eq!(
            text(GuestKind::Lxc, "net0", Some("ip=1,ip=2"), Some("ip=1")),
            "net0: ip=1,ip=2 → ip=1"
        );
        assert_eq!(
            text(GuestKind::Lxc, "net0", None, Some("name=eth0,ip=dhcp")),
            "net0 = name=eth0,ip=dhcp (new)"
        );
        assert_eq!(
            text(GuestKind::Lxc, "net0", Some("name=eth0,ip=dhcp"), None),
            "net0: name=eth0,ip=dhcp → (removed)"
        );
    }

    #[test]
    fn reordered_but_equal_values_still_show_whole() {
        // The planner compares property strings as sets, so this is never planned; if it were,
        // the line must not be empty.
        assert_eq!(
            text(
                GuestKind::Lxc,
                "features",
                Some("nesting=1,keyctl=1"),
                Some("keyctl=1,nesting=1")
            ),
            "features: nesting=1,keyctl=1 → keyctl=1,nesting=1"
        );
    }
}
