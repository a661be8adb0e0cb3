//! Raw files → [`DesiredState`]: parse every small value, fill every default the bash system
//! hard-coded, derive roles. Problems with single values are reported here; problems between
//! values (duplicates, subnets, references) are `crate::checks`. No I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::diag::{Code, Diagnostics};
use crate::load::{Loaded, RawConfig};
use crate::model::*;
use crate::raw::{self, RawGuestFirewall, RawNic, RawRule, RawTraefikService};
use crate::source::Location;
use crate::values;

/// Defaults the bash system hard-coded.
pub const DEFAULT_UPLINK: &str = "enp6s0";
pub const DEFAULT_MANAGEMENT_BRIDGE: &str = "vmbr0";
pub const DEFAULT_MESH_BRIDGE: &str = "vmbr100";
pub const DEFAULT_MTU: u16 = 1500;
pub const DEFAULT_CA_PORT: u16 = 9000;
pub const DEFAULT_CA_DIR: &str = "/var/lib/phoenix/ca";
pub const DEFAULT_CERT_LIFETIME_HOURS: u32 = 24;
pub const DEFAULT_ENTRYPOINTS: &[(&str, u16)] = &[
    ("mesh", 8443),
    ("traefik", 8080),
    ("web", 80),
    ("websecure", 443),
];

/// Build the desired state. `None` only when the hypervisor file could not be read at all.
pub fn build(raw: &RawConfig, diags: &mut Diagnostics) -> Option<DesiredState> {
    let hyp = raw.hypervisor.as_ref()?;
    let mut b = Builder { diags };
    Some(b.state(raw, hyp))
}

struct Builder<'d> {
    diags: &'d mut Diagnostics,
}

impl Builder<'_> {
    fn err(&mut self, code: Code, loc: &Location, msg: impl Into<String>, hint: impl Into<String>) {
        self.diags.emit(code, loc, msg, hint);
    }

    fn state(&mut self, raw: &RawConfig, hyp: &Loaded<raw::RawHypervisor>) -> DesiredState {
        let h = &hyp.value;
        let root = &hyp.loc;
        let domain = match &h.domain_name {
            Some(d) => {
                if let Err(m) = values::hostname(d) {
                    self.err(
                        Code::InvalidName,
                        &root.child("domain_name"),
                        m,
                        "use a DNS domain such as `internal.example.org`",
                    );
                }
                d.to_ascii_lowercase()
            }
            None => {
                self.err(
                    Code::MissingField,
                    root,
                    "missing field `domain_name`",
                    "add the internal DNS domain, e.g. \"domain_name\": \"internal.example.org\"",
                );
                String::new()
            }
        };
        let net = h.network.clone().unwrap_or_default();
        let net_loc = root.child("network");
        let mtu = net.mtu.unwrap_or(DEFAULT_MTU);
        let uplink = net.uplink.clone().unwrap_or_else(|| DEFAULT_UPLINK.into());
        self.ident(&uplink, &net_loc.child("uplink"));
        let host_if = net.interfaces.clone().unwrap_or_default();
        let if_loc = net_loc.child("interfaces");
        let nameservers = host_if
            .dns_nameservers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.ip(s, &if_loc.child("dns_nameservers").child(i)))
            .collect();
        let host = Host {
            uplink: uplink.clone(),
            nameservers,
            mtu,
            loc: if_loc.clone(),
        };

        let bridges = self.bridges(&net, &net_loc, &uplink, mtu);
        let mgmt_name = bridges
            .first()
            .map(|b| b.name.clone())
            .unwrap_or_else(|| DEFAULT_MANAGEMENT_BRIDGE.into());

        let step_ca = self.step_ca(h, root);
        let entrypoints = h
            .traefik
            .as_ref()
            .and_then(|t| t.entrypoints.clone())
            .unwrap_or_else(|| {
                DEFAULT_ENTRYPOINTS
                    .iter()
                    .map(|(n, p)| (n.to_string(), *p))
                    .collect()
            });

        let mut guests = BTreeMap::new();
        for (id, l) in &raw.lxcs {
            let g = self.lxc(*id, l, &bridges);
            guests.insert(*id, g);
        }
        let vm_bridge = raw
            .vm_defaults
            .as_ref()
            .and_then(|d| d.network_bridge.clone())
            .unwrap_or(mgmt_name.clone());
        let mut vm_ids_seen = Vec::new();
        for l in &raw.vms {
            let g = self.vm(l, raw.vm_defaults.as_ref(), &vm_bridge, &domain);
            vm_ids_seen.push(g.id);
            // Duplicates across files are reported by checks::identity; the first one wins.
            guests.entry(g.id).or_insert(g);
        }

        let roles = self.roles(h, root, &guests, &bridges);
        for g in guests.values_mut() {
            let is_ca = roles.ca == Some(g.id) || g.has_feature("step_ca");
            if let Some(ts) = &mut g.traefik_service
                && !ts.scheme_explicit
                && is_ca
                && ts.port == step_ca.port
            {
                ts.scheme = Scheme::Https;
            }
        }

        let firewall = self.cluster_firewall(h, root);
        let dns = self.dns(h, root, &bridges);
        if let Some(p) = &h.portainer_api {
            let ploc = root.child("portainer_api");
            if let Some(s) = &p.admin_password {
                self.secret(
                    s,
                    &ploc.child("admin_password"),
                    "portainer_api.admin_password",
                );
            }
            if let Some(s) = &p.api_key {
                self.secret(s, &ploc.child("api_key"), "portainer_api.api_key");
            }
        }
        let portainer = h.portainer_api.as_ref().map(|p| PortainerApi {
            admin_user: p.admin_user.clone().unwrap_or_else(|| "admin".into()),
            admin_password: p.admin_password.clone(),
            hostname: p.portainer_hostname.clone(),
            api_key: p.api_key.clone(),
        });
        let certificates = raw
            .certificates
            .iter()
            .filter_map(|c| self.certificate(c))
            .collect();
        let stacks = raw
            .stacks
            .iter()
            .map(|(name, s)| (name.clone(), self.stack(name, s, raw)))
            .collect();
        DesiredState {
            domain,
            host,
            bridges,
            roles,
            guests,
            firewall,
            dns,
            traefik: TraefikSettings { entrypoints },
            step_ca,
            portainer,
            certificates,
            stacks,
        }
    }

    fn ident(&mut self, s: &str, loc: &Location) -> bool {
        match values::ident(s) {
            Ok(()) => true,
            Err(m) => {
                self.err(
                    Code::InvalidName,
                    loc,
                    m,
                    "names are plain identifiers; phoenix never passes them through a shell",
                );
                false
            }
        }
    }

    fn ip(&mut self, s: &str, loc: &Location) -> Option<IpAddr> {
        match values::ip(s) {
            Ok(a) => Some(a),
            Err(m) => {
                self.err(
                    Code::InvalidAddress,
                    loc,
                    m,
                    "write an IPv4 or IPv6 address such as 172.16.100.1",
                );
                None
            }
        }
    }

    fn bridges(
        &mut self,
        net: &raw::RawNetwork,
        loc: &Location,
        uplink: &str,
        mtu: u16,
    ) -> Vec<Bridge> {
        let mut out = Vec::new();
        let iface = net.interfaces.clone().unwrap_or_default();
        let if_loc = loc.child("interfaces");
        let mgmt = iface
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_MANAGEMENT_BRIDGE.into());
        self.ident(&mgmt, &if_loc.child("name"));
        let address = iface
            .address
            .as_deref()
            .and_then(|a| match values::cidr(a) {
                Ok(n) => Some(n),
                Err(m) => {
                    self.err(
                        Code::InvalidAddress,
                        &if_loc.child("address"),
                        m,
                        "the host address is written with its prefix, e.g. 10.0.0.13/24",
                    );
                    None
                }
            });
        let gateway = iface
            .gateway
            .as_deref()
            .and_then(|g| self.ip(g, &if_loc.child("gateway")));
        let public_parent = net.public_bridge.clone().unwrap_or(mgmt.clone());
        let vlan_aware = net.public_vlan_tag.is_some() && public_parent == mgmt;
        out.push(Bridge {
            name: mgmt.clone(),
            role: BridgeRole::Management,
            ports: vec![uplink.to_string()],
            address,
            gateway,
            subnet: address.map(|a| a.trunc()),
            vlan_aware,
            vlan: None,
            nat: None,
            mtu,
            loc: if_loc.clone(),
        });
        if let Some(tag) = net.public_vlan_tag {
            let tag_loc = loc.child("public_vlan_tag");
            if !(1..=4094).contains(&tag) {
                self.err(
                    Code::InvalidValue,
                    &tag_loc,
                    format!("VLAN tag {tag} is outside 1–4094"),
                    "use the public VLAN's id",
                );
            }
            if public_parent != mgmt {
                self.err(Code::UnknownBridge, &loc.child("public_bridge"), format!("public bridge `{public_parent}` is not the management bridge `{mgmt}`"), "the public VLAN rides on the VLAN-aware management bridge; set `public_bridge` to its name");
            }
            let subnet = net
                .public_subnet
                .as_deref()
                .and_then(|s| match values::subnet(s) {
                    Ok(n) => Some(n),
                    Err(m) => {
                        self.err(
                            Code::InvalidAddress,
                            &loc.child("public_subnet"),
                            m,
                            "write the public VLAN's subnet, e.g. 203.0.113.0/24",
                        );
                        None
                    }
                });
            out.push(Bridge {
                name: format!("{public_parent}.{tag}"),
                role: BridgeRole::PublicVlan,
                ports: Vec::new(),
                address: None,
                gateway: None,
                subnet,
                vlan_aware: false,
                vlan: Some((public_parent.clone(), tag)),
                nat: None,
                mtu,
                loc: tag_loc,
            });
        }
        if let Some(ib) = &net.internal_bridge {
            let ib_loc = loc.child("internal_bridge");
            let name = ib
                .name
                .clone()
                .unwrap_or_else(|| DEFAULT_MESH_BRIDGE.into());
            self.ident(&name, &ib_loc.child("name"));
            let subnet = match ib.subnet.as_deref() {
                Some(s) => {
                    match values::subnet(s) {
                        Ok(n) => Some(n),
                        Err(m) => {
                            self.err(Code::InvalidAddress, &ib_loc.child("subnet"), m, "the mesh subnet is written with zero host bits, e.g. 172.16.100.0/24");
                            None
                        }
                    }
                }
                None => {
                    self.err(
                        Code::MissingField,
                        &ib_loc,
                        "missing field `subnet`",
                        "add the mesh subnet, e.g. \"subnet\": \"172.16.100.0/24\"",
                    );
                    None
                }
            };
            let gw = match (&ib.gateway, subnet) {
                (Some(g), Some(sn)) => self.ip(g, &ib_loc.child("gateway")).map(|a| {
                    if !sn.contains(&a) {
                        self.err(
                            Code::GatewayOutsideSubnet,
                            &ib_loc.child("gateway"),
                            format!("mesh gateway {a} is outside {sn}"),
                            format!(
                                "pick an address inside {sn}, usually {}",
                                first_host(sn).map(|h| h.to_string()).unwrap_or_default()
                            ),
                        );
                    }
                    IpNet::new(a, sn.prefix_len()).unwrap_or(sn)
                }),
                (None, Some(sn)) => {
                    first_host(sn).and_then(|a| IpNet::new(a, sn.prefix_len()).ok())
                }
                _ => None,
            };
            let nat = if ib.nat.unwrap_or(true) {
                let up = ib.nat_uplink.clone().unwrap_or(mgmt.clone());
                self.ident(&up, &ib_loc.child("nat_uplink"));
                Some(Nat { uplink: up })
            } else {
                None
            };
            out.push(Bridge {
                name,
                role: BridgeRole::Mesh,
                ports: Vec::new(),
                address: gw,
                gateway: None,
                subnet,
                vlan_aware: false,
                vlan: None,
                nat,
                mtu,
                loc: ib_loc,
            });
        }
        out
    }

    fn step_ca(&mut self, h: &raw::RawHypervisor, root: &Location) -> StepCaSettings {
        let s = h.step_ca.clone().unwrap_or_default();
        let loc = root.child("step_ca");
        let ca_dir = s.ca_dir.clone().unwrap_or_else(|| DEFAULT_CA_DIR.into());
        if let Err(m) = values::abs_path(&ca_dir) {
            self.err(
                Code::InvalidPath,
                &loc.child("ca_dir"),
                m,
                "give an absolute directory on the hypervisor",
            );
        }
        if let Some(p) = &s.password {
            self.secret(p, &loc.child("password"), "step_ca.password");
        }
        let domain = h.domain_name.clone().unwrap_or_default();
        StepCaSettings {
            root_name: s
                .root_ca_name
                .unwrap_or_else(|| "Phoenix Internal Root CA".into()),
            intermediate_name: s
                .intermediate_ca_name
                .unwrap_or_else(|| "Phoenix Internal Intermediate CA".into()),
            dns_name: s.dns_name.unwrap_or_else(|| format!("ca.{domain}")),
            provisioner: s.provisioner_name.unwrap_or_else(|| "phoenix".into()),
            port: s.port.unwrap_or(DEFAULT_CA_PORT),
            ca_dir,
            password: s.password,
        }
    }

    /// Secret references are checked for form; plaintext draws a warning naming the key only.
    fn secret(&mut self, s: &Secret, loc: &Location, what: &str) {
        match s {
            Secret::Plain(_) => self.diags.emit(
                Code::PlaintextSecret,
                loc,
                format!("`{what}` is a plaintext secret"),
                "use {\"env\": \"NAME\"} or {\"file\": \"/root/.secrets/NAME\"} so the value stays out of the configuration",
            ),
            Secret::Env(n) => {
                if let Err(m) = values::env_name(n) {
                    self.err(Code::InvalidSecret, loc, m, "use an environment variable name such as PORTAINER_ADMIN_PASSWORD");
                }
            }
            Secret::File(p) => {
                if let Err(m) = values::abs_path(p) {
                    self.err(Code::InvalidSecret, loc, m, "give the absolute path of a file that holds the secret");
                }
            }
        }
    }

    fn lxc(&mut self, id: GuestId, l: &Loaded<raw::RawLxc>, bridges: &[Bridge]) -> Guest {
        let r = &l.value;
        let loc = &l.loc;
        let name = self.guest_name(r.name.as_deref(), loc, id);
        let mut raw_lxc = Vec::new();
        for (i, line) in r.lxc_options.iter().enumerate() {
            match values::lxc_line(line) {
                Ok((key, value)) => raw_lxc.push(RawLxcLine { key, value }),
                Err(m) => self.err(
                    Code::InvalidValue,
                    &loc.child("lxc_options").child(i),
                    m,
                    "raw lines are `lxc.key: value`, one per entry",
                ),
            }
        }
        for (i, f) in r.pct_options.iter().enumerate() {
            let ok = f
                .split_once('=')
                .is_some_and(|(k, v)| values::ident(k).is_ok() && values::ident(v).is_ok());
            if !ok {
                self.err(
                    Code::InvalidValue,
                    &loc.child("pct_options").child(i),
                    format!(
                        "`{}` is not a Proxmox feature `key=value`",
                        f.escape_debug()
                    ),
                    "write features such as `nesting=1` or `keyctl=1`",
                );
            }
        }
        let fw = r.firewall.clone().unwrap_or_default();
        let fw_enabled = fw.enabled.unwrap_or(false);
        let mut nics = Vec::new();
        for (index, (field, nic)) in [
            ("network_config", &r.network_config),
            ("secondary_network_config", &r.secondary_network_config),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(nic) = nic else { continue };
            let mac_fallback = if index == 0 {
                r.mac_address
                    .as_deref()
                    .map(|m| (m, loc.child("mac_address")))
            } else {
                None
            };
            if let Some(n) = self.nic(
                index as u8,
                nic,
                &loc.child(field),
                GuestKind::Lxc,
                None,
                mac_fallback,
                &raw_lxc,
                fw_enabled,
            ) {
                nics.push(n);
            }
        }
        let _ = bridges;
        let nameservers =
            self.guest_nameservers([&r.network_config, &r.secondary_network_config], loc);
        let source = match (&r.clone_from_ctid, &r.template) {
            (Some(from), _) => GuestSource::Clone {
                from: *from,
                snapshot: r.template_snapshot_name.clone(),
            },
            (None, Some(t)) => GuestSource::Template { image: t.clone() },
            (None, None) => GuestSource::Unspecified,
        };
        for (i, mp) in r.mount_points.iter().enumerate() {
            let mloc = loc.child("mount_points").child(i);
            for (k, p) in [
                ("host_path", &mp.host_path),
                ("container_path", &mp.container_path),
            ] {
                if let Err(m) = values::abs_path(p) {
                    self.err(
                        Code::InvalidPath,
                        &mloc.child(k),
                        m,
                        "mount points are absolute paths",
                    );
                }
            }
        }
        if let Some(u) = &r.service_user {
            self.ident(u, &loc.child("service_user"));
        }
        Guest {
            id,
            kind: GuestKind::Lxc,
            name,
            cores: r.cores,
            memory_mb: r.memory_mb,
            swap_mb: r.swap_mb,
            disk_gb: r.storage_size_gb,
            storage: r.storage_pool.clone(),
            unprivileged: r.unprivileged.unwrap_or(true),
            start_at_boot: r.start_at_boot.unwrap_or(false),
            boot_order: r.boot_order,
            boot_delay: r.boot_delay,
            source,
            is_template: r.is_template.unwrap_or(false),
            nics,
            nameservers,
            features: self.features(&r.features, &loc.child("features")),
            pct_features: r.pct_options.clone(),
            raw_lxc,
            dependencies: r.dependencies.clone(),
            traefik_service: r
                .traefik_service
                .as_ref()
                .and_then(|t| self.traefik_service(t, &loc.child("traefik_service"))),
            firewall: self.guest_firewall(&fw, &loc.child("firewall")),
            mount_points: r
                .mount_points
                .iter()
                .enumerate()
                .map(|(i, m)| MountPoint {
                    host_path: m.host_path.clone(),
                    container_path: m.container_path.clone(),
                    owner_uid: m.owner_uid,
                    owner_gid: m.owner_gid,
                    loc: loc.child("mount_points").child(i),
                })
                .collect(),
            swarm: None,
            docker_stacks: Vec::new(),
            service_user: r.service_user.clone(),
            cloud_init_user: None,
            loc: loc.clone(),
        }
    }

    fn vm(
        &mut self,
        l: &Loaded<raw::RawVm>,
        defaults: Option<&raw::RawVmDefaults>,
        bridge: &str,
        _domain: &str,
    ) -> Guest {
        let r = &l.value;
        let loc = &l.loc;
        let id = r.vmid;
        let name = self.guest_name(r.name.as_deref(), loc, id);
        let fw = r.firewall.clone().unwrap_or_default();
        let fw_enabled = fw.enabled.unwrap_or(false);
        let mut nics = Vec::new();
        for (index, (field, nic)) in [
            ("network_config", &r.network_config),
            ("secondary_network_config", &r.secondary_network_config),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(nic) = nic else { continue };
            if let Some(n) = self.nic(
                index as u8,
                nic,
                &loc.child(field),
                GuestKind::Vm,
                Some(bridge),
                None,
                &[],
                fw_enabled,
            ) {
                nics.push(n);
            }
        }
        let nameservers =
            self.guest_nameservers([&r.network_config, &r.secondary_network_config], loc);
        let swarm = match r.swarm_role.as_deref() {
            None => None,
            Some(role) => {
                let role = match role {
                    "manager" => Some(SwarmRole::Manager),
                    "worker" => Some(SwarmRole::Worker),
                    other => {
                        self.err(
                            Code::InvalidValue,
                            &loc.child("swarm_role"),
                            format!("`{}` is not a Swarm role", other.escape_debug()),
                            "use `manager` or `worker`",
                        );
                        None
                    }
                };
                role.map(|role| {
                    let mut labels = BTreeMap::new();
                    for (i, l) in r.node_labels.iter().enumerate() {
                        match l.split_once('=') {
                            Some((k, v))
                                if values::ident(k).is_ok() && !v.chars().any(char::is_control) =>
                            {
                                labels.insert(k.to_string(), v.to_string());
                            }
                            _ => self.err(
                                Code::InvalidValue,
                                &loc.child("node_labels").child(i),
                                format!("`{}` is not a `key=value` label", l.escape_debug()),
                                "write labels such as `gpu=false`",
                            ),
                        }
                    }
                    SwarmMembership { role, labels }
                })
            }
        };
        for (i, s) in r.docker_stacks.iter().enumerate() {
            self.ident(s, &loc.child("docker_stacks").child(i));
        }
        let source = match (&r.clone_from_vmid, &r.template_image) {
            (Some(from), _) => GuestSource::Clone {
                from: *from,
                snapshot: r.template_snapshot_name.clone(),
            },
            (None, Some(t)) => GuestSource::Template { image: t.clone() },
            (None, None) => GuestSource::Unspecified,
        };
        let user = r.user_config.as_ref().and_then(|u| u.username.clone());
        if let Some(u) = &user {
            self.ident(u, &loc.child("user_config").child("username"));
        }
        Guest {
            id,
            kind: GuestKind::Vm,
            name,
            cores: r.cores.or(defaults.and_then(|d| d.cores)),
            memory_mb: r.memory_mb.or(defaults.and_then(|d| d.memory_mb)),
            swap_mb: None,
            disk_gb: r.disk_size_gb.or(defaults.and_then(|d| d.disk_size_gb)),
            storage: r
                .storage_pool
                .clone()
                .or(defaults.and_then(|d| d.storage_pool.clone())),
            unprivileged: false,
            start_at_boot: r.start_at_boot.unwrap_or(false),
            boot_order: r.boot_order,
            boot_delay: r.boot_delay,
            source,
            is_template: r.is_template.unwrap_or(false),
            nics,
            nameservers,
            features: self.features(&r.features, &loc.child("features")),
            pct_features: Vec::new(),
            raw_lxc: Vec::new(),
            dependencies: r.dependencies.clone(),
            traefik_service: r
                .traefik_service
                .as_ref()
                .and_then(|t| self.traefik_service(t, &loc.child("traefik_service"))),
            firewall: self.guest_firewall(&fw, &loc.child("firewall")),
            mount_points: Vec::new(),
            swarm,
            docker_stacks: r.docker_stacks.clone(),
            service_user: None,
            cloud_init_user: user,
            loc: loc.clone(),
        }
    }

    fn guest_name(&mut self, name: Option<&str>, loc: &Location, id: GuestId) -> String {
        match name {
            Some(n) => {
                if let Err(m) = values::hostname(n) {
                    self.err(
                        Code::InvalidName,
                        &loc.child("name"),
                        m,
                        "guest names become hostnames: letters, digits and `-`",
                    );
                }
                n.to_string()
            }
            None => {
                self.err(
                    Code::MissingField,
                    loc,
                    format!("guest {id} has no `name`"),
                    "add a hostname, e.g. \"name\": \"traefik\"",
                );
                format!("guest-{id}")
            }
        }
    }

    fn features(&mut self, fs: &[String], loc: &Location) -> Vec<String> {
        for (i, f) in fs.iter().enumerate() {
            self.ident(f, &loc.child(i));
        }
        fs.to_vec()
    }

    fn guest_nameservers(&mut self, nics: [&Option<RawNic>; 2], loc: &Location) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (field, nic) in ["network_config", "secondary_network_config"]
            .iter()
            .zip(nics)
        {
            let Some(nic) = nic else { continue };
            for (key, v) in [
                ("nameservers", &nic.nameservers),
                ("nameserver", &nic.nameserver),
            ] {
                let Some(v) = v else { continue };
                for s in v.items() {
                    if let Some(a) = self.ip(&s, &loc.child(field).child(key))
                        && !out.contains(&a)
                    {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn nic(
        &mut self,
        index: u8,
        r: &RawNic,
        loc: &Location,
        kind: GuestKind,
        default_bridge: Option<&str>,
        mac_fallback: Option<(&str, Location)>,
        raw_lxc: &[RawLxcLine],
        guest_firewall: bool,
    ) -> Option<Nic> {
        let name = r.name.clone().unwrap_or_else(|| format!("eth{index}"));
        self.ident(&name, &loc.child("name"));
        let bridge = match (&r.bridge, default_bridge) {
            (Some(b), _) => b.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                self.err(
                    Code::MissingField,
                    loc,
                    "missing field `bridge`",
                    "name the host bridge the NIC is on, e.g. \"bridge\": \"vmbr100\"",
                );
                return None;
            }
        };
        self.ident(&bridge, &loc.child("bridge"));
        let gateway = r.gw.as_deref().and_then(|g| self.ip(g, &loc.child("gw")));
        let addressing = match r.ip.as_deref() {
            None | Some("manual") => Addressing::Manual,
            Some(s) if s.eq_ignore_ascii_case("dhcp") => {
                if gateway.is_some() {
                    self.err(
                        Code::InvalidValue,
                        &loc.child("gw"),
                        "a DHCP NIC takes its gateway from the DHCP server",
                        "remove `gw` or give the NIC a static address",
                    );
                }
                Addressing::Dhcp
            }
            Some(s) => match values::cidr(s) {
                Ok(cidr) => Addressing::Static { cidr, gateway },
                Err(m) => {
                    self.err(
                        Code::InvalidAddress,
                        &loc.child("ip"),
                        m,
                        "write `ip` as CIDR (172.16.100.12/24), `dhcp` or `manual`",
                    );
                    Addressing::Manual
                }
            },
        };
        let mac = match (&r.hwaddr, mac_fallback) {
            (Some(m), _) => self.mac(m, &loc.child("hwaddr")),
            (None, Some((m, mloc))) => self.mac(m, &mloc),
            (None, None) => None,
        };
        let raw_type = raw_lxc
            .iter()
            .find(|l| l.key == format!("lxc.net.{index}.type"))
            .map(|l| l.value.clone());
        let nic_kind = match (r.kind.as_deref(), raw_type.as_deref()) {
            (Some("veth"), _) => NicKind::Veth,
            (Some("macvlan"), _) | (None, Some("macvlan")) => NicKind::Macvlan,
            (None, _) => NicKind::Veth,
            (Some(other), _) => {
                self.err(
                    Code::InvalidValue,
                    &loc.child("kind"),
                    format!("`{}` is not a NIC kind", other.escape_debug()),
                    "use `veth` or `macvlan`",
                );
                NicKind::Veth
            }
        };
        if nic_kind == NicKind::Macvlan && kind == GuestKind::Vm {
            self.err(
                Code::InvalidValue,
                &loc.child("kind"),
                "a VM NIC cannot be a macvlan",
                "VMs use virtio NICs on a bridge; remove `kind`",
            );
        }
        if let Some(t) = r.tag
            && !(1..=4094).contains(&t)
        {
            self.err(
                Code::InvalidValue,
                &loc.child("tag"),
                format!("VLAN tag {t} is outside 1–4094"),
                "use a VLAN id between 1 and 4094",
            );
        }
        Some(Nic {
            index,
            name,
            bridge,
            addressing,
            mac,
            tag: r.tag,
            firewall: r.firewall.unwrap_or(guest_firewall),
            kind: nic_kind,
            mtu: r.mtu,
            loc: loc.clone(),
        })
    }

    fn mac(&mut self, s: &str, loc: &Location) -> Option<MacAddr> {
        match MacAddr::parse(s) {
            Some(m) if m.is_multicast() => {
                self.err(
                    Code::InvalidAddress,
                    loc,
                    format!("{m} is a multicast MAC and cannot be a NIC's address"),
                    "clear the lowest bit of the first byte (locally administered unicast: 02:…)",
                );
                None
            }
            Some(m) => Some(m),
            None => {
                self.err(
                    Code::InvalidAddress,
                    loc,
                    format!("`{}` is not a MAC address", s.escape_debug()),
                    "write six hex bytes separated by colons, e.g. 02:00:00:00:01:01",
                );
                None
            }
        }
    }

    fn traefik_service(&mut self, t: &RawTraefikService, loc: &Location) -> Option<TraefikService> {
        if let Err(m) = values::hostname(&t.name) {
            self.err(
                Code::InvalidName,
                &loc.child("name"),
                m,
                "the service name becomes `<name>.<domain>`",
            );
        }
        let (scheme, explicit) = match t.scheme.as_deref() {
            Some("http") => (Scheme::Http, true),
            Some("https") => (Scheme::Https, true),
            Some(other) => {
                self.err(
                    Code::InvalidValue,
                    &loc.child("scheme"),
                    format!("`{}` is not a scheme", other.escape_debug()),
                    "use `http` or `https`",
                );
                (Scheme::Http, true)
            }
            None => (
                if matches!(t.port, 443 | 8443 | 9443) {
                    Scheme::Https
                } else {
                    Scheme::Http
                },
                false,
            ),
        };
        let entrypoints = t
            .entrypoints
            .clone()
            .unwrap_or_else(|| vec!["websecure".into()]);
        for (i, e) in entrypoints.iter().enumerate() {
            self.ident(e, &loc.child("entrypoints").child(i));
        }
        if t.port == 0 {
            self.err(
                Code::InvalidValue,
                &loc.child("port"),
                "port 0 is not a port",
                "give the port the service listens on",
            );
        }
        Some(TraefikService {
            name: t.name.clone(),
            port: t.port,
            scheme,
            scheme_explicit: explicit,
            entrypoints,
            loc: loc.clone(),
        })
    }

    fn verdict(&mut self, s: Option<&str>, loc: &Location, default: Verdict) -> Verdict {
        match s.map(str::to_ascii_uppercase).as_deref() {
            None => default,
            Some("ACCEPT") => Verdict::Accept,
            Some("DROP") => Verdict::Drop,
            Some("REJECT") => Verdict::Reject,
            Some(other) => {
                self.err(
                    Code::InvalidRule,
                    loc,
                    format!("`{}` is not a firewall action", other.escape_debug()),
                    "use ACCEPT, DROP or REJECT",
                );
                default
            }
        }
    }

    fn guest_firewall(&mut self, f: &RawGuestFirewall, loc: &Location) -> GuestFirewall {
        GuestFirewall {
            enabled: f.enabled.unwrap_or(false),
            policy_in: self.verdict(
                f.policy_in.as_deref(),
                &loc.child("policy_in"),
                Verdict::Drop,
            ),
            policy_out: self.verdict(
                f.policy_out.as_deref(),
                &loc.child("policy_out"),
                Verdict::Accept,
            ),
            rules: self.rules(&f.rules, &loc.child("rules")),
        }
    }

    fn cluster_firewall(&mut self, h: &raw::RawHypervisor, root: &Location) -> ClusterFirewall {
        let f = h.firewall.clone().unwrap_or_default();
        let loc = root.child("firewall");
        ClusterFirewall {
            enabled: f.enabled.unwrap_or(false),
            policy_in: self.verdict(
                f.default_input_policy.as_deref(),
                &loc.child("default_input_policy"),
                Verdict::Drop,
            ),
            policy_out: self.verdict(
                f.default_output_policy.as_deref(),
                &loc.child("default_output_policy"),
                Verdict::Accept,
            ),
            rules: self.rules(
                &f.global_firewall_rules,
                &loc.child("global_firewall_rules"),
            ),
        }
    }

    pub(crate) fn rules(&mut self, rules: &[RawRule], loc: &Location) -> Vec<FirewallRule> {
        rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| self.rule(r, &loc.child(i)))
            .collect()
    }

    fn rule(&mut self, r: &RawRule, loc: &Location) -> Option<FirewallRule> {
        let before = self.diags.len();
        let bad = |b: &mut Self, key: &str, m: String, hint: &str| {
            b.err(Code::InvalidRule, &loc.child(key), m, hint)
        };
        let direction = match r
            .direction
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("in") => Direction::In,
            Some("out") => Direction::Out,
            Some(other) => {
                bad(
                    self,
                    "type",
                    format!("`{}` is not a rule direction", other.escape_debug()),
                    "use `in` or `out`",
                );
                Direction::In
            }
            None => {
                self.err(
                    Code::MissingField,
                    loc,
                    "rule has no `type`",
                    "add \"type\": \"in\" or \"out\"",
                );
                Direction::In
            }
        };
        let action = match &r.action {
            Some(a) => self.verdict(Some(a), &loc.child("action"), Verdict::Accept),
            None => {
                self.err(
                    Code::MissingField,
                    loc,
                    "rule has no `action`",
                    "add \"action\": \"ACCEPT\", \"DROP\" or \"REJECT\"",
                );
                Verdict::Accept
            }
        };
        let proto = r.proto.as_deref().and_then(|p| match values::proto(p) {
            Ok(p) => Some(p),
            Err(m) => {
                bad(
                    self,
                    "proto",
                    m,
                    "use a protocol name such as tcp, udp or icmp",
                );
                None
            }
        });
        let endpoint = |b: &mut Self, key: &str, v: &Option<String>| {
            v.as_deref().and_then(|s| match values::endpoint(s) {
                Ok(e) => Some(e),
                Err(m) => {
                    bad(
                        b,
                        key,
                        m,
                        "use an address, CIDR, range a-b, alias or +ipset",
                    );
                    None
                }
            })
        };
        let source = endpoint(self, "source", &r.source);
        let dest = endpoint(self, "dest", &r.dest);
        let port_list = |b: &mut Self, key: &str, v: &Option<raw::NumberOrString>| match v {
            None => Vec::new(),
            Some(p) => match values::ports(&p.to_string()) {
                Ok(v) => v,
                Err(m) => {
                    bad(b, key, m, "write ports as 80, \"80,443\" or \"8000:8100\"");
                    Vec::new()
                }
            },
        };
        let dport = port_list(self, "port", &r.port);
        let sport = port_list(self, "sport", &r.sport);
        if (!dport.is_empty() || !sport.is_empty())
            && !proto.as_deref().is_some_and(values::proto_has_ports)
        {
            bad(
                self,
                "port",
                "ports need `proto` tcp, udp or sctp".into(),
                "Proxmox rejects a port without a port-carrying protocol; add \"proto\": \"tcp\"",
            );
        }
        if let Some(i) = &r.iface {
            let ok = i
                .strip_prefix("net")
                .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n < 32));
            if !ok {
                bad(
                    self,
                    "iface",
                    format!("`{}` is not a guest NIC name", i.escape_debug()),
                    "use net0, net1, …",
                );
            }
        }
        if let Some(c) = &r.comment
            && let Err(m) = values::one_line(c)
        {
            bad(self, "comment", m, "keep comments on one line");
        }
        if self
            .diags
            .iter()
            .skip(before)
            .any(|d| d.severity == crate::diag::Severity::Error)
        {
            return None;
        }
        Some(FirewallRule {
            direction,
            action,
            proto,
            source,
            dest,
            dport,
            sport,
            iface: r.iface.clone(),
            comment: r.comment.clone(),
            enabled: r.enabled.unwrap_or(true),
            loc: loc.clone(),
        })
    }

    fn roles(
        &mut self,
        h: &raw::RawHypervisor,
        root: &Location,
        guests: &BTreeMap<GuestId, Guest>,
        bridges: &[Bridge],
    ) -> Roles {
        let explicit = h.roles.clone().unwrap_or_default();
        let rloc = root.child("roles");
        let public = bridges.iter().find(|b| b.role == BridgeRole::PublicVlan);
        let mgmt = bridges.first();
        let check = |b: &mut Self, key: &str, id: Option<GuestId>| {
            if let Some(id) = id
                && !guests.contains_key(&id)
            {
                b.err(
                    Code::UnknownGuest,
                    &rloc.child(key),
                    format!("role `{key}` names guest {id}, which is not defined"),
                    "name a VMID from the LXC or VM file",
                );
            }
            id
        };
        let only = |ids: Vec<GuestId>| {
            if ids.len() == 1 {
                ids.first().copied()
            } else {
                None
            }
        };
        let gateway = check(self, "gateway", explicit.gateway).or_else(|| {
            only(
                guests
                    .values()
                    .filter(|g| {
                        g.nics.iter().any(|n| {
                            public.is_some_and(|p| n.bridge == p.name)
                                || (public.is_some_and(|p| p.vlan.as_ref().map(|v| v.1) == n.tag)
                                    && mgmt.is_some_and(|m| m.name == n.bridge))
                        })
                    })
                    .map(|g| g.id)
                    .collect(),
            )
        });
        let internal_proxy = check(self, "internal_proxy", explicit.internal_proxy).or_else(|| {
            only(
                guests
                    .values()
                    .filter(|g| g.has_feature("traefik") && !g.is_template)
                    .map(|g| g.id)
                    .collect(),
            )
        });
        let ca = check(self, "ca", explicit.ca).or_else(|| {
            only(
                guests
                    .values()
                    .filter(|g| g.has_feature("step_ca") && !g.is_template)
                    .map(|g| g.id)
                    .collect(),
            )
        });
        let swarm = |role| {
            guests
                .values()
                .filter(|g| g.swarm.as_ref().is_some_and(|s| s.role == role))
                .map(|g| g.id)
                .collect()
        };
        Roles {
            gateway,
            internal_proxy,
            ca,
            swarm_managers: swarm(SwarmRole::Manager),
            swarm_workers: swarm(SwarmRole::Worker),
        }
    }

    fn dns(&mut self, h: &raw::RawHypervisor, root: &Location, bridges: &[Bridge]) -> DnsServer {
        let d = h.dns_server.clone().unwrap_or_default();
        let loc = root.child("dns_server");
        let mesh_gw = bridges
            .iter()
            .find(|b| b.role == BridgeRole::Mesh)
            .and_then(|b| b.address)
            .map(|a| a.addr());
        let listen = match &d.listen_addresses {
            Some(l) => l
                .iter()
                .enumerate()
                .filter_map(|(i, s)| self.ip(s, &loc.child("listen_addresses").child(i)))
                .collect(),
            None => mesh_gw.into_iter().collect(),
        };
        let upstream = d
            .upstream_servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.ip(s, &loc.child("upstream_servers").child(i)))
            .collect();
        if !d.authoritative_zones.is_empty() {
            self.diags.emit(
                Code::NotSupportedYet,
                &loc.child("authoritative_zones"),
                "`authoritative_zones` is read but not applied yet",
                "phoenix serves the internal domain only",
            );
        }
        DnsServer {
            enabled: d.enabled.unwrap_or(h.dns_server.is_some()),
            listen,
            upstream,
        }
    }

    fn certificate(&mut self, l: &Loaded<raw::RawCertificate>) -> Option<Certificate> {
        let c = &l.value;
        let loc = &l.loc;
        let mut sans = Vec::new();
        let mut ok = true;
        let cn_is_name = values::dns_san(&c.common_name).is_ok();
        if c.common_name.is_empty()
            || c.common_name.chars().any(char::is_control)
            || c.common_name.len() > 64
        {
            self.err(
                Code::InvalidSan,
                &loc.child("common_name"),
                "the common name must be 1–64 printable characters",
                "use the service's DNS name",
            );
            ok = false;
        } else if cn_is_name && c.common_name.contains('.') {
            sans.push(San::Dns(c.common_name.to_ascii_lowercase()));
        }
        for (i, s) in c.sans.iter().enumerate() {
            if let Ok(ip) = s.parse::<IpAddr>() {
                sans.push(San::Ip(ip));
            } else if let Err(m) = values::dns_san(s) {
                self.err(
                    Code::InvalidSan,
                    &loc.child("sans").child(i),
                    m,
                    "SANs are DNS names (one leading `*.` allowed) or IP addresses",
                );
                ok = false;
            } else {
                sans.push(San::Dns(s.to_ascii_lowercase()));
            }
        }
        sans.sort();
        sans.dedup();
        for (k, p) in [("cert_path", &c.cert_path), ("key_path", &c.key_path)] {
            if let Err(m) = values::abs_path(p) {
                self.err(
                    Code::InvalidPath,
                    &loc.child(k),
                    m,
                    "certificate destinations are absolute paths",
                );
                ok = false;
            }
        }
        let (owner, group) = match c.owner.as_deref() {
            None => ("root".to_string(), "root".to_string()),
            Some(o) => {
                let (u, g) = o.split_once(':').unwrap_or((o, o));
                if values::ident(u).is_err() || values::ident(g).is_err() {
                    self.err(
                        Code::InvalidName,
                        &loc.child("owner"),
                        format!("`{}` is not `user:group`", o.escape_debug()),
                        "write the owner as user:group, e.g. root:www-data",
                    );
                    ok = false;
                }
                (u.to_string(), g.to_string())
            }
        };
        let kind = match c.cert_type.as_deref() {
            None | Some("server") => CertKind::Server,
            Some("client") => CertKind::Client,
            Some(other) => {
                self.err(
                    Code::InvalidValue,
                    &loc.child("cert_type"),
                    format!("`{}` is not a certificate type", other.escape_debug()),
                    "use `server` or `client`",
                );
                CertKind::Server
            }
        };
        if let Some(t) = c.guest_type.as_deref()
            && !matches!(t, "lxc" | "vm")
        {
            self.err(
                Code::InvalidValue,
                &loc.child("guest_type"),
                format!("`{}` is not a guest type", t.escape_debug()),
                "use `lxc` or `vm`",
            );
        }
        let guest = match c.guest_id.or_else(|| guest_from_path(&c.cert_path)) {
            Some(g) => g,
            None => {
                self.err(
                    Code::MissingField,
                    loc,
                    "missing field `guest_id`",
                    "name the guest the certificate is delivered to, e.g. \"guest_id\": 101",
                );
                return None;
            }
        };
        let key_mode = match c.permissions.as_deref() {
            None => {
                if group == "root" {
                    0o600
                } else {
                    0o640
                }
            }
            Some(p) => match u32::from_str_radix(p, 8) {
                Ok(m) if p.len() <= 4 && m <= 0o777 => {
                    if m & 0o007 != 0 {
                        self.err(
                            Code::InvalidValue,
                            &loc.child("permissions"),
                            format!("mode {p} lets every user read the private key"),
                            "use 600, or 640 with the consumer's group as owner group",
                        );
                    }
                    m
                }
                _ => {
                    self.err(
                        Code::InvalidValue,
                        &loc.child("permissions"),
                        format!("`{}` is not an octal file mode", p.escape_debug()),
                        "write the mode as octal digits, e.g. \"640\"",
                    );
                    0o600
                }
            },
        };
        let lifetime_hours = c.lifetime_hours.unwrap_or(DEFAULT_CERT_LIFETIME_HOURS);
        if lifetime_hours == 0 {
            self.err(
                Code::InvalidValue,
                &loc.child("lifetime_hours"),
                "a certificate lifetime of 0 hours",
                "use at least 1 hour (default 24)",
            );
        }
        ok.then(|| Certificate {
            common_name: c.common_name.clone(),
            sans,
            guest,
            key_mode,
            cert_path: c.cert_path.clone(),
            key_path: c.key_path.clone(),
            owner,
            group,
            include_ca: c.include_ca.unwrap_or(false),
            kind,
            lifetime_hours,
            post_renewal_command: c.post_renewal_command.clone(),
            loc: loc.clone(),
        })
    }

    fn stack(&mut self, name: &str, s: &Loaded<raw::RawStack>, raw: &RawConfig) -> Stack {
        self.ident(name, &s.loc);
        let mut environments = BTreeMap::new();
        for (env, e) in &s.value.environments {
            let eloc = s.loc.child("environments").child(env);
            self.ident(env, &eloc);
            let mut variables = Vec::new();
            for (i, v) in e.variables.iter().enumerate() {
                let vloc = eloc.child("variables").child(i);
                if values::env_name(&v.name).is_err() {
                    self.err(
                        Code::InvalidName,
                        &vloc.child("name"),
                        format!("`{}` is not a variable name", v.name.escape_debug()),
                        "use letters, digits and `_`",
                    );
                }
                if looks_secret(&v.name) {
                    self.secret(&v.value, &vloc.child("value"), &v.name);
                }
                variables.push((v.name.clone(), v.value.clone()));
            }
            let traefik_labels = e
                .services
                .iter()
                .map(|(svc, s)| (svc.clone(), s.traefik_labels.clone()))
                .collect();
            let firewall_rules = self.rules(&e.firewall_rules, &eloc.child("firewall_rules"));
            environments.insert(
                env.clone(),
                StackEnvironment {
                    variables,
                    traefik_labels,
                    firewall_rules,
                },
            );
        }
        let compose = raw.compose.get(name);
        Stack {
            name: name.to_string(),
            description: s.value.description.clone(),
            public_hostname: s.value.nginx_proxy.as_ref().map(|n| n.hostname.clone()),
            compose: compose.map(|c| c.value.clone()),
            compose_path: compose.map(|c| c.path.clone()),
            environments,
            loc: s.loc.clone(),
        }
    }
}

/// Variable names that hold secrets by convention.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["PASS", "SECRET", "TOKEN", "API_KEY", "PRIVATE"]
        .iter()
        .any(|k| n.contains(k))
}

/// The guest id in a bash persistent-data path (`/mnt/pve/…/lxc-persistent-data/101/ssl/x.crt`).
fn guest_from_path(path: &str) -> Option<GuestId> {
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        if p.ends_with("-persistent-data") {
            return parts.next().and_then(|id| GuestId::parse(id).ok());
        }
    }
    None
}

/// First usable host of a subnet (`.1` of a /24).
pub fn first_host(n: IpNet) -> Option<IpAddr> {
    n.hosts().next()
}
