//! Containers and VMs: names, sizes, sources (template or clone), features, routes through
//! Traefik. No I/O.

use super::network::NicContext;
use super::*;

impl Builder<'_> {
    pub(super) fn lxc(&mut self, id: GuestId, l: &Loaded<raw::RawLxc>) -> Guest {
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
                    format!("`{}` is not a Proxmox feature `key=value`", f.quoted()),
                    "write features such as `nesting=1` or `keyctl=1`",
                );
            }
        }
        let fw = r.firewall.clone().unwrap_or_default();
        let fw_enabled = fw.enabled.unwrap_or(false);
        let ctx = NicContext {
            kind: GuestKind::Lxc,
            default_bridge: None,
            mac_fallback: r
                .mac_address
                .as_deref()
                .map(|m| (m, loc.child("mac_address"))),
            raw_lxc: &raw_lxc,
            firewall: fw_enabled,
        };
        let nics = self.nics([&r.network_config, &r.secondary_network_config], loc, &ctx);
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
                if let Err(m) = values::plain_path(p) {
                    self.err(
                        Code::InvalidPath,
                        &mloc.child(k),
                        m,
                        "mount points are absolute paths of plain names; phoenix passes them to Proxmox as they are",
                    );
                }
            }
        }
        if let (None, Some(t)) = (&r.clone_from_ctid, &r.template) {
            self.volume(values::ostemplate(t), &loc.child("template"));
        }
        self.storage_and_snapshot(
            r.storage_pool.as_deref(),
            r.template_snapshot_name.as_deref(),
            loc,
        );
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
            lifecycle_snapshots: self.lifecycle(r.enable_lifecycle_snapshots.as_ref(), loc),
            template_snapshot: r
                .is_template
                .unwrap_or(false)
                .then(|| r.template_snapshot_name.clone())
                .flatten(),
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
            image_source: None,
            loc: loc.clone(),
        }
    }

    pub(super) fn vm(
        &mut self,
        l: &Loaded<raw::RawVm>,
        defaults: Option<&raw::RawVmDefaults>,
        bridge: &str,
    ) -> Guest {
        let r = &l.value;
        let loc = &l.loc;
        let id = r.vmid;
        let name = self.guest_name(r.name.as_deref(), loc, id);
        let fw = r.firewall.clone().unwrap_or_default();
        let fw_enabled = fw.enabled.unwrap_or(false);
        let ctx = NicContext {
            kind: GuestKind::Vm,
            default_bridge: Some(bridge),
            mac_fallback: None,
            raw_lxc: &[],
            firewall: fw_enabled,
        };
        let nics = self.nics([&r.network_config, &r.secondary_network_config], loc, &ctx);
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
                            format!("`{}` is not a Swarm role", other.quoted()),
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
                                format!("`{}` is not a `key=value` label", l.quoted()),
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
        if let (None, Some(t)) = (&r.clone_from_vmid, &r.template_image) {
            self.volume(values::image_ref(t), &loc.child("template_image"));
        }
        self.storage_and_snapshot(
            r.storage_pool.as_deref(),
            r.template_snapshot_name.as_deref(),
            loc,
        );
        let source = match (&r.clone_from_vmid, &r.template_image) {
            (Some(from), _) => GuestSource::Clone {
                from: *from,
                snapshot: r.template_snapshot_name.clone(),
            },
            (None, Some(t)) => GuestSource::Template { image: t.clone() },
            (None, None) => GuestSource::Unspecified,
        };
        let image_source = self.image_source(r, loc);
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
            lifecycle_snapshots: false,
            template_snapshot: r
                .is_template
                .unwrap_or(false)
                .then(|| r.template_snapshot_name.clone())
                .flatten(),
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
            image_source,
            loc: loc.clone(),
        }
    }

    pub(super) fn guest_name(&mut self, name: Option<&str>, loc: &Location, id: GuestId) -> String {
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

    pub(super) fn features(&mut self, fs: &[String], loc: &Location) -> Vec<String> {
        for (i, f) in fs.iter().enumerate() {
            self.ident(f, &loc.child(i));
        }
        fs.to_vec()
    }

    pub(super) fn traefik_service(
        &mut self,
        t: &RawTraefikService,
        loc: &Location,
    ) -> Option<TraefikService> {
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
                    format!("`{}` is not a scheme", other.quoted()),
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
}

impl Builder<'_> {
    /// An OS template or base image, which Proxmox reads as a volume id.
    fn volume(&mut self, checked: Result<(), String>, loc: &Location) {
        if let Err(m) = checked {
            self.err(
                Code::InvalidVolume,
                loc,
                m,
                "`pveam list local` shows the templates a storage holds, by their volume ids",
            );
        }
    }

    /// `enable_lifecycle_snapshots`: `true` or `false` (absent and `null` are `false`).
    fn lifecycle(&mut self, v: Option<&serde_json::Value>, loc: &Location) -> bool {
        match v {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(other) => {
                self.err(
                    Code::InvalidValue,
                    &loc.child("enable_lifecycle_snapshots"),
                    format!("`enable_lifecycle_snapshots` is {other}, not true or false"),
                    "write true to have phoenix take `pre-configured` and `final-form` snapshots, or false",
                );
                false
            }
        }
    }

    /// `storage_pool` (a Proxmox storage id) and `template_snapshot_name` (a snapshot name),
    /// which both reach the Proxmox API.
    fn storage_and_snapshot(
        &mut self,
        storage: Option<&str>,
        snapshot: Option<&str>,
        loc: &Location,
    ) {
        if let Some(s) = storage {
            self.ident(s, &loc.child("storage_pool"));
        }
        if let Some(s) = snapshot
            && let Err(m) = values::snapshot_name(s)
        {
            self.err(
                Code::InvalidName,
                &loc.child("template_snapshot_name"),
                m,
                "name the snapshot as Proxmox does, e.g. `final-form`",
            );
        }
    }
}
