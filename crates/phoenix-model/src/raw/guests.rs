//! `phoenix_lxc_configs.json` and `phoenix_vm_configs.json`. No I/O.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::common::{GuestId, RawGuestFirewall, RawMountPoint, RawNic, RawTraefikService};

/// The LXC file: `{"lxc_configs": {"<ctid>": {…}}}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawLxcFile {
    /// Editor hint; ignored.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Containers by CTID (object keys are the ids).
    #[serde(default)]
    pub lxc_configs: indexmap_like::Map<RawLxc>,
    /// GPU setup (not applied yet).
    pub nvidia_driver_version: Option<Value>,
    /// GPU setup (not applied yet).
    pub nvidia_repo_url: Option<Value>,
    /// GPU setup (not applied yet).
    pub nvidia_runfile_url: Option<Value>,
}

/// Keys of the LXC file read but not applied yet.
pub const LXC_FILE_NOT_YET: &[&str] = &[
    "nvidia_driver_version",
    "nvidia_repo_url",
    "nvidia_runfile_url",
];

/// Object maps of the files, keyed by id or name.
pub mod indexmap_like {
    pub type Map<T> = std::collections::BTreeMap<String, T>;
}

/// One container.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawLxc {
    /// Hostname (RFC 1123 label).
    pub name: Option<String>,
    /// Memory in MiB.
    pub memory_mb: Option<u64>,
    /// Swap in MiB.
    pub swap_mb: Option<u64>,
    /// CPU cores.
    pub cores: Option<u32>,
    /// Proxmox storage of the root disk.
    pub storage_pool: Option<String>,
    /// Root disk size in GiB.
    pub storage_size_gb: Option<u64>,
    /// Unprivileged container.
    pub unprivileged: Option<bool>,
    /// Start when the node boots (`onboot`).
    pub start_at_boot: Option<bool>,
    /// Start order among the guests started at boot (`startup: order=N`); lower starts first.
    pub boot_order: Option<u32>,
    /// Seconds to wait after starting this guest before the next, and before stopping it
    /// (`startup: up=S,down=S`).
    pub boot_delay: Option<u32>,
    /// OS template (`ostemplate`) for creation from a template.
    pub template: Option<String>,
    /// Clone from this container (an implicit dependency).
    pub clone_from_ctid: Option<GuestId>,
    /// Snapshot of the clone source to clone from.
    pub template_snapshot_name: Option<String>,
    /// Convert to a template after creation.
    pub is_template: Option<bool>,
    /// First NIC (`net0`): bridge, VLAN tag, address (CIDR or `dhcp`), gateway, MAC, nameservers.
    pub network_config: Option<RawNic>,
    /// Second NIC (`net1`), e.g. the gateway's leg on the mesh; same fields as `network_config`.
    pub secondary_network_config: Option<RawNic>,
    /// MAC of net0 when `network_config.hwaddr` is absent.
    pub mac_address: Option<String>,
    /// Raw lines for `/etc/pve/lxc/ID.conf` (`lxc.net.0.type: macvlan`, apparmor, …).
    #[serde(default)]
    pub lxc_options: Vec<String>,
    /// Proxmox `features` entries (`nesting=1`, `keyctl=1`).
    #[serde(default)]
    pub pct_options: Vec<String>,
    /// In-guest provisioning: base_setup, trusted_ca, step_cli, step_ca, traefik, docker, …
    #[serde(default)]
    pub features: Vec<String>,
    /// Guests that must exist (and start) first.
    #[serde(default)]
    pub dependencies: Vec<GuestId>,
    /// Route `<name>.<domain>` through Traefik to this guest.
    pub traefik_service: Option<RawTraefikService>,
    /// Guest firewall.
    pub firewall: Option<RawGuestFirewall>,
    /// Bind mounts.
    #[serde(default)]
    pub mount_points: Vec<RawMountPoint>,
    /// uid/gid maps (not applied yet).
    pub id_maps: Option<Value>,
    /// New: user the guest's TLS consumers run as (`www-data` for Nginx), for key modes.
    pub service_user: Option<String>,
    /// Bash setup script; replaced by declarative provisioning (not run).
    pub application_script: Option<Value>,
    /// Step-CA URL for bootstrapping (derived from the CA role).
    pub bootstrap_ca_url: Option<String>,
    /// Declared health check (never run by bash; `phoenix verify` supersedes it).
    pub health_check: Option<Value>,
    /// Declared tests (never run by bash; `phoenix verify` supersedes them).
    pub tests: Option<Value>,
    /// Image name the bash system exported the container to (not applied yet).
    pub template_file: Option<Value>,
    /// GPU passthrough (not supported yet unless `none`).
    pub gpu_assignment: Option<Value>,
    /// vLLM settings (not supported yet).
    pub vllm_engine_config: Option<Value>,
    /// AppArmor profile (the raw `lxc_options` line is what applies).
    pub apparmor_profile: Option<Value>,
    /// AppArmor nesting flag (the raw `lxc_options` line is what applies).
    pub apparmor_manages_nesting: Option<Value>,
    /// Lifecycle snapshots: `pre-configured` and `final-form`.
    pub enable_lifecycle_snapshots: Option<Value>,
    /// Port publications (not supported yet).
    pub ports: Option<Value>,
    /// Portainer role (`none`, `infrastructure`, …).
    pub portainer_role: Option<String>,
    /// Trigger a sync after creation (not supported yet).
    pub trigger_sync_on_completion: Option<Value>,
    /// ZFS volumes (not supported yet).
    pub zfs_volumes: Option<Value>,
}

/// The VM file: `{"vm_defaults": {…}, "vms": [{…}]}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawVmFile {
    /// Editor hint; ignored.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Defaults for every VM.
    pub vm_defaults: Option<RawVmDefaults>,
    /// The VMs.
    #[serde(default)]
    pub vms: Vec<RawVm>,
}

/// `vm_defaults`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawVmDefaults {
    /// Name of the base image (informational; `template_image` on the template VM is what
    /// is used).
    pub template: Option<String>,
    /// Default cores.
    pub cores: Option<u32>,
    /// Default memory in MiB.
    pub memory_mb: Option<u64>,
    /// Default disk size in GiB.
    pub disk_size_gb: Option<u64>,
    /// Default storage.
    pub storage_pool: Option<String>,
    /// Bridge of net0 when a VM's NIC names none.
    pub network_bridge: Option<String>,
}

/// One VM.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RawVm {
    /// Proxmox VMID (an integer; a string of digits is accepted too).
    pub vmid: GuestId,
    /// Hostname (RFC 1123 label); also the VM's Swarm node name.
    pub name: Option<String>,
    /// Clone from this VM (an implicit dependency).
    pub clone_from_vmid: Option<GuestId>,
    /// Convert to a template after creation.
    pub is_template: Option<bool>,
    /// Cloud image the template is built from.
    pub template_image: Option<String>,
    /// New: where the node downloads `template_image` from (`http(s)://`), through the
    /// storage's `download-url`, when the storage does not hold it yet.
    pub template_image_url: Option<String>,
    /// New: the image's checksum, verified by the node after the download (hex).
    pub template_image_checksum: Option<String>,
    /// New: `md5`, `sha1`, `sha224`, `sha256` (default), `sha384` or `sha512`.
    pub template_image_checksum_algorithm: Option<String>,
    /// Snapshot to clone from.
    pub template_snapshot_name: Option<String>,
    /// CPU cores.
    pub cores: Option<u32>,
    /// Memory in MiB.
    pub memory_mb: Option<u64>,
    /// Disk size in GiB.
    pub disk_size_gb: Option<u64>,
    /// Storage of the disk.
    pub storage_pool: Option<String>,
    /// Start when the node boots.
    pub start_at_boot: Option<bool>,
    /// Start order among the guests started at boot (`startup: order=N`); lower starts first.
    pub boot_order: Option<u32>,
    /// Seconds to wait after starting this guest before the next, and before stopping it
    /// (`startup: up=S,down=S`).
    pub boot_delay: Option<u32>,
    /// net0 + cloud-init `ipconfig0`.
    pub network_config: Option<RawNic>,
    /// New: net1 + `ipconfig1`.
    pub secondary_network_config: Option<RawNic>,
    /// Cloud-init user.
    pub user_config: Option<RawUserConfig>,
    /// In-guest provisioning: base_setup, trusted_ca, step_cli, docker, docker_proxy.
    #[serde(default)]
    pub features: Vec<String>,
    /// Docker Swarm role: `manager` (stacks are deployed there) or `worker`.
    pub swarm_role: Option<String>,
    /// Swarm node labels `key=value`.
    #[serde(default)]
    pub node_labels: Vec<String>,
    /// Portainer role (`primary`, `agent`).
    pub portainer_role: Option<String>,
    /// Portainer environment name.
    pub portainer_environment_name: Option<String>,
    /// Portainer agent host name.
    pub portainer_agent_hostname: Option<String>,
    /// Route through Traefik to this VM.
    pub traefik_service: Option<RawTraefikService>,
    /// Stacks deployed on this node.
    #[serde(default)]
    pub docker_stacks: Vec<String>,
    /// NFS volumes (not applied yet).
    pub volumes: Option<Value>,
    /// Guests that must exist (and start) first.
    #[serde(default)]
    pub dependencies: Vec<GuestId>,
    /// Guest firewall.
    pub firewall: Option<RawGuestFirewall>,
    /// Trigger a sync after creation (not supported yet).
    pub trigger_sync_on_completion: Option<Value>,
}

/// `user_config`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawUserConfig {
    /// Cloud-init user name.
    pub username: Option<String>,
}
