//! `phoenix ca init|status|rotate|issue`: the internal CA on the hypervisor and issuing the
//! certificate manifest, with the built-in CA or through an online step-ca.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use phoenix_pki::stepca::{ProvisionerKey, StepCaClient, StepCaIssuer};
use phoenix_pki::{
    CaOptions, CaPublic, CaStore, IssueOptions, LeafIssuer, Passphrase, RenewalPolicy,
};

use crate::cli::{CaArgs, CaCommand, CaDirArgs, CaIssueArgs, OutputFormat, PassphraseArgs};
use crate::{config, exit};

pub fn run(args: &CaArgs) -> u8 {
    match &args.command {
        CaCommand::Init(a) => init(a),
        CaCommand::Status(a) => status(a),
        CaCommand::Rotate(a) => rotate(a),
        CaCommand::Issue(a) => issue(a),
    }
}

fn fail(msg: impl std::fmt::Display, hint: &str) -> u8 {
    crate::failure::error(&msg.to_string(), hint);
    exit::FAILED
}

/// The passphrase: `--passphrase-env`/`--passphrase-file`, else `step_ca.password` of
/// `--config`, else none (unencrypted keys).
fn passphrase(a: &PassphraseArgs, config_dir: Option<&Path>) -> Result<Option<Passphrase>, String> {
    let (secret, key) = match passphrase_secret(a, None) {
        Some(s) => (Some(s), ""),
        None => match config_dir {
            Some(dir) => {
                let d =
                    config::load(dir).map_err(|_| "the configuration has errors".to_string())?;
                (d.step_ca.password.clone(), "step_ca.password: ")
            }
            None => (None, ""),
        },
    };
    secret
        .map(|s| {
            config::resolve_secret(&s)
                .map(Passphrase::new)
                .map_err(|e| format!("{key}{e}"))
        })
        .transpose()
}

fn options(a: &CaDirArgs) -> Result<CaOptions, String> {
    let mut o = match &a.config {
        Some(dir) => {
            let d = config::load(dir).map_err(|_| "the configuration has errors".to_string())?;
            CaOptions::from_settings(&d.step_ca)
        }
        None => CaOptions::default(),
    };
    o.passphrase = passphrase(&a.passphrase, a.config.as_deref())?;
    Ok(o)
}

fn print<T: serde::Serialize + std::fmt::Display>(v: &T, output: OutputFormat) {
    let mut out = std::io::stdout().lock();
    let _ = match output {
        OutputFormat::Json => crate::jsonout::print("ca", v),
        OutputFormat::Text => writeln!(out, "{v}"),
    };
}

fn init(a: &CaDirArgs) -> u8 {
    let opts = match options(a) {
        Ok(o) => o,
        Err(e) => return fail(e, "fix the configuration or the passphrase source"),
    };
    match CaStore::init(&a.ca_dir, &opts, SystemTime::now()).and_then(|ca| ca.status()) {
        Ok(s) => {
            print(&s, a.output);
            exit::OK
        }
        Err(e) => fail(
            e,
            "the CA directory must be new or empty; `phoenix ca status` shows an existing one",
        ),
    }
}

fn status(a: &CaDirArgs) -> u8 {
    match CaPublic::load(&a.ca_dir).and_then(|p| p.status()) {
        Ok(s) => {
            print(&s, a.output);
            exit::OK
        }
        Err(e) => fail(e, "create the CA with `phoenix ca init --ca-dir DIR`"),
    }
}

fn rotate(a: &CaDirArgs) -> u8 {
    let pass = match passphrase(&a.passphrase, a.config.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                e,
                "give the CA passphrase with --passphrase-env or --passphrase-file",
            );
        }
    };
    let result = CaStore::open(&a.ca_dir, pass).and_then(|mut ca| ca.rotate(SystemTime::now()));
    match result {
        Ok(s) => {
            print(&s, a.output);
            let _ = writeln!(
                anstream::stderr(),
                "note: both roots stay trusted until every certificate is re-issued; run `phoenix ca issue` next\n  hint: `phoenix plan --ca-dir {}` shows the re-issue of every certificate and the re-trust of every guest",
                a.ca_dir.display()
            );
            exit::OK
        }
        Err(e) => fail(e, "check the CA directory and passphrase"),
    }
}

fn issue(a: &CaIssueArgs) -> u8 {
    let desired = match config::load(&a.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = IssueOptions {
        policy: RenewalPolicy {
            renew_after_fraction: a.renew_after,
        },
        apply_ownership: true,
    };
    if !(a.renew_after > 0.0 && a.renew_after <= 1.0) {
        let _ = writeln!(
            anstream::stderr(),
            "error: --renew-after must be in (0, 1]\n  hint: 0.66 renews at two thirds of the lifetime"
        );
        return exit::USAGE;
    }
    let now = SystemTime::now();
    let report = if let Some(url) = &a.step_ca {
        let (Some(root), Some(name), Some(key)) =
            (&a.step_ca_root, &a.provisioner, &a.provisioner_key)
        else {
            let _ = writeln!(
                anstream::stderr(),
                "error: --step-ca needs --step-ca-root, --provisioner and --provisioner-key"
            );
            return exit::USAGE;
        };
        use phoenix_model::input::{InputKind, read_text};
        let issuer = read_text(root, InputKind::Material)
            .map_err(|e| e.to_string())
            .and_then(|root_pem| StepCaClient::new(url, &root_pem).map_err(|e| e.to_string()))
            .and_then(|client| {
                let text = read_text(key, InputKind::Material).map_err(|e| e.to_string())?;
                let prov =
                    ProvisionerKey::from_file_contents(name, &text).map_err(|e| e.to_string())?;
                StepCaIssuer::connect(client, prov).map_err(|e| e.to_string())
            });
        match issuer {
            Ok(i) => {
                phoenix_pki::issue_manifest(&desired, &i as &dyn LeafIssuer, &a.out, now, &opts)
            }
            Err(e) => {
                return fail(
                    e,
                    "check the step-ca URL, its root certificate and the provisioner key",
                );
            }
        }
    } else {
        let Some(ca_dir) = &a.ca_dir else {
            let _ = writeln!(
                anstream::stderr(),
                "error: give --ca-dir DIR (built-in CA) or --step-ca URL"
            );
            return exit::USAGE;
        };
        let mounted = phoenix_pki::ca::mounted_into(&desired, ca_dir);
        if !mounted.is_empty() {
            let ids: Vec<String> = mounted.iter().map(|i| i.to_string()).collect();
            return fail(
                format!(
                    "the CA directory {} is mounted into guest(s) {}",
                    ca_dir.display(),
                    ids.join(", ")
                ),
                "the CA keys must stay on the hypervisor; remove those mount points",
            );
        }
        let pass = match passphrase(&a.passphrase, Some(&a.config)) {
            Ok(p) => p,
            Err(e) => {
                return fail(
                    e,
                    "give the CA passphrase with --passphrase-env or --passphrase-file",
                );
            }
        };
        let mut ca = match CaStore::open(ca_dir, pass) {
            Ok(c) => c,
            Err(e) => return fail(e, "create the CA with `phoenix ca init --ca-dir DIR`"),
        };
        let report =
            phoenix_pki::issue_manifest(&desired, &ca as &dyn LeafIssuer, &a.out, now, &opts);
        if let Some(ids) = report.issuer_key_ids()
            && let Err(e) = ca.public_mut().prune_previous(&ids)
        {
            let _ = writeln!(
                anstream::stderr(),
                "warning: could not retire the previous root: {e}"
            );
        }
        report
    };
    print(&report, a.output);
    if report.has_errors() {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// Where the CA passphrase comes from: `--passphrase-env`, `--passphrase-file`, else the
/// configuration's `step_ca.password` when given.
pub(crate) fn passphrase_secret(
    a: &PassphraseArgs,
    config_password: Option<&phoenix_model::model::Secret>,
) -> Option<phoenix_model::model::Secret> {
    if let Some(name) = &a.passphrase_env {
        Some(phoenix_model::model::Secret::Env(name.clone()))
    } else if let Some(path) = &a.passphrase_file {
        Some(phoenix_model::model::Secret::File(
            path.display().to_string(),
        ))
    } else {
        config_password.cloned()
    }
}
