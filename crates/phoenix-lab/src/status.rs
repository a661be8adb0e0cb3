//! `lab status` (what exists now, per namespace, compared with the recorded topology, plus the
//! services and DHCP leases) and
//! `lab exec` (a command inside a guest's namespace, argv only).
//! I/O: reads `/run/netns`, `/run/phoenix-lab`, runs `ip`.

use std::process::{Command, ExitStatus};

use serde::Serialize;
use serde_json::Value;

use crate::run::run;
use crate::services::{LeaseStatus, ServiceStatus};
use crate::teardown::{NETNS_ETC, entries_with_prefix, namespaces};
use crate::topology::{LabTopology, NsRole, guest_ns, hv_ns, validate_prefix, wan_ns};
use crate::{LabError, state_dir};

#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub prefix: String,
    /// `state.json` exists (absent after a crash or for a lab made by another tool).
    pub state_recorded: bool,
    pub namespaces: Vec<NsStatus>,
    /// `/etc/netns/<prefix>-*` directories.
    pub etc_dirs: Vec<String>,
    /// The recorded services, with whether their pid is alive in their namespace.
    pub services: Vec<ServiceStatus>,
    /// The recorded DHCP leases, with whether the NIC still holds the address.
    pub leases: Vec<LeaseStatus>,
}

impl LabStatus {
    /// Nothing of the lab exists.
    pub fn is_empty(&self) -> bool {
        !self.state_recorded
            && self.etc_dirs.is_empty()
            && self.namespaces.iter().all(|n| !n.present)
    }

    /// Every recorded namespace is present with every recorded link up.
    pub fn is_complete(&self) -> bool {
        self.state_recorded
            && self
                .namespaces
                .iter()
                .all(|n| n.present && n.missing_links.is_empty() && n.down_links.is_empty())
            && self.services.iter().all(|s| s.alive)
            && self.leases.iter().all(|l| l.held)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NsStatus {
    pub name: String,
    pub role: Option<NsRole>,
    pub present: bool,
    pub links: Vec<LinkStatus>,
    /// Links the recorded topology has that the namespace lacks.
    pub missing_links: Vec<String>,
    /// Links of the recorded topology that exist but are not up (links others made in the
    /// namespace, such as Docker's, are listed in `links` but never judged).
    pub down_links: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    pub name: String,
    pub up: bool,
    pub operstate: String,
    pub master: Option<String>,
    pub mac: Option<String>,
    pub addresses: Vec<String>,
}

/// The recorded topology of a lab, if any.
pub fn load_state(prefix: &str) -> Option<LabTopology> {
    let text = std::fs::read_to_string(state_dir(prefix).join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Links of a namespace (`ip -n NS -j addr show`); loopback left out.
pub fn links(ns: &str) -> Result<Vec<LinkStatus>, LabError> {
    let args = ["-n", ns, "-j", "addr", "show"];
    let out = run("ip", &args)?;
    let v: Vec<Value> = serde_json::from_str(&out).map_err(|source| LabError::Parse {
        argv: format!("ip {}", args.join(" ")),
        source,
    })?;
    Ok(parse_links(&v))
}

/// The links of `ip -j addr show`'s document; loopback left out. Pure.
pub(crate) fn parse_links(v: &[Value]) -> Vec<LinkStatus> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    v.iter()
        .filter(|l| s(l, "ifname").as_deref() != Some("lo"))
        .map(|l| LinkStatus {
            name: s(l, "ifname").unwrap_or_default(),
            up: l
                .get("flags")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("UP"))),
            operstate: s(l, "operstate").unwrap_or_default(),
            master: s(l, "master"),
            mac: s(l, "address"),
            addresses: l
                .get("addr_info")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter(|i| s(i, "family").as_deref() == Some("inet"))
                        .filter_map(|i| Some(format!("{}/{}", s(i, "local")?, i.get("prefixlen")?)))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// What exists of the lab `prefix` now.
pub fn status(prefix: &str) -> Result<LabStatus, LabError> {
    validate_prefix(prefix)?;
    let state = load_state(prefix);
    let present = namespaces(prefix);
    let mut names: Vec<(String, Option<NsRole>)> = state
        .iter()
        .flat_map(|t| {
            t.namespaces
                .iter()
                .map(|n| (n.name.clone(), Some(n.role.clone())))
        })
        .collect();
    for p in &present {
        if !names.iter().any(|(n, _)| n == p) {
            names.push((p.clone(), None));
        }
    }
    let mut out = Vec::new();
    for (name, role) in names {
        // A run killed inside `ip netns add` can leave `/run/netns/<ns>` as a plain file that
        // is no namespace: it counts as not present (a rebuild removes it).
        let (is_present, links) = if present.contains(&name) {
            match links(&name) {
                Ok(l) => (true, l),
                Err(_) => (false, Vec::new()),
            }
        } else {
            (false, Vec::new())
        };
        let missing_links = state
            .as_ref()
            .map(|t| {
                t.links_in(&name)
                    .into_iter()
                    .filter(|l| !links.iter().any(|x| x.name == *l))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let down_links = state
            .as_ref()
            .map(|t| {
                t.links_in(&name)
                    .into_iter()
                    .filter(|l| links.iter().any(|x| x.name == *l && !x.up))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        out.push(NsStatus {
            name,
            role,
            present: is_present,
            links,
            missing_links,
            down_links,
        });
    }
    let (services, leases) = crate::services::status(prefix, |ns, nic| {
        out.iter()
            .filter(|n| n.name == ns)
            .flat_map(|n| &n.links)
            .filter(|l| l.name == nic)
            .flat_map(|l| l.addresses.clone())
            .collect()
    });
    Ok(LabStatus {
        prefix: prefix.to_string(),
        state_recorded: state.is_some(),
        namespaces: out,
        etc_dirs: entries_with_prefix(NETNS_ETC, prefix),
        services,
        leases,
    })
}

/// The namespace of `guest` (id, name, `hv` or `wan`) in the lab `prefix`.
pub fn resolve_namespace(prefix: &str, guest: &str) -> Result<String, LabError> {
    validate_prefix(prefix)?;
    let unknown = || LabError::UnknownGuest {
        prefix: prefix.to_string(),
        guest: guest.to_string(),
    };
    let candidate = match load_state(prefix) {
        Some(t) => t.namespace_of(guest).map(|n| n.name.clone()),
        None => match guest {
            "hv" => Some(hv_ns(prefix)),
            "wan" => Some(wan_ns(prefix)),
            _ => phoenix_model::raw::GuestId::parse(guest)
                .ok()
                .map(|id| guest_ns(prefix, id)),
        },
    };
    candidate
        .filter(|ns| namespaces(prefix).contains(ns))
        .ok_or_else(unknown)
}

/// Run `argv` inside the guest's namespace (`ip netns exec NS …`), stdio inherited.
pub fn exec(prefix: &str, guest: &str, argv: &[String]) -> Result<ExitStatus, LabError> {
    let ns = resolve_namespace(prefix, guest)?;
    Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(argv)
        .status()
        .map_err(|source| LabError::Spawn {
            program: "ip".into(),
            source,
        })
}

/// Where `phoenix verify --target lab` probes in the running lab `t` (recorded for `prefix`):
/// each guest's namespace, the hypervisor and the wan, the DHCP clients, the wan's endpoints
/// and the lab CA's root.
pub fn verify_places(prefix: &str, t: &LabTopology) -> phoenix_verify::lab::LabPlaces {
    use crate::topology::{INTERNET_HTTP, WAN_PUBLIC};
    let guests = t
        .namespaces
        .iter()
        .filter_map(|n| match n.role {
            NsRole::Guest { id, .. } => Some((id, n.name.clone())),
            _ => None,
        })
        .collect();
    let root = state_dir(prefix).join("ca").join("root.crt");
    phoenix_verify::lab::LabPlaces {
        guests,
        hv: t.hv.clone(),
        wan: t.wan.clone(),
        dhcp: t
            .dhcp_clients
            .iter()
            .map(|c| (c.guest, c.nic.clone()))
            .collect(),
        public_range: WAN_PUBLIC.into(),
        egress: std::net::SocketAddr::new(INTERNET_HTTP, 80),
        outside_name: crate::services::OUTSIDE_NAME.to_string(),
        root_pem: std::fs::read_to_string(&root)
            .map_err(|e| format!("no lab CA root at {}: {e}", root.display())),
    }
}
