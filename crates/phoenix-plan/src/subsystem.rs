//! `--only`: the subsystems a run can be limited to, and which one each action and file
//! belongs to (pure). `host-network` = interfaces, NAT, sysctl; `dns` = the mesh dnsmasq;
//! `guests` = the guests through the API (create, config, raw `lxc.*` lines, start/stop);
//! `provision` = files and steps inside guests that are not ingress or PKI; `firewall` =
//! the Proxmox firewall (through the API on a node, the `.fw` files offline); `pki` = certificates and trust stores; `ingress` = Traefik and Nginx
//! files and reloads; `swarm` = Docker Swarm (the plan's Swarm wave, when it was observed);
//! `host-setup` = the hypervisor's own setup (`phoenix setup`: ZFS, storage, users, shares),
//! planned by phoenix-host rather than in this plan, so no action or file belongs to it here.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use phoenix_render::FileTarget;
use serde::Serialize;

use crate::action::{Action, Effect};
use crate::plan_types::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subsystem {
    HostNetwork,
    Dns,
    Guests,
    Provision,
    Firewall,
    Pki,
    Ingress,
    Swarm,
    HostSetup,
}

impl Subsystem {
    pub const ALL: [Subsystem; 9] = [
        Subsystem::HostNetwork,
        Subsystem::Dns,
        Subsystem::Guests,
        Subsystem::Provision,
        Subsystem::Firewall,
        Subsystem::Pki,
        Subsystem::Ingress,
        Subsystem::Swarm,
        Subsystem::HostSetup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Subsystem::HostNetwork => "host-network",
            Subsystem::Dns => "dns",
            Subsystem::Guests => "guests",
            Subsystem::Provision => "provision",
            Subsystem::Firewall => "firewall",
            Subsystem::Pki => "pki",
            Subsystem::Ingress => "ingress",
            Subsystem::Swarm => "swarm",
            Subsystem::HostSetup => "host-setup",
        }
    }
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Subsystem {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Subsystem::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Subsystem::ALL.iter().map(|x| x.name()).collect();
                format!("unknown subsystem `{s}` (one of: {})", names.join(", "))
            })
    }
}

/// The subsystem of a managed file.
pub fn of_file(target: &FileTarget, path: &str) -> Subsystem {
    let under = |p: &str| path.starts_with(p);
    match target {
        FileTarget::Host => {
            if under("/etc/pve/firewall/") || (under("/etc/pve/nodes/") && path.ends_with(".fw")) {
                Subsystem::Firewall
            } else if under("/etc/dnsmasq") {
                Subsystem::Dns
            } else if under("/usr/local/share/ca-certificates/") {
                Subsystem::Pki
            } else if path.contains("/snippets/phoenix-") {
                // A VM's cloud-init vendor data: part of creating the guest.
                Subsystem::Guests
            } else {
                Subsystem::HostNetwork
            }
        }
        FileTarget::Guest(_) => {
            if under("/etc/traefik/") || under("/etc/nginx/") {
                Subsystem::Ingress
            } else if under("/usr/local/share/ca-certificates/") {
                Subsystem::Pki
            } else {
                Subsystem::Provision
            }
        }
    }
}

/// The subsystem of an action.
pub fn of_action(a: &Action) -> Subsystem {
    match a {
        Action::WriteFile { target, path, .. } => of_file(target, path),
        Action::CreateGuest { .. }
        | Action::UpdateGuest { .. }
        | Action::ResizeDisk { .. }
        | Action::WriteRawLxc { .. }
        | Action::ConvertToTemplate { .. }
        | Action::TakeSnapshot { .. }
        | Action::StartGuest { .. }
        | Action::StopGuest { .. }
        | Action::DeleteGuest { .. } => Subsystem::Guests,
        Action::IssueCertificate { .. } | Action::UpdateTrustStore { .. } => Subsystem::Pki,
        Action::ReloadService { .. } => Subsystem::Ingress,
        Action::Provision { .. } => Subsystem::Provision,
        Action::Firewall { .. } => Subsystem::Firewall,
    }
}

/// Keep only what belongs to `only` (files, actions, the summary recounted); a note records
/// the restriction.
pub fn restrict(plan: &mut Plan, only: &BTreeSet<Subsystem>) {
    for w in &mut plan.waves {
        w.actions.retain(|a| only.contains(&of_action(a)));
    }
    plan.waves.retain(|w| !w.actions.is_empty());
    plan.files
        .retain(|f| only.contains(&of_file(&f.file.target, &f.file.path)));
    if !only.contains(&Subsystem::Pki) {
        plan.certificates.clear();
    }
    if !only.contains(&Subsystem::Swarm) {
        plan.swarm.clear();
    }
    let mut summary = crate::plan_types::Summary::default();
    for a in plan
        .actions()
        .map(|a| a.effect())
        .chain(plan.swarm.iter().map(|a| a.effect()))
    {
        match a {
            Effect::Create => summary.create += 1,
            Effect::Change => summary.change += 1,
            Effect::Delete => summary.delete += 1,
            Effect::Check => summary.check += 1,
        }
    }
    plan.summary = summary;
    let names: Vec<&str> = only.iter().map(|s| s.name()).collect();
    plan.notes
        .push(format!("limited to --only {}", names.join(",")));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_located() {
        for s in Subsystem::ALL {
            assert_eq!(s.name().parse::<Subsystem>(), Ok(s));
        }
        let e = "network".parse::<Subsystem>().unwrap_err();
        assert!(e.contains("unknown subsystem `network`") && e.contains("host-network"));
    }

    #[test]
    fn files_map_to_their_subsystem() {
        let h = FileTarget::Host;
        let g = FileTarget::Guest(phoenix_model::model::GuestId(102));
        assert_eq!(
            of_file(&h, "/etc/network/interfaces"),
            Subsystem::HostNetwork
        );
        assert_eq!(of_file(&h, "/etc/phoenix/nat.nft"), Subsystem::HostNetwork);
        assert_eq!(of_file(&h, "/etc/dnsmasq.d/phoenix.conf"), Subsystem::Dns);
        assert_eq!(of_file(&h, "/etc/pve/firewall/101.fw"), Subsystem::Firewall);
        assert_eq!(
            of_file(&h, "/etc/pve/nodes/pve/host.fw"),
            Subsystem::Firewall
        );
        assert_eq!(of_file(&g, "/etc/traefik/traefik.yml"), Subsystem::Ingress);
        assert_eq!(
            of_file(&g, "/etc/step-ca/config/ca.json"),
            Subsystem::Provision
        );
    }
}
