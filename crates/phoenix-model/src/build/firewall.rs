//! Firewall rules and policies, every field parsed strictly (rule fields are written into
//! `.fw` files later, so nothing free-form may pass). No I/O.

use super::*;

impl Builder<'_> {
    pub(super) fn verdict(&mut self, s: Option<&str>, loc: &Location, default: Verdict) -> Verdict {
        match s.map(str::to_ascii_uppercase).as_deref() {
            None => default,
            Some("ACCEPT") => Verdict::Accept,
            Some("DROP") => Verdict::Drop,
            Some("REJECT") => Verdict::Reject,
            Some(other) => {
                self.err(
                    Code::InvalidRule,
                    loc,
                    format!("`{}` is not a firewall action", other.quoted()),
                    "use ACCEPT, DROP or REJECT",
                );
                default
            }
        }
    }

    pub(super) fn guest_firewall(&mut self, f: &RawGuestFirewall, loc: &Location) -> GuestFirewall {
        GuestFirewall {
            enabled: f.enabled.unwrap_or(false),
            policy_in: self.verdict(
                f.policy_in.as_deref(),
                &loc.child("policy_in"),
                Verdict::Drop,
            ),
            policy_out: self.verdict(
                f.policy_out.as_deref(),
                &loc.child("policy_out"),
                Verdict::Accept,
            ),
            rules: self.rules(&f.rules, &loc.child("rules")),
        }
    }

    /// The cluster firewall from `firewall`, or from `shared_volumes.firewall` where the bash
    /// system read it from 2025-10-10 on. With both, the top-level rules apply and the switch
    /// and policies are the stricter of the two: a plan is never weaker than either says.
    pub(super) fn cluster_firewall(
        &mut self,
        h: &raw::RawHypervisor,
        root: &Location,
    ) -> ClusterFirewall {
        let legacy = h.shared_volumes.as_ref().and_then(|s| s.firewall.as_ref());
        let legacy_loc = root.child("shared_volumes").child("firewall");
        let (f, loc) = match (&h.firewall, legacy) {
            (Some(f), _) => (f.clone(), root.child("firewall")),
            (None, Some(l)) => {
                self.diags.push(
                    crate::diag::Diagnostic::new(
                        Code::LegacyForm,
                        &legacy_loc,
                        "the cluster firewall is under `shared_volumes.firewall`, where the bash system read it from 2025-10-10; phoenix applies it",
                        "move the object to the top-level key `firewall` (same fields)",
                    )
                    .at_key(),
                );
                (l.clone(), legacy_loc.clone())
            }
            (None, None) => (Default::default(), root.child("firewall")),
        };
        let mut fw = self.cluster_firewall_from(&f, &loc);
        if let (Some(_), Some(l)) = (&h.firewall, legacy) {
            let other = self.cluster_firewall_from(l, &legacy_loc);
            let mut stricter = Vec::new();
            if other.enabled && !fw.enabled {
                fw.enabled = true;
                stricter.push("enabled");
            }
            if fw.policy_in == Verdict::Accept && other.policy_in != Verdict::Accept {
                fw.policy_in = other.policy_in;
                stricter.push("default_input_policy");
            }
            if fw.policy_out == Verdict::Accept && other.policy_out != Verdict::Accept {
                fw.policy_out = other.policy_out;
                stricter.push("default_output_policy");
            }
            let taken = if stricter.is_empty() {
                String::new()
            } else {
                format!(
                    "; its stricter {} {} taken",
                    stricter.join(", "),
                    if stricter.len() == 1 { "is" } else { "are" }
                )
            };
            self.diags.push(
                crate::diag::Diagnostic::new(
                    Code::LegacyForm,
                    &legacy_loc,
                    format!(
                        "the cluster firewall is given twice; the rules of the top-level `firewall` apply, not these{taken}"
                    ),
                    "keep one copy, under the top-level key `firewall`, and delete `shared_volumes.firewall`",
                )
                .at_key(),
            );
        }
        fw
    }

    fn cluster_firewall_from(
        &mut self,
        f: &raw::RawClusterFirewall,
        loc: &Location,
    ) -> ClusterFirewall {
        ClusterFirewall {
            enabled: f.enabled.unwrap_or(false),
            policy_in: self.verdict(
                f.default_input_policy.as_deref(),
                &loc.child("default_input_policy"),
                Verdict::Drop,
            ),
            policy_out: self.verdict(
                f.default_output_policy.as_deref(),
                &loc.child("default_output_policy"),
                Verdict::Accept,
            ),
            rules: self.rules(
                &f.global_firewall_rules,
                &loc.child("global_firewall_rules"),
            ),
        }
    }

    pub(crate) fn rules(&mut self, rules: &[RawRule], loc: &Location) -> Vec<FirewallRule> {
        rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| self.rule(r, &loc.child(i)))
            .collect()
    }

    pub(super) fn rule(&mut self, r: &RawRule, loc: &Location) -> Option<FirewallRule> {
        let before = self.diags.len();
        let bad = |b: &mut Self, key: &str, m: String, hint: &str| {
            b.err(Code::InvalidRule, &loc.child(key), m, hint)
        };
        let direction = match r
            .direction
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("in") => Direction::In,
            Some("out") => Direction::Out,
            Some(other) => {
                bad(
                    self,
                    "type",
                    format!("`{}` is not a rule direction", other.quoted()),
                    "use `in` or `out`",
                );
                Direction::In
            }
            None => {
                self.err(
                    Code::MissingField,
                    loc,
                    "rule has no `type`",
                    "add \"type\": \"in\" or \"out\"",
                );
                Direction::In
            }
        };
        let action = match &r.action {
            Some(a) => self.verdict(Some(a), &loc.child("action"), Verdict::Accept),
            None => {
                self.err(
                    Code::MissingField,
                    loc,
                    "rule has no `action`",
                    "add \"action\": \"ACCEPT\", \"DROP\" or \"REJECT\"",
                );
                Verdict::Accept
            }
        };
        let proto = r.proto.as_deref().and_then(|p| match values::proto(p) {
            Ok(p) => Some(p),
            Err(m) => {
                bad(
                    self,
                    "proto",
                    m,
                    "use a protocol name such as tcp, udp or icmp",
                );
                None
            }
        });
        let endpoint = |b: &mut Self, key: &str, v: &Option<String>| {
            v.as_deref().and_then(|s| match values::endpoint(s) {
                Ok(e) => Some(e),
                Err(m) => {
                    bad(
                        b,
                        key,
                        m,
                        "use an address, CIDR, range a-b, alias or +ipset",
                    );
                    None
                }
            })
        };
        let source = endpoint(self, "source", &r.source);
        let dest = endpoint(self, "dest", &r.dest);
        let port_list = |b: &mut Self, key: &str, v: &Option<raw::NumberOrString>| match v {
            None => Vec::new(),
            Some(p) => match values::ports(&p.to_string()) {
                Ok(v) => v,
                Err(m) => {
                    bad(b, key, m, "write ports as 80, \"80,443\" or \"8000:8100\"");
                    Vec::new()
                }
            },
        };
        let dport = port_list(self, "port", &r.port);
        let sport = port_list(self, "sport", &r.sport);
        if (!dport.is_empty() || !sport.is_empty())
            && !proto.as_deref().is_some_and(values::proto_has_ports)
        {
            bad(
                self,
                "port",
                "ports need `proto` tcp, udp or sctp".into(),
                "Proxmox rejects a port without a port-carrying protocol; add \"proto\": \"tcp\"",
            );
        }
        if let Some(i) = &r.iface {
            let ok = i
                .strip_prefix("net")
                .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n < 32));
            if !ok {
                bad(
                    self,
                    "iface",
                    format!("`{}` is not a guest NIC name", i.quoted()),
                    "use net0, net1, …",
                );
            }
        }
        if let Some(c) = &r.comment
            && let Err(m) = values::one_line(c)
        {
            bad(self, "comment", m, "keep comments on one line");
        }
        if self
            .diags
            .iter()
            .skip(before)
            .any(|d| d.severity == crate::diag::Severity::Error)
        {
            return None;
        }
        Some(FirewallRule {
            direction,
            action,
            proto,
            source,
            dest,
            dport,
            sport,
            iface: r.iface.clone(),
            comment: r.comment.clone(),
            enabled: r.enabled.unwrap_or(true),
            loc: loc.clone(),
        })
    }
}
