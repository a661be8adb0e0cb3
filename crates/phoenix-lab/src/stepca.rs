//! step-ca in the CA guest (the model's CA role), started by `lab up` with the ingress when
//! the binary is found ([`step_ca_binary`], [`crate::peers`]: `$PHOENIX_LAB_STEP_CA`, beside
//! phoenix, `/usr/local/share/phoenix`, `PATH`, `.tools/bin/step-ca` in a checkout — built by
//! `scripts/build-step-ca.sh`); without it the lab comes up without step-ca and says so.
//!
//! Material (the root key never leaves `/run/phoenix-lab/<prefix>/ca`): the lab CA's root and
//! intermediate certificates and the intermediate key (0600) under the CA guest's root at
//! [`STEP_DIR`] in step's layout, `ca.json` rendered by phoenix ([`ca_json`]) for the guest's
//! mesh address and the configured port with those paths rewritten into the guest root, a JWK
//! provisioner key generated per run and kept in the state dir ([`PROVISIONER_KEY_FILE`],
//! 0600, step's private JWK form), a password file (0600; the intermediate key is not
//! encrypted, step-ca only wants the flag), `STEPPATH` and `HOME` inside the guest root.
//! Process: `env STEPPATH=… HOME=… step-ca CA_JSON --password-file F` in the CA guest's
//! namespace, foreground, like the other services; ready when it holds its TCP port.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use phoenix_model::model::DesiredState;
use phoenix_pki::CaStore;
use phoenix_pki::stepca::{
    CaJsonParams, LeafClaims, ProvisionerKey, StepCaClient, StepCaIssuer, StepCaPaths,
    ca_guest_mesh_address, ca_json,
};
use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::peers::Peer;
use crate::roots::{guest_root, under};
use crate::services::{Listen, Pending, launch};
use crate::topology::{LabTopology, NsRole};

/// Environment variable naming the step-ca binary.
pub const STEP_CA_ENV: &str = "PHOENIX_LAB_STEP_CA";
/// step-ca's directory inside the CA guest.
pub const STEP_DIR: &str = "/etc/step-ca";
/// The JWK provisioner's private key in the lab's state dir.
pub const PROVISIONER_KEY_FILE: &str = "step-ca-provisioner.json";
/// Name of the ACME provisioner in `ca.json`.
const ACME: &str = "acme";

/// A running step-ca, as recorded in the up report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCaState {
    /// `https://address:port`.
    pub url: String,
    pub guest: u32,
    pub ns: String,
    pub provisioner: String,
    /// Host path of the provisioner's private JWK (0600, state dir).
    pub provisioner_key: PathBuf,
    /// Host path of the rendered `ca.json` (in the guest root).
    pub ca_json: PathBuf,
}

/// What [`prepare`] did.
pub(crate) enum Outcome {
    /// The model has no CA guest with a mesh address, or no namespace for it.
    NoCa,
    /// Not started, with the reason for the report.
    Skipped(String),
    /// Launched; wait for its port.
    Started(Box<Started>),
}

/// A launched step-ca: wait until it holds its port.
pub(crate) struct Started {
    pub(crate) pending: Pending,
    pub(crate) state: StepCaState,
}

/// The step-ca binary (see the module doc).
pub fn step_ca_binary() -> Option<PathBuf> {
    crate::peers::find(&STEP_CA)
}

/// The step-ca peer (built from source by `scripts/build-step-ca.sh` into `.tools/bin`).
pub const STEP_CA: Peer = Peer {
    env: STEP_CA_ENV,
    name: "step-ca",
    in_checkout: ".tools/bin/step-ca",
    get: "run scripts/build-step-ca.sh in a checkout, or put step-ca's binary in \
          /usr/local/share/phoenix/ or beside phoenix",
};

fn err(reason: impl Into<String>) -> LabError {
    LabError::Ingress(format!("step-ca: {}", reason.into()))
}

/// Write `content` to `path` (parents created) with `mode`.
fn write_mode(path: &Path, content: &str, mode: u32) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| LabError::io(path, e))?;
    f.write_all(content.as_bytes())
        .map_err(|e| LabError::io(path, e))
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The lab step-ca's provisioner key (in the state dir `dir`, 0600): the one of an earlier
/// run, else a new one, so `ca.json` (step-ca's own and the plan's material) stays the same
/// across runs and restarts.
pub(crate) fn provisioner_key(name: &str, dir: &Path) -> Result<ProvisionerKey, LabError> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let key_file = dir.join(PROVISIONER_KEY_FILE);
    if let Some(k) = std::fs::read_to_string(&key_file)
        .ok()
        .and_then(|jwk| ProvisionerKey::from_file_contents(name, &jwk).ok())
    {
        return Ok(k);
    }
    let generated = ProvisionerKey::generate(name).map_err(|e| err(e.to_string()))?;
    write_mode(&key_file, generated.private_jwk.expose(), 0o600)?;
    Ok(generated.key)
}

/// Set up step-ca's files for the CA guest of `d` and launch it (not waited for).
pub(crate) fn prepare(
    d: &DesiredState,
    t: &LabTopology,
    ca: &CaStore,
    dir: &Path,
) -> Result<Outcome, LabError> {
    let Ok((id, addr)) = ca_guest_mesh_address(d) else {
        return Ok(Outcome::NoCa);
    };
    let Some(ns) = t
        .namespaces
        .iter()
        .find(|n| matches!(n.role, NsRole::Guest { id: g, .. } if g == id.0))
        .map(|n| n.name.clone())
    else {
        return Ok(Outcome::NoCa);
    };
    let Some(bin) = step_ca_binary() else {
        return Ok(Outcome::Skipped(format!(
            "step-ca is not started in guest {id}: {}",
            crate::peers::not_found(&STEP_CA)
        )));
    };
    let root = guest_root(&t.prefix, id.0);
    let step_dir = under(&root, STEP_DIR);
    let paths = StepCaPaths::under(&s(&step_dir));
    let public = ca.public();
    write_mode(Path::new(&paths.root), public.root_pem(), 0o644)?;
    write_mode(Path::new(&paths.crt), public.intermediate_pem(), 0o644)?;
    write_mode(
        Path::new(&paths.key),
        ca.intermediate_key_pem().expose(),
        0o600,
    )?;
    std::fs::create_dir_all(&paths.db).map_err(|e| LabError::io(&paths.db, e))?;
    let name = d.step_ca.provisioner.clone();
    let key_file = dir.join(PROVISIONER_KEY_FILE);
    let public_jwk = provisioner_key(&name, dir)?.public_jwk();
    let rendered = ca_json(&CaJsonParams {
        settings: &d.step_ca,
        mesh_address: addr,
        paths: &paths,
        provisioner_key: &public_jwk,
        claims: LeafClaims::default(),
        acme_provisioner: ACME,
    });
    let ca_json_file = step_dir.join("config/ca.json");
    write_mode(&ca_json_file, &rendered.to_file_text(), 0o644)?;
    let password = step_dir.join("secrets/password");
    write_mode(
        &password,
        "unused: the intermediate key is not encrypted\n",
        0o600,
    )?;
    let home = under(&root, "/root");
    std::fs::create_dir_all(&home).map_err(|e| LabError::io(&home, e))?;
    let argv = vec![
        "env".into(),
        format!("STEPPATH={}", s(&step_dir)),
        format!("HOME={}", s(&home)),
        s(&bin),
        s(&ca_json_file),
        "--password-file".into(),
        s(&password),
    ];
    let port = d.step_ca.port;
    let pending = launch(
        dir,
        "step-ca",
        &ns,
        &argv,
        "step-ca.out",
        vec![Listen::TcpPort(port)],
    )?;
    Ok(Outcome::Started(Box::new(Started {
        pending,
        state: StepCaState {
            url: format!("https://{}", host_port(addr, port)),
            guest: id.0,
            ns,
            provisioner: name,
            provisioner_key: key_file,
            ca_json: ca_json_file,
        },
    })))
}

fn host_port(addr: IpAddr, port: u16) -> String {
    phoenix_render::traefik::ingress::host_port(addr, port)
}

/// Run `f` with the running step-ca `sc` as the issuer (JWK provisioner, the key phoenix
/// generated for it). The HTTP client is built and used on a thread that entered the CA
/// guest's network namespace (setns changes only that thread).
pub(crate) fn with_issuer<T: Send>(
    sc: &StepCaState,
    root_pem: &str,
    f: impl FnOnce(&dyn phoenix_pki::LeafIssuer) -> T + Send,
) -> Result<T, LabError> {
    let netns = Path::new("/run/netns").join(&sc.ns);
    let handle = std::fs::File::open(&netns).map_err(|e| LabError::io(&netns, e))?;
    let jwk = std::fs::read_to_string(&sc.provisioner_key)
        .map_err(|e| LabError::io(&sc.provisioner_key, e))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> Result<T, LabError> {
                nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| err(format!("setns into {}: {e}", sc.ns)))?;
                drop(handle);
                let client = StepCaClient::new(&sc.url, root_pem)
                    .map_err(|e| err(format!("client for {}: {e}", sc.url)))?;
                let key = ProvisionerKey::from_file_contents(&sc.provisioner, &jwk)
                    .map_err(|e| err(format!("provisioner key: {e}")))?;
                let issuer = StepCaIssuer::connect(client, key)
                    .map_err(|e| err(format!("connect to {}: {e}", sc.url)))?;
                Ok(f(&issuer))
            })
            .join()
            .map_err(|_| err("the issuing thread panicked"))?
    })
}
