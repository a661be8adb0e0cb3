//! Secrets and configs as content versions: `<base>-<12 hex of SHA-256>` objects created
//! before a deploy ([`rotate_secrets`], [`rotate_configs`]) so new content updates exactly the
//! services that use it, and versions no service mounts pruned after it. Change lines name
//! objects, never their content. I/O: the Engine API of the given client.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::Docker;
use bollard::models::TaskSpecContainerSpec;
use phoenix_render::stack::{FileRef, RenderedStack};

use super::stack::api;
use super::{DockerError, err as swarm_err, is_not_found, runtime};

/// Label naming the base name of a versioned secret (`portainer_tls_cert` for
/// `portainer_tls_cert-<hash>`), so older versions are found again.
pub const LABEL_SECRET_BASE: &str = "phoenix.secret.base";
/// Label naming the base name of a versioned config (`production_whoami_app` for
/// `production_whoami_app-<hash>`), as [`LABEL_SECRET_BASE`] does for secrets.
pub const LABEL_CONFIG_BASE: &str = "phoenix.config.base";
/// Largest config Swarm accepts (swarmkit's `MaxConfigSize`, 1000 KiB).
pub const MAX_CONFIG_BYTES: usize = 1000 * 1024;

/// The two kinds of Swarm objects phoenix keeps as content versions (see [`rotate_secrets`]
/// and [`rotate_configs`]): the same naming, labels, rotation and pruning for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Versioned {
    Secret,
    Config,
}

/// One object of a [`Versioned`] kind as listed.
struct VersionObject {
    id: String,
    name: String,
    base: String,
    created_at: Option<bollard::models::BollardDate>,
}

impl Versioned {
    fn word(self) -> &'static str {
        match self {
            Versioned::Secret => "secret",
            Versioned::Config => "config",
        }
    }

    pub(super) fn base_label(self) -> &'static str {
        match self {
            Versioned::Secret => LABEL_SECRET_BASE,
            Versioned::Config => LABEL_CONFIG_BASE,
        }
    }

    /// Whether the object `name` exists.
    async fn exists(self, docker: &Docker, name: &str) -> Result<bool, DockerError> {
        let r = match self {
            Versioned::Secret => docker.inspect_secret(name).await.map(|_| ()),
            Versioned::Config => docker.inspect_config(name).await.map(|_| ()),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(&format!("{} inspect {name}", self.word()), e)),
        }
    }

    async fn create(
        self,
        docker: &Docker,
        name: &str,
        labels: HashMap<String, String>,
        content: &[u8],
    ) -> Result<(), DockerError> {
        let data = Some(super::base64(content));
        let r = match self {
            Versioned::Secret => docker
                .create_secret(bollard::models::SecretSpec {
                    name: Some(name.into()),
                    labels: Some(labels),
                    data,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Versioned::Config => docker
                .create_config(bollard::models::ConfigSpec {
                    name: Some(name.into()),
                    labels: Some(labels),
                    data,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        };
        r.map_err(|e| api(&format!("{} create {name}", self.word()), e))
    }

    /// The objects carrying `label` (`key` or `key=value`).
    async fn list(self, docker: &Docker, label: String) -> Result<Vec<VersionObject>, DockerError> {
        type Listed = (
            Option<String>,
            Option<String>,
            Option<HashMap<String, String>>,
            Option<bollard::models::BollardDate>,
        );
        let filters = HashMap::from([("label".to_string(), vec![label])]);
        let fail = |e| api(&format!("{} list", self.word()), e);
        // (id, name, labels, created) of either kind.
        let listed: Vec<Listed> = match self {
            Versioned::Secret => docker
                .list_secrets(Some(
                    bollard::query_parameters::ListSecretsOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(fail)?
                .into_iter()
                .map(|o| {
                    let spec = o.spec.unwrap_or_default();
                    (o.id, spec.name, spec.labels, o.created_at)
                })
                .collect(),
            Versioned::Config => docker
                .list_configs(Some(
                    bollard::query_parameters::ListConfigsOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(fail)?
                .into_iter()
                .map(|o| {
                    let spec = o.spec.unwrap_or_default();
                    (o.id, spec.name, spec.labels, o.created_at)
                })
                .collect(),
        };
        Ok(listed
            .into_iter()
            .filter_map(|(id, name, labels, created_at)| {
                Some(VersionObject {
                    id: id?,
                    name: name?,
                    base: labels
                        .and_then(|mut l| l.remove(self.base_label()))
                        .unwrap_or_default(),
                    created_at,
                })
            })
            .collect())
    }

    async fn delete(self, docker: &Docker, o: &VersionObject) -> Result<(), DockerError> {
        match self {
            Versioned::Secret => docker.delete_secret(&o.id).await,
            Versioned::Config => docker.delete_config(&o.id).await,
        }
        .map_err(|e| api(&format!("{} remove {}", self.word(), o.name), e))
    }

    /// The names of the objects of this kind a container spec mounts.
    fn mounted(self, c: &TaskSpecContainerSpec) -> Vec<String> {
        match self {
            Versioned::Secret => c
                .secrets
                .iter()
                .flatten()
                .filter_map(|s| s.secret_name.clone())
                .collect(),
            Versioned::Config => c
                .configs
                .iter()
                .flatten()
                .filter_map(|s| s.config_name.clone())
                .collect(),
        }
    }

    /// For each of `bases`: the version of its content in `contents` (created when missing,
    /// labelled with the base and the content's SHA-256), or, without content, the newest
    /// version deployed (none: the base stays as it is). The base → version names and the
    /// change lines (names only, never content).
    fn rotate(
        self,
        docker: &Docker,
        bases: &[String],
        contents: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(BTreeMap<String, String>, Vec<String>), DockerError> {
        let rt = runtime()?;
        let mut changes = Vec::new();
        let mut renamed = BTreeMap::new();
        for base in bases {
            let Some(content) = contents.get(base) else {
                // Content not readable here: the newest version phoenix deployed, if any, stays.
                if let Some(name) = rt.block_on(self.newest_version(docker, base))? {
                    renamed.insert(base.clone(), name);
                }
                continue;
            };
            let hash = super::sha256_hex(content);
            let name = phoenix_plan::swarm::versioned_secret(base, &hash);
            let created = rt.block_on(async {
                if self.exists(docker, &name).await? {
                    return Ok::<_, DockerError>(false);
                }
                let labels = HashMap::from([
                    (self.base_label().to_string(), base.clone()),
                    (
                        phoenix_plan::swarm::LABEL_SECRET_HASH.to_string(),
                        hash.clone(),
                    ),
                ]);
                self.create(docker, &name, labels, content).await?;
                Ok(true)
            })?;
            if created {
                changes.push(format!(
                    "created {} {name} (version of {base})",
                    self.word()
                ));
            }
            renamed.insert(base.clone(), name);
        }
        Ok((renamed, changes))
    }

    /// The newest object labelled as a version of `base`, by creation.
    async fn newest_version(
        self,
        docker: &Docker,
        base: &str,
    ) -> Result<Option<String>, DockerError> {
        let list = self
            .list(docker, format!("{}={base}", self.base_label()))
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|o| Some((o.created_at?, o.name)))
            .max()
            .map(|(_, name)| name))
    }

    /// Remove the versions of `bases` no service mounts; the change lines.
    fn prune(self, docker: &Docker, bases: &[String]) -> Result<Vec<String>, DockerError> {
        let rt = runtime()?;
        rt.block_on(async {
            let services = docker
                .list_services(None::<bollard::query_parameters::ListServicesOptions>)
                .await
                .map_err(|e| api("service list", e))?;
            let used: BTreeSet<String> = services
                .iter()
                .filter_map(|s| {
                    s.spec
                        .as_ref()?
                        .task_template
                        .as_ref()?
                        .container_spec
                        .as_ref()
                })
                .flat_map(|c| self.mounted(c))
                .collect();
            let mut changes = Vec::new();
            for o in self.list(docker, self.base_label().to_string()).await? {
                if !bases.contains(&o.base) || used.contains(&o.name) {
                    continue;
                }
                self.delete(docker, &o).await?;
                changes.push(format!(
                    "removed {} {} (no service uses it)",
                    self.word(),
                    o.name
                ));
            }
            Ok(changes)
        })
    }
}

/// Rename the references in `names` and `refs` by `renamed` (base → version).
pub(super) fn use_versions(
    names: &mut [String],
    refs: &mut dyn Iterator<Item = &mut FileRef>,
    renamed: &BTreeMap<String, String>,
) {
    for s in names {
        if let Some(n) = renamed.get(s) {
            *s = n.clone();
        }
    }
    for f in refs {
        if let Some(n) = renamed.get(&f.source) {
            f.source = n.clone();
        }
    }
}

/// Secrets the stack takes from phoenix (Portainer's TLS material, its admin password), as
/// immutable versions: for each base name in `contents`, a Swarm secret
/// `<base>-<first 12 hex of the content's SHA-256>` is created when missing (labels
/// [`LABEL_SECRET_BASE`] and `phoenix.sha256`), and `stack` is rewritten to use it (the file
/// in the container keeps the base name, so the compose file's paths hold). New content is a
/// new name, so [`super::stack::deploy`] then updates exactly the services using it — the rotation when the
/// PKI renews a certificate. A base whose content phoenix cannot read here keeps the newest
/// version already deployed (none: the base name, which must exist). Returns the change lines
/// (names only, never content).
/// Anyone who can read the labels can already mount the secret, so the hash tells them nothing
/// more. Bases in `contents` the stack does not use are ignored.
pub fn rotate_secrets(
    docker: &Docker,
    stack: &mut RenderedStack,
    contents: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<String>, DockerError> {
    let (renamed, changes) = Versioned::Secret.rotate(docker, &stack.secrets, contents)?;
    let mut refs = stack.services.iter_mut().flat_map(|s| s.secrets.iter_mut());
    use_versions(&mut stack.secrets, &mut refs, &renamed);
    Ok(changes)
}

/// The environment's files ([`RenderedStack::files`]) as immutable Swarm configs, the way
/// [`rotate_secrets`] does it for secrets: for each file's base name
/// (`<namespace>_<file stem>`) with its content in `contents`, a config
/// `<base>-<first 12 hex of the content's SHA-256>` is created when missing (labels
/// [`LABEL_CONFIG_BASE`] and `phoenix.sha256`) and every service mounting the base is
/// rewritten to mount that version at the same destination. A changed file is a new config,
/// so [`super::stack::deploy`] updates the services; [`prune_configs`] then removes the old version. A base
/// without content in `contents` keeps the newest version deployed. Configs are not
/// encrypted at rest: files holding secrets belong in secrets. Returns the change lines
/// (names only, never content); an error when a file is larger than Swarm accepts.
pub fn rotate_configs(
    docker: &Docker,
    stack: &mut RenderedStack,
    contents: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<String>, DockerError> {
    let bases: Vec<String> = stack.files.iter().map(|f| f.base.clone()).collect();
    for f in &stack.files {
        if let Some(c) = contents.get(&f.base).filter(|c| c.len() > MAX_CONFIG_BYTES) {
            return Err(swarm_err(format!(
                "{} ({} bytes) is larger than a Swarm config may be ({MAX_CONFIG_BYTES} bytes)",
                f.path.display(),
                c.len()
            )));
        }
    }
    let (renamed, changes) = Versioned::Config.rotate(docker, &bases, contents)?;
    let mut refs = stack.services.iter_mut().flat_map(|s| s.configs.iter_mut());
    use_versions(&mut stack.configs, &mut refs, &renamed);
    Ok(changes)
}

/// Remove the versions of the secrets `bases` that no service uses any more (after a
/// [`super::stack::deploy`] moved the services to new ones); a version still in use stays. The change lines.
pub fn prune_secrets(docker: &Docker, bases: &[String]) -> Result<Vec<String>, DockerError> {
    Versioned::Secret.prune(docker, bases)
}

/// [`prune_secrets`] for the configs of [`rotate_configs`]: the versions of `bases` no
/// service mounts any more are removed. The change lines.
pub fn prune_configs(docker: &Docker, bases: &[String]) -> Result<Vec<String>, DockerError> {
    Versioned::Config.prune(docker, bases)
}
