//! Routes against what serves them: a route's backend port against the ports its guest's
//! stacks publish and their labels (W039), and the names routes serve against the gateway's
//! and the internal proxy's certificates (W040). No I/O.

use crate::diag::Quote;
use std::collections::BTreeSet;

use serde_json::Value;

use super::ingress::{label_entrypoints, label_port};
use crate::diag::{Code, Diagnostics};
use crate::load::RawConfig;
use crate::model::{CertKind, Certificate, DesiredState, Guest, GuestId, TraefikService};
use crate::ports::published_ports;

/// Names listed in one finding before "and N more".
const LISTED: usize = 8;

pub fn check(d: &DesiredState, raw: &RawConfig, diags: &mut Diagnostics) {
    for g in d.guests.values() {
        if let Some(ts) = &g.traefik_service {
            backend_port(d, g, ts, diags);
        }
    }
    let names = route_names(d);
    let roles = [
        (d.roles.gateway, "the gateway", Need::Public),
        (d.roles.internal_proxy, "the internal proxy", Need::Tls),
    ];
    for (id, role, need) in roles {
        if let Some(g) = id.and_then(|id| d.guest(id)) {
            uncovered_names(d, raw, g, role, need, &names, diags);
        }
    }
}

/// A port a stack on the guest publishes.
struct Offer<'a> {
    stack: &'a str,
    service: &'a str,
    published: u16,
    target: u16,
}

fn offers<'a>(d: &'a DesiredState, g: &'a Guest) -> Vec<Offer<'a>> {
    let mut out = Vec::new();
    for s in g.docker_stacks.iter().filter_map(|n| d.stacks.get(n)) {
        let Some(compose) = &s.compose else { continue };
        let Some(services) = compose.get("services").and_then(Value::as_object) else {
            continue;
        };
        for svc in services.keys() {
            out.extend(published_ports(compose, svc).into_iter().map(|p| Offer {
                stack: &s.name,
                service: svc,
                published: p.published,
                target: p.target,
            }));
        }
    }
    out
}

/// The container port the labels of `service` in `stack` send Traefik to, in any environment.
fn labelled_port(d: &DesiredState, stack: &str, service: &str) -> Option<u16> {
    d.stacks.get(stack)?.environments.values().find_map(|e| {
        e.traefik_labels
            .get(service)
            .and_then(|l| label_port(l))
            .map(|(_, p)| p)
    })
}

/// Does a router in the labels of `service` in `stack` match `host`?
fn routes_host(d: &DesiredState, stack: &str, service: &str, host: &str) -> bool {
    d.stacks.get(stack).is_some_and(|s| {
        s.environments
            .values()
            .filter_map(|e| e.traefik_labels.get(service))
            .flatten()
            .filter_map(|l| label_rule(l))
            .any(|(_, rule)| rule_hosts(rule).iter().any(|h| h == host))
    })
}

/// W039. Only for a guest whose stacks publish something: a guest without stacks (or whose
/// stacks publish nothing) may serve the port from anything else.
fn backend_port(d: &DesiredState, g: &Guest, ts: &TraefikService, diags: &mut Diagnostics) {
    let offers = offers(d, g);
    if offers.is_empty() {
        return;
    }
    let at = ts.loc.child("port");
    let Some(hit) = offers.iter().find(|o| o.published == ts.port) else {
        let listed: Vec<String> = offers
            .iter()
            .take(LISTED)
            .map(|o| {
                format!(
                    "{} → {}:{} in {}",
                    o.published,
                    o.service.quoted(),
                    o.target,
                    o.stack
                )
            })
            .collect();
        // The service whose labels route the same name, where the stack publishes the
        // labelled port, is the one meant; else the only port published, if there is one.
        let host = format!("{}.{}", ts.name, d.domain).to_ascii_lowercase();
        let meant: BTreeSet<u16> = offers
            .iter()
            .filter(|o| labelled_port(d, o.stack, o.service) == Some(o.target))
            .filter(|o| routes_host(d, o.stack, o.service, &host))
            .map(|o| o.published)
            .collect();
        let only: BTreeSet<u16> = offers.iter().map(|o| o.published).collect();
        let one = |s: &BTreeSet<u16>| (s.len() == 1).then(|| s.first().copied()).flatten();
        let hint = match (one(&meant), one(&only)) {
            (Some(p), _) => format!(
                "set \"port\": {p} (where the stack publishes the service whose labels route {host}), or publish {} in the compose file",
                ts.port
            ),
            (None, Some(p)) => format!(
                "set \"port\": {p} if the route is for the stack (the only port it publishes), or publish {} in the compose file",
                ts.port
            ),
            _ => format!(
                "set `port` to the port the stack publishes for the service, or publish {} in the compose file",
                ts.port
            ),
        };
        diags.emit(
            Code::RoutePortMismatch,
            &at,
            format!(
                "route `{}` of guest {} sends Traefik to port {}, which no stack on the guest publishes (they publish {}): unless something outside the stacks listens there, the route answers 502",
                ts.name.quoted(),
                g.id,
                ts.port,
                listed.join(", ")
            ),
            hint,
        );
        return;
    };
    let Some(label) = labelled_port(d, hit.stack, hit.service) else {
        return;
    };
    if label == hit.target {
        return;
    }
    let hint = match offers
        .iter()
        .find(|o| o.stack == hit.stack && o.service == hit.service && o.target == label)
    {
        Some(o) => format!(
            "set \"port\": {} (where the stack publishes container port {label}), or change the label to {}",
            o.published, hit.target
        ),
        None => format!(
            "change the label to {}, or publish container port {label} and route to it",
            hit.target
        ),
    };
    diags.emit(
        Code::RoutePortMismatch,
        &at,
        format!(
            "route `{}` of guest {} reaches container port {} of {} in {} (published as {}), but the stack's label `loadbalancer.server.port` names container port {label}",
            ts.name.quoted(),
            g.id,
            hit.target,
            hit.service.quoted(),
            hit.stack,
            ts.port
        ),
        hint,
    );
}

/// Which route names a role terminates TLS for.
#[derive(Clone, Copy)]
enum Need {
    /// The gateway: names proxied from the public side.
    Public,
    /// The internal proxy: every name it serves on an entrypoint with TLS.
    Tls,
}

/// A name some route serves.
struct RouteName {
    host: String,
    /// Served on an entrypoint with TLS (every one but `web`).
    tls: bool,
    /// Proxied by the gateway (same selection as the gateway renderer).
    public: bool,
    /// The guest whose own `traefik_service` it is (W013 covers its own certificates).
    guest: Option<GuestId>,
}

fn route_names(d: &DesiredState) -> Vec<RouteName> {
    let tls = |eps: &[&str]| eps.is_empty() || eps.iter().any(|e| *e != "web");
    let websecure = |eps: &[&str]| eps.is_empty() || eps.contains(&"websecure");
    let mut out = Vec::new();
    for g in d.guests.values() {
        let Some(ts) = &g.traefik_service else {
            continue;
        };
        let eps: Vec<&str> = ts.entrypoints.iter().map(String::as_str).collect();
        out.push(RouteName {
            host: format!("{}.{}", ts.name, d.domain).to_ascii_lowercase(),
            tls: tls(&eps),
            public: websecure(&eps) && Some(g.id) != d.roles.gateway && Some(g.id) != d.roles.ca,
            guest: Some(g.id),
        });
    }
    for s in d.stacks.values() {
        let public = s.public_hostname.as_deref().map(str::to_ascii_lowercase);
        for e in s.environments.values() {
            for labels in e.traefik_labels.values() {
                if !labels.iter().any(|l| enables(l)) {
                    continue;
                }
                for (router, rule) in labels.iter().filter_map(|l| label_rule(l)) {
                    let eps = labels
                        .iter()
                        .filter_map(|l| label_entrypoints(l))
                        .find(|(r, _)| *r == router)
                        .map(|(_, eps)| eps)
                        .unwrap_or_default();
                    for host in rule_hosts(rule) {
                        out.push(RouteName {
                            public: websecure(&eps) && public.as_deref() == Some(host.as_str()),
                            tls: tls(&eps),
                            host,
                            guest: None,
                        });
                    }
                }
            }
        }
    }
    out
}

fn enables(label: &str) -> bool {
    label
        .split_once('=')
        .is_some_and(|(k, v)| k.trim() == "traefik.enable" && v.trim() == "true")
}

/// `traefik.http.routers.<router>.rule=<rule>` → (router, rule).
fn label_rule(label: &str) -> Option<(&str, &str)> {
    let (key, value) = label.split_once('=')?;
    let router = key
        .trim()
        .strip_prefix("traefik.http.routers.")?
        .strip_suffix(".rule")?;
    Some((router, value.trim()))
}

/// The names of every `Host(…)` matcher of a rule (`Host(`a`) || Host(`b`, `c`)`), lower case.
pub(crate) fn rule_hosts(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = rule;
    while let Some(i) = rest.find("Host(") {
        // `HostRegexp(` and `HostSNI(` do not match `Host(`; a name ending in `Host(` would.
        let preceded = rest[..i].chars().next_back();
        rest = &rest[i + "Host(".len()..];
        let Some(end) = rest.find(')') else { break };
        if preceded.is_some_and(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        for name in rest[..end].split(',') {
            let name = name.trim().trim_matches(['`', '"', '\'']).trim();
            if !name.is_empty() {
                out.push(name.to_ascii_lowercase());
            }
        }
        rest = &rest[end..];
    }
    out
}

/// W040: one finding per role guest that has server certificates, naming what they miss.
fn uncovered_names(
    d: &DesiredState,
    raw: &RawConfig,
    g: &Guest,
    role: &str,
    need: Need,
    names: &[RouteName],
    diags: &mut Diagnostics,
) {
    let certs: Vec<&Certificate> = d
        .certificates
        .iter()
        .filter(|c| c.guest == g.id && c.kind == CertKind::Server)
        .collect();
    let Some(anchor) = certs.first() else {
        return;
    };
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| n.guest != Some(g.id))
        .filter(|n| match need {
            Need::Public => n.public,
            Need::Tls => n.tls,
        })
        .map(|n| n.host.as_str())
        .filter(|h| {
            !certs
                .iter()
                .any(|c| c.sans.iter().any(|s| s.covers_name(h)))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if missing.is_empty() {
        return;
    }
    let with_sans = raw
        .certificates
        .iter()
        .any(|c| c.loc.pointer == anchor.loc.pointer && !c.value.sans.is_empty());
    let at = if with_sans {
        anchor.loc.child("sans")
    } else {
        anchor.loc.clone()
    };
    let mut listed = missing
        .iter()
        .take(LISTED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() > LISTED {
        listed.push_str(&format!(" and {} more", missing.len() - LISTED));
    }
    let count = match missing.len() {
        1 => "a route name".to_string(),
        n => format!("{n} route names"),
    };
    diags.emit(
        Code::RouteNameUncovered,
        &at,
        format!(
            "{role} (guest {}) terminates TLS for {count} that no certificate of it covers: {listed}; clients are shown a certificate for another name",
            g.id
        ),
        format!(
            "add {} to the SANs of `{}`",
            what_to_add(&missing, &d.domain),
            anchor.common_name.quoted()
        ),
    );
}

/// "it", "them", with the wildcard when it covers every name (one label under the domain).
fn what_to_add(missing: &[&str], domain: &str) -> String {
    let suffix = format!(".{}", domain.to_ascii_lowercase());
    let one_label = |h: &&str| {
        h.strip_suffix(suffix.as_str())
            .is_some_and(|first| !first.is_empty() && !first.contains('.'))
    };
    let pronoun = if missing.len() == 1 { "it" } else { "them" };
    if missing.iter().all(one_label) {
        format!("{pronoun} (or `*.{domain}`)")
    } else if missing.iter().any(one_label) {
        format!("{pronoun} (`*.{domain}` covers only the names one label below it)")
    } else {
        if missing.len() == 1 {
            format!("{pronoun} (a wildcard `*.{domain}` covers one label only, not this name)")
        } else {
            format!("{pronoun} (a wildcard `*.{domain}` covers one label only, not these names)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_offered_only_where_they_cover() {
        let d = "internal.x";
        assert_eq!(what_to_add(&["a.internal.x"], d), "it (or `*.internal.x`)");
        assert_eq!(
            what_to_add(&["a.b.internal.x"], d),
            "it (a wildcard `*.internal.x` covers one label only, not this name)"
        );
        assert_eq!(
            what_to_add(&["a.internal.x", "a.b.internal.x"], d),
            "them (`*.internal.x` covers only the names one label below it)"
        );
    }

    #[test]
    fn hosts_of_rules() {
        assert_eq!(rule_hosts("Host(`A.example`)"), ["a.example"]);
        assert_eq!(
            rule_hosts("Host(`a`) || (Host(\"b\", `c`) && PathPrefix(`/x`))"),
            ["a", "b", "c"]
        );
        assert!(rule_hosts("HostRegexp(`{x:.+}`)").is_empty());
        assert!(rule_hosts("HostSNI(`a`)").is_empty());
        assert!(rule_hosts("Host(`a`").is_empty());
    }

    #[test]
    fn router_rules_of_labels() {
        assert_eq!(
            label_rule("traefik.http.routers.p.rule=Host(`p.x`)"),
            Some(("p", "Host(`p.x`)"))
        );
        assert_eq!(label_rule("traefik.tcp.routers.p.rule=HostSNI(`*`)"), None);
        assert!(enables("traefik.enable=true"));
        assert!(!enables("traefik.enable=false"));
    }
}
