//! The VM template from a cloud image, by the node, and VMs that come up with their guest
//! agent: `phoenix sync all --target pve` on examples/homelab against fakepve (an external
//! process) whose storages hold no image. The node downloads the image (`download-url`), the
//! template imports it, every VM gets `agent: 1` and a vendor snippet (`cicustom`) written under
//! the host root; fakepve's agent answers only once that snippet installs qemu-guest-agent, and
//! phoenix waits for it and for cloud-init. The second run downloads and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../phoenix-pve/tests/common/mod.rs"]
mod common;
mod pve_support;

use common::{FakePve, fakepve_available};
use pve_support::{guest_config, homelab_dir, journal, node_cmd, run_json, storages};

const IMAGE_URL: &str =
    "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img";

/// `sync all --target pve --output json` with no `--image-store` (the default, `local`).
fn sync(pve: &FakePve, root: &std::path::Path) -> (i32, serde_json::Value, String) {
    run_json(node_cmd(
        pve,
        root,
        &homelab_dir(),
        &["sync", "all", "--target", "pve", "--output", "json"],
    ))
}

/// The homelab's storages with `local` holding `content`.
fn storages_with_local(content: &str) -> serde_json::Value {
    let mut s = storages();
    s["local"]["content"] = content.into();
    s
}

/// One value of a form-encoded body, decoded.
fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| url_decode(v))
    })
}

fn url_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn template_image_fetched_by_the_node_and_vms_boot_their_agent() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages_with_local("iso,vztmpl,backup,import,snippets"));
    let root = tempfile::tempdir().unwrap();
    pve.agent_needs_snippet_under(root.path());

    let (code, first, stderr) = sync(&pve, root.path());
    for e in journal(&first) {
        println!(
            "  [{}] {} {} → {} {}",
            e["wave"],
            e["action"]["action"],
            e["action"]["id"],
            e["outcome"],
            e["detail"].as_str().unwrap_or_default()
        );
    }
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(first["journal"]["success"], true);

    // The node fetched the image itself, as an import volume, once.
    let downloads = pve.request_bodies("/storage/local/download-url");
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    let body = &downloads[0].2;
    assert_eq!(form_value(body, "content").as_deref(), Some("import"));
    assert_eq!(
        form_value(body, "filename").as_deref(),
        Some("noble-server-cloudimg-amd64.qcow2")
    );
    assert_eq!(form_value(body, "url").as_deref(), Some(IMAGE_URL));

    // The template imports it, with a cloud-init drive and the agent on.
    let creates = pve.request_bodies("/nodes/pve1/qemu");
    let create = creates
        .iter()
        .find(|(m, _, b)| m == "POST" && form_value(b, "vmid").as_deref() == Some("9000"))
        .expect("the template's create call");
    let scsi0 = form_value(&create.2, "scsi0").unwrap();
    assert!(
        scsi0.ends_with(",import-from=local:import/noble-server-cloudimg-amd64.qcow2"),
        "{scsi0}"
    );
    assert!(
        form_value(&create.2, "ide2")
            .unwrap()
            .ends_with(":cloudinit")
    );

    for id in [9000, 1001, 1002] {
        let cfg = guest_config(&pve, "qemu", id);
        assert_eq!(
            cfg["agent"].to_string().trim_matches('"'),
            "1",
            "{id}: {cfg}"
        );
        assert_eq!(
            cfg["cicustom"],
            format!("vendor=local:snippets/phoenix-{id}.yaml"),
            "{id}"
        );
        let snippet = root
            .path()
            .join(format!("var/lib/vz/snippets/phoenix-{id}.yaml"));
        let text = std::fs::read_to_string(&snippet).expect("the vendor snippet");
        assert!(text.contains("qemu-guest-agent"), "{text}");
        // Clones keep their cloud-init network and DNS.
        if id != 9000 {
            assert!(cfg["ipconfig0"].as_str().unwrap().starts_with("ip=10.0.0."));
            assert!(cfg["nameserver"].is_string() && cfg["searchdomain"].is_string());
        }
    }

    // The started VMs were waited for: agent ping, then cloud-init through the agent.
    for id in [1001, 1002] {
        let execs = pve.request_bodies(&format!("/qemu/{id}/agent/exec"));
        assert!(
            execs.iter().any(|(_, _, b)| b.contains("cloud-init")),
            "{id}: {execs:?}"
        );
    }

    let client_errors: Vec<_> = pve
        .statuses()
        .into_iter()
        .filter(|(_, _, s)| (400..500).contains(s))
        .collect();
    assert!(client_errors.is_empty(), "4xx answers: {client_errors:?}");

    let (code, second, stderr) = sync(&pve, root.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["requests"]["total"]["writes"], 0, "API writes");
    assert_eq!(second["host_writes"], 0, "host file writes");
    assert_eq!(
        pve.request_bodies("/download-url").len(),
        1,
        "the second run downloads nothing"
    );
}

#[test]
fn a_storage_without_import_content_is_a_located_error() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&storages_with_local("iso,vztmpl,backup,snippets"));
    let root = tempfile::tempdir().unwrap();
    let (code, report, stderr) = sync(&pve, root.path());
    assert_eq!(code, 3, "{stderr}");
    let failed = journal(&report)
        .into_iter()
        .find(|e| e["outcome"] == "failed")
        .expect("a failed action");
    assert_eq!(failed["action"]["action"], "create_guest");
    assert_eq!(failed["action"]["id"], 9000);
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.contains("storage local: cannot hold imported disk images"),
        "{detail}"
    );
    assert!(
        detail.contains("pvesm set local --content iso,vztmpl,backup,snippets,import"),
        "{detail}"
    );
    assert!(pve.request_bodies("/download-url").is_empty());
}
