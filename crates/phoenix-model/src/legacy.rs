//! Forms older versions of the bash system accepted, rewritten to the current form on the
//! JSON value before decoding, each reported once as PHX-W004 (docs/legacy-forms.md). No I/O.

use crate::diag::Quote;
use serde_json::{Map, Value};

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::Location;

fn legacy(diags: &mut Diagnostics, loc: &Location, message: String, hint: &str) {
    diags.push(Diagnostic::new(Code::LegacyForm, loc, message, hint));
}

/// `network.interfaces.dns_nameservers` written as one string (`"10.0.0.1 8.8.8.8"`).
pub fn hypervisor(obj: &mut Map<String, Value>, root: &Location, diags: &mut Diagnostics) {
    let loc = root
        .child("network")
        .child("interfaces")
        .child("dns_nameservers");
    let Some(ns) = obj
        .get_mut("network")
        .and_then(|n| n.get_mut("interfaces"))
        .and_then(|i| i.get_mut("dns_nameservers"))
    else {
        return;
    };
    if let Value::String(s) = ns {
        let items: Vec<Value> = split_list(s).into_iter().map(Value::String).collect();
        let modern = serde_json::to_string(&items).unwrap_or_default();
        legacy(
            diags,
            &loc,
            "`dns_nameservers` is one string; phoenix reads it as a list".into(),
            &format!("write a JSON array: \"dns_nameservers\": {modern}"),
        );
        *ns = Value::Array(items);
    }
}

/// One LXC entry: `features` written as a pct string (`"nesting=1,keyctl=1"`), today's
/// `pct_options`. Entries without `=` stay in-guest features.
pub fn lxc(entry: &mut Value, loc: &Location, diags: &mut Diagnostics) {
    let Some(obj) = entry.as_object_mut() else {
        return;
    };
    let Some(Value::String(s)) = obj.get("features") else {
        return;
    };
    let items = split_list(s);
    let (pct, features): (Vec<String>, Vec<String>) =
        items.into_iter().partition(|i| i.contains('='));
    let mut pct_options: Vec<Value> = match obj.get("pct_options") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    for p in &pct {
        if !pct_options.iter().any(|v| v.as_str() == Some(p)) {
            pct_options.push(Value::String(p.clone()));
        }
    }
    let modern_pct = serde_json::to_string(&pct).unwrap_or_default();
    let modern_features = serde_json::to_string(&features).unwrap_or_default();
    legacy(
        diags,
        &loc.child("features"),
        "`features` is a Proxmox feature string; phoenix reads it as `pct_options`".into(),
        &format!(
            "write \"pct_options\": {modern_pct} and keep `features` for in-guest features: \"features\": {modern_features}"
        ),
    );
    obj.insert("pct_options".into(), Value::Array(pct_options));
    obj.insert(
        "features".into(),
        Value::Array(features.into_iter().map(Value::String).collect()),
    );
}

/// One VM: `docker_stacks` items written as `{"name", "environment"}` objects.
pub fn vm(entry: &mut Value, loc: &Location, diags: &mut Diagnostics) {
    let Some(Value::Array(stacks)) = entry.get_mut("docker_stacks") else {
        return;
    };
    for (i, item) in stacks.iter_mut().enumerate() {
        let Value::Object(o) = item else { continue };
        let Some(Value::String(name)) = o.get("name") else {
            continue;
        };
        let name = name.clone();
        let env = match o.get("environment") {
            Some(Value::String(e)) => format!(
                " (the bash system deployed only its environment `{}`; phoenix deploys every environment the stack defines)",
                e.quoted()
            ),
            _ => String::new(),
        };
        legacy(
            diags,
            &loc.child("docker_stacks").child(i),
            format!("stack `{}` is given as an object{env}", name.quoted()),
            &format!("write the stack's name only: \"{}\"", name.quoted()),
        );
        *item = Value::String(name);
    }
}

/// Items of a list written as one string, separated by commas and/or spaces.
fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    #[test]
    fn split_list_takes_commas_and_spaces() {
        assert_eq!(
            split_list("nesting=1, keyctl=1 fuse=1"),
            ["nesting=1", "keyctl=1", "fuse=1"]
        );
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn pct_string_features_become_pct_options() {
        let mut v = serde_json::json!({"features": "nesting=1,keyctl=1,docker", "pct_options": ["nesting=1"]});
        let mut d = Diagnostics::default();
        lxc(
            &mut v,
            &Location::new(FileId(0), "/lxc_configs/101"),
            &mut d,
        );
        assert_eq!(
            v["pct_options"],
            serde_json::json!(["nesting=1", "keyctl=1"])
        );
        assert_eq!(v["features"], serde_json::json!(["docker"]));
        assert_eq!(d.len(), 1);
    }
}
