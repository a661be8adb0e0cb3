//! A synthetic but realistic configuration of N guests, in the Phoenix format.
//!
//! Shape, chosen to exercise every stage of validation at scale: two out of three guests are
//! LXC containers, one in three a VM cloned from a template VM; every guest has a static
//! address on the management bridge (10.0.0.0/16), every fourth a second NIC on the mesh
//! bridge (172.16.0.0/16); each guest carries firewall rules naming other guests' real
//! addresses, most depend on an earlier guest (so the dependency graph has no cycle), and
//! every tenth has a certificate whose SANs cover its name and addresses. Pure: returns the
//! files as values; the caller writes them.

use serde_json::{Value, json};

pub const DOMAIN: &str = "bench.example";

/// Guest `i`'s VMID.
fn vmid(i: usize) -> usize {
    1000 + i
}

fn is_vm(i: usize) -> bool {
    i % 3 == 2
}

fn has_mesh_nic(i: usize) -> bool {
    i.is_multiple_of(4)
}

/// Host part within a /16: skip .0 and .1 of each /24 and the host's own .13 on 10.0.0.x.
fn host_octets(i: usize) -> (usize, usize) {
    (1 + i / 250, 2 + i % 250)
}

fn mgmt_ip(i: usize) -> String {
    let (a, b) = host_octets(i);
    format!("10.0.{a}.{b}")
}

fn mesh_ip(i: usize) -> String {
    let (a, b) = host_octets(i);
    format!("172.16.{a}.{b}")
}

fn mac(i: usize, nic: usize) -> String {
    format!(
        "52:54:{:02X}:{:02X}:{:02X}:{:02X}",
        nic,
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn hostname(i: usize) -> String {
    let role = ["web", "db", "cache", "worker", "api", "queue"][i % 6];
    format!("{role}-{i:05}")
}

/// How dense a synthetic configuration is.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Firewall rules per guest (at least 3: HTTPS from a neighbour, SSH from the host, DNS
    /// out; more add one port from another guest each).
    pub rules_per_guest: usize,
    /// Every how many guests one gets a certificate (1 = every guest).
    pub cert_every: usize,
    /// Every how many guests one with a mesh NIC is routed through Traefik (0 = none).
    pub route_every: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            rules_per_guest: 3,
            cert_every: 10,
            route_every: 0,
        }
    }
}

/// One guest's firewall: allow HTTPS from a neighbour, SSH from the host, DNS out, and
/// `extra` more ports each from another guest.
fn rules(i: usize, n: usize, extra: usize) -> Value {
    let peer = (i + 1) % n;
    let mut list = vec![
        json!({"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "443",
               "source": mgmt_ip(peer), "comment": format!("HTTPS from {}", hostname(peer))}),
        json!({"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "22",
               "source": "10.0.0.13", "comment": "SSH from the hypervisor"}),
        json!({"type": "out", "action": "ACCEPT", "proto": "udp", "port": "53",
               "dest": "10.0.0.13", "comment": "DNS to the hypervisor"}),
    ];
    for k in 0..extra {
        let other = (i + 2 + k) % n;
        list.push(json!({"type": "in", "action": "ACCEPT", "proto": "tcp", "port": (8000 + k).to_string(),
                         "source": mgmt_ip(other), "comment": format!("app port {} from {}", 8000 + k, hostname(other))}));
    }
    json!({ "enabled": true, "rules": list })
}

fn dependencies(i: usize) -> Vec<String> {
    if i == 0 || i.is_multiple_of(5) {
        Vec::new()
    } else {
        vec![vmid(i - 1 - (i % 3).min(i - 1)).to_string()]
    }
}

fn nics(i: usize) -> (Value, Option<Value>) {
    let primary = json!({
        "name": "eth0", "bridge": "vmbr0", "ip": format!("{}/16", mgmt_ip(i)),
        "gw": "10.0.0.1", "hwaddr": mac(i, 0)
    });
    let secondary = has_mesh_nic(i).then(|| {
        json!({
            "name": "eth1", "bridge": "vmbr100", "ip": format!("{}/16", mesh_ip(i)),
            "hwaddr": mac(i, 1)
        })
    });
    (primary, secondary)
}

fn lxc(i: usize, n: usize, extra: usize) -> Value {
    let (net0, net1) = nics(i);
    let mut g = json!({
        "name": hostname(i),
        "memory_mb": 512 * (1 + i % 4),
        "swap_mb": 512,
        "cores": 1 + i % 4,
        "storage_pool": "local-lvm",
        "storage_size_gb": 8 + i % 24,
        "unprivileged": true,
        "start_at_boot": true,
        "boot_order": 10 + i % 50,
        "template": "ubuntu-24.04-standard",
        "network_config": net0,
        "features": ["base_setup"],
        "dependencies": dependencies(i),
        "firewall": rules(i, n, extra),
        "mount_points": [
            {"host_path": format!("/srv/data/{}", vmid(i)), "container_path": "/data"}
        ]
    });
    if let (Some(obj), Some(net1)) = (g.as_object_mut(), net1) {
        obj.insert("secondary_network_config".into(), net1);
    }
    g
}

fn vm(i: usize, n: usize, extra: usize) -> Value {
    let (net0, net1) = nics(i);
    let mut g = json!({
        "vmid": vmid(i),
        "name": hostname(i),
        "clone_from_vmid": 9000,
        "cores": 2 + i % 3,
        "memory_mb": 2048 * (1 + i % 2),
        "disk_size_gb": 32,
        "start_at_boot": true,
        "boot_order": 60 + i % 30,
        "network_config": net0,
        "features": ["base_setup"],
        "dependencies": dependencies(i),
        "firewall": rules(i, n, extra),
        "user_config": {"username": "phoenix"}
    });
    if let (Some(obj), Some(net1)) = (g.as_object_mut(), net1) {
        obj.insert("secondary_network_config".into(), net1);
    }
    g
}

fn certificate(i: usize) -> Value {
    let name = format!("{}.{DOMAIN}", hostname(i));
    let mut sans = vec![name.clone(), mgmt_ip(i)];
    if has_mesh_nic(i) {
        sans.push(mesh_ip(i));
    }
    let kind = if is_vm(i) { "vm" } else { "lxc" };
    json!({
        "common_name": name,
        "sans": sans,
        "guest_id": vmid(i),
        "guest_type": kind,
        "cert_path": format!("/srv/data/{}/tls/{}.crt", vmid(i), hostname(i)),
        "key_path": format!("/srv/data/{}/tls/{}.key", vmid(i), hostname(i)),
        "owner": "root:root"
    })
}

fn hypervisor(n: usize) -> Value {
    json!({
        "domain_name": DOMAIN,
        "network": {
            "interfaces": {
                "name": "vmbr0", "address": "10.0.0.13/16", "gateway": "10.0.0.1",
                "dns_nameservers": ["10.0.0.13"]
            },
            "internal_bridge": {
                "name": "vmbr100", "subnet": "172.16.0.0/16", "gateway": "172.16.0.1",
                "nat": true, "nat_uplink": "vmbr0"
            }
        },
        "firewall": {
            "enabled": true,
            "default_input_policy": "DROP",
            "default_output_policy": "ACCEPT",
            "global_firewall_rules": [
                {"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "8006",
                 "source": "10.0.0.0/16", "comment": "Proxmox web UI from the LAN"},
                {"type": "in", "action": "ACCEPT", "proto": "udp", "port": "53",
                 "source": "172.16.0.0/16", "dest": "172.16.0.1", "comment": "mesh DNS"},
                {"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "22",
                 "source": mgmt_ip(0), "comment": format!("SSH from {}", hostname(0))},
                {"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "443",
                 "source": mgmt_ip(n.saturating_sub(1)), "comment": "monitoring"}
            ]
        }
    })
}

/// The five files of an `n`-guest configuration, by file name.
#[cfg(test)]
pub fn config(n: usize) -> Vec<(&'static str, Value)> {
    config_with(n, Shape::default())
}

/// The five files of an `n`-guest configuration of the given density.
pub fn config_with(n: usize, shape: Shape) -> Vec<(&'static str, Value)> {
    let extra = shape.rules_per_guest.saturating_sub(3);
    let mut lxcs = serde_json::Map::new();
    let mut vms = vec![json!({
        "vmid": 9000,
        "name": "ubuntu-2404-cloud-template",
        "is_template": true,
        "template_image": "noble-server-cloudimg-amd64.img",
        "cores": 2,
        "memory_mb": 2048,
        "disk_size_gb": 16
    })];
    for i in 0..n {
        let mut g = if is_vm(i) {
            vm(i, n, extra)
        } else {
            lxc(i, n, extra)
        };
        let routed = shape.route_every > 0 && i % shape.route_every == 0;
        if routed && let Some(obj) = g.as_object_mut() {
            obj.insert(
                "traefik_service".into(),
                json!({"name": hostname(i), "port": 8080, "scheme": "http"}),
            );
        }
        if is_vm(i) {
            vms.push(g);
        } else {
            lxcs.insert(vmid(i).to_string(), g);
        }
    }
    let every = shape.cert_every.max(1);
    let certs: Vec<Value> = (0..n).filter(|i| i % every == 0).map(certificate).collect();
    vec![
        ("phoenix_hypervisor_config.json", hypervisor(n)),
        ("phoenix_lxc_configs.json", json!({"lxc_configs": lxcs})),
        (
            "phoenix_vm_configs.json",
            json!({
                "vm_defaults": {"cores": 2, "memory_mb": 2048, "disk_size_gb": 32,
                                "storage_pool": "local-lvm", "network_bridge": "vmbr0"},
                "vms": vms
            }),
        ),
        ("phoenix_stacks_config.json", json!({"docker_stacks": {}})),
        ("certificate-manifest.json", Value::Array(certs)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn addresses_and_macs_are_unique() {
        let n = 3000;
        let mut seen = HashSet::new();
        for i in 0..n {
            assert!(seen.insert(mgmt_ip(i)));
            assert!(seen.insert(mesh_ip(i)));
            assert!(seen.insert(mac(i, 0)));
            assert!(seen.insert(mac(i, 1)));
            assert_ne!(mgmt_ip(i), "10.0.0.13");
        }
    }

    #[test]
    fn dependencies_point_backwards() {
        for i in 0..500 {
            for d in dependencies(i) {
                let d: usize = d.parse().unwrap_or(usize::MAX);
                assert!(d < vmid(i), "{i} depends on {d}");
            }
        }
    }

    #[test]
    fn generated_config_validates_without_errors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        crate::write(dir.path(), &config(60)).unwrap_or_else(|e| panic!("write: {e}"));
        let v = phoenix_model::validate_dir(dir.path());
        let errors: Vec<_> = v
            .findings()
            .into_iter()
            .filter(|f| f.severity == phoenix_model::Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(v.desired.map(|d| d.guests.len()), Some(61));
    }
}
