//! JSON Schema of the format (`phoenix schema`): one schema per file, generated from the raw
//! types and their doc comments, and a bundle that accepts any of the five files. No I/O.

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::raw::{RawCertificate, RawHypervisor, RawLxcFile, RawStacksFile, RawVmFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Hypervisor,
    Lxc,
    Vm,
    Stacks,
    Manifest,
}

fn gen_for<T: JsonSchema>() -> Schema {
    SchemaGenerator::default().into_root_schema_for::<T>()
}

/// The schema of one file.
pub fn for_file(kind: FileKind) -> Schema {
    match kind {
        FileKind::Hypervisor => gen_for::<RawHypervisor>(),
        FileKind::Lxc => gen_for::<RawLxcFile>(),
        FileKind::Vm => gen_for::<RawVmFile>(),
        FileKind::Stacks => gen_for::<RawStacksFile>(),
        FileKind::Manifest => gen_for::<Vec<RawCertificate>>(),
    }
}

/// One schema accepting any of the five files.
pub fn bundle() -> Schema {
    let mut generator = SchemaGenerator::default();
    let parts = [
        generator.subschema_for::<RawHypervisor>(),
        generator.subschema_for::<RawLxcFile>(),
        generator.subschema_for::<RawVmFile>(),
        generator.subschema_for::<RawStacksFile>(),
        generator.subschema_for::<Vec<RawCertificate>>(),
    ];
    let defs = generator.take_definitions(true);
    schemars::json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Phoenix configuration",
        "description": "Any one of the five Phoenix files: phoenix_hypervisor_config.json, phoenix_lxc_configs.json, phoenix_vm_configs.json, phoenix_stacks_config.json, certificate-manifest.json",
        "anyOf": parts,
        "$defs": defs,
    })
}
