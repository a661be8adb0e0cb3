//! Proxmox guest parameters in API form: what phoenix sends to create, clone and configure a
//! container (`pct`) or VM (`qm`), as form parameters (`BTreeMap<String, String>`, booleans
//! `0|1`, property strings printed by [`crate::propstring`]).
//!
//! - LXC from a template: one `POST /nodes/{node}/lxc` with everything.
//! - LXC clone: `POST /nodes/{node}/lxc/{src}/clone` (`newid, hostname, snapname, full`), then
//!   `PUT /nodes/{node}/lxc/{id}/config` with everything a clone does not carry.
//! - VM clone: `POST /nodes/{node}/qemu/{src}/clone` (`newid, name, full`), then
//!   `PUT /nodes/{node}/qemu/{id}/config` (sync) with cores, memory, `net[n]`, cloud-init.
//! - VM from a cloud image: `POST /nodes/{node}/qemu`; a disk image given as a bare file name is
//!   left to the host step (`image_import`), a volume id or absolute path becomes `import-from`.
//! - A guest with no source is only configured (`config`).
//!
//! Decisions: a MAC is sent only when the model has one — Proxmox generates one otherwise, and
//! [`carry_observed_macs`] keeps that generated MAC in later desired strings so that it never
//! drifts. `nameserver` and `searchdomain` come from the model (the guest's NIC nameservers and
//! the domain), never from a constant. Macvlan NICs cannot be expressed through the API (`type`
//! only allows `veth`): their `net[N]` is omitted and raw `lxc.net.N.*` lines are rendered
//! instead, together with the guest's other raw `lxc.*` lines, for the host shell to write into
//! `/etc/pve/lxc/ID.conf` (re-written before every start, since `pct set` drops unknown keys).
//! Resizing a disk is a separate call (`resize`), grow-only, decided by the planner.
//!
//! No I/O. Relied on: <https://pve.proxmox.com/pve-docs/api-viewer/> (`/nodes/{node}/lxc`,
//! `/nodes/{node}/qemu`, `…/clone`, `…/config`, `…/resize`), `pct(1)`, `qm(1)`,
//! <https://pve.proxmox.com/wiki/Cloud-Init_Support>, and `lxc.container.conf(5)` for the
//! `lxc.net.N.*` keys.

use std::collections::BTreeMap;

use phoenix_model::model::{
    Addressing, DesiredState, Guest, GuestId, GuestKind, GuestSource, Nic, NicKind, RawLxcLine,
};
use serde::Serialize;

use crate::propstring::{
    PropertyString, QEMU_MEMORY_DEFAULT_KEY, QEMU_NET_DEFAULT_KEY, qemu_nic_model_mac,
};

/// Form parameters of one API call.
pub type ApiParams = BTreeMap<String, String>;

/// The Proxmox API endpoints phoenix uses for guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestEndpoint {
    LxcCreate,
    LxcClone,
    LxcConfig,
    LxcResize,
    QemuCreate,
    QemuClone,
    QemuConfig,
    QemuResize,
}

impl GuestEndpoint {
    pub fn method(self) -> &'static str {
        match self {
            GuestEndpoint::LxcCreate
            | GuestEndpoint::LxcClone
            | GuestEndpoint::QemuCreate
            | GuestEndpoint::QemuClone => "POST",
            GuestEndpoint::LxcConfig
            | GuestEndpoint::LxcResize
            | GuestEndpoint::QemuConfig
            | GuestEndpoint::QemuResize => "PUT",
        }
    }

    /// The path as the API schema names it.
    pub fn path_template(self) -> &'static str {
        match self {
            GuestEndpoint::LxcCreate => "/nodes/{node}/lxc",
            GuestEndpoint::LxcClone => "/nodes/{node}/lxc/{vmid}/clone",
            GuestEndpoint::LxcConfig => "/nodes/{node}/lxc/{vmid}/config",
            GuestEndpoint::LxcResize => "/nodes/{node}/lxc/{vmid}/resize",
            GuestEndpoint::QemuCreate => "/nodes/{node}/qemu",
            GuestEndpoint::QemuClone => "/nodes/{node}/qemu/{vmid}/clone",
            GuestEndpoint::QemuConfig => "/nodes/{node}/qemu/{vmid}/config",
            GuestEndpoint::QemuResize => "/nodes/{node}/qemu/{vmid}/resize",
        }
    }
}

/// One API call: endpoint, the `{vmid}` of its path (the clone source for a clone, the guest
/// otherwise) and its body parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    pub endpoint: GuestEndpoint,
    pub vmid: GuestId,
    pub params: ApiParams,
}

impl ApiCall {
    /// The concrete path on `node` (an API path segment, not a shell word).
    pub fn path(&self, node: &str) -> String {
        self.endpoint
            .path_template()
            .replace("{node}", node)
            .replace("{vmid}", &self.vmid.to_string())
    }
}

/// Everything phoenix sends to Proxmox for one guest, in order: `create`, `config`, `resize`,
/// then the raw lines, then (for templates) conversion to a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestParams {
    pub id: GuestId,
    pub kind: GuestKind,
    /// How the guest comes into existence; `None` when the model names no source.
    pub create: Option<ApiCall>,
    /// Settings applied after `create` (what a clone does not carry); for a guest without a
    /// source, every managed key.
    pub config: Option<ApiCall>,
    /// Grow the root disk to the model's size.
    pub resize: Option<ApiCall>,
    /// A cloud image the host step must import as the VM's `scsi0` (bare file name).
    pub image_import: Option<String>,
    /// Raw `key: value` lines for `/etc/pve/lxc/ID.conf` (macvlan NICs first, then the
    /// operator's `lxc_options`).
    pub raw_lxc: Vec<String>,
    /// Convert to a template once configured.
    pub convert_to_template: bool,
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// `order=N,up=S,down=S` from the boot order and delay.
pub fn startup(g: &Guest) -> Option<PropertyString> {
    let order = g.boot_order?;
    let mut s = PropertyString::new().with("order", order.to_string());
    if let Some(delay) = g.boot_delay {
        s.set("up", delay.to_string());
        s.set("down", delay.to_string());
    }
    Some(s)
}

/// An LXC `net[n]` for a veth NIC (`None` for a macvlan NIC), keys in Proxmox's print order.
pub fn lxc_net(nic: &Nic) -> Option<PropertyString> {
    if nic.kind == NicKind::Macvlan {
        return None;
    }
    let mut s = PropertyString::new()
        .with("name", nic.name.clone())
        .with("bridge", nic.bridge.clone());
    if nic.firewall {
        s.set("firewall", "1");
    }
    if let Some(gw) = nic.gateway() {
        s.set("gw", gw.to_string());
    }
    if let Some(mac) = nic.mac {
        s.set("hwaddr", mac.to_string());
    }
    match &nic.addressing {
        Addressing::Dhcp => s.set("ip", "dhcp"),
        Addressing::Static { cidr, .. } => s.set("ip", cidr.to_string()),
        Addressing::Manual => s.set("ip", "manual"),
    }
    if let Some(mtu) = nic.mtu {
        s.set("mtu", mtu.to_string());
    }
    if let Some(tag) = nic.tag {
        s.set("tag", tag.to_string());
    }
    s.set("type", "veth");
    Some(s)
}

/// A QEMU `net[n]`: `virtio=MAC,bridge=…[,firewall=1][,mtu=…][,tag=…]` (`virtio,bridge=…`
/// without a MAC, so that Proxmox generates one).
pub fn qemu_net(nic: &Nic) -> PropertyString {
    let mut s = PropertyString::with_default_key(QEMU_NET_DEFAULT_KEY);
    match nic.mac {
        Some(mac) => s.set("virtio", mac.to_string()),
        None => s.set(QEMU_NET_DEFAULT_KEY, "virtio"),
    }
    s.set("bridge", nic.bridge.clone());
    if nic.firewall {
        s.set("firewall", "1");
    }
    if let Some(mtu) = nic.mtu {
        s.set("mtu", mtu.to_string());
    }
    if let Some(tag) = nic.tag {
        s.set("tag", tag.to_string());
    }
    s
}

/// A cloud-init `ipconfig[n]` (`ip=CIDR[,gw=GW]` or `ip=dhcp`); `None` for a manual NIC.
pub fn ipconfig(nic: &Nic) -> Option<PropertyString> {
    match &nic.addressing {
        Addressing::Dhcp => Some(PropertyString::new().with("ip", "dhcp")),
        Addressing::Static { cidr, gateway } => {
            let mut s = PropertyString::new().with("ip", cidr.to_string());
            if let Some(gw) = gateway {
                s.set("gw", gw.to_string());
            }
            Some(s)
        }
        Addressing::Manual => None,
    }
}

/// DNS settings from the model: the guest's nameservers (space separated, as Proxmox stores
/// them) and the domain as search domain.
fn dns(d: &DesiredState, g: &Guest, out: &mut ApiParams) {
    if !g.nameservers.is_empty() {
        let list: Vec<String> = g.nameservers.iter().map(ToString::to_string).collect();
        out.insert("nameserver".into(), list.join(" "));
    }
    if !d.domain.is_empty() {
        out.insert("searchdomain".into(), d.domain.clone());
    }
}

fn boot(g: &Guest, out: &mut ApiParams) {
    out.insert("onboot".into(), flag(g.start_at_boot));
    if let Some(s) = startup(g) {
        out.insert("startup".into(), s.to_string());
    }
}

/// Every LXC key phoenix manages that a clone does not carry (also the comparison set for
/// `GET …/lxc/{id}/config`): sizes, NICs, features, boot, DNS.
pub fn lxc_managed_config(d: &DesiredState, g: &Guest) -> ApiParams {
    let mut out = ApiParams::new();
    out.insert("hostname".into(), g.name.clone());
    if let Some(c) = g.cores {
        out.insert("cores".into(), c.to_string());
    }
    if let Some(m) = g.memory_mb {
        out.insert("memory".into(), m.to_string());
    }
    if let Some(s) = g.swap_mb {
        out.insert("swap".into(), s.to_string());
    }
    for nic in &g.nics {
        if let Some(net) = lxc_net(nic) {
            out.insert(format!("net{}", nic.index), net.to_string());
        }
    }
    if !g.pct_features.is_empty() {
        let mut f = PropertyString::new();
        for entry in &g.pct_features {
            if let Some((k, v)) = entry.split_once('=') {
                f.set(k, v);
            }
        }
        out.insert("features".into(), f.to_string());
    }
    boot(g, &mut out);
    dns(d, g, &mut out);
    out
}

/// Every QEMU key phoenix manages after a clone (also the comparison set for
/// `GET …/qemu/{id}/config`): sizes, NICs, cloud-init, boot.
pub fn qemu_managed_config(d: &DesiredState, g: &Guest) -> ApiParams {
    let mut out = ApiParams::new();
    out.insert("name".into(), g.name.clone());
    if let Some(c) = g.cores {
        out.insert("cores".into(), c.to_string());
    }
    if let Some(m) = g.memory_mb {
        let mem = PropertyString::with_default_key(QEMU_MEMORY_DEFAULT_KEY)
            .with(QEMU_MEMORY_DEFAULT_KEY, m.to_string());
        out.insert("memory".into(), mem.to_string());
    }
    for nic in &g.nics {
        out.insert(format!("net{}", nic.index), qemu_net(nic).to_string());
        if let Some(ip) = ipconfig(nic) {
            out.insert(format!("ipconfig{}", nic.index), ip.to_string());
        }
    }
    if let Some(u) = &g.cloud_init_user {
        out.insert("ciuser".into(), u.clone());
    }
    // phoenix reaches a VM's inside through the guest agent (installed by the vendor data).
    out.insert("agent".into(), "1".into());
    boot(g, &mut out);
    dns(d, g, &mut out);
    out
}

/// `STORAGE:SIZE` (a new volume of SIZE GiB), when both are known.
fn new_rootfs(g: &Guest) -> Option<String> {
    Some(format!("{}:{}", g.storage.as_deref()?, g.disk_gb?))
}

fn resize(endpoint: GuestEndpoint, g: &Guest, disk: &str) -> Option<ApiCall> {
    let size = g.disk_gb?;
    Some(ApiCall {
        endpoint,
        vmid: g.id,
        params: ApiParams::from([
            ("disk".to_string(), disk.to_string()),
            ("size".to_string(), format!("{size}G")),
        ]),
    })
}

/// The call that grows `g`'s root disk (`rootfs` of a container, `scsi0` of a VM) to the
/// configured size; `None` without a size or for a template (its disk is a base volume).
pub fn grow_root_disk(g: &Guest) -> Option<ApiCall> {
    if g.is_template {
        return None;
    }
    match g.kind {
        GuestKind::Lxc => resize(GuestEndpoint::LxcResize, g, "rootfs"),
        GuestKind::Vm => resize(GuestEndpoint::QemuResize, g, "scsi0"),
    }
}

/// A full clone of `from` as `g` (`name_key`: `hostname` for LXC, `name` for QEMU).
fn clone_call(
    endpoint: GuestEndpoint,
    g: &Guest,
    from: GuestId,
    snapshot: Option<&str>,
    name_key: &str,
) -> ApiCall {
    let mut p = ApiParams::new();
    p.insert("newid".into(), g.id.to_string());
    p.insert(name_key.into(), g.name.clone());
    p.insert("full".into(), flag(true));
    if let Some(s) = snapshot {
        p.insert("snapname".into(), s.to_string());
    }
    if let Some(s) = &g.storage {
        p.insert("storage".into(), s.clone());
    }
    ApiCall {
        endpoint,
        vmid: from,
        params: p,
    }
}

fn config_call(endpoint: GuestEndpoint, id: GuestId, params: ApiParams) -> Option<ApiCall> {
    (!params.is_empty()).then_some(ApiCall {
        endpoint,
        vmid: id,
        params,
    })
}

/// The parameter sets for one guest.
pub fn guest_params(d: &DesiredState, g: &Guest) -> GuestParams {
    match g.kind {
        GuestKind::Lxc => lxc_params(d, g),
        GuestKind::Vm => qemu_params(d, g),
    }
}

/// The parameter sets of every guest, by id.
pub fn all_guest_params(d: &DesiredState) -> BTreeMap<GuestId, GuestParams> {
    d.guests
        .values()
        .map(|g| (g.id, guest_params(d, g)))
        .collect()
}

fn lxc_params(d: &DesiredState, g: &Guest) -> GuestParams {
    let managed = lxc_managed_config(d, g);
    let mut out = GuestParams {
        id: g.id,
        kind: g.kind,
        create: None,
        config: None,
        resize: None,
        image_import: None,
        raw_lxc: raw_lxc_lines(g),
        convert_to_template: g.is_template,
    };
    match &g.source {
        GuestSource::Template { image } => {
            let mut p = managed;
            p.insert("vmid".into(), g.id.to_string());
            p.insert("ostemplate".into(), image.clone());
            p.insert("unprivileged".into(), flag(g.unprivileged));
            match (new_rootfs(g), &g.storage) {
                (Some(rootfs), _) => {
                    p.insert("rootfs".into(), rootfs);
                }
                (None, Some(storage)) => {
                    p.insert("storage".into(), storage.clone());
                }
                (None, None) => {}
            }
            out.create = Some(ApiCall {
                endpoint: GuestEndpoint::LxcCreate,
                vmid: g.id,
                params: p,
            });
        }
        GuestSource::Clone { from, snapshot } => {
            out.create = Some(clone_call(
                GuestEndpoint::LxcClone,
                g,
                *from,
                snapshot.as_deref(),
                "hostname",
            ));
            let mut rest = managed;
            rest.remove("hostname");
            out.config = config_call(GuestEndpoint::LxcConfig, g.id, rest);
            out.resize = resize(GuestEndpoint::LxcResize, g, "rootfs");
        }
        GuestSource::Unspecified => {
            out.config = config_call(GuestEndpoint::LxcConfig, g.id, managed);
        }
    }
    out
}

fn qemu_params(d: &DesiredState, g: &Guest) -> GuestParams {
    let managed = qemu_managed_config(d, g);
    let mut out = GuestParams {
        id: g.id,
        kind: g.kind,
        create: None,
        config: None,
        resize: None,
        image_import: None,
        raw_lxc: Vec::new(),
        convert_to_template: g.is_template,
    };
    match &g.source {
        GuestSource::Template { image } => {
            let mut p = managed;
            p.insert("vmid".into(), g.id.to_string());
            p.insert("ostype".into(), "l26".into());
            p.insert("scsihw".into(), "virtio-scsi-pci".into());
            p.insert("serial0".into(), "socket".into());
            p.insert("vga".into(), "serial0".into());
            let storage = g.storage.as_deref().unwrap_or("local-lvm");
            p.insert("ide2".into(), format!("{storage}:cloudinit"));
            if image.contains(':') || image.starts_with('/') {
                p.insert("scsi0".into(), format!("{storage}:0,import-from={image}"));
                p.insert("boot".into(), "order=scsi0".into());
            } else {
                out.image_import = Some(image.clone());
            }
            out.create = Some(ApiCall {
                endpoint: GuestEndpoint::QemuCreate,
                vmid: g.id,
                params: p,
            });
            out.resize = resize(GuestEndpoint::QemuResize, g, "scsi0");
        }
        GuestSource::Clone { from, snapshot } => {
            out.create = Some(clone_call(
                GuestEndpoint::QemuClone,
                g,
                *from,
                snapshot.as_deref(),
                "name",
            ));
            let mut rest = managed;
            rest.remove("name");
            out.config = config_call(GuestEndpoint::QemuConfig, g.id, rest);
            out.resize = resize(GuestEndpoint::QemuResize, g, "scsi0");
        }
        GuestSource::Unspecified => {
            out.config = config_call(GuestEndpoint::QemuConfig, g.id, managed);
        }
    }
    out
}

/// The `lxc.net.N.*` keys of a macvlan NIC, in a fixed order.
pub fn macvlan_lines(nic: &Nic) -> Vec<RawLxcLine> {
    let n = nic.index;
    let line = |k: &str, v: String| RawLxcLine {
        key: format!("lxc.net.{n}.{k}"),
        value: v,
    };
    let mut out = vec![
        line("type", "macvlan".into()),
        line("macvlan.mode", "bridge".into()),
        line("link", nic.bridge.clone()),
        line("flags", "up".into()),
        line("name", nic.name.clone()),
    ];
    if let Some(mac) = nic.mac {
        out.push(line("hwaddr", mac.to_string()));
    }
    if let Some(mtu) = nic.mtu {
        out.push(line("mtu", mtu.to_string()));
    }
    if let Addressing::Static { cidr, gateway } = &nic.addressing {
        out.push(line("ipv4.address", cidr.to_string()));
        if let Some(gw) = gateway {
            out.push(line("ipv4.gateway", gw.to_string()));
        }
    }
    out
}

/// Raw `/etc/pve/lxc/ID.conf` lines: the macvlan NICs' lines, then the operator's
/// `lxc_options` except those the macvlan lines already set (phoenix's value wins).
pub fn raw_lxc_lines(g: &Guest) -> Vec<String> {
    if g.kind != GuestKind::Lxc {
        return Vec::new();
    }
    let generated: Vec<RawLxcLine> = g
        .nics
        .iter()
        .filter(|n| n.kind == NicKind::Macvlan)
        .flat_map(macvlan_lines)
        .collect();
    let operator = g
        .raw_lxc
        .iter()
        .filter(|l| !generated.iter().any(|x| x.key == l.key));
    let mut out: Vec<String> = Vec::new();
    for l in generated.iter().chain(operator) {
        let text = format!("{}: {}", l.key, l.value);
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// Keep MACs Proxmox generated: for every `net[n]` in `desired` that carries no MAC, copy the
/// MAC of the observed `net[n]` (`hwaddr=` for LXC, `virtio=`/`macaddr=` for QEMU), so that
/// the desired string equals what Proxmox holds and the NIC is never re-created. Values that
/// are not valid property strings are left as they are.
pub fn carry_observed_macs(
    kind: GuestKind,
    desired: &ApiParams,
    observed: &BTreeMap<String, String>,
) -> ApiParams {
    let mut out = desired.clone();
    for (key, value) in out.iter_mut() {
        let Some(index) = key.strip_prefix("net") else {
            continue;
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(seen) = observed.get(key) else {
            continue;
        };
        if let Some(carried) = carry_mac(kind, value, seen) {
            *value = carried;
        }
    }
    out
}

fn carry_mac(kind: GuestKind, desired: &str, observed: &str) -> Option<String> {
    match kind {
        GuestKind::Lxc => {
            let want = PropertyString::parse(desired, None).ok()?;
            if want.contains_key("hwaddr") {
                return None;
            }
            let seen = PropertyString::parse(observed, None).ok()?;
            let mac = seen.get("hwaddr")?;
            // Proxmox prints `name` first, then the keys alphabetically: put `hwaddr` there.
            let mut rebuilt = PropertyString::new();
            for (k, v) in want.iter() {
                if k != "name" && k > "hwaddr" && !rebuilt.contains_key("hwaddr") {
                    rebuilt.set("hwaddr", mac);
                }
                rebuilt.set(k, v);
            }
            if !rebuilt.contains_key("hwaddr") {
                rebuilt.set("hwaddr", mac);
            }
            Some(rebuilt.to_string())
        }
        GuestKind::Vm => {
            let want = PropertyString::parse(desired, Some(QEMU_NET_DEFAULT_KEY)).ok()?;
            let (model, mac) = qemu_nic_model_mac(&want);
            if mac.is_some() {
                return None;
            }
            let seen = PropertyString::parse(observed, Some(QEMU_NET_DEFAULT_KEY)).ok()?;
            let (seen_model, seen_mac) = qemu_nic_model_mac(&seen);
            let mac = seen_mac?;
            let model = model.or(seen_model).unwrap_or("virtio");
            let mut rebuilt = PropertyString::with_default_key(QEMU_NET_DEFAULT_KEY);
            rebuilt.set(model, mac);
            for (k, v) in want.iter() {
                if k != QEMU_NET_DEFAULT_KEY {
                    rebuilt.set(k, v);
                }
            }
            Some(rebuilt.to_string())
        }
    }
}

/// The MAC of an observed raw `lxc.net.N.hwaddr` line carried into the desired macvlan lines
/// when the model has none (a macvlan without a fixed MAC gets a new one at every start).
pub fn carry_observed_raw_macs(desired: &[String], observed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = desired.to_vec();
    let types: Vec<String> = desired
        .iter()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (v.trim() == "macvlan").then(|| k.trim().trim_end_matches(".type").to_string())
        })
        .collect();
    for prefix in types {
        let key = format!("{prefix}.hwaddr");
        if desired.iter().any(|l| line_key(l) == key) {
            continue;
        }
        if let Some(seen) = observed.iter().find(|l| line_key(l) == key) {
            let mac = seen.split_once(['=', ':']).map_or("", |(_, v)| v.trim());
            let pos = out
                .iter()
                .rposition(|l| line_key(l).starts_with(&format!("{prefix}.")))
                .map_or(out.len(), |p| p + 1);
            out.insert(pos, format!("{key}: {mac}"));
        }
    }
    out
}

/// The key of a raw `key: value` or `key = value` line.
fn line_key(line: &str) -> &str {
    line.split_once([':', '=']).map_or(line, |(k, _)| k).trim()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lxc_generated_mac_is_carried_in_print_order() {
        let desired = map(&[(
            "net0",
            "name=eth0,bridge=vmbr100,firewall=1,gw=172.16.100.1,ip=172.16.100.12/24,type=veth",
        )]);
        let observed = map(&[(
            "net0",
            "name=eth0,bridge=vmbr100,hwaddr=BC:24:11:AA:BB:CC,ip=172.16.100.5/24,type=veth",
        )]);
        let out = carry_observed_macs(GuestKind::Lxc, &desired, &observed);
        assert_eq!(
            out["net0"],
            "name=eth0,bridge=vmbr100,firewall=1,gw=172.16.100.1,hwaddr=BC:24:11:AA:BB:CC,ip=172.16.100.12/24,type=veth"
        );
    }

    #[test]
    fn model_mac_wins_and_missing_observation_changes_nothing() {
        let desired = map(&[
            (
                "net0",
                "name=eth0,bridge=vmbr0,hwaddr=02:00:00:00:00:01,ip=dhcp,type=veth",
            ),
            ("net1", "name=eth1,bridge=vmbr100,ip=dhcp,type=veth"),
            ("memory", "2048"),
        ]);
        let observed = map(&[(
            "net0",
            "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:09,ip=dhcp,type=veth",
        )]);
        assert_eq!(
            carry_observed_macs(GuestKind::Lxc, &desired, &observed),
            desired
        );
    }

    #[test]
    fn qemu_generated_mac_is_carried() {
        let desired = map(&[
            ("net0", "virtio,bridge=vmbr0,firewall=1"),
            ("ipconfig0", "ip=dhcp"),
        ]);
        let observed = map(&[("net0", "virtio=BC:24:11:2E:3F:40,bridge=vmbr1")]);
        let out = carry_observed_macs(GuestKind::Vm, &desired, &observed);
        assert_eq!(
            out["net0"],
            "virtio=BC:24:11:2E:3F:40,bridge=vmbr0,firewall=1"
        );
        assert_eq!(out["ipconfig0"], "ip=dhcp");
        // Already carried: a second pass is a no-op (plan idempotence).
        assert_eq!(carry_observed_macs(GuestKind::Vm, &out, &observed), out);
    }

    #[test]
    fn macvlan_raw_mac_is_carried() {
        let desired = vec![
            "lxc.net.0.type: macvlan".to_string(),
            "lxc.net.0.link: vmbr0.20".to_string(),
            "lxc.apparmor.profile: unconfined".to_string(),
        ];
        let observed = vec![
            "lxc.net.0.type: macvlan".to_string(),
            "lxc.net.0.hwaddr: 02:AA:BB:CC:DD:EE".to_string(),
        ];
        let out = carry_observed_raw_macs(&desired, &observed);
        assert_eq!(out[2], "lxc.net.0.hwaddr: 02:AA:BB:CC:DD:EE");
        assert_eq!(out.len(), 4);
        assert_eq!(carry_observed_raw_macs(&out, &observed), out);
    }
}
