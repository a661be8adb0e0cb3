//! `template_image_url`, `template_image_checksum` and `…_algorithm` on a VM → the
//! [`ImageSource`] the node downloads. No I/O.

use super::Builder;
use crate::diag::Code;
use crate::image::{self, ImageChecksum, ImageSource};
use crate::raw;
use crate::source::Location;

impl Builder<'_> {
    pub(super) fn image_source(&mut self, r: &raw::RawVm, loc: &Location) -> Option<ImageSource> {
        let algorithm = r.template_image_checksum_algorithm.as_deref();
        let Some(url) = &r.template_image_url else {
            for (key, set) in [
                (
                    "template_image_checksum",
                    r.template_image_checksum.is_some(),
                ),
                ("template_image_checksum_algorithm", algorithm.is_some()),
            ] {
                if set {
                    self.err(
                        Code::InvalidValue,
                        &loc.child(key),
                        format!("`{key}` without `template_image_url` checks nothing"),
                        "add `template_image_url` (where the node downloads the image) or remove it",
                    );
                }
            }
            return None;
        };
        let at = loc.child("template_image_url");
        if let Err(m) = image::url(url) {
            self.err(
                Code::InvalidValue,
                &at,
                m,
                "give the image's download address, e.g. `https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img`",
            );
            return None;
        }
        match (&r.clone_from_vmid, r.template_image.as_deref()) {
            (Some(_), _) => {
                self.err(
                    Code::InvalidValue,
                    &at,
                    "a clone (`clone_from_vmid`) downloads no image",
                    "put `template_image_url` on the template VM the clone comes from",
                );
                return None;
            }
            (None, None) => {
                self.err(
                    Code::InvalidValue,
                    &at,
                    "`template_image_url` needs `template_image`: the file name the image gets on the node's storage",
                    "add `\"template_image\": \"noble-server-cloudimg-amd64.img\"` (a bare file name)",
                );
                return None;
            }
            (None, Some(t)) if t.contains(':') || t.starts_with('/') => {
                self.err(
                    Code::InvalidValue,
                    &loc.child("template_image"),
                    format!("`{t}` names a volume or path, but `template_image_url` downloads a new file"),
                    "with `template_image_url`, give `template_image` as a bare file name",
                );
                return None;
            }
            (None, Some(_)) => {}
        }
        let checksum = match &r.template_image_checksum {
            None => {
                if algorithm.is_some() {
                    self.err(
                        Code::InvalidValue,
                        &loc.child("template_image_checksum_algorithm"),
                        "an algorithm without `template_image_checksum` checks nothing",
                        "add the image's published checksum as `template_image_checksum`",
                    );
                    return None;
                }
                None
            }
            Some(value) => {
                let algorithm = algorithm.unwrap_or(image::DEFAULT_ALGORITHM);
                match image::checksum(algorithm, value) {
                    Ok(value) => Some(ImageChecksum {
                        algorithm: algorithm.to_string(),
                        value,
                    }),
                    Err(m) => {
                        self.err(
                            Code::InvalidValue,
                            &loc.child("template_image_checksum"),
                            m,
                            "copy the value from the image's SHA256SUMS file (and set `template_image_checksum_algorithm` if it is not sha256)",
                        );
                        return None;
                    }
                }
            }
        };
        Some(ImageSource {
            url: url.clone(),
            checksum,
        })
    }
}
