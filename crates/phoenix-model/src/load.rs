//! Reading a configuration directory: the five JSON files (honouring `core_paths`) and the
//! stacks' compose files, each through [`crate::input`]. I/O: reads.

use crate::diag::Quote;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::decode::decode;
use crate::diag::{Code, Diagnostic, Diagnostics, range_diag};
use crate::input::{Input, InputKind, read_input};
use crate::raw::*;
use crate::source::{FileId, Location, SourceMap};

pub const HYPERVISOR_FILE: &str = "phoenix_hypervisor_config.json";
pub const LXC_FILE: &str = "phoenix_lxc_configs.json";
pub const VM_FILE: &str = "phoenix_vm_configs.json";
pub const STACKS_FILE: &str = "phoenix_stacks_config.json";
pub const MANIFEST_FILE: &str = "certificate-manifest.json";

/// A decoded value and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub value: T,
    pub loc: Location,
}

/// A parsed compose file.
#[derive(Debug, Clone)]
pub struct ComposeFile {
    pub path: PathBuf,
    pub value: Value,
}

/// Everything read from a configuration directory, still in raw form.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub dir: PathBuf,
    pub hypervisor: Option<Loaded<RawHypervisor>>,
    pub lxcs: Vec<(GuestId, Loaded<RawLxc>)>,
    pub vm_defaults: Option<RawVmDefaults>,
    pub vms: Vec<Loaded<RawVm>>,
    pub stacks: Vec<(String, Loaded<RawStack>)>,
    pub compose: std::collections::BTreeMap<String, ComposeFile>,
    pub certificates: Vec<Loaded<RawCertificate>>,
    /// `Some` when the manifest file exists (possibly empty).
    pub manifest_present: bool,
}

/// Read and decode everything under `dir`. Problems go to `diags`; the result holds whatever
/// could be decoded.
pub fn load_dir(dir: &Path, sources: &mut SourceMap, diags: &mut Diagnostics) -> RawConfig {
    let mut raw = RawConfig {
        dir: dir.to_path_buf(),
        ..RawConfig::default()
    };
    let hyp_path = dir.join(HYPERVISOR_FILE);
    let Some((hfile, mut hval)) = read_json(&Input::config(&hyp_path, true), sources, diags) else {
        return raw;
    };
    if let Value::Object(obj) = &mut hval {
        crate::legacy::hypervisor(obj, &Location::new(hfile, ""), diags);
    }
    if let Some(obj) = expect_object(&hval, hfile, diags) {
        // `vm_defaults` here is applied when the VMs are in this file too (below).
        let not_yet: Vec<&str> = HYPERVISOR_NOT_YET
            .iter()
            .copied()
            .filter(|k| *k != "vm_defaults")
            .collect();
        crate::notyet::warn_listed(
            obj,
            &Location::new(hfile, ""),
            &not_yet,
            HYPERVISOR_UNUSED,
            diags,
        );
        if let Some(Value::Object(shared)) = obj.get("shared_volumes") {
            let names: Vec<String> = shared
                .keys()
                .filter(|k| *k != "firewall")
                .map(|k| format!("`{}`", k.quoted()))
                .collect();
            if !names.is_empty() {
                diags.push(
                    Diagnostic::new(
                        Code::NotSupportedYet,
                        &Location::new(hfile, "/shared_volumes"),
                        format!("shared volumes {} are read but not applied yet", names.join(", ")),
                        "phoenix creates no bind mount from `shared_volumes`; the guests named in their `mounts` do not get them",
                    )
                    .at_key(),
                );
            }
        }
        if let Some(Value::Object(net)) = obj.get("network") {
            crate::notyet::warn_listed(
                net,
                &Location::new(hfile, "/network"),
                NETWORK_NOT_YET,
                NETWORK_UNUSED,
                diags,
            );
        }
        raw.hypervisor =
            decode::<RawHypervisor>(&hval, &Location::new(hfile, ""), diags).map(|value| Loaded {
                value,
                loc: Location::new(hfile, ""),
            });
    }
    let core = raw
        .hypervisor
        .as_ref()
        .and_then(|h| h.value.core_paths.clone())
        .unwrap_or_default();

    let lxc_path = resolve_core_path(dir, core.lxc_config_file.as_deref(), LXC_FILE);
    if let Some((f, v)) = read_json(&Input::config(&lxc_path, true), sources, diags) {
        load_lxc_file(v, f, &mut raw, diags);
    }
    let vm_path = resolve_core_path(dir, core.vm_config_file.as_deref(), VM_FILE);
    let vm_file = read_json(&Input::config(&vm_path, false), sources, diags);
    let vm_file_absent = vm_file.is_none() && !vm_path.exists();
    if let Some((f, v)) = vm_file {
        load_vm_file(v, f, &mut raw, diags);
    }
    vms_in_hypervisor(hval, hfile, vm_file_absent, &mut raw, diags);
    let stacks_path = resolve_core_path(dir, core.stacks_config_file.as_deref(), STACKS_FILE);
    if let Some((f, v)) = read_json(&Input::config(&stacks_path, false), sources, diags) {
        load_stacks_file(&v, f, &mut raw, diags);
    }
    load_stack_dirs(dir, &mut raw, sources, diags);
    let manifest_path = resolve_core_path(
        dir,
        core.certificate_manifest_file.as_deref(),
        MANIFEST_FILE,
    );
    if let Some((f, v)) = read_json(&Input::config(&manifest_path, false), sources, diags) {
        raw.manifest_present = true;
        match &v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let loc = Location::new(f, format!("/{i}"));
                    if let Some(c) = decode::<RawCertificate>(item, &loc, diags) {
                        raw.certificates.push(Loaded { value: c, loc });
                    }
                }
            }
            _ => diags.emit(
                Code::TypeMismatch,
                &Location::new(f, ""),
                "the certificate manifest must be a JSON array of certificate entries",
                "wrap the entries in [ … ]",
            ),
        }
    }
    raw
}

/// `core_paths` hold absolute paths of the bash host. Use one when it exists; otherwise look
/// for the same file name in the config directory; default to the standard name there.
fn resolve_core_path(dir: &Path, given: Option<&str>, default_name: &str) -> PathBuf {
    let Some(given) = given else {
        return dir.join(default_name);
    };
    let p = Path::new(given);
    if p.is_absolute() {
        if p.is_file() {
            return p.to_path_buf();
        }
        let by_name = p
            .file_name()
            .map(|n| dir.join(n))
            .unwrap_or_else(|| dir.join(default_name));
        if by_name.is_file() {
            return by_name;
        }
        return dir.join(default_name);
    }
    dir.join(p)
}

fn read_json(
    input: &Input<'_>,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) -> Option<(FileId, Value)> {
    let path = input.path;
    let bytes = read_input(input, diags)?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let byte = e.as_bytes().get(at).copied().unwrap_or(0);
            let file = sources.add(
                path.to_path_buf(),
                String::from_utf8_lossy(e.as_bytes()).into_owned(),
            );
            diags.push(range_diag(
                Code::JsonSyntax,
                file,
                at..at + 1,
                format!("not UTF-8 text: byte 0x{byte:02x} cannot start or continue a character"),
                "save the file as UTF-8 (it was probably written in Latin-1 or Windows-1252)",
            ));
            return None;
        }
    };
    // jq 1.6, which the bash system read these files with, skips one byte-order mark at the
    // start; a second one, or one anywhere else, it rejects, and so does the parser below.
    // Offsets are those of the text without it, as an editor shows them.
    let bom = text.strip_prefix('\u{feff}').map(str::to_owned);
    let had_bom = bom.is_some();
    let file = sources.add(path.to_path_buf(), bom.unwrap_or(text));
    if had_bom {
        let first = sources
            .get(file)
            .text
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        diags.push(range_diag(
            Code::ByteOrderMark,
            file,
            0..first,
            "the file starts with a byte-order mark (U+FEFF), which JSON does not allow; the bash system's jq skipped it, and so does phoenix",
            "save the file as UTF-8 without a BOM (most editors call it \"UTF-8\", not \"UTF-8 with BOM\")",
        ));
    }
    let value = crate::json::parse(file, &sources.get(file).text, diags);
    crate::secrets::mask_file(sources, file, value.as_ref());
    Some((file, value?))
}

fn expect_object<'v>(
    v: &'v Value,
    file: FileId,
    diags: &mut Diagnostics,
) -> Option<&'v serde_json::Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => {
            diags.emit(
                Code::TypeMismatch,
                &Location::new(file, ""),
                "expected a JSON object at the top of the file",
                "phoenix configuration files hold one JSON object",
            );
            None
        }
    }
}

fn load_lxc_file(mut v: Value, file: FileId, raw: &mut RawConfig, diags: &mut Diagnostics) {
    if let Some(Value::Object(configs)) = v.get_mut("lxc_configs") {
        let root = Location::new(file, "/lxc_configs");
        for (id, entry) in configs.iter_mut() {
            crate::legacy::lxc(entry, &root.child(id), diags);
        }
    }
    let Some(obj) = expect_object(&v, file, diags) else {
        return;
    };
    let root = Location::new(file, "");
    crate::notyet::warn_listed(obj, &root, LXC_FILE_NOT_YET, &[], diags);
    for (key, value) in obj {
        match key.as_str() {
            "$schema" | "lxc_configs" => {}
            k if LXC_FILE_NOT_YET.contains(&k) => {}
            k => diags.push(
                Diagnostic::new(
                    Code::UnknownKey,
                    &root.child(k),
                    format!("unknown key `{}`", k.quoted()),
                    "containers go under `lxc_configs`; check the spelling against `phoenix schema`",
                )
                .at_key(),
            ),
        }
        let _ = value;
    }
    let Some(configs) = obj.get("lxc_configs") else {
        diags.emit(
            Code::MissingField,
            &root,
            "missing field `lxc_configs`",
            "add `\"lxc_configs\": {}`",
        );
        return;
    };
    let Value::Object(configs) = configs else {
        diags.emit(
            Code::TypeMismatch,
            &root.child("lxc_configs"),
            "`lxc_configs` must be an object keyed by CTID",
            "write {\"101\": {…}, …}",
        );
        return;
    };
    for (id, entry) in configs {
        let loc = root.child("lxc_configs").child(id);
        let gid = match GuestId::parse(id) {
            Ok(g) => g,
            Err(msg) => {
                diags.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        &loc,
                        msg,
                        "container keys are VMIDs such as \"101\"",
                    )
                    .at_key(),
                );
                continue;
            }
        };
        if let Some(value) = decode::<RawLxc>(entry, &loc, diags) {
            crate::notyet::lxc(&value, &loc, diags);
            raw.lxcs.push((gid, Loaded { value, loc }));
        }
    }
}

fn load_vm_file(v: Value, file: FileId, raw: &mut RawConfig, diags: &mut Diagnostics) {
    let Some(obj) = expect_object(&v, file, diags) else {
        return;
    };
    let root = Location::new(file, "");
    for key in obj.keys() {
        if !matches!(key.as_str(), "$schema" | "vm_defaults" | "vms") {
            diags.push(
                Diagnostic::new(
                    Code::UnknownKey,
                    &root.child(key),
                    format!("unknown key `{}`", key.quoted()),
                    "the VM file holds `vm_defaults` and `vms`",
                )
                .at_key(),
            );
        }
    }
    if obj.get("vms").is_none() {
        diags.emit(
            Code::MissingField,
            &root,
            "missing field `vms`",
            "add `\"vms\": []`",
        );
    }
    load_vms(v, &root, raw, diags);
}

/// The layout up to late September 2025: `vms` and `vm_defaults` in the hypervisor file and no
/// VM file. With a VM file, the hypervisor's `vms` are ignored and its `vm_defaults` are
/// host setup.
fn vms_in_hypervisor(
    hval: Value,
    hfile: FileId,
    vm_file_absent: bool,
    raw: &mut RawConfig,
    diags: &mut Diagnostics,
) {
    let root = Location::new(hfile, "");
    let has = |k: &str| hval.get(k).is_some();
    if vm_file_absent && has("vms") {
        diags.push(
            Diagnostic::new(
                Code::LegacyForm,
                &root.child("vms"),
                format!("the VMs are in the hypervisor file and there is no {VM_FILE} (the layout up to late September 2025); phoenix reads them here"),
                format!("move `vms` and `vm_defaults` into {VM_FILE}: {{\"vm_defaults\": {{…}}, \"vms\": [ … ]}}"),
            )
            .at_key(),
        );
        load_vms(hval, &root, raw, diags);
        return;
    }
    if has("vms") {
        diags.push(
            Diagnostic::new(
                Code::NotSupportedYet,
                &root.child("vms"),
                format!("`vms` in the hypervisor file is ignored: {VM_FILE} defines the VMs"),
                format!("delete it here, or move what it adds into {VM_FILE}"),
            )
            .at_key(),
        );
    }
    if has("vm_defaults") {
        diags.push(
            Diagnostic::new(
                Code::NotSupportedYet,
                &root.child("vm_defaults"),
                "`vm_defaults` is read but not applied yet",
                "phoenix plans and validates it in a later release; nothing changes on the host for it now",
            )
            .at_key(),
        );
    }
}

/// `vm_defaults` and `vms` of the object `v` (the VM file, or the hypervisor file of the
/// older layout) at `root`.
fn load_vms(mut v: Value, root: &Location, raw: &mut RawConfig, diags: &mut Diagnostics) {
    if let Some(Value::Array(vms)) = v.get_mut("vms") {
        for (i, vm) in vms.iter_mut().enumerate() {
            crate::legacy::vm(vm, &root.child("vms").child(i), diags);
        }
    }
    if let Some(d) = v.get("vm_defaults") {
        raw.vm_defaults = decode::<RawVmDefaults>(d, &root.child("vm_defaults"), diags);
    }
    match v.get("vms") {
        Some(Value::Array(vms)) => {
            for (i, vm) in vms.iter().enumerate() {
                let loc = root.child("vms").child(i);
                if let Some(value) = decode::<RawVm>(vm, &loc, diags) {
                    crate::notyet::vm(&value, &loc, diags);
                    raw.vms.push(Loaded { value, loc });
                }
            }
        }
        Some(_) => diags.emit(
            Code::TypeMismatch,
            &root.child("vms"),
            "`vms` must be an array",
            "write \"vms\": [ {…}, … ]",
        ),
        None => {}
    }
}

fn load_stacks_file(v: &Value, file: FileId, raw: &mut RawConfig, diags: &mut Diagnostics) {
    let Some(obj) = expect_object(v, file, diags) else {
        return;
    };
    let root = Location::new(file, "");
    for key in obj.keys() {
        if !matches!(key.as_str(), "$schema" | "docker_stacks") {
            diags.push(
                Diagnostic::new(
                    Code::UnknownKey,
                    &root.child(key),
                    format!("unknown key `{}`", key.quoted()),
                    "the stacks file holds `docker_stacks`",
                )
                .at_key(),
            );
        }
    }
    match obj.get("docker_stacks") {
        Some(Value::Object(stacks)) => {
            for (name, s) in stacks {
                let loc = root.child("docker_stacks").child(name);
                if let Some(value) = decode::<RawStack>(s, &loc, diags) {
                    raw.stacks.push((name.clone(), Loaded { value, loc }));
                }
            }
        }
        Some(_) => diags.emit(
            Code::TypeMismatch,
            &root.child("docker_stacks"),
            "`docker_stacks` must be an object keyed by stack name",
            "write {\"portainer_service\": {…}}",
        ),
        None => {}
    }
}

/// `stacks/<name>/` next to the config directory (the bash host's layout) or inside it:
/// `docker-compose.yml` for every known stack, and `phoenix.json` stack definitions (older
/// layout) for stacks the stacks file does not define.
fn load_stack_dirs(
    dir: &Path,
    raw: &mut RawConfig,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
) {
    let roots = [dir.join("stacks"), dir.join("..").join("stacks")];
    let Some(stacks_root) = roots.iter().find(|p| p.is_dir()) else {
        return;
    };
    let mut names: Vec<String> = match std::fs::read_dir(stacks_root) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => return,
    };
    names.sort();
    let roots = [dir, stacks_root.as_path()];
    for name in names {
        let sdir = stacks_root.join(&name);
        // A link, a FIFO or a device is found here and refused when read, never skipped as
        // "no such file".
        let present = |p: &Path| p.symlink_metadata().is_ok();
        let named_at = raw
            .stacks
            .iter()
            .find(|(n, _)| n == &name)
            .map(|(_, s)| s.loc.clone());
        let def = sdir.join("phoenix.json");
        if present(&def)
            && named_at.is_none()
            && let Some((f, v)) = read_json(
                &Input {
                    path: &def,
                    kind: InputKind::Stack,
                    required: false,
                    within: &roots,
                    named_at: None,
                },
                sources,
                diags,
            )
        {
            let loc = Location::new(f, "");
            if let Some(value) = decode::<RawStack>(&v, &loc, diags) {
                raw.stacks.push((name.clone(), Loaded { value, loc }));
            }
        }
        let compose = [
            "docker-compose.yml",
            "docker-compose.yaml",
            "compose.yml",
            "compose.yaml",
        ]
        .iter()
        .map(|f| sdir.join(f))
        .find(|p| present(p));
        let Some(path) = compose else {
            continue;
        };
        let input = Input {
            path: &path,
            kind: InputKind::Stack,
            required: true,
            within: &roots,
            named_at,
        };
        if let Some(bytes) = read_input(&input, diags)
            && let Some(value) = crate::yaml::parse_yaml(&path, bytes, sources, diags)
        {
            raw.compose.insert(name, ComposeFile { path, value });
        }
    }
}
