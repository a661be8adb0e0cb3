//! Apply-time material for the provision steps on a node: step-ca's CA files for the CA
//! guest, from phoenix's CA directory (`phoenix ca init`: root and intermediate certificates,
//! the intermediate key as it lies on disk — passphrase-encrypted PKCS#8 when the CA is
//! encrypted, so step-ca opens it with the same passphrase as its password file) and the JWK
//! provisioner's key (for `ca.json`). Nothing here is printed; the caller passes the map to
//! the executor, which writes each file 0600/0644 owned by `step` in the CA guest only.

use std::collections::BTreeMap;
use std::path::Path;

use phoenix_model::DesiredState;
use phoenix_model::input::{InputKind, read_text};
use phoenix_model::model::GuestId;
use phoenix_pki::stepca::ProvisionerKey;
use phoenix_pki::{CaStore, Passphrase};
use phoenix_plan::provision::{StepCaMaterial, step_ca_materials};

/// Material by (guest, name), as [`phoenix_exec::guest::provision::Materials`] reads it.
pub type MaterialMap = BTreeMap<(GuestId, String), String>;

/// step-ca's material from `ca_dir` (opened with `passphrase` when its keys are encrypted)
/// and the provisioner key file; `step_ca_password` is the password file's text for an
/// unencrypted CA. Notes say what is left out and why.
pub fn from_ca_dir(
    d: &DesiredState,
    ca_dir: &Path,
    passphrase: Option<&[u8]>,
    step_ca_password: Option<&[u8]>,
    provisioner_key: Option<&Path>,
) -> Result<(MaterialMap, Vec<String>), String> {
    let ca = CaStore::open(ca_dir, passphrase.map(Passphrase::new))
        .map_err(|e| format!("CA directory {}: {e}", ca_dir.display()))?;
    let public = ca.public();
    let mut notes = Vec::new();
    let encrypted = public.is_encrypted();
    let key_text = if encrypted {
        let path = ca_dir.join(phoenix_pki::ca::INTERMEDIATE_KEY);
        read_text(&path, InputKind::Material).map_err(|e| e.to_string())?
    } else {
        ca.intermediate_key_pem().expose().to_string()
    };
    let password = match (encrypted, passphrase, step_ca_password) {
        (true, Some(p), _) => String::from_utf8(p.to_vec())
            .map_err(|_| "the CA passphrase is not UTF-8 (step-ca reads it as text)".to_string())?,
        (_, _, Some(p)) => String::from_utf8(p.to_vec())
            .map_err(|_| "step_ca.password is not UTF-8".to_string())?,
        _ => "unused: the intermediate key is not encrypted".to_string(),
    };
    let provisioner = match provisioner_key {
        Some(path) => {
            let text = read_text(path, InputKind::Material).map_err(|e| e.to_string())?;
            let key = ProvisionerKey::from_file_contents(&d.step_ca.provisioner, &text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Some(key.public_jwk())
        }
        None => {
            notes.push(
                "ca.json not supplied: pass --provisioner-key (the JWK provisioner's key)"
                    .to_string(),
            );
            None
        }
    };
    let (guest, files) = step_ca_materials(
        d,
        &StepCaMaterial {
            root_pem: public.root_pem(),
            intermediate_pem: public.intermediate_pem(),
            intermediate_key: &key_text,
            password: &password,
            provisioner: provisioner.as_ref(),
        },
    )?;
    let map = files
        .into_iter()
        .map(|(name, text)| ((guest, name.to_string()), text))
        .collect();
    Ok((map, notes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use phoenix_pki::CaOptions;

    fn homelab() -> DesiredState {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        phoenix_model::validate_dir(&dir).desired.unwrap()
    }

    fn names(m: &MaterialMap) -> Vec<(u32, &str)> {
        m.keys().map(|(g, n)| (g.0, n.as_str())).collect()
    }

    #[test]
    fn encrypted_ca_gives_its_key_as_on_disk_and_the_passphrase_as_password() {
        let d = homelab();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = CaOptions::from_settings(&d.step_ca);
        opts.passphrase = Some(Passphrase::new("correct horse"));
        opts.kdf_iterations = 1000;
        CaStore::init(dir.path(), &opts, std::time::SystemTime::now()).unwrap();
        let key = ProvisionerKey::generate(&d.step_ca.provisioner).unwrap();
        let key_file = dir.path().join("provisioner.pem");
        std::fs::write(&key_file, key.pkcs8_pem.expose().as_str()).unwrap();

        let (m, notes) = from_ca_dir(
            &d,
            dir.path(),
            Some(b"correct horse"),
            None,
            Some(&key_file),
        )
        .unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        let ca = d.roles.ca.unwrap().0;
        assert_eq!(
            names(&m),
            vec![
                (ca, "ca.json"),
                (ca, "intermediate certificate"),
                (ca, "intermediate key"),
                (ca, "root certificate"),
                (ca, "step-ca password"),
            ]
        );
        let get = |n: &str| m[&(GuestId(ca), n.to_string())].clone();
        assert!(get("intermediate key").contains("BEGIN ENCRYPTED PRIVATE KEY"));
        assert_eq!(
            get("intermediate key"),
            std::fs::read_to_string(dir.path().join("intermediate.key")).unwrap()
        );
        assert_eq!(get("step-ca password"), "correct horse\n");
        let ca_json: serde_json::Value = serde_json::from_str(&get("ca.json")).unwrap();
        assert_eq!(
            ca_json["authority"]["provisioners"][0]["key"]["x"],
            serde_json::to_value(key.key.public_jwk()).unwrap()["x"]
        );

        // The wrong passphrase opens nothing; no provisioner key: no ca.json, said so.
        assert!(from_ca_dir(&d, dir.path(), Some(b"wrong"), None, None).is_err());
        let (m, notes) = from_ca_dir(&d, dir.path(), Some(b"correct horse"), None, None).unwrap();
        assert!(!m.contains_key(&(GuestId(ca), "ca.json".to_string())));
        assert!(notes[0].contains("--provisioner-key"), "{notes:?}");
    }

    /// The material as a node gets it, read by a real step-ca (the one `scripts/setup.sh`
    /// builds): it decrypts the intermediate key with the password file and serves HTTPS. The
    /// CA directory is a temporary one and the address a loopback one (rewritten in ca.json).
    #[test]
    fn a_real_step_ca_starts_from_the_encrypted_material() {
        let Some(bin) = phoenix_lab::stepca::step_ca_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI: step-ca is missing (scripts/build-step-ca.sh)"
            );
            eprintln!("skipping: no step-ca binary");
            return;
        };
        let mut d = homelab();
        let node = tempfile::tempdir().unwrap();
        let dir = node.path().join("ca");
        d.step_ca.ca_dir = dir.display().to_string();
        let ca_dir = tempfile::tempdir().unwrap();
        let mut opts = CaOptions::from_settings(&d.step_ca);
        opts.passphrase = Some(Passphrase::new("correct horse"));
        opts.kdf_iterations = 1000;
        CaStore::init(ca_dir.path(), &opts, std::time::SystemTime::now()).unwrap();
        let key = ProvisionerKey::generate(&d.step_ca.provisioner).unwrap();
        let key_file = ca_dir.path().join("provisioner.pem");
        std::fs::write(&key_file, key.pkcs8_pem.expose().as_str()).unwrap();
        let (m, _) = from_ca_dir(
            &d,
            ca_dir.path(),
            Some(b"correct horse"),
            None,
            Some(&key_file),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.4:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Where step-ca's provision steps put each material (phoenix-plan's step list).
        let ca = d.roles.ca.unwrap();
        for (name, rel) in [
            ("ca.json", "config/ca.json"),
            ("root certificate", "certs/root_ca.crt"),
            ("intermediate certificate", "certs/intermediate_ca.crt"),
            ("intermediate key", "secrets/intermediate_ca_key"),
            ("step-ca password", "secrets/password"),
        ] {
            let mut text = m[&(ca, name.to_string())].clone();
            if name == "ca.json" {
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["address"] = format!("127.0.0.4:{port}").into();
                text = v.to_string();
            }
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let log = node.path().join("step-ca.log");
        let mut child = std::process::Command::new(bin)
            .arg(dir.join("config/ca.json"))
            .arg("--password-file")
            .arg(dir.join("secrets/password"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(node.path().join("step-ca.err")).unwrap())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        let mut up = false;
        while t.elapsed() < std::time::Duration::from_secs(20) {
            if std::net::TcpStream::connect(("127.0.0.4", port)).is_ok() {
                up = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let err = std::fs::read_to_string(node.path().join("step-ca.err")).unwrap_or_default();
        assert!(up, "step-ca did not serve: {err}");
    }

    #[test]
    fn unencrypted_ca_gives_the_plain_key_and_the_configured_password() {
        let d = homelab();
        let dir = tempfile::tempdir().unwrap();
        CaStore::init(
            dir.path(),
            &CaOptions::from_settings(&d.step_ca),
            std::time::SystemTime::now(),
        )
        .unwrap();
        let (m, _) = from_ca_dir(&d, dir.path(), None, Some(b"s3cret"), None).unwrap();
        let ca = d.roles.ca.unwrap();
        assert!(m[&(ca, "intermediate key".to_string())].contains("BEGIN PRIVATE KEY"));
        assert_eq!(m[&(ca, "step-ca password".to_string())], "s3cret\n");
    }
}
