//! Raw value types shared by several files: guest ids, secrets, NICs, firewall rules.
//!
//! These mirror the JSON exactly (serde), accept the fixtures' oddities (ids as strings or
//! integers, `nameservers` vs `nameserver`), and document every field for `phoenix schema`.
//! No I/O.

use crate::diag::Quote;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A Proxmox VMID (100–999999999), written as an integer or a string of digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct GuestId(pub u32);

impl fmt::Display for GuestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl GuestId {
    pub const MIN: u32 = 100;
    pub const MAX: u32 = 999_999_999;

    pub fn parse(s: &str) -> Result<GuestId, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{}` is not a guest id (digits only)", s.quoted()));
        }
        let n: u64 = s
            .parse()
            .map_err(|_| format!("guest id `{s}` is too large"))?;
        Self::from_u64(n)
    }

    fn from_u64(n: u64) -> Result<GuestId, String> {
        if (Self::MIN as u64..=Self::MAX as u64).contains(&n) {
            Ok(GuestId(n as u32))
        } else {
            Err(format!(
                "guest id {n} is outside Proxmox's range {}–{}",
                Self::MIN,
                Self::MAX
            ))
        }
    }
}

impl<'de> Deserialize<'de> for GuestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GuestId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a guest id (integer or string of digits, 100–999999999)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GuestId, E> {
                GuestId::from_u64(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GuestId, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("guest id {v} is negative")))
                    .and_then(|v| GuestId::from_u64(v).map_err(E::custom))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GuestId, E> {
                GuestId::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for GuestId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GuestId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Proxmox VMID, 100–999999999. The bash files write it as an integer (VMs) or a string (LXC keys, dependencies); both are accepted.",
            "oneOf": [
                {"type": "integer", "minimum": 100, "maximum": 999999999},
                {"type": "string", "pattern": "^0*[1-9][0-9]{2,8}$"}
            ]
        })
    }
}

/// A secret: plain text (works, but draws a warning), or a reference resolved at apply time.
/// Neither `Debug` nor `Display` prints a plaintext value.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    Env(String),
    File(String),
}

impl Secret {
    pub fn is_plain(&self) -> bool {
        matches!(self, Secret::Plain(_))
    }
}

impl fmt::Debug for Secret {
    /// Like `Display`: a `{:?}` of a model (or an error holding one) never shows a value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("Plain(<redacted>)"),
            Secret::Env(n) => f.debug_tuple("Env").field(n).finish(),
            Secret::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

impl fmt::Display for Secret {
    /// Never prints a plaintext value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("<plaintext, redacted>"),
            Secret::Env(n) => write!(f, "env:{n}"),
            Secret::File(p) => write!(f, "file:{p}"),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, {"env": "NAME"} or {"file": "PATH"}"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::Plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    if out.is_some() {
                        return Err(de::Error::custom(
                            "a secret reference has exactly one of `env` or `file`",
                        ));
                    }
                    out = Some(match key.as_str() {
                        "env" => Secret::Env(value),
                        "file" => Secret::File(value),
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown secret source `{other}` (expected `env` or `file`)"
                            )));
                        }
                    });
                }
                out.ok_or_else(|| {
                    de::Error::custom(
                        r#"empty secret reference; use {"env": "NAME"} or {"file": "PATH"}"#,
                    )
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A secret. Plain text still works but draws PHX-W030; prefer a reference resolved when phoenix applies: {\"env\": \"NAME\"} or {\"file\": \"/path\"}.",
            "oneOf": [
                {"type": "string", "description": "The secret in plain text (draws PHX-W030)."},
                {"type": "object", "properties": {"env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": "Name of the environment variable that holds the secret when phoenix runs."}}, "required": ["env"], "additionalProperties": false},
                {"type": "object", "properties": {"file": {"type": "string", "pattern": "^/", "description": "Absolute path of a file that holds the secret (read when phoenix runs; keep it mode 600)."}}, "required": ["file"], "additionalProperties": false}
            ]
        })
    }
}

/// A string, or a list of strings (nameservers are written both ways).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// Items, splitting a single string on spaces and commas (`"8.8.8.8 1.1.1.1"`).
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s
                .split([' ', ','])
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A number written as a JSON number or a string (`"port": "80,443"` or `"port": 443`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NumberOrString {
    Number(u64),
    String(String),
}

impl fmt::Display for NumberOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberOrString::Number(n) => write!(f, "{n}"),
            NumberOrString::String(s) => f.write_str(s),
        }
    }
}

/// One guest NIC (`network_config` → net0, `secondary_network_config` → net1).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawNic {
    /// Interface name inside the guest (`eth0`). Defaults to `ethN` for netN.
    pub name: Option<String>,
    /// Host bridge the NIC is attached to (`vmbr0`, `vmbr0.20`, `vmbr100`). VMs default to
    /// `vm_defaults.network_bridge`.
    pub bridge: Option<String>,
    /// Address in CIDR form (`172.16.100.10/24`), `dhcp`, or `manual`.
    pub ip: Option<String>,
    /// Default gateway; only one NIC of a guest may carry it.
    pub gw: Option<String>,
    /// Nameservers for the guest (LXC spelling; a string, space/comma separated, or a list).
    pub nameservers: Option<OneOrMany>,
    /// Nameservers for the guest (VM/cloud-init spelling).
    pub nameserver: Option<OneOrMany>,
    /// MAC address. For net0, `mac_address` on the guest is used when this is absent; when
    /// both are absent Proxmox generates one and phoenix keeps it.
    pub hwaddr: Option<String>,
    /// New: how the NIC is realised. `veth` (the only type the Proxmox API knows) or `macvlan`
    /// (raw `lxc.net.N.*` lines). Default: `macvlan` when `lxc_options` hold
    /// `lxc.net.N.type: macvlan`, else `veth`.
    pub kind: Option<String>,
    /// New: 802.1Q VLAN tag on a VLAN-aware bridge (`bridge=vmbr0,tag=20`).
    pub tag: Option<u16>,
    /// New: Proxmox per-NIC firewall switch (`firewall=1`). Default: the guest's
    /// `firewall.enabled`.
    pub firewall: Option<bool>,
    /// New: MTU of the NIC. Default: the bridge's MTU.
    pub mtu: Option<u16>,
}

/// A firewall rule as written in the bash files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RawRule {
    /// Direction: `in`, `out` (`group` is not supported).
    #[serde(rename = "type")]
    pub direction: Option<String>,
    /// `ACCEPT`, `DROP` or `REJECT`.
    pub action: Option<String>,
    /// Protocol name (`tcp`, `udp`, `icmp`, …); absent = any.
    pub proto: Option<String>,
    /// Source address, CIDR, range `a-b`, alias name or `+ipset`; absent = any.
    pub source: Option<String>,
    /// Destination address, CIDR, range, alias or `+ipset`; absent = any.
    pub dest: Option<String>,
    /// Destination port(s): `80`, `80,443`, `8000:8100`.
    pub port: Option<NumberOrString>,
    /// New: source port(s), same syntax as `port`.
    pub sport: Option<NumberOrString>,
    /// Guest NIC the rule applies to (`net0`).
    pub iface: Option<String>,
    /// Comment; phoenix uses it as the rule's identity in `.fw` files.
    pub comment: Option<String>,
    /// New: `false` writes the rule disabled (`|IN …`). Default `true`.
    pub enabled: Option<bool>,
}

/// A guest's firewall: `[OPTIONS] enable` in `VMID.fw` plus its rules.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawGuestFirewall {
    /// Guest firewall switch. All three switches (cluster, guest, NIC `firewall=1`) must be
    /// on for a NIC to be filtered.
    pub enabled: Option<bool>,
    /// Rules in order.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// New: default policy for traffic into the guest (`DROP` default, `ACCEPT`, `REJECT`).
    pub policy_in: Option<String>,
    /// New: default policy for traffic out of the guest (`ACCEPT` default).
    pub policy_out: Option<String>,
}

/// A route `<name>.<domain>` through the internal proxy to this guest.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RawTraefikService {
    /// Service name; the public name is `<name>.<domain_name>`.
    pub name: String,
    /// Port the service listens on inside the guest.
    pub port: u16,
    /// `http` or `https`. Default: inferred from the service (Step-CA and 443/8443/9443 speak
    /// HTTPS).
    pub scheme: Option<String>,
    /// New: Traefik entrypoints the router listens on. Default `["websecure"]`.
    pub entrypoints: Option<Vec<String>>,
}

/// A bind mount from the host into a container.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RawMountPoint {
    /// Absolute path on the host.
    pub host_path: String,
    /// Absolute path inside the container.
    pub container_path: String,
    /// Owner uid applied to the host path.
    pub owner_uid: Option<u32>,
    /// Owner gid applied to the host path.
    pub owner_gid: Option<u32>,
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn debug_and_display_never_show_a_plaintext_value() {
        let s = Secret::Plain("hunter2-value".into());
        let nested = vec![("ADMIN", s.clone())];
        for shown in [format!("{s}"), format!("{s:?}"), format!("{nested:#?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(format!("{:?}", Secret::Env("PW".into())), "Env(\"PW\")");
    }
}
