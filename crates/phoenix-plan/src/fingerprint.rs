//! What each action of a plan depends on in the observed state, as named fingerprints
//! (`guest 101`, `file host:/etc/network/interfaces`, `firewall host`…): a saved plan keeps
//! them, and applying it later refuses when one of them moved. Pure.

use std::collections::BTreeMap;

use phoenix_model::model::GuestId;
use phoenix_render::FileTarget;
use serde::Serialize;

use crate::Action;
use crate::firewall_api::{FirewallScope, FirewallState};
use crate::observed::{ObservedState, sha256_hex};
use crate::plan_types::Plan;

/// Said for an object the observation does not hold.
pub const ABSENT: &str = "absent";

/// The observed objects a plan's actions depend on, each with the fingerprint it had.
pub type Fingerprints = BTreeMap<String, String>;

fn file_key(target: &FileTarget, path: &str) -> String {
    match target {
        FileTarget::Host => format!("file host:{path}"),
        FileTarget::Guest(id) => format!("file {id}:{path}"),
    }
}

fn guest_key(id: GuestId) -> String {
    format!("guest {id}")
}

fn firewall_key(scope: &FirewallScope) -> String {
    format!("firewall {scope}")
}

/// The observed objects `action` depends on, by key.
pub fn depends_on(action: &Action) -> Vec<String> {
    match action {
        Action::WriteFile { target, path, .. } => vec![file_key(target, path)],
        Action::IssueCertificate { guest, .. } => {
            vec![guest_key(*guest), format!("certificates of guest {guest}")]
        }
        Action::Provision { guest, .. } => {
            vec![guest_key(*guest), format!("provision of guest {guest}")]
        }
        Action::UpdateTrustStore { target, .. } | Action::ReloadService { target, .. } => {
            match target {
                FileTarget::Guest(id) => vec![guest_key(*id)],
                FileTarget::Host => Vec::new(),
            }
        }
        Action::Firewall { scope, .. } => vec![firewall_key(scope)],
        other => other.guest().map(guest_key).into_iter().collect(),
    }
}

fn digest(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    sha256_hex(&text)
}

/// The fingerprint of the object `key` in an observation (`absent` when it holds none).
pub fn fingerprint(key: &str, state: &ObservedState, firewall: Option<&FirewallState>) -> String {
    let some_or_absent = |v: Option<String>| v.unwrap_or_else(|| ABSENT.to_string());
    if let Some(id) = key.strip_prefix("guest ") {
        return some_or_absent(
            state
                .guests
                .iter()
                .find(|g| g.id.to_string() == id)
                .map(digest),
        );
    }
    if let Some(rest) = key.strip_prefix("file ") {
        return some_or_absent(
            state
                .files
                .iter()
                .find(|f| file_key(&f.target, &f.path) == format!("file {rest}"))
                .map(digest),
        );
    }
    if let Some(id) = key.strip_prefix("certificates of guest ") {
        let certs: Vec<_> = state
            .certificates
            .iter()
            .filter(|c| c.guest.to_string() == id)
            .collect();
        return digest(&certs);
    }
    if let Some(id) = key.strip_prefix("provision of guest ") {
        let done: Vec<_> = state
            .provisioned
            .iter()
            .filter(|p| p.guest.to_string() == id)
            .collect();
        return digest(&done);
    }
    if key == "swarm" {
        return some_or_absent(state.swarm.as_ref().map(digest));
    }
    if let Some(scope) = key.strip_prefix("firewall ") {
        let Some(fw) = firewall else {
            return ABSENT.to_string();
        };
        return match scope {
            "cluster" => digest(&(&fw.cluster, &fw.aliases, &fw.ipsets)),
            "host" => digest(&fw.host),
            s => match s.strip_prefix("group ") {
                Some(name) => some_or_absent(
                    fw.groups
                        .iter()
                        .find(|g| g.name == name)
                        .map(|g| digest(&g)),
                ),
                None => some_or_absent(
                    fw.guests
                        .iter()
                        .find(|g| s.ends_with(&format!(" {}", g.id)))
                        .map(digest),
                ),
            },
        };
    }
    ABSENT.to_string()
}

/// Every object `plan` depends on with its fingerprint in the observation it was planned
/// against.
pub fn of_plan(
    plan: &Plan,
    state: &ObservedState,
    firewall: Option<&FirewallState>,
) -> Fingerprints {
    let mut keys: Vec<String> = plan.actions().flat_map(depends_on).collect();
    if !plan.swarm.is_empty() {
        keys.push("swarm".to_string());
    }
    keys.into_iter()
        .map(|k| {
            let f = fingerprint(&k, state, firewall);
            (k, f)
        })
        .collect()
}

/// The keys of `saved` whose fingerprint differs in the observation now.
pub fn moved(
    saved: &Fingerprints,
    state: &ObservedState,
    firewall: Option<&FirewallState>,
) -> Vec<String> {
    saved
        .iter()
        .filter(|(k, f)| fingerprint(k, state, firewall) != **f)
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{GuestStatus, ObservedGuest};
    use phoenix_model::model::GuestKind;

    fn guest(id: u32, net0: &str) -> ObservedGuest {
        ObservedGuest {
            id: GuestId(id),
            kind: GuestKind::Lxc,
            status: GuestStatus::Running,
            config: [("net0".to_string(), net0.to_string())].into(),
            raw_lxc: Vec::new(),
            template: false,
            snapshots: Vec::new(),
        }
    }

    #[test]
    fn a_changed_guest_moves_and_an_unrelated_one_does_not() {
        let mut state = ObservedState {
            guests: vec![guest(101, "ip=1"), guest(102, "ip=2")],
            ..ObservedState::default()
        };
        let saved: Fingerprints = [("guest 101", &state), ("guest 103", &state)]
            .into_iter()
            .map(|(k, s)| (k.to_string(), fingerprint(k, s, None)))
            .collect();
        assert_eq!(saved["guest 103"], ABSENT);
        state.guests[1] = guest(102, "ip=9");
        assert!(moved(&saved, &state, None).is_empty());
        state.guests[0] = guest(101, "ip=9");
        state.guests.push(guest(103, "ip=3"));
        assert_eq!(moved(&saved, &state, None), ["guest 101", "guest 103"]);
    }
}
