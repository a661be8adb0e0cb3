//! `template_image_url` and its checksum on the homelab's template VM: carried into the model,
//! and each misuse a located PHX-E053.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use phoenix_model::raw::GuestId;
use phoenix_model::validate_dir;

mod common;
use common::copy_tree;

/// The homelab with VM 9000's entry patched by `edit`; the validation's findings as
/// `(code, pointer, message)`, and the model's image source of 9000.
fn with_template(
    edit: impl Fn(&mut serde_json::Value),
) -> (
    Vec<(String, String, String)>,
    Option<phoenix_model::image::ImageSource>,
) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab"),
        dir.path(),
    );
    let path = dir.path().join("phoenix_vm_configs.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v["vms"][0]);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let val = validate_dir(dir.path());
    let findings = val
        .findings()
        .into_iter()
        .filter(|f| f.code.starts_with("PHX-E"))
        .map(|f| (f.code.to_string(), f.pointer.clone(), f.message.clone()))
        .collect();
    let source = val
        .desired
        .as_ref()
        .and_then(|d| d.guest(GuestId(9000)))
        .and_then(|g| g.image_source.clone());
    (findings, source)
}

#[test]
fn url_and_checksum_reach_the_model() {
    let sum = "AB".repeat(32);
    let (findings, source) = with_template(|vm| {
        vm["template_image_checksum"] = sum.clone().into();
    });
    assert!(findings.is_empty(), "{findings:?}");
    let source = source.expect("9000 has an image source");
    assert!(source.url.starts_with("https://cloud-images.ubuntu.com/"));
    let c = source.checksum.expect("checksum");
    assert_eq!(c.algorithm, "sha256");
    assert_eq!(c.value, "ab".repeat(32));
}

/// An edit of the template's entry, the pointer of the error it causes, words of its message.
type Case = (
    Box<dyn Fn(&mut serde_json::Value)>,
    &'static str,
    &'static str,
);

#[test]
fn misuses_are_located_errors() {
    let cases: Vec<Case> = vec![
        (
            Box::new(|vm| vm["template_image_url"] = "ftp://x/y.img".into()),
            "/vms/0/template_image_url",
            "http",
        ),
        (
            Box::new(|vm| vm["template_image_checksum"] = "abc".into()),
            "/vms/0/template_image_checksum",
            "64 hex digits",
        ),
        (
            Box::new(|vm| {
                vm["template_image_checksum"] = "a".repeat(64).into();
                vm["template_image_checksum_algorithm"] = "crc32".into();
            }),
            "/vms/0/template_image_checksum",
            "crc32",
        ),
        (
            Box::new(|vm| {
                vm.as_object_mut().unwrap().remove("template_image_url");
                vm["template_image_checksum"] = "a".repeat(64).into();
            }),
            "/vms/0/template_image_checksum",
            "without `template_image_url`",
        ),
        (
            Box::new(|vm| vm["template_image"] = "local:iso/x.img".into()),
            "/vms/0/template_image",
            "downloads a new file",
        ),
    ];
    for (edit, pointer, words) in cases {
        let (findings, source) = with_template(edit);
        assert!(source.is_none());
        assert!(
            findings
                .iter()
                .any(|(c, p, m)| c == "PHX-E053" && p == pointer && m.contains(words)),
            "{pointer}: {findings:?}"
        );
    }
}
