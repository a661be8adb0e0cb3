//! `phoenix_hypervisor_config.json`: the host, its networks, DNS, cluster firewall and the
//! platform-wide settings. No I/O.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::common::{GuestId, RawRule, Secret};
use super::host::{RawNfs, RawSamba, RawUsers, RawZfs};

/// The hypervisor file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawHypervisor {
    /// Editor hint; ignored.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Internal DNS domain (`internal.thinkheads.ai`): dnsmasq `local=/domain/`, service names
    /// `<service>.<domain>`, VM search domain.
    pub domain_name: Option<String>,
    /// Where the other files live. Absolute paths from the bash host are tried relative to
    /// the config directory (by file name) when they do not exist.
    pub core_paths: Option<RawCorePaths>,
    /// Host networking.
    pub network: Option<RawNetwork>,
    /// Mesh DNS (dnsmasq on the host).
    pub dns_server: Option<RawDnsServer>,
    /// Cluster firewall (`/etc/pve/firewall/cluster.fw`).
    pub firewall: Option<RawClusterFirewall>,
    /// Portainer administration: admin user, password and API key (secrets), public name.
    pub portainer_api: Option<RawPortainerApi>,
    /// Internal CA naming (the bash system hard-coded these; phoenix uses them).
    pub step_ca: Option<RawStepCa>,
    /// New: which guest plays which role. Default: derived from the files (see `RawRoles`).
    pub roles: Option<RawRoles>,
    /// New: Traefik settings (entrypoints).
    pub traefik: Option<RawTraefik>,
    /// phoenix: how to reach the Proxmox VE API (flags and `PROXMOX_VE_*` take precedence).
    pub proxmox_api: Option<RawProxmoxApi>,

    /// Host setup (`phoenix setup`): the host's time zone (`America/New_York`), written to
    /// `/etc/timezone`.
    pub timezone: Option<String>,
    /// Host setup (read, not applied yet): the admin user.
    pub users: Option<RawUsers>,
    /// Host setup (`phoenix setup`): NFS exports.
    pub nfs: Option<RawNfs>,
    /// Host setup (`phoenix setup`): the Samba user and shares.
    pub samba: Option<RawSamba>,
    /// Host setup (read and checked, not applied yet): ZFS pools and datasets.
    pub zfs: Option<RawZfs>,
    /// Host setup (not applied yet): Proxmox storage ids.
    pub proxmox_storage_ids: Option<Value>,
    /// Host setup (not applied yet): mount base.
    pub mount_point_base: Option<Value>,
    /// Host setup (not applied yet): NVIDIA driver.
    pub nvidia_driver: Option<Value>,
    /// Host setup (not applied yet): Docker images for Portainer.
    pub docker: Option<Value>,
    /// VM defaults when the VMs are in this file (older layout); host setup otherwise.
    pub vm_defaults: Option<Value>,
    /// Layout up to late September 2025: the VMs (same form as in the VM file), read when
    /// there is no `phoenix_vm_configs.json`.
    pub vms: Option<Value>,
    /// Unused by the bash system.
    pub version: Option<Value>,
    /// Unused by the bash system.
    pub author: Option<Value>,
    /// Unused by the bash system.
    pub behavior: Option<Value>,
    /// Shared host directories and, in the bash system from 2025-10-10 until `firewall` moved
    /// back to the top level, the cluster firewall (`shared_volumes.firewall`).
    pub shared_volumes: Option<RawSharedVolumes>,
    /// Unused by the bash system.
    pub tests: Option<Value>,
    /// Unused by the bash system.
    pub proxmox_defaults: Option<Value>,
}

/// Top-level hypervisor keys phoenix reads but does not apply yet (host setup).
pub const HYPERVISOR_NOT_YET: &[&str] = &[
    "proxmox_storage_ids",
    "mount_point_base",
    "nvidia_driver",
    "docker",
    "vm_defaults",
];
/// Top-level hypervisor keys nothing ever read.
pub const HYPERVISOR_UNUSED: &[&str] =
    &["version", "author", "behavior", "tests", "proxmox_defaults"];

/// `core_paths`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawCorePaths {
    /// Path of `phoenix_lxc_configs.json`.
    pub lxc_config_file: Option<String>,
    /// Path of `phoenix_vm_configs.json`.
    pub vm_config_file: Option<String>,
    /// New: path of `phoenix_stacks_config.json`.
    pub stacks_config_file: Option<String>,
    /// New: path of `certificate-manifest.json`.
    pub certificate_manifest_file: Option<String>,
    /// Bash only: schema file (ignored).
    pub lxc_config_schema_file: Option<String>,
    /// Bash only (ignored).
    pub hf_token_file: Option<String>,
    /// Bash only (ignored).
    pub docker_token_file: Option<String>,
    /// Bash only (ignored).
    pub docker_images_path: Option<String>,
    /// Bash only (ignored).
    pub hypervisor_marker_dir: Option<String>,
    /// Bash only (ignored).
    pub hypervisor_marker: Option<String>,
}

/// `network`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawNetwork {
    /// The host's management bridge (`vmbr0`): its address, gateway and resolvers.
    pub interfaces: Option<RawHostInterface>,
    /// New: physical uplink enslaved to the management bridge. Default `enp6s0` (what the
    /// bash system hard-coded).
    pub uplink: Option<String>,
    /// New: MTU of the uplink and bridges. Default 1500.
    pub mtu: Option<u16>,
    /// Bridge that carries the public VLAN (VLAN-aware `vmbr0`).
    pub public_bridge: Option<String>,
    /// Public VLAN id; gives the bridge `<public_bridge>.<tag>` (`vmbr0.20`).
    pub public_vlan_tag: Option<u16>,
    /// New: subnet of the public VLAN if known (DHCP from the upstream router otherwise).
    pub public_subnet: Option<String>,
    /// Legacy macvlan VLAN (10); read, no bridge is made for it.
    pub macvlan_vlan_tag: Option<u16>,
    /// The isolated mesh bridge with NAT out of the host.
    pub internal_bridge: Option<RawInternalBridge>,
    /// Portainer server address (derived from the Swarm manager when absent).
    pub portainer_server_ip: Option<String>,
    /// Portainer HTTPS port.
    pub portainer_server_port: Option<u16>,
    /// Portainer agent port.
    pub portainer_agent_port: Option<u16>,
    /// NFS server address.
    pub nfs_server: Option<String>,
    /// Unused by the bash system.
    pub default_subnet: Option<Value>,
    /// Unused by the bash system.
    pub fallback_dns: Option<Value>,
    /// Unused by the bash system.
    pub external_registry_url: Option<Value>,
}

/// Keys of `network` read by the bash system that phoenix does not act on yet.
pub const NETWORK_NOT_YET: &[&str] = &[
    "portainer_server_ip",
    "portainer_server_port",
    "portainer_agent_port",
    "nfs_server",
];

/// Keys of `network` nothing ever read.
pub const NETWORK_UNUSED: &[&str] = &["default_subnet", "fallback_dns", "external_registry_url"];

/// `network.interfaces`: the management bridge.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawHostInterface {
    /// Bridge name (`vmbr0`).
    pub name: Option<String>,
    /// Host address in CIDR form (`10.0.0.13/24`).
    pub address: Option<String>,
    /// Upstream gateway (`10.0.0.1`).
    pub gateway: Option<String>,
    /// Resolvers the host itself uses, in order. An address inside a platform subnet that no
    /// guest or host has is reported as stale.
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
}

/// `network.internal_bridge`: the mesh.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawInternalBridge {
    /// Bridge name (`vmbr100`).
    pub name: Option<String>,
    /// Mesh subnet (`172.16.100.0/24`), host bits zero.
    pub subnet: Option<String>,
    /// New: host address on the mesh, the guests' gateway. Default: the first host (`.1`).
    pub gateway: Option<String>,
    /// New: masquerade the mesh out of the host. Default `true`.
    pub nat: Option<bool>,
    /// New: interface the NAT leaves through. Default: the management bridge.
    pub nat_uplink: Option<String>,
}

/// `dns_server`: dnsmasq on the host, answering on the mesh.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawDnsServer {
    /// Run the mesh DNS.
    pub enabled: Option<bool>,
    /// Upstream resolvers for names outside the domain.
    #[serde(default)]
    pub upstream_servers: Vec<String>,
    /// Extra zones (not supported yet when non-empty).
    #[serde(default)]
    pub authoritative_zones: Vec<Value>,
    /// New: addresses dnsmasq listens on. Default: the mesh gateway.
    pub listen_addresses: Option<Vec<String>>,
}

/// `firewall`: the cluster-wide firewall.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawClusterFirewall {
    /// Cluster switch (`[OPTIONS] enable` in `cluster.fw`).
    pub enabled: Option<bool>,
    /// `policy_in`: `DROP`, `ACCEPT` or `REJECT`.
    pub default_input_policy: Option<String>,
    /// `policy_out`.
    pub default_output_policy: Option<String>,
    /// Rules of `cluster.fw`, in order.
    #[serde(default)]
    pub global_firewall_rules: Vec<RawRule>,
}

/// `shared_volumes`: host directories bind-mounted into guests by VMID, and the legacy home of
/// the cluster firewall.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawSharedVolumes {
    /// Legacy location of the cluster firewall (same fields as the top-level `firewall`). When
    /// both are given, the top-level `firewall`'s rules apply and the switch and default
    /// policies are the stricter of the two.
    pub firewall: Option<RawClusterFirewall>,
    /// Shared volumes by name: `{host_path, mounts: {"<vmid>": "<path in guest>"}}` (read,
    /// not applied yet: declare them as the guests' `mount_points`).
    #[serde(flatten)]
    pub volumes: BTreeMap<String, Value>,
}

/// `proxmox_api` (phoenix): the node `phoenix sync all --target pve` talks to. Every value is
/// a default: a flag or a `PROXMOX_VE_*` variable with the same meaning wins.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawProxmoxApi {
    /// `https://host:8006` (`PROXMOX_VE_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Node name (`PROXMOX_VE_NODE`).
    pub node: Option<String>,
    /// API token `user@realm!tokenid=secret` (a secret; `PROXMOX_VE_API_TOKEN`).
    pub api_token: Option<Secret>,
    /// `user@realm` for a ticket login (`PROXMOX_VE_USERNAME`).
    pub username: Option<String>,
    /// Password for the ticket login (a secret; `PROXMOX_VE_PASSWORD`).
    pub password: Option<Secret>,
    /// PEM file of the CA that signed the node's certificate (`PROXMOX_VE_CA_FILE`).
    pub ca_file: Option<String>,
    /// SHA-256 fingerprint of the node's certificate, `AA:BB:…` (`PROXMOX_VE_FINGERPRINT`).
    pub fingerprint: Option<String>,
}

/// `portainer_api`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawPortainerApi {
    /// Admin user name.
    pub admin_user: Option<String>,
    /// Admin password (a secret).
    pub admin_password: Option<Secret>,
    /// Host name Portainer is served under (`portainer.<domain>`).
    pub portainer_hostname: Option<String>,
    /// API key (a secret), or null.
    pub api_key: Option<Secret>,
}

/// `step_ca`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawStepCa {
    /// Root certificate common name.
    pub root_ca_name: Option<String>,
    /// Intermediate certificate common name.
    pub intermediate_ca_name: Option<String>,
    /// CA's DNS name on the mesh.
    pub dns_name: Option<String>,
    /// JWK provisioner name.
    pub provisioner_name: Option<String>,
    /// New: CA port. Default 9000.
    pub port: Option<u16>,
    /// New: CA directory on the hypervisor (never mounted into a guest).
    pub ca_dir: Option<String>,
    /// New: passphrase for the CA keys (a secret).
    pub password: Option<Secret>,
}

/// `roles` (new). Each defaults to what the files imply.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawRoles {
    /// Public Nginx gateway. Default: the guest with a NIC on the public VLAN bridge.
    pub gateway: Option<GuestId>,
    /// Internal Traefik proxy. Default: the guest with feature `traefik`.
    pub internal_proxy: Option<GuestId>,
    /// Internal CA. Default: the guest with feature `step_ca`.
    pub ca: Option<GuestId>,
}

/// `traefik` (new).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawTraefik {
    /// Entrypoints by name → port. Default `web: 80`, `websecure: 443`, `mesh: 8443`,
    /// `traefik: 8080`, what the bash system hard-coded.
    pub entrypoints: Option<BTreeMap<String, u16>>,
}
