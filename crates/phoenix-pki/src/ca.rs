//! The built-in CA directory: a root and an intermediate (ECDSA P-256) with random serials,
//! explicit validity and proper extensions, and `state.json` for rotation.
//!
//! Layout (dir 0700): `root.crt`, `intermediate.crt`, `state.json` (0644, public data) and
//! `root.key`, `intermediate.key` (0600, optionally passphrase-encrypted PKCS#8). Every file is
//! written atomically. `state.json` keeps the *previous* generations' certificates (never their
//! keys: the old keys are deleted on rotation) until no delivered certificate chains to them.
//! Rotation writes several files and is not atomic as a whole; `open` detects a half-rotated
//! directory by comparing fingerprints with `state.json`.
//!
//! I/O: reads and writes the CA directory. Time comes in as a parameter.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use phoenix_model::model::{DesiredState, GuestId, StepCaSettings};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SerialNumber,
};
use serde::{Deserialize, Serialize};

use crate::error::PkiError;
use crate::fsio;
use crate::inspect::{self, CertSummary};
use crate::issue::{self, IssuedLeaf, IssuerIdentity, LeafIssuer, LeafRequest, RandomSerials};
use crate::issue::{SerialSource, unix_seconds};
use crate::keyfile;
use crate::secret::{KeyPem, Passphrase};

pub const ROOT_CERT: &str = "root.crt";
pub const ROOT_KEY: &str = "root.key";
pub const INTERMEDIATE_CERT: &str = "intermediate.crt";
pub const INTERMEDIATE_KEY: &str = "intermediate.key";
pub const STATE: &str = "state.json";

/// How to create a CA.
#[derive(Debug, Clone)]
pub struct CaOptions {
    pub root_name: String,
    pub intermediate_name: String,
    /// Root validity (default 10 years).
    pub root_validity_days: u32,
    /// Intermediate validity (default 5 years; never beyond the root's).
    pub intermediate_validity_days: u32,
    /// Encrypt both private keys with this passphrase.
    pub passphrase: Option<Passphrase>,
    /// PBKDF2 iterations when encrypting (default 600,000).
    pub kdf_iterations: u32,
}

impl Default for CaOptions {
    fn default() -> CaOptions {
        CaOptions {
            root_name: "Phoenix Root CA".to_string(),
            intermediate_name: "Phoenix Intermediate CA".to_string(),
            root_validity_days: 3650,
            intermediate_validity_days: 1825,
            passphrase: None,
            kdf_iterations: keyfile::DEFAULT_KDF_ITERATIONS,
        }
    }
}

impl CaOptions {
    /// Names from the configuration's `step_ca` block.
    pub fn from_settings(s: &StepCaSettings) -> CaOptions {
        CaOptions {
            root_name: s.root_name.clone(),
            intermediate_name: s.intermediate_name.clone(),
            ..CaOptions::default()
        }
    }
}

/// One root + intermediate pair (public parts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaGeneration {
    pub generation: u32,
    pub root_fingerprint: String,
    /// Lower-case hex SKI of the intermediate = AKI of every leaf it signed.
    pub intermediate_key_id: String,
    pub created_unix: i64,
    pub root_pem: String,
    pub intermediate_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaState {
    format: u32,
    encrypted: bool,
    kdf_iterations: u32,
    root_name: String,
    intermediate_name: String,
    root_validity_days: u32,
    intermediate_validity_days: u32,
    generation: u32,
    root_fingerprint: String,
    intermediate_key_id: String,
    created_unix: i64,
    /// Older generations still trusted, newest first.
    previous: Vec<CaGeneration>,
}

/// What `phoenix ca status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CaStatus {
    pub dir: PathBuf,
    pub encrypted: bool,
    pub generation: u32,
    /// `step ca bootstrap --fingerprint` form: lower-case hex SHA-256 of the root DER.
    pub root_fingerprint: String,
    pub root: CertSummary,
    pub intermediate: CertSummary,
    /// Roots kept trusted during a rotation overlap.
    pub previous_roots: Vec<CertSummary>,
}

impl fmt::Display for CaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "CA directory  {}", self.dir.display())?;
        writeln!(f, "generation    {}", self.generation)?;
        let enc = if self.encrypted { "yes" } else { "no" };
        writeln!(f, "keys encrypted {enc}")?;
        writeln!(f, "fingerprint   {}", self.root_fingerprint)?;
        for (what, c) in [("root", &self.root), ("intermediate", &self.intermediate)] {
            writeln!(f, "{what:<13} {}", c.subject)?;
            writeln!(f, "  serial      {}", c.serial)?;
            writeln!(f, "  valid       {} → {}", c.not_before, c.not_after)?;
        }
        for p in &self.previous_roots {
            writeln!(
                f,
                "previous root {} ({}, until {})",
                p.subject, p.fingerprint_sha256, p.not_after
            )?;
        }
        Ok(())
    }
}

/// The public side of a CA directory: certificates and state, no private keys. Enough for
/// `status`, trust distribution and renewal decisions.
#[derive(Debug, Clone)]
pub struct CaPublic {
    dir: PathBuf,
    state: CaState,
    root_pem: String,
    intermediate_pem: String,
}

fn bad(path: &Path, reason: impl Into<String>) -> PkiError {
    PkiError::BadCaFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn single_der(path: &Path, pem: &str) -> Result<Vec<u8>, PkiError> {
    let mut all = inspect::pem_certificates(pem).map_err(|e| bad(path, e.to_string()))?;
    match all.len() {
        1 => Ok(all.remove(0)),
        n => Err(bad(path, format!("expected one certificate, found {n}"))),
    }
}

impl CaPublic {
    /// Load certificates and state from `dir` (no keys are read).
    pub fn load(dir: &Path) -> Result<CaPublic, PkiError> {
        let state_path = dir.join(STATE);
        if !state_path.exists() {
            return Err(PkiError::NotInitialised {
                path: dir.to_path_buf(),
                file: STATE.to_string(),
            });
        }
        let text = fsio::read_required(&state_path)?;
        let state: CaState = serde_json::from_str(&text).map_err(|source| PkiError::State {
            path: state_path.clone(),
            source,
        })?;
        let root_pem = fsio::read_required(&dir.join(ROOT_CERT))?;
        let intermediate_pem = fsio::read_required(&dir.join(INTERMEDIATE_CERT))?;
        let root_der = single_der(&dir.join(ROOT_CERT), &root_pem)?;
        if inspect::fingerprint_sha256(&root_der) != state.root_fingerprint {
            return Err(bad(
                &dir.join(ROOT_CERT),
                "does not match state.json (interrupted rotation or replaced file)",
            ));
        }
        let int_der = single_der(&dir.join(INTERMEDIATE_CERT), &intermediate_pem)?;
        let ski = inspect::summary(&int_der)?.subject_key_id;
        if ski.as_deref() != Some(state.intermediate_key_id.as_str()) {
            return Err(bad(
                &dir.join(INTERMEDIATE_CERT),
                "does not match state.json",
            ));
        }
        Ok(CaPublic {
            dir: dir.to_path_buf(),
            state,
            root_pem,
            intermediate_pem,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }
    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate_pem
    }
    pub fn root_fingerprint(&self) -> &str {
        &self.state.root_fingerprint
    }
    pub fn is_encrypted(&self) -> bool {
        self.state.encrypted
    }
    /// Older generations still trusted (rotation overlap), newest first.
    pub fn previous(&self) -> &[CaGeneration] {
        &self.state.previous
    }

    /// The current generation as data.
    pub fn current(&self) -> CaGeneration {
        CaGeneration {
            generation: self.state.generation,
            root_fingerprint: self.state.root_fingerprint.clone(),
            intermediate_key_id: self.state.intermediate_key_id.clone(),
            created_unix: self.state.created_unix,
            root_pem: self.root_pem.clone(),
            intermediate_pem: self.intermediate_pem.clone(),
        }
    }

    /// Who issues now (what renewal decisions compare against).
    pub fn identity(&self) -> IssuerIdentity {
        IssuerIdentity {
            intermediate_key_id: self.state.intermediate_key_id.clone(),
            root_fingerprint: self.state.root_fingerprint.clone(),
        }
    }

    pub fn status(&self) -> Result<CaStatus, PkiError> {
        let root = inspect::summary(&single_der(&self.dir, &self.root_pem)?)?;
        let intermediate = inspect::summary(&single_der(&self.dir, &self.intermediate_pem)?)?;
        let previous_roots = self
            .state
            .previous
            .iter()
            .map(|g| inspect::summary(&single_der(&self.dir, &g.root_pem)?))
            .collect::<Result<_, _>>()?;
        Ok(CaStatus {
            dir: self.dir.clone(),
            encrypted: self.state.encrypted,
            generation: self.state.generation,
            root_fingerprint: self.state.root_fingerprint.clone(),
            root,
            intermediate,
            previous_roots,
        })
    }

    /// Drop previous generations that no delivered certificate chains to any more.
    /// `in_use` = AKIs (lower-case hex) of every certificate now at its destination, e.g.
    /// [`crate::IssueReport::issuer_key_ids`]. Returns the root fingerprints dropped.
    pub fn prune_previous(&mut self, in_use: &BTreeSet<String>) -> Result<Vec<String>, PkiError> {
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut self.state.previous)
            .into_iter()
            .partition(|g| in_use.contains(&g.intermediate_key_id));
        self.state.previous = keep;
        if !drop.is_empty() {
            self.save_state()?;
        }
        Ok(drop.into_iter().map(|g| g.root_fingerprint).collect())
    }

    fn save_state(&self) -> Result<(), PkiError> {
        let path = self.dir.join(STATE);
        let text = serde_json::to_string_pretty(&self.state).map_err(|source| PkiError::State {
            path: path.clone(),
            source,
        })?;
        fsio::write_atomic(&path, text.as_bytes(), 0o644)
    }
}

/// Guests that mount the CA directory (or a parent of it): the CA keys would be readable there.
pub fn mounted_into(desired: &DesiredState, ca_dir: &Path) -> Vec<GuestId> {
    desired
        .guests
        .values()
        .filter(|g| {
            g.mount_points
                .iter()
                .any(|m| ca_dir.starts_with(Path::new(&m.host_path)))
        })
        .map(|g| g.id)
        .collect()
}

/// A generated root + intermediate with their keys.
struct NewGeneration {
    root_pem: String,
    root_key: KeyPair,
    intermediate_pem: String,
    intermediate_der: Vec<u8>,
    intermediate_key: KeyPair,
}

fn ca_params(
    name: &str,
    generation: u32,
    pathlen: u8,
    serial: [u8; 16],
    not_before: i64,
    not_after: i64,
) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "Phoenix");
    // Distinguishes the generations during a rotation overlap (same CN, different keys).
    dn.push(
        DnType::OrganizationalUnitName,
        format!("generation {generation}"),
    );
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.not_before = issue::offset_time(not_before)?;
    p.not_after = issue::offset_time(not_after)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(pathlen));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn generate(
    names: (&str, &str),
    days: (u32, u32),
    generation: u32,
    serials: &dyn SerialSource,
    now: i64,
) -> Result<NewGeneration, PkiError> {
    let keygen = || {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| PkiError::KeyGeneration { source })
    };
    let nb = now - issue::BACKDATE_SECONDS;
    let root_end = now + i64::from(days.0) * 86_400;
    let int_end = (now + i64::from(days.1) * 86_400).min(root_end);
    let root_key = keygen()?;
    let root_params = ca_params(names.0, generation, 1, serials.serial()?, nb, root_end)?;
    let gen_err = |subject: &str| {
        let subject = subject.to_string();
        move |source| PkiError::Generate { subject, source }
    };
    let root = root_params
        .self_signed(&root_key)
        .map_err(gen_err(names.0))?;
    let intermediate_key = keygen()?;
    let int_params = ca_params(names.1, generation, 0, serials.serial()?, nb, int_end)?;
    let issuer = Issuer::from_params(&root_params, &root_key);
    let intermediate = int_params
        .signed_by(&intermediate_key, &issuer)
        .map_err(gen_err(names.1))?;
    Ok(NewGeneration {
        root_pem: root.pem(),
        intermediate_pem: intermediate.pem(),
        intermediate_der: intermediate.der().to_vec(),
        root_key,
        intermediate_key,
    })
}

/// The CA with its intermediate signing key loaded: issues leaves and rotates.
pub struct CaStore {
    public: CaPublic,
    issuer: Issuer<'static, KeyPair>,
    passphrase: Option<Passphrase>,
    serials: Box<dyn SerialSource + Send + Sync>,
}

impl fmt::Debug for CaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaStore")
            .field("dir", &self.public.dir)
            .field("generation", &self.public.state.generation)
            .field("root_fingerprint", &self.public.state.root_fingerprint)
            .finish_non_exhaustive()
    }
}

impl CaStore {
    /// Create a new CA in `dir` (created 0700 if missing; refused if it already holds a CA).
    pub fn init(dir: &Path, opts: &CaOptions, now: SystemTime) -> Result<CaStore, PkiError> {
        for f in [STATE, ROOT_CERT, ROOT_KEY, INTERMEDIATE_KEY] {
            if dir.join(f).exists() {
                return Err(PkiError::AlreadyInitialised {
                    path: dir.to_path_buf(),
                    file: f.to_string(),
                });
            }
        }
        if opts.root_validity_days == 0 || opts.intermediate_validity_days == 0 {
            return Err(PkiError::InvalidOption {
                option: "validity_days",
                reason: "must be at least 1".to_string(),
            });
        }
        if opts
            .passphrase
            .as_ref()
            .is_some_and(|p| p.expose().is_empty())
        {
            return Err(PkiError::InvalidOption {
                option: "passphrase",
                reason: "is empty".to_string(),
            });
        }
        fsio::ensure_dir(dir, 0o700)?;
        let serials = RandomSerials::new();
        let now = unix_seconds(now);
        let g = generate(
            (&opts.root_name, &opts.intermediate_name),
            (opts.root_validity_days, opts.intermediate_validity_days),
            1,
            &serials,
            now,
        )?;
        let state = CaState {
            format: 1,
            encrypted: opts.passphrase.is_some(),
            kdf_iterations: opts.kdf_iterations.max(1),
            root_name: opts.root_name.clone(),
            intermediate_name: opts.intermediate_name.clone(),
            root_validity_days: opts.root_validity_days,
            intermediate_validity_days: opts.intermediate_validity_days,
            generation: 1,
            root_fingerprint: String::new(),
            intermediate_key_id: String::new(),
            created_unix: now,
            previous: Vec::new(),
        };
        write_generation(dir, state, &g, opts.passphrase.clone(), Box::new(serials))
    }

    /// Open an existing CA; `passphrase` is needed when its keys are encrypted. Only the
    /// intermediate key is decrypted (the root key stays on disk until the next rotation).
    pub fn open(dir: &Path, passphrase: Option<Passphrase>) -> Result<CaStore, PkiError> {
        let public = CaPublic::load(dir)?;
        let key_path = dir.join(INTERMEDIATE_KEY);
        let text = zeroize::Zeroizing::new(fsio::read_required(&key_path)?);
        if public.state.encrypted != keyfile::is_encrypted(&text) {
            return Err(bad(&key_path, "encryption does not match state.json"));
        }
        let key = keyfile::decode(&key_path, &text, passphrase.as_ref())?;
        let int_der = single_der(&dir.join(INTERMEDIATE_CERT), &public.intermediate_pem)?;
        let cert = inspect::parse_der(&int_der)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(bad(&key_path, "does not belong to intermediate.crt"));
        }
        let issuer = Issuer::from_ca_cert_der(&int_der.clone().into(), key).map_err(|source| {
            PkiError::Generate {
                subject: public.state.intermediate_name.clone(),
                source,
            }
        })?;
        Ok(CaStore {
            public,
            issuer,
            passphrase,
            serials: Box::new(RandomSerials::new()),
        })
    }

    /// Use another serial source (tests, deterministic benchmarks).
    pub fn with_serials(mut self, serials: Box<dyn SerialSource + Send + Sync>) -> CaStore {
        self.serials = serials;
        self
    }

    pub fn public(&self) -> &CaPublic {
        &self.public
    }

    pub fn public_mut(&mut self) -> &mut CaPublic {
        &mut self.public
    }

    pub fn status(&self) -> Result<CaStatus, PkiError> {
        self.public.status()
    }

    /// The intermediate key, unencrypted, for an online step-ca that signs with it
    /// (the root key never leaves the CA directory).
    pub fn intermediate_key_pem(&self) -> KeyPem {
        KeyPem::new(self.issuer.key().serialize_pem())
    }

    /// New root + intermediate; the old pair becomes "previous" (still trusted) until
    /// [`CaPublic::prune_previous`] finds nothing chaining to it. Old private keys are deleted.
    pub fn rotate(&mut self, now: SystemTime) -> Result<CaStatus, PkiError> {
        let now = unix_seconds(now);
        let st = &self.public.state;
        let g = generate(
            (&st.root_name, &st.intermediate_name),
            (st.root_validity_days, st.intermediate_validity_days),
            st.generation + 1,
            self.serials.as_ref(),
            now,
        )?;
        let mut state = st.clone();
        state.previous.insert(0, self.public.current());
        state.generation += 1;
        state.created_unix = now;
        let serials = std::mem::replace(&mut self.serials, Box::new(RandomSerials::new()));
        *self = write_generation(
            &self.public.dir,
            state,
            &g,
            self.passphrase.clone(),
            serials,
        )?;
        self.status()
    }
}

/// Write a generation's files and state, and return the opened store.
fn write_generation(
    dir: &Path,
    mut state: CaState,
    g: &NewGeneration,
    passphrase: Option<Passphrase>,
    serials: Box<dyn SerialSource + Send + Sync>,
) -> Result<CaStore, PkiError> {
    let root_der = single_der(dir, &g.root_pem)?;
    state.root_fingerprint = inspect::fingerprint_sha256(&root_der);
    state.intermediate_key_id = inspect::hex(
        &inspect::subject_key_id(&inspect::parse_der(&g.intermediate_der)?).unwrap_or_default(),
    );
    let pass = passphrase.as_ref();
    let iters = state.kdf_iterations;
    for (file, key) in [
        (ROOT_KEY, &g.root_key),
        (INTERMEDIATE_KEY, &g.intermediate_key),
    ] {
        let pem = keyfile::encode(key, pass, iters)?;
        fsio::write_atomic(&dir.join(file), pem.expose().as_bytes(), 0o600)?;
    }
    fsio::write_atomic(&dir.join(ROOT_CERT), g.root_pem.as_bytes(), 0o644)?;
    fsio::write_atomic(
        &dir.join(INTERMEDIATE_CERT),
        g.intermediate_pem.as_bytes(),
        0o644,
    )?;
    let public = CaPublic {
        dir: dir.to_path_buf(),
        state,
        root_pem: g.root_pem.clone(),
        intermediate_pem: g.intermediate_pem.clone(),
    };
    public.save_state()?;
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(g.intermediate_key.serialize_der()),
        &PKCS_ECDSA_P256_SHA256,
    )
    .map_err(|source| PkiError::KeyGeneration { source })?;
    let issuer =
        Issuer::from_ca_cert_der(&g.intermediate_der.clone().into(), key).map_err(|source| {
            PkiError::Generate {
                subject: public.state.intermediate_name.clone(),
                source,
            }
        })?;
    Ok(CaStore {
        public,
        issuer,
        passphrase,
        serials,
    })
}

impl LeafIssuer for CaStore {
    fn identity(&self) -> IssuerIdentity {
        self.public.identity()
    }

    fn issue(&self, req: &LeafRequest<'_>, now: SystemTime) -> Result<IssuedLeaf, PkiError> {
        let params = issue::leaf_params(req, self.serials.serial()?, unix_seconds(now))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| PkiError::KeyGeneration { source })?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| PkiError::Generate {
                subject: req.common_name.to_string(),
                source,
            })?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| inspect::hex(&s.to_bytes()))
            .unwrap_or_default();
        Ok(IssuedLeaf {
            leaf_pem: cert.pem(),
            intermediates_pem: self.public.intermediate_pem.clone(),
            root_pem: self.public.root_pem.clone(),
            key: KeyPem::new(key.serialize_pem()),
            serial,
            not_after: params.not_after.unix_timestamp(),
        })
    }
}
