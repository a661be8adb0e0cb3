//! Host bridges and guest NICs: addresses, gateways, MACs, VLAN tags, NIC kinds (veth or
//! macvlan from raw `lxc.net.N.*` lines), nameservers. No I/O.

use super::*;

/// What a guest's NICs inherit from the guest.
pub(super) struct NicContext<'a> {
    pub kind: GuestKind,
    /// Bridge of a NIC that names none (VMs: `vm_defaults.network_bridge`).
    pub default_bridge: Option<&'a str>,
    /// net0's MAC when `hwaddr` is absent (`mac_address` of an LXC entry) and where it was.
    pub mac_fallback: Option<(&'a str, Location)>,
    /// Raw `lxc.*` lines (macvlan detection).
    pub raw_lxc: &'a [RawLxcLine],
    /// The guest firewall switch, the default of each NIC's `firewall=`.
    pub firewall: bool,
}

impl Builder<'_> {
    pub(super) fn bridges(
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

    pub(super) fn guest_nameservers(
        &mut self,
        nics: [&Option<RawNic>; 2],
        loc: &Location,
    ) -> Vec<IpAddr> {
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

    /// net0 (`network_config`) and net1 (`secondary_network_config`) of a guest.
    pub(super) fn nics(
        &mut self,
        pair: [&Option<RawNic>; 2],
        loc: &Location,
        ctx: &NicContext<'_>,
    ) -> Vec<Nic> {
        let fields = ["network_config", "secondary_network_config"];
        let mut out = Vec::new();
        for (index, (field, nic)) in fields.into_iter().zip(pair).enumerate() {
            let Some(nic) = nic else { continue };
            let mac_fallback = if index == 0 {
                ctx.mac_fallback.clone()
            } else {
                None
            };
            if let Some(n) = self.nic(index as u8, nic, &loc.child(field), ctx, mac_fallback) {
                out.push(n);
            }
        }
        out
    }

    /// A NIC on `<management>.<macvlan_vlan_tag>`: the bash system created that VLAN
    /// sub-interface from the tag. It becomes a tagged NIC on the VLAN-aware management bridge.
    pub(super) fn legacy_vlan_nics(
        &mut self,
        net: &raw::RawNetwork,
        guests: &mut BTreeMap<GuestId, Guest>,
        bridges: &mut [Bridge],
    ) {
        let Some(tag) = net.macvlan_vlan_tag.filter(|t| (1..=4094).contains(t)) else {
            return;
        };
        let Some(mgmt) = bridges.first().map(|b| b.name.clone()) else {
            return;
        };
        let legacy = format!("{mgmt}.{tag}");
        if bridges.iter().any(|b| b.name == legacy) {
            return;
        }
        let mut used = false;
        for g in guests.values_mut() {
            for n in g.nics.iter_mut().filter(|n| n.bridge == legacy) {
                self.err(
                    Code::LegacyForm,
                    &n.loc.child("bridge"),
                    format!("`{legacy}` is the VLAN {tag} sub-interface the bash system made from `macvlan_vlan_tag`; phoenix puts the NIC on `{mgmt}` with tag {tag}"),
                    format!("write \"bridge\": \"{mgmt}\", \"tag\": {tag}"),
                );
                n.bridge = mgmt.clone();
                n.tag = Some(tag);
                used = true;
            }
        }
        if used && let Some(b) = bridges.first_mut() {
            b.vlan_aware = true;
        }
    }

    fn nic(
        &mut self,
        index: u8,
        r: &RawNic,
        loc: &Location,
        ctx: &NicContext<'_>,
        mac_fallback: Option<(&str, Location)>,
    ) -> Option<Nic> {
        let (kind, default_bridge, raw_lxc, guest_firewall) =
            (ctx.kind, ctx.default_bridge, ctx.raw_lxc, ctx.firewall);
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
                        Code::LegacyForm,
                        &loc.child("gw"),
                        "a DHCP NIC takes its gateway from the DHCP server; phoenix ignores `gw` here, as the bash system did",
                        "remove `gw`, or give the NIC a static address in `ip`",
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
                    format!("`{}` is not a NIC kind", other.quoted()),
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

    pub(super) fn mac(&mut self, s: &str, loc: &Location) -> Option<MacAddr> {
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
                    format!("`{}` is not a MAC address", s.quoted()),
                    "write six hex bytes separated by colons, e.g. 02:00:00:00:01:01",
                );
                None
            }
        }
    }
}
