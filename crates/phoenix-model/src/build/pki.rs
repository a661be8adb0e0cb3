//! The CA settings and the certificate manifest: SANs, destinations, owners, key modes,
//! lifetimes. No I/O.

use super::*;

impl Builder<'_> {
    pub(super) fn step_ca(&mut self, h: &raw::RawHypervisor, root: &Location) -> StepCaSettings {
        let s = h.step_ca.clone().unwrap_or_default();
        let loc = root.child("step_ca");
        let ca_dir = s.ca_dir.clone().unwrap_or_else(|| DEFAULT_CA_DIR.into());
        if let Err(m) = values::abs_path(&ca_dir) {
            self.err(
                Code::InvalidPath,
                &loc.child("ca_dir"),
                m,
                "give an absolute directory on the hypervisor",
            );
        }
        if let Some(p) = &s.password {
            self.secret(p, &loc.child("password"), "step_ca.password");
        }
        let domain = h.domain_name.clone().unwrap_or_default();
        StepCaSettings {
            root_name: s
                .root_ca_name
                .unwrap_or_else(|| "Phoenix Internal Root CA".into()),
            intermediate_name: s
                .intermediate_ca_name
                .unwrap_or_else(|| "Phoenix Internal Intermediate CA".into()),
            dns_name: s.dns_name.unwrap_or_else(|| format!("ca.{domain}")),
            provisioner: s.provisioner_name.unwrap_or_else(|| "phoenix".into()),
            port: s.port.unwrap_or(DEFAULT_CA_PORT),
            ca_dir,
            password: s.password,
        }
    }

    pub(super) fn certificate(&mut self, l: &Loaded<raw::RawCertificate>) -> Option<Certificate> {
        let c = &l.value;
        let loc = &l.loc;
        let mut sans = Vec::new();
        let mut ok = true;
        let cn_is_name = values::dns_san(&c.common_name).is_ok();
        if c.common_name.is_empty()
            || c.common_name.chars().any(char::is_control)
            || c.common_name.len() > 64
        {
            self.err(
                Code::InvalidSan,
                &loc.child("common_name"),
                "the common name must be 1–64 printable characters",
                "use the service's DNS name",
            );
            ok = false;
        } else if cn_is_name && c.common_name.contains('.') {
            sans.push(San::Dns(c.common_name.to_ascii_lowercase()));
        }
        for (i, s) in c.sans.iter().enumerate() {
            if let Ok(ip) = s.parse::<IpAddr>() {
                sans.push(San::Ip(ip));
            } else if let Err(m) = values::dns_san(s) {
                self.err(
                    Code::InvalidSan,
                    &loc.child("sans").child(i),
                    m,
                    "SANs are DNS names (one leading `*.` allowed) or IP addresses",
                );
                ok = false;
            } else {
                sans.push(San::Dns(s.to_ascii_lowercase()));
            }
        }
        sans.sort();
        sans.dedup();
        for (k, p) in [("cert_path", &c.cert_path), ("key_path", &c.key_path)] {
            if let Err(m) = values::plain_path(p) {
                self.err(
                    Code::InvalidPath,
                    &loc.child(k),
                    m,
                    "certificate destinations are absolute paths of plain names",
                );
                ok = false;
            }
        }
        let (owner, group) = match c.owner.as_deref() {
            None => ("root".to_string(), "root".to_string()),
            Some(o) => {
                let (u, g) = o.split_once(':').unwrap_or((o, o));
                if values::ident(u).is_err() || values::ident(g).is_err() {
                    self.err(
                        Code::InvalidName,
                        &loc.child("owner"),
                        format!("`{}` is not `user:group`", o.quoted()),
                        "write the owner as user:group, e.g. root:www-data",
                    );
                    ok = false;
                }
                (u.to_string(), g.to_string())
            }
        };
        let kind = match c.cert_type.as_deref() {
            None | Some("server") => CertKind::Server,
            Some("client") => CertKind::Client,
            Some(other) => {
                self.err(
                    Code::InvalidValue,
                    &loc.child("cert_type"),
                    format!("`{}` is not a certificate type", other.quoted()),
                    "use `server` or `client`",
                );
                CertKind::Server
            }
        };
        if let Some(t) = c.guest_type.as_deref()
            && !matches!(t, "lxc" | "vm")
        {
            self.err(
                Code::InvalidValue,
                &loc.child("guest_type"),
                format!("`{}` is not a guest type", t.quoted()),
                "use `lxc` or `vm`",
            );
        }
        let guest = match c.guest_id.or_else(|| guest_from_path(&c.cert_path)) {
            Some(g) => g,
            None => {
                self.err(
                    Code::MissingField,
                    loc,
                    "missing field `guest_id`",
                    "name the guest the certificate is delivered to, e.g. \"guest_id\": 101",
                );
                return None;
            }
        };
        let key_mode = match c.permissions.as_deref() {
            None => {
                if group == "root" {
                    0o600
                } else {
                    0o640
                }
            }
            Some(p) => match u32::from_str_radix(p, 8) {
                // A key readable by every user is never written: phoenix keeps the group bits
                // the consumer needs and drops the rest, and says so.
                Ok(m) if p.len() <= 4 && m <= 0o777 => {
                    if m & 0o007 != 0 {
                        let safe = m & 0o770 & !0o110;
                        self.diags.emit(
                            Code::UnsafeKeyMode,
                            &loc.child("permissions"),
                            format!("mode {p} would let every user read the private key; phoenix writes {safe:o}"),
                            "use 600, or 640 with the consumer's group as owner group",
                        );
                        safe
                    } else {
                        m
                    }
                }
                _ => {
                    self.err(
                        Code::InvalidValue,
                        &loc.child("permissions"),
                        format!("`{}` is not an octal file mode", p.quoted()),
                        "write the mode as octal digits, e.g. \"640\"",
                    );
                    0o600
                }
            },
        };
        let lifetime_hours = c.lifetime_hours.unwrap_or(DEFAULT_CERT_LIFETIME_HOURS);
        if lifetime_hours == 0 {
            self.err(
                Code::InvalidValue,
                &loc.child("lifetime_hours"),
                "a certificate lifetime of 0 hours",
                "use at least 1 hour (default 24)",
            );
        }
        ok.then(|| Certificate {
            common_name: c.common_name.clone(),
            sans,
            guest,
            key_mode,
            cert_path: c.cert_path.clone(),
            key_path: c.key_path.clone(),
            owner,
            group,
            include_ca: c.include_ca.unwrap_or(false),
            kind,
            lifetime_hours,
            post_renewal_command: c.post_renewal_command.clone(),
            loc: loc.clone(),
        })
    }
}
