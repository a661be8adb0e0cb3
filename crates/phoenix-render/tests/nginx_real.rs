//! The rendered gateway file is accepted by real nginx (`nginx -t`), with test certificates
//! generated here and every path remapped into a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ingress_support;

use std::path::Path;
use std::process::Command;

use ingress_support as support;
use phoenix_model::DesiredState;
use phoenix_render::nginx;

/// Replace the path argument of certificate directives with files from the test PKI.
fn remap(conf: &str, cert: &Path, key: &Path, ca: &Path) -> String {
    conf.lines()
        .map(|line| {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            let (directive, _) = t.split_once(' ').unwrap_or((t, ""));
            let with = match directive {
                "ssl_certificate" | "proxy_ssl_certificate" => Some(cert),
                "ssl_certificate_key" | "proxy_ssl_certificate_key" => Some(key),
                "proxy_ssl_trusted_certificate" => Some(ca),
                _ => None,
            };
            match with {
                Some(p) => format!("{indent}{directive} {};", p.display()),
                None => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn nginx_accepts(d: &DesiredState) {
    let (Some(nginx), Some(openssl)) = (support::nginx(), support::openssl()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = support::TestPki::new(&openssl, dir);
    let (cert, key) = pki.leaf("gateway", &["*.internal.thinkheads.ai"]);
    let file = nginx::gateway(d).unwrap().expect("a gateway file");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let conf = remap(&file.content, &cert, &key, &pki.ca_cert);
    assert!(
        !conf.contains("/etc/nginx/ssl"),
        "every certificate path was remapped"
    );
    std::fs::write(dir.join("conf.d/phoenix-gateway.conf"), conf).unwrap();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         \x20   access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n\
         \x20   proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/conf.d/*.conf;\n}}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "nginx -t rejected the file:\n{stderr}"
    );
    assert!(stderr.contains("test is successful"), "{stderr}");
}

#[test]
fn nginx_accepts_rootesting_gateway() {
    nginx_accepts(&support::rootesting());
}

#[test]
fn nginx_accepts_homelab_gateway() {
    let dir = support::homelab_dir();
    if !dir.join("phoenix_hypervisor_config.json").is_file() {
        eprintln!("note: examples/homelab not present; skipping");
        return;
    }
    nginx_accepts(&support::load(&dir));
}
