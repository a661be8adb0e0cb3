//! What phoenix wants a guest to look like on Proxmox: the API calls that create it, the
//! config keys it manages (compared key by key with the observed config), its raw `lxc.*`
//! lines, and whether it should run. Built on `phoenix_render::guestparams`. No I/O.

use phoenix_model::model::{DesiredState, Guest, GuestId, GuestKind, GuestSource};
use phoenix_render::cloudinit::{self, SnippetStore};
use phoenix_render::guestparams::{self, ApiCall, ApiParams, GuestEndpoint};

use crate::action::CreateVia;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSpec {
    /// `None` when the configuration names neither template nor clone source: phoenix then
    /// manages an existing guest but cannot create it.
    pub via: Option<CreateVia>,
    /// The calls that create the guest, in order: create or clone, config, resize.
    pub create_calls: Vec<ApiCall>,
    /// A cloud image the host must import as the VM's disk.
    pub image_import: Option<String>,
    /// Where the node downloads that image.
    pub image_source: Option<phoenix_model::image::ImageSource>,
    /// Config keys phoenix manages.
    pub config: ApiParams,
    /// Raw lines for `ID.conf` (`key: value`), compared as a set.
    pub raw_lxc: Vec<String>,
    pub convert_to_template: bool,
    /// The call that grows the root disk to the configured size (an existing guest's disk
    /// is compared with it, [`crate::disk`]).
    pub grow_disk: Option<ApiCall>,
    /// Should be running after a sync.
    pub running: bool,
}

/// `spec` of VM `id` with its vendor data from `store` (`cicustom`): among the managed keys
/// and in the call that creates or configures it.
pub fn with_vendor_data(mut spec: GuestSpec, store: &SnippetStore, id: GuestId) -> GuestSpec {
    let value = cloudinit::cicustom(store, id);
    spec.config.insert("cicustom".into(), value.clone());
    if let Some(call) = spec.create_calls.iter_mut().find(|c| {
        matches!(
            c.endpoint,
            GuestEndpoint::QemuCreate | GuestEndpoint::QemuConfig
        )
    }) {
        call.params.insert("cicustom".into(), value);
    }
    spec
}

/// The spec of one guest.
pub fn guest_spec(g: &Guest, d: &DesiredState) -> GuestSpec {
    let via = match &g.source {
        GuestSource::Template { image } => Some(CreateVia::Template {
            image: image.clone(),
        }),
        GuestSource::Clone { from, snapshot } => Some(CreateVia::Clone {
            from: *from,
            snapshot: snapshot.clone(),
        }),
        GuestSource::Unspecified => None,
    };
    let p = guestparams::guest_params(d, g);
    let config = match g.kind {
        GuestKind::Lxc => guestparams::lxc_managed_config(d, g),
        GuestKind::Vm => guestparams::qemu_managed_config(d, g),
    };
    let create_calls = [p.create, p.config, p.resize]
        .into_iter()
        .flatten()
        .collect();
    GuestSpec {
        via,
        create_calls,
        image_source: p.image_import.as_ref().and(g.image_source.clone()),
        image_import: p.image_import,
        config,
        raw_lxc: p.raw_lxc,
        // Proxmox converts no guest holding snapshots (PHX-W044): such a template stays a
        // stopped guest.
        convert_to_template: p.convert_to_template && g.snapshots().is_empty(),
        grow_disk: guestparams::grow_root_disk(g),
        running: g.start_at_boot && !g.is_template,
    }
}
