//! A template VM's cloud image on the node: the storage must hold `import` content; the image
//! is looked up in the storage's content and, when missing, downloaded by the node itself
//! (`POST /nodes/{node}/storage/{storage}/download-url`, content `import`, checksum verified by
//! PVE). Returns the volume the create call imports (`import-from`). Does network I/O.
//!
//! Relied on: the PVE API viewer (`…/download-url`, `…/content`); PVE's `import` content
//! accepts `.qcow2`, `.raw`, `.vmdk` (and `.ova`/`.ovf`) names, so a cloud image published as
//! `.img` (a qcow2 file, as Ubuntu's and Debian's are) is stored as `.qcow2`.

use std::collections::BTreeMap;

use phoenix_model::image::ImageSource;
use reqwest::Method;
use serde_json::Value;

use crate::client::PveClient;
use crate::error::PveError;

/// What became of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReady {
    /// On the storage already: `volid`.
    Present(String),
    /// Downloaded by the node in this run: `volid`.
    Downloaded(String),
    /// Not there, and no URL to fetch it from: what the operator must do.
    Missing(String),
}

/// The file name `image` gets on an `import` storage.
pub fn import_file_name(image: &str) -> String {
    match image.strip_suffix(".img") {
        Some(stem) => format!("{stem}.qcow2"),
        None => image.to_string(),
    }
}

/// The content types of `storage`, from `storage.cfg`.
fn storage_content(client: &PveClient, storage: &str) -> Result<Vec<String>, PveError> {
    let cfg = client.get(&format!("/storage/{storage}"), &[])?;
    Ok(cfg
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect())
}

/// Make `image` available on `storage` for `import-from`.
pub fn ensure_image(
    client: &PveClient,
    node: &str,
    storage: &str,
    image: &str,
    source: Option<&ImageSource>,
) -> Result<ImageReady, PveError> {
    let content = storage_content(client, storage)?;
    if !content.iter().any(|c| c == "import") {
        let mut with = content.clone();
        with.push("import".into());
        return Err(PveError::Storage {
            storage: storage.into(),
            message: format!(
                "cannot hold imported disk images (content: {}), so the cloud image {image} cannot be imported from it",
                if content.is_empty() {
                    "none".to_string()
                } else {
                    content.join(",")
                }
            ),
            hint: format!(
                "add `import` to its content (`pvesm set {storage} --content {}`), or pass --image-store with a directory storage that has it",
                with.join(",")
            ),
        });
    }
    let file = import_file_name(image);
    let volid = format!("{storage}:import/{file}");
    let listed = client.get(
        &format!("/nodes/{node}/storage/{storage}/content"),
        &[("content", "import")],
    )?;
    let present = listed.as_array().is_some_and(|items| {
        items
            .iter()
            .any(|i| i.get("volid").and_then(Value::as_str) == Some(volid.as_str()))
    });
    if present {
        return Ok(ImageReady::Present(volid));
    }
    let Some(source) = source else {
        return Ok(ImageReady::Missing(format!(
            "place the cloud image as {volid}, or give `template_image_url` (and its checksum) so the node downloads it"
        )));
    };
    let mut params = BTreeMap::from([
        ("content".to_string(), "import".to_string()),
        ("filename".to_string(), file),
        ("url".to_string(), source.url.clone()),
    ]);
    if let Some(c) = &source.checksum {
        params.insert("checksum".into(), c.value.clone());
        params.insert("checksum-algorithm".into(), c.algorithm.clone());
    }
    tracing::info!(storage, url = %source.url, "the node downloads the cloud image");
    client.write_and_wait(
        Method::POST,
        &format!("/nodes/{node}/storage/{storage}/download-url"),
        &params,
    )?;
    Ok(ImageReady::Downloaded(volid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn img_is_stored_as_qcow2() {
        assert_eq!(
            import_file_name("noble-server-cloudimg-amd64.img"),
            "noble-server-cloudimg-amd64.qcow2"
        );
        assert_eq!(import_file_name("debian-12.qcow2"), "debian-12.qcow2");
    }
}
