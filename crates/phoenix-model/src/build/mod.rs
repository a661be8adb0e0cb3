//! Raw files → [`DesiredState`]: parse every small value, fill every default the bash system
//! hard-coded, derive roles. Problems with single values are reported here; problems between
//! values (duplicates, subnets, references) are `crate::checks`. No I/O, except one `stat`
//! per stack `files[]` source to warn when it is missing (nothing is read).

use crate::diag::Quote;
use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::diag::{Code, Diagnostics};
use crate::load::{Loaded, RawConfig};
use crate::model::*;
use crate::raw::{self, RawGuestFirewall, RawNic, RawRule, RawTraefikService};
use crate::source::Location;
use crate::values;

mod firewall;
mod guests;
mod host;
mod image;
mod network;
mod pki;
mod zfs;

/// Defaults the bash system hard-coded.
pub const DEFAULT_UPLINK: &str = "enp6s0";
pub const DEFAULT_MANAGEMENT_BRIDGE: &str = "vmbr0";
pub const DEFAULT_MESH_BRIDGE: &str = "vmbr100";
pub const DEFAULT_MTU: u16 = 1500;
/// The domain the bash system fell back to where it used one and none was given.
pub const DEFAULT_DOMAIN: &str = "phoenix.local";
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
                    Code::LegacyForm,
                    root,
                    format!("no `domain_name`; phoenix uses `{DEFAULT_DOMAIN}`, the bash system's fallback"),
                    format!("add the internal DNS domain: \"domain_name\": \"{DEFAULT_DOMAIN}\" (or your own)"),
                );
                DEFAULT_DOMAIN.to_string()
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
            let g = self.lxc(*id, l);
            guests.insert(*id, g);
        }
        let vm_bridge = raw
            .vm_defaults
            .as_ref()
            .and_then(|d| d.network_bridge.clone())
            .unwrap_or(mgmt_name.clone());
        let mut vm_ids_seen = Vec::new();
        for l in &raw.vms {
            let g = self.vm(l, raw.vm_defaults.as_ref(), &vm_bridge);
            vm_ids_seen.push(g.id);
            // Duplicates across files are reported by checks::identity; the first one wins.
            guests.entry(g.id).or_insert(g);
        }

        let mut bridges = bridges;
        self.legacy_vlan_nics(&net, &mut guests, &mut bridges);
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
        let proxmox_api = h.proxmox_api.as_ref().map(|p| {
            let loc = root.child("proxmox_api");
            if let Some(s) = &p.api_token {
                self.secret(s, &loc.child("api_token"), "proxmox_api.api_token");
            }
            if let Some(s) = &p.password {
                self.secret(s, &loc.child("password"), "proxmox_api.password");
            }
            if let Some(path) = &p.ca_file
                && let Err(m) = values::abs_path(path)
            {
                self.err(
                    Code::InvalidValue,
                    &loc.child("ca_file"),
                    m,
                    "give the absolute path of the CA's PEM file",
                );
            }
            ProxmoxApi {
                endpoint: p.endpoint.clone(),
                node: p.node.clone(),
                api_token: p.api_token.clone(),
                username: p.username.clone(),
                password: p.password.clone(),
                ca_file: p.ca_file.clone(),
                fingerprint: p.fingerprint.clone(),
                loc,
            }
        });
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
        let host_setup = self.host_setup(h, root);
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
            proxmox_api,
            certificates,
            stacks,
            host_setup,
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
                        format!("`{}` is not a variable name", v.name.quoted()),
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
            let files = self.stack_files(&e.files, &eloc.child("files"), &raw.dir);
            environments.insert(
                env.clone(),
                StackEnvironment {
                    variables,
                    traefik_labels,
                    firewall_rules,
                    files,
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

impl Builder<'_> {
    /// `environments.<env>.files[]` → [`StackFile`]s (see there for what they become). A
    /// relative `source` is resolved against `dir`, the configuration directory; the
    /// destination must be an absolute plain path, and unique within the environment. A
    /// source that is not a file is a warning (the deploy of that environment fails until
    /// it exists; other environments are unaffected): the one filesystem look-up of this
    /// module, a `stat`, nothing read.
    fn stack_files(
        &mut self,
        files: &[raw::RawStackFile],
        loc: &Location,
        dir: &std::path::Path,
    ) -> Vec<StackFile> {
        let mut out: Vec<StackFile> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let floc = loc.child(i);
            let dest = f.destination_in_container.as_str();
            if let Err(m) = values::plain_path(dest) {
                self.err(
                    Code::InvalidPath,
                    &floc.child("destination_in_container"),
                    m,
                    "give the absolute path of the file in the container, e.g. `/app/.env`",
                );
            } else if dest.ends_with('/') {
                self.err(
                    Code::InvalidPath,
                    &floc.child("destination_in_container"),
                    format!("`{}` names a directory, not a file", dest.quoted()),
                    "give the absolute path of the file in the container, e.g. `/app/.env`",
                );
            } else if out.iter().any(|o| o.destination == dest) {
                self.err(
                    Code::InvalidValue,
                    &floc.child("destination_in_container"),
                    format!("`{}` is the destination of an earlier file", dest.quoted()),
                    "each file of an environment needs its own destination",
                );
            }
            let path = dir.join(&f.source);
            if f.source.is_empty() || f.source.chars().any(char::is_control) {
                self.err(
                    Code::InvalidPath,
                    &floc.child("source"),
                    format!("`{}` is not a file path", f.source.quoted()),
                    "give the host file's path, relative to the configuration directory or absolute",
                );
            } else if !path.is_file() {
                self.err(
                    Code::MissingOptionalFile,
                    &floc.child("source"),
                    format!(
                        "`{}` is not a file (looked for {})",
                        f.source.quoted(),
                        path.display()
                    ),
                    "create it, or fix `source` (a relative path is relative to the configuration directory); deploying this environment fails without it",
                );
            }
            out.push(StackFile {
                source: f.source.clone(),
                path,
                destination: dest.to_string(),
                loc: floc,
            });
        }
        out
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use crate::diag::Anchor;
    use crate::source::FileId;

    fn files(entries: &[(&str, &str)]) -> (Vec<StackFile>, Vec<(Code, String)>) {
        let raw: Vec<raw::RawStackFile> = entries
            .iter()
            .map(|(s, d)| raw::RawStackFile {
                source: s.to_string(),
                destination_in_container: d.to_string(),
            })
            .collect();
        let mut diags = Diagnostics::default();
        let mut b = Builder { diags: &mut diags };
        let loc = Location::new(FileId(0), "/docker_stacks/s/environments/e/files");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = b.stack_files(&raw, &loc, dir);
        let found = diags
            .iter()
            .map(|d| {
                let Anchor::Pointer { location, .. } = &d.anchor else {
                    panic!("{d:?}")
                };
                (d.code, location.pointer.clone())
            })
            .collect();
        (out, found)
    }

    #[test]
    fn stack_files_resolve_and_validate() {
        let abs = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let (out, found) = files(&[("Cargo.toml", "/app/.env"), (abs, "/etc/app.toml")]);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(
            out[0].path,
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")
        );
        assert_eq!(out[0].source, "Cargo.toml");
        assert_eq!(out[0].destination, "/app/.env");
        assert_eq!(out[1].path, std::path::Path::new(abs));
        assert_eq!(
            out[1].loc.pointer,
            "/docker_stacks/s/environments/e/files/1"
        );

        let p = |i: usize, k: &str| format!("/docker_stacks/s/environments/e/files/{i}/{k}");
        let (_, found) = files(&[
            ("Cargo.toml", "app/.env"),
            ("no/such.env", "/app/.env"),
            ("Cargo.toml", "/app/.env"),
            ("Cargo.toml", "/etc/"),
            ("", "/x/../y"),
        ]);
        assert_eq!(
            found,
            [
                (Code::InvalidPath, p(0, "destination_in_container")),
                (Code::MissingOptionalFile, p(1, "source")),
                (Code::InvalidValue, p(2, "destination_in_container")),
                (Code::InvalidPath, p(3, "destination_in_container")),
                (Code::InvalidPath, p(4, "destination_in_container")),
                (Code::InvalidPath, p(4, "source")),
            ]
        );
    }
}
