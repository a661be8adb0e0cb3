//! Proxmox property strings: the `key=value,key=value` values of `net[n]`, `ipconfig[n]`,
//! `startup`, `features`, `rootfs`, `memory` and friends.
//!
//! A [`PropertyString`] keeps its keys in the order they were parsed or set, so that printing
//! a canonical string gives back the same text (`print(parse(s)) == s`), and compares like a
//! map: `bridge=vmbr0,firewall=1` equals `firewall=1,bridge=vmbr0`. Some formats have a
//! *default key* whose value may be written without `key=` (`rootfs: local-lvm:8,size=8G`
//! has `volume=local-lvm:8`; a QEMU `net0: virtio,bridge=vmbr0` has `model=virtio`); the parser
//! is told which key that is and the printer writes it bare again.
//!
//! Values holding a `,` (or starting with `"`) are written in double quotes with `\"` and `\\`
//! escaped, as Proxmox's own parser accepts. No I/O.
//!
//! Relied on: `PVE::JSONSchema::parse_property_string` / `print_property_string`
//! (<https://git.proxmox.com/?p=pve-common.git;a=blob;f=src/PVE/JSONSchema.pm>), and the
//! formats of <https://pve.proxmox.com/pve-docs/api-viewer/> (`/nodes/{node}/lxc`, `…/qemu`).

use std::collections::BTreeMap;
use std::fmt;

/// Default key of an LXC `rootfs` / `mp[n]` (`STORAGE:SIZE` or a volume id).
pub const ROOTFS_DEFAULT_KEY: &str = "volume";
/// Default key of a QEMU `net[n]` (`virtio` alone means `model=virtio`).
pub const QEMU_NET_DEFAULT_KEY: &str = "model";
/// Default key of a QEMU `memory` (`4096` means `current=4096`).
pub const QEMU_MEMORY_DEFAULT_KEY: &str = "current";

/// NIC models of QEMU that double as the key carrying the MAC (`virtio=BC:24:11:…`).
pub const QEMU_NIC_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

/// Why a property string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyStringError {
    #[error("empty element at position {position} in property string")]
    EmptyElement { position: usize },
    #[error("value `{value}` has no `key=` and this property has no default key")]
    MissingKey { value: String },
    #[error("empty key in `{element}`")]
    EmptyKey { element: String },
    #[error("key `{key}` given twice")]
    DuplicateKey { key: String },
    #[error("unterminated quoted value for key `{key}`")]
    UnterminatedQuote { key: String },
    #[error("unexpected text after quoted value of key `{key}`")]
    TrailingAfterQuote { key: String },
}

/// A parsed property string: ordered for printing, compared as a map.
#[derive(Debug, Clone, Default)]
pub struct PropertyString {
    default_key: Option<String>,
    entries: Vec<(String, String)>,
}

impl PropertyString {
    /// An empty property string without a default key.
    pub fn new() -> Self {
        PropertyString::default()
    }

    /// An empty property string whose `default_key` is printed without `key=`.
    pub fn with_default_key(default_key: &str) -> Self {
        PropertyString {
            default_key: Some(default_key.to_string()),
            entries: Vec::new(),
        }
    }

    /// Parse `s`; a bare element (no `=`) is the value of `default_key`.
    pub fn parse(s: &str, default_key: Option<&str>) -> Result<Self, PropertyStringError> {
        let mut out = PropertyString {
            default_key: default_key.map(str::to_string),
            entries: Vec::new(),
        };
        if s.is_empty() {
            return Ok(out);
        }
        let mut rest = s;
        let mut position = 0;
        loop {
            let (key, value, tail) = split_element(rest, default_key, position)?;
            if out.get(&key).is_some() {
                return Err(PropertyStringError::DuplicateKey { key });
            }
            out.entries.push((key, value));
            match tail {
                Some(t) => rest = t,
                None => return Ok(out),
            }
            position += 1;
        }
    }

    /// Builder form of [`PropertyString::set`].
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Set `key`, keeping its position when it exists, appending otherwise.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// Remove `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(pos).1)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn default_key(&self) -> Option<&str> {
        self.default_key.as_deref()
    }

    /// Entries in print order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as a map (the identity used by `==`).
    pub fn to_map(&self) -> BTreeMap<&str, &str> {
        self.iter().collect()
    }
}

impl PartialEq for PropertyString {
    fn eq(&self, other: &Self) -> bool {
        self.to_map() == other.to_map()
    }
}

impl Eq for PropertyString {}

impl fmt::Display for PropertyString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let needs_quotes = v.contains(',') || v.starts_with('"');
            let bare = self.default_key.as_deref() == Some(k.as_str())
                && !needs_quotes
                && !v.is_empty()
                && !v.contains('=');
            if bare {
                f.write_str(v)?;
            } else if needs_quotes {
                write!(f, "{k}=\"")?;
                for c in v.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")?;
            } else {
                write!(f, "{k}={v}")?;
            }
        }
        Ok(())
    }
}

/// One element at the start of `rest`: its key, its value and what follows the `,`.
fn split_element<'a>(
    rest: &'a str,
    default_key: Option<&str>,
    position: usize,
) -> Result<(String, String, Option<&'a str>), PropertyStringError> {
    let eq = rest.find('=');
    let comma = rest.find(',');
    let keyed = match (eq, comma) {
        (Some(e), Some(c)) => e < c,
        (Some(_), None) => true,
        _ => false,
    };
    if !keyed {
        let (element, tail) = match comma {
            Some(c) => (&rest[..c], Some(&rest[c + 1..])),
            None => (rest, None),
        };
        if element.is_empty() {
            return Err(PropertyStringError::EmptyElement { position });
        }
        let key = default_key.ok_or_else(|| PropertyStringError::MissingKey {
            value: element.to_string(),
        })?;
        return Ok((
            key.to_string(),
            element.to_string(),
            check_tail(tail, position)?,
        ));
    }
    let e = eq.unwrap_or_default();
    let key = &rest[..e];
    let after = &rest[e + 1..];
    if key.is_empty() {
        let element = comma.map_or(rest, |c| &rest[..c]);
        return Err(PropertyStringError::EmptyKey {
            element: element.to_string(),
        });
    }
    if let Some(quoted) = after.strip_prefix('"') {
        let (value, consumed) =
            unquote(quoted).ok_or_else(|| PropertyStringError::UnterminatedQuote {
                key: key.to_string(),
            })?;
        let tail = &quoted[consumed..];
        return match tail.strip_prefix(',') {
            Some(t) => Ok((key.to_string(), value, check_tail(Some(t), position)?)),
            None if tail.is_empty() => Ok((key.to_string(), value, None)),
            None => Err(PropertyStringError::TrailingAfterQuote {
                key: key.to_string(),
            }),
        };
    }
    let (value, tail) = match after.find(',') {
        Some(c) => (&after[..c], Some(&after[c + 1..])),
        None => (after, None),
    };
    Ok((
        key.to_string(),
        value.to_string(),
        check_tail(tail, position)?,
    ))
}

/// A trailing `,` leaves an empty last element, which Proxmox rejects too.
fn check_tail(tail: Option<&str>, position: usize) -> Result<Option<&str>, PropertyStringError> {
    match tail {
        Some("") => Err(PropertyStringError::EmptyElement {
            position: position + 1,
        }),
        other => Ok(other),
    }
}

/// Read a quoted value (after its opening quote) up to the closing quote: the value and the
/// number of bytes consumed including the closing quote.
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some((out, i + 1));
        } else {
            out.push(c);
        }
    }
    None
}

/// The model and MAC of a QEMU `net[n]` (`virtio=BC:24:11:00:00:01` → `("virtio", Some(mac))`;
/// `model=virtio,macaddr=…` is the same NIC written long-hand).
pub fn qemu_nic_model_mac(net: &PropertyString) -> (Option<&str>, Option<&str>) {
    for (k, v) in net.iter() {
        if QEMU_NIC_MODELS.contains(&k) {
            return (Some(k), Some(v));
        }
    }
    (net.get(QEMU_NET_DEFAULT_KEY), net.get("macaddr"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str, d: Option<&str>) -> PropertyString {
        PropertyString::parse(s, d).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn real_strings_round_trip() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "name=eth0,bridge=vmbr0,firewall=1,gw=10.0.0.1,hwaddr=52:54:00:AA:BB:CC,ip=10.0.0.200/24,tag=20,type=veth",
                None,
            ),
            (
                "virtio=BC:24:11:2E:3F:40,bridge=vmbr0,firewall=1",
                Some(QEMU_NET_DEFAULT_KEY),
            ),
            ("virtio,bridge=vmbr0,tag=20", Some(QEMU_NET_DEFAULT_KEY)),
            ("order=2,up=5,down=5", None),
            ("nesting=1,keyctl=1", None),
            ("quickOS-lxc-disks:16", Some(ROOTFS_DEFAULT_KEY)),
            ("local-lvm:vm-100-disk-0,size=8G", Some(ROOTFS_DEFAULT_KEY)),
            ("ip=172.16.100.20/24,gw=172.16.100.1", None),
            ("ip=dhcp", None),
            ("mount=nfs;cifs,nesting=1", None),
            ("key=\"a,b\",other=1", None),
            ("", None),
        ];
        for (s, d) in cases {
            assert_eq!(p(s, *d).to_string(), *s, "round trip of {s}");
        }
    }

    #[test]
    fn default_key_and_aliases() {
        let rootfs = p("local-lvm:8,size=8G", Some(ROOTFS_DEFAULT_KEY));
        assert_eq!(rootfs.get("volume"), Some("local-lvm:8"));
        assert_eq!(rootfs.get("size"), Some("8G"));
        let net = p(
            "virtio=BC:24:11:2E:3F:40,bridge=vmbr0",
            Some(QEMU_NET_DEFAULT_KEY),
        );
        assert_eq!(
            qemu_nic_model_mac(&net),
            (Some("virtio"), Some("BC:24:11:2E:3F:40"))
        );
        let bare = p("virtio,bridge=vmbr0", Some(QEMU_NET_DEFAULT_KEY));
        assert_eq!(qemu_nic_model_mac(&bare), (Some("virtio"), None));
        // `volume=` written long-hand parses to the same value and prints canonically.
        let long = p("volume=local-lvm:8,size=8G", Some(ROOTFS_DEFAULT_KEY));
        assert_eq!(long, rootfs);
        assert_eq!(long.to_string(), "local-lvm:8,size=8G");
    }

    #[test]
    fn equality_ignores_order() {
        assert_eq!(
            p("bridge=vmbr0,firewall=1", None),
            p("firewall=1,bridge=vmbr0", None)
        );
        assert_ne!(
            p("bridge=vmbr0,firewall=1", None),
            p("bridge=vmbr0,firewall=0", None)
        );
        assert_ne!(p("bridge=vmbr0", None), p("bridge=vmbr0,firewall=0", None));
    }

    #[test]
    fn set_keeps_position() {
        let mut s = p("name=eth0,bridge=vmbr0,ip=dhcp", None);
        s.set("bridge", "vmbr100");
        s.set("hwaddr", "02:00:00:00:01:01");
        assert_eq!(
            s.to_string(),
            "name=eth0,bridge=vmbr100,ip=dhcp,hwaddr=02:00:00:00:01:01"
        );
        assert_eq!(s.remove("ip").as_deref(), Some("dhcp"));
        assert_eq!(
            s.to_string(),
            "name=eth0,bridge=vmbr100,hwaddr=02:00:00:00:01:01"
        );
    }

    #[test]
    fn errors() {
        use PropertyStringError as E;
        assert!(matches!(
            PropertyString::parse("a=1,,b=2", None),
            Err(E::EmptyElement { .. })
        ));
        assert!(matches!(
            PropertyString::parse("a=1,", None),
            Err(E::EmptyElement { .. })
        ));
        assert!(matches!(
            PropertyString::parse("virtio,bridge=x", None),
            Err(E::MissingKey { .. })
        ));
        assert!(matches!(
            PropertyString::parse("=1", None),
            Err(E::EmptyKey { .. })
        ));
        assert!(matches!(
            PropertyString::parse("a=1,a=2", None),
            Err(E::DuplicateKey { .. })
        ));
        assert!(matches!(
            PropertyString::parse("a,b", Some("v")),
            Err(E::DuplicateKey { .. })
        ));
        assert!(matches!(
            PropertyString::parse("a=\"x", None),
            Err(E::UnterminatedQuote { .. })
        ));
        assert!(matches!(
            PropertyString::parse("a=\"x\"y", None),
            Err(E::TrailingAfterQuote { .. })
        ));
    }

    /// Canonical strings: distinct keys, the default key (if any) bare and first, values
    /// quoted only when they hold a comma or start with a quote.
    fn canonical() -> impl Strategy<Value = String> {
        let key = "[a-z][a-z0-9_-]{0,7}";
        let plain = "[A-Za-z0-9:./_;-]{1,12}";
        let any_value = prop_oneof![plain, "[A-Za-z0-9 ,=\"\\\\]{0,10}"];
        (
            proptest::collection::btree_map(key, any_value, 0..6),
            proptest::option::of(plain),
        )
            .prop_map(|(map, default_value)| {
                let mut ps = PropertyString::with_default_key("volume");
                if let Some(v) = default_value {
                    ps.set("volume", v);
                }
                for (k, v) in map {
                    if k != "volume" {
                        ps.set(&k, v);
                    }
                }
                ps.to_string()
            })
    }

    proptest! {
        #[test]
        fn print_parse_round_trips(s in canonical()) {
            let parsed = PropertyString::parse(&s, Some("volume")).unwrap();
            prop_assert_eq!(parsed.to_string(), s);
        }

        #[test]
        fn parse_print_parse_is_identity(entries in proptest::collection::vec(
            ("[a-z]{1,6}", "[ -~]{0,10}"), 0..6)
        ) {
            let mut ps = PropertyString::new();
            for (k, v) in &entries {
                ps.set(k, v.clone());
            }
            let printed = ps.to_string();
            let again = PropertyString::parse(&printed, None).unwrap();
            prop_assert_eq!(&again, &ps);
            prop_assert_eq!(again.to_string(), printed);
        }

        #[test]
        fn equality_is_order_insensitive(entries in proptest::collection::btree_map(
            "[a-z]{1,6}", "[a-z0-9]{1,6}", 0..6)
        ) {
            let mut forward = PropertyString::new();
            let mut backward = PropertyString::new();
            for (k, v) in &entries {
                forward.set(k, v.clone());
            }
            for (k, v) in entries.iter().rev() {
                backward.set(k, v.clone());
            }
            prop_assert_eq!(&forward, &backward);
        }
    }
}
