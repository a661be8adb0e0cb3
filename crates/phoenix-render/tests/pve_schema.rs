//! Every `pct`/`qm` parameter set phoenix generates for `examples/homelab` and the rootesting
//! fixture, checked against the real Proxmox VE API schema shipped with fakepve
//! (`fakepve/data/pve-api.json.gz`, PVE 9): parameter names exist for the endpoint, required
//! ones are present, enums and integer ranges hold, patterns match, and property strings use
//! only sub-keys of their `format` with valid values.
//!
//! Skipped with a note when the schema is absent and `CI` is not set; in CI it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use phoenix_render::guestparams::{ApiCall, all_guest_params};
use phoenix_render::propstring::PropertyString;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `PHOENIX_PVE_SCHEMA`, else the fakepve installed in the repository's `.venv`.
fn schema_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PHOENIX_PVE_SCHEMA") {
        return Some(PathBuf::from(p));
    }
    let lib = repo_root().join(".venv/lib");
    let entries = std::fs::read_dir(&lib).ok()?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/fakepve/data/pve-api.json.gz"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

fn load_schema() -> Option<Value> {
    let Some(path) = schema_path() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the PVE API schema (fakepve's data/pve-api.json.gz) is missing; run scripts/peers.sh"
        );
        eprintln!(
            "note: skipping the PVE schema check: fakepve's pve-api.json.gz not found (run scripts/peers.sh)"
        );
        return None;
    };
    let file = std::fs::File::open(&path).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

fn configs() -> Vec<(&'static str, PathBuf)> {
    let mut out = vec![(
        "rootesting",
        repo_root().join("../shared/fixtures/upstream/rootesting-2025-11-25/etc"),
    )];
    let homelab = repo_root().join("examples/homelab");
    if homelab.is_dir() {
        out.push(("homelab", homelab));
    }
    out
}

/// Checks values against the API schema, collecting every problem.
struct Checker<'a> {
    paths: &'a Value,
    problems: Vec<String>,
}

impl Checker<'_> {
    fn check_call(&mut self, what: &str, call: &ApiCall) {
        let path = call.endpoint.path_template();
        let method = call.endpoint.method();
        let Some(params) = self.paths[path][method]["parameters"]["properties"].as_object() else {
            self.problems
                .push(format!("{what}: no {method} {path} in the schema"));
            return;
        };
        for (name, value) in &call.params {
            let schema = params.get(name).or_else(|| {
                let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
                (stem != name)
                    .then(|| params.get(&format!("{stem}[n]")))
                    .flatten()
            });
            match schema {
                Some(s) => self.check_value(&format!("{what} {method} {path} {name}"), s, value),
                None => self.problems.push(format!(
                    "{what}: `{name}` is not a parameter of {method} {path}"
                )),
            }
        }
        for (name, s) in params {
            let path_param = name == "node" || (name == "vmid" && path.contains("{vmid}"));
            if s["optional"].as_u64() != Some(1) && !path_param && !call.params.contains_key(name) {
                self.problems.push(format!(
                    "{what}: required `{name}` missing for {method} {path}"
                ));
            }
        }
    }

    fn check_value(&mut self, at: &str, s: &Value, v: &str) {
        if let Some(alias) = s["alias"].as_str() {
            // Only meaningful inside a format: resolved by the caller.
            self.problems
                .push(format!("{at}: alias of `{alias}` used directly"));
            return;
        }
        let mut bad: Vec<String> = Vec::new();
        match s["type"].as_str() {
            Some("integer") => match v.parse::<i64>() {
                Ok(n) => {
                    let n = n as f64;
                    if num(&s["minimum"]).is_some_and(|min| n < min) {
                        bad.push(format!("{v} < minimum {}", s["minimum"]));
                    }
                    if num(&s["maximum"]).is_some_and(|max| n > max) {
                        bad.push(format!("{v} > maximum {}", s["maximum"]));
                    }
                }
                Err(_) => bad.push(format!("`{v}` is not an integer")),
            },
            Some("number") if v.parse::<f64>().is_err() => {
                bad.push(format!("`{v}` is not a number"))
            }
            Some("boolean") if v != "0" && v != "1" => bad.push(format!("`{v}` is not 0|1")),
            _ => {}
        }
        if let Some(values) = s["enum"].as_array()
            && !values.iter().any(|e| e.as_str() == Some(v))
        {
            bad.push(format!("`{v}` not in {values:?}"));
        }
        if let Some(max) = s["maxLength"].as_u64()
            && v.len() as u64 > max
        {
            bad.push(format!("longer than {max}"));
        }
        self.problems
            .extend(bad.into_iter().map(|b| format!("{at}: {b}")));
        if let Some(p) = s["pattern"].as_str() {
            let rust = p.replace("(?^:", "(?:");
            match regex::Regex::new(&format!("^(?:{rust})$")) {
                Ok(re) if !re.is_match(v) => {
                    self.problems
                        .push(format!("{at}: `{v}` does not match /{p}/"));
                }
                Ok(_) => {}
                Err(_) => eprintln!("note: {at}: pattern /{p}/ not checked"),
            }
        }
        match &s["format"] {
            Value::Object(sub) => self.check_property_string(at, sub, v),
            Value::String(f) => self.check_named_format(at, f, v),
            _ => {}
        }
    }

    fn check_property_string(
        &mut self,
        at: &str,
        format: &serde_json::Map<String, Value>,
        v: &str,
    ) {
        let default_key = format
            .iter()
            .find(|(_, s)| s["default_key"].as_u64() == Some(1))
            .map(|(k, _)| k.as_str());
        let ps = match PropertyString::parse(v, default_key) {
            Ok(ps) => ps,
            Err(e) => {
                self.problems.push(format!("{at}: `{v}`: {e}"));
                return;
            }
        };
        let mut present: Vec<String> = Vec::new();
        for (k, sub_value) in ps.iter() {
            let Some(sub) = format.get(k) else {
                self.problems
                    .push(format!("{at}: `{k}` is not a key of this property string"));
                continue;
            };
            let sub_at = format!("{at}.{k}");
            match (sub["alias"].as_str(), sub["keyAlias"].as_str()) {
                // `virtio=MAC`: the key is the value of `keyAlias` and the value is `alias`'s.
                (Some(alias), Some(key_alias)) => {
                    self.check_value(&sub_at, &format[key_alias], k);
                    self.check_value(&sub_at, &format[alias], sub_value);
                    present.push(key_alias.to_string());
                    present.push(alias.to_string());
                }
                (Some(alias), None) => {
                    self.check_value(&sub_at, &format[alias], sub_value);
                    present.push(alias.to_string());
                }
                _ => {
                    self.check_value(&sub_at, sub, sub_value);
                    present.push(k.to_string());
                }
            }
        }
        for (k, sub) in format {
            let required = sub["alias"].is_null() && sub["optional"].as_u64() != Some(1);
            if required && !present.contains(k) {
                self.problems
                    .push(format!("{at}: required key `{k}` missing in `{v}`"));
            }
        }
    }

    fn check_named_format(&mut self, at: &str, format: &str, v: &str) {
        let ok = match format {
            "mac-addr" => regex::Regex::new("^(?i:[0-9a-f]{2}(:[0-9a-f]{2}){5})$")
                .unwrap()
                .is_match(v),
            "ipv4" => v.parse::<Ipv4Addr>().is_ok(),
            "pve-ipv4-config" => v == "dhcp" || v == "manual" || is_cidr_v4(v),
            "dns-name" => regex::Regex::new(
                r"^(?i:[a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.(?i:[a-z0-9]([a-z0-9-]*[a-z0-9])?))*$",
            )
            .unwrap()
            .is_match(v),
            "dns-name-list" => v.split([' ', ',', ';']).all(|d| !d.is_empty()),
            "address-list" | "lxc-ip-with-ll-iface-list" => v
                .split([' ', ',', ';'])
                .all(|a| a.parse::<IpAddr>().is_ok()),
            "pve-startup-order" => {
                property_keys_ok(v, &["order", "up", "down"], |_, x| x.parse::<u32>().is_ok())
            }
            "pve-qm-ipconfig" => property_keys_ok(v, &["ip", "gw", "ip6", "gw6"], |k, x| match k {
                "ip" => x == "dhcp" || is_cidr_v4(x),
                "gw" => x.parse::<Ipv4Addr>().is_ok(),
                _ => true,
            }),
            "pve-qm-boot" => property_keys_ok(v, &["order", "legacy"], |_, _| true),
            "pve-vmid" => v.parse::<u32>().is_ok_and(|n| n >= 100),
            "disk-size" => regex::Regex::new(r"^\d+(\.\d+)?[KMGT]?$")
                .unwrap()
                .is_match(v),
            "pve-lxc-mp-string" | "pve-volume-id-or-qm-path" | "pve-volume-id-or-absolute-path" => {
                v.contains(':') || v.starts_with('/')
            }
            _ => true,
        };
        if !ok {
            self.problems
                .push(format!("{at}: `{v}` is not a valid {format}"));
        }
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

fn is_cidr_v4(v: &str) -> bool {
    v.split_once('/').is_some_and(|(a, p)| {
        a.parse::<Ipv4Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 32)
    })
}

fn property_keys_ok(v: &str, keys: &[&str], valid: impl Fn(&str, &str) -> bool) -> bool {
    PropertyString::parse(v, None)
        .is_ok_and(|ps| !ps.is_empty() && ps.iter().all(|(k, x)| keys.contains(&k) && valid(k, x)))
}

#[test]
fn generated_parameters_match_the_pve_schema() {
    let Some(schema) = load_schema() else { return };
    let mut checker = Checker {
        paths: &schema["paths"],
        problems: Vec::new(),
    };
    let mut checked = 0;
    for (name, dir) in configs() {
        let v = phoenix_model::validate_dir(&dir);
        let d = v.desired.expect("the configuration builds");
        for (id, p) in all_guest_params(&d) {
            for (step, call) in [
                ("create", &p.create),
                ("config", &p.config),
                ("resize", &p.resize),
            ] {
                if let Some(call) = call {
                    checker.check_call(&format!("{name} {id} {step}"), call);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} calls checked");
    assert!(
        checker.problems.is_empty(),
        "{}",
        checker.problems.join("\n")
    );
}

#[test]
fn the_checker_rejects_what_pve_rejects() {
    let Some(schema) = load_schema() else { return };
    let mut checker = Checker {
        paths: &schema["paths"],
        problems: Vec::new(),
    };
    let lxc = &schema["paths"]["/nodes/{node}/lxc"]["POST"]["parameters"]["properties"];
    let qemu =
        &schema["paths"]["/nodes/{node}/qemu/{vmid}/config"]["PUT"]["parameters"]["properties"];
    let bad = [
        (&lxc["net[n]"], "name=eth0,bridge=vmbr0,type=macvlan"),
        (&lxc["net[n]"], "name=eth0,bridge=vmbr0,tag=4095"),
        (&lxc["net[n]"], "bridge=vmbr0"),
        (&lxc["net[n]"], "name=eth0,colour=blue"),
        (&lxc["net[n]"], "name=eth0,ip=10.0.0.5"),
        (&lxc["features"], "nesting=yes"),
        (&lxc["memory"], "8"),
        (&lxc["startup"], "order=1,sideways=2"),
        (&qemu["net[n]"], "virtio=nonsense,bridge=vmbr0"),
        (&qemu["net[n]"], "bridge=vmbr0"),
        (&qemu["ipconfig[n]"], "ip=dhcp,gw=nowhere"),
    ];
    for (s, v) in bad {
        let before = checker.problems.len();
        checker.check_value("probe", s, v);
        assert!(checker.problems.len() > before, "`{v}` should be rejected");
    }
    let good = [
        (
            &lxc["net[n]"],
            "name=eth0,bridge=vmbr0,firewall=1,gw=10.0.0.1,hwaddr=02:00:00:00:01:01,ip=10.0.0.5/24,tag=20,type=veth",
        ),
        (&lxc["rootfs"], "local-lvm:8"),
        (
            &qemu["net[n]"],
            "virtio=02:00:00:00:01:01,bridge=vmbr0,firewall=1,tag=20",
        ),
        (&qemu["net[n]"], "virtio,bridge=vmbr0"),
        (&qemu["memory"], "4096"),
    ];
    let before = checker.problems.len();
    for (s, v) in good {
        checker.check_value("probe", s, v);
    }
    assert_eq!(
        checker.problems.len(),
        before,
        "{}",
        checker.problems[before..].join("\n")
    );
}
