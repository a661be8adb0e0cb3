//! Loading a configuration for commands that act on it (`plan`, `render`, `ca issue`): the
//! same validation as `phoenix validate`; on errors the findings are printed and nothing else
//! happens. Also resolves secret references (`{"env"}` / `{"file"}`), the only place where
//! phoenix reads the environment or secret files.

use std::io::Write;
use std::path::Path;

use phoenix_model::model::{DesiredState, Secret};

use crate::exit;
use crate::report;

/// Validate `dir`; `Err(exit code)` after printing why when it cannot be used.
pub fn load(dir: &Path) -> Result<DesiredState, u8> {
    load_as(dir, false)
}

/// [`load`]; a refusal prints the errors alone (the warnings wait for `phoenix validate`),
/// as JSON findings on stdout with `json`.
pub fn load_as(dir: &Path, json: bool) -> Result<DesiredState, u8> {
    load_ignoring(dir, json).map(|(d, _)| d)
}

/// [`load_as`], with what the plan will ignore (keys read but not applied, per guest).
pub fn load_ignoring(
    dir: &Path,
    json: bool,
) -> Result<(DesiredState, phoenix_model::notyet::Ignored), u8> {
    let mut stderr = anstream::stderr();
    if !dir.is_dir() {
        crate::failure::error(
            &format!(
                "config directory {} does not exist or is not a directory",
                dir.display()
            ),
            "pass the directory holding phoenix_hypervisor_config.json with --config",
        );
        return Err(exit::USAGE);
    }
    let v = phoenix_model::validate_dir(dir);
    let findings = v.findings();
    let (errors, warnings) = report::counts(&findings);
    if errors > 0 {
        let errors: Vec<_> = findings
            .into_iter()
            .filter(|f| f.severity == phoenix_model::Severity::Error)
            .collect();
        if json {
            // The refusal is the configuration's findings: `validate`'s document, errors only.
            let _ = crate::jsonout::print("validate", &report::with_counts(&errors, 0));
        } else {
            let _ = report::print_findings(&mut stderr, &errors, &v.sources, 0);
            let _ = crate::skipped_note(&mut stderr, v.checks_skipped);
        }
        crate::failure::error(
            "the configuration has errors; nothing was planned",
            &format!(
                "`phoenix validate --config {}` shows them with the {warnings} warnings",
                dir.display()
            ),
        );
        return Err(exit::FAILED);
    }
    if warnings > 0 {
        let _ = writeln!(
            stderr,
            "note: {warnings} validation warnings (`phoenix validate --config {}` lists them)",
            dir.display()
        );
    }
    let ignored = phoenix_model::notyet::ignored(&v);
    v.desired.map(|d| (d, ignored)).ok_or(exit::FAILED)
}

/// The bytes of a secret. Plaintext works (validation warned about it).
pub fn resolve_secret(s: &Secret) -> Result<Vec<u8>, String> {
    match s {
        Secret::Plain(p) => Ok(p.as_bytes().to_vec()),
        Secret::Env(name) => std::env::var(name)
            .map(String::into_bytes)
            .map_err(|_| format!("environment variable {name} is not set")),
        Secret::File(path) => {
            use phoenix_model::input::{InputKind, read_regular};
            read_regular(std::path::Path::new(path), InputKind::Secret)
                .map(|mut b| {
                    while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                        b.pop();
                    }
                    b
                })
                .map_err(|e| format!("secret file: {e}"))
        }
    }
}

/// The connection values the configuration names (`proxmox_api`), by the `PROXMOX_VE_*`
/// variable they stand for: the defaults under flags and the environment. Credentials are a
/// unit: with `credentials_given` (a token, username or password from a flag or the
/// environment) the configuration's are ignored, never mixed in or resolved. Its secrets are
/// resolved here otherwise, so a reference that cannot be read is an error naming the key,
/// not a missing setting.
pub fn pve_defaults(
    d: &phoenix_model::DesiredState,
    credentials_given: bool,
) -> Result<std::collections::BTreeMap<&'static str, String>, String> {
    use phoenix_pve::connection as c;
    let mut out = std::collections::BTreeMap::new();
    let Some(p) = &d.proxmox_api else {
        return Ok(out);
    };
    let plain = [
        (c::ENV_ENDPOINT, &p.endpoint),
        (c::ENV_NODE, &p.node),
        (c::ENV_CA_FILE, &p.ca_file),
        (c::ENV_FINGERPRINT, &p.fingerprint),
    ];
    for (name, value) in plain {
        if let Some(v) = value {
            out.insert(name, v.clone());
        }
    }
    if credentials_given {
        return Ok(out);
    }
    if let Some(u) = &p.username {
        out.insert(c::ENV_USERNAME, u.clone());
    }
    let secrets = [
        (c::ENV_API_TOKEN, &p.api_token, "api_token"),
        (c::ENV_PASSWORD, &p.password, "password"),
    ];
    for (name, secret, key) in secrets {
        if let Some(s) = secret {
            let bytes = resolve_secret(s).map_err(|e| format!("proxmox_api.{key}: {e}"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("proxmox_api.{key}: the secret is not UTF-8"))?;
            out.insert(name, text);
        }
    }
    Ok(out)
}
