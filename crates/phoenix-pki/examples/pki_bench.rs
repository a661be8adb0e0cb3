//! Benchmark of the manifest engine at scale (figures for the issue notes, no assertions):
//! 1,000 synthetic entries derived from `examples/homelab`.
//!
//! 1. issuance in memory (`CaStore::issue` ×1000: key generation + signing);
//! 2. `issue_manifest` into a scratch root (issue + atomic writes with fsync);
//! 3. the renewal decision over the 1,000 existing certificates: pure `decide` on in-memory
//!    PEMs, and `plan_manifest` (reads the files, then decides).
//!
//! Run: `cargo run --release -p phoenix-pki --example pki_bench [COUNT]`

use std::path::Path;
use std::time::{Instant, SystemTime};

use phoenix_model::model::San;
use phoenix_pki::{CaOptions, CaStore, Existing, LeafIssuer, LeafRequest, decide};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
    let mut desired = phoenix_model::validate_dir(&dir)
        .desired
        .ok_or("examples/homelab does not load")?;
    let template = desired
        .certificates
        .first()
        .cloned()
        .ok_or("no certificate")?;
    desired.certificates = (0..n)
        .map(|i| {
            let mut c = template.clone();
            c.common_name = format!("svc{i}.internal.thinkheads.ai");
            c.sans = vec![
                San::Dns(c.common_name.clone()),
                San::Dns(format!("alt{i}.internal.thinkheads.ai")),
                San::Ip(
                    format!("172.16.{}.{}", 100 + i / 250, 1 + i % 250)
                        .parse()
                        .ok()?,
                ),
            ];
            c.cert_path = format!("/mnt/pve/quickOS/lxc-persistent-data/101/ssl/svc{i}.crt");
            c.key_path = format!("/mnt/pve/quickOS/lxc-persistent-data/101/ssl/svc{i}.key");
            Some(c)
        })
        .collect::<Option<_>>()
        .ok_or("bad synthetic address")?;
    let tmp = tempfile::tempdir()?;
    let ca = CaStore::init(
        &tmp.path().join("ca"),
        &CaOptions::default(),
        SystemTime::now(),
    )?;
    let now = SystemTime::now();

    let t = Instant::now();
    let leaves = desired
        .certificates
        .iter()
        .map(|c| ca.issue(&LeafRequest::for_entry(c), now))
        .collect::<Result<Vec<_>, _>>()?;
    let issue_mem = t.elapsed();

    let out = tmp.path().join("out");
    let t = Instant::now();
    let report = phoenix_pki::issue_manifest(&desired, &ca, &out, now, &Default::default());
    let issue_files = t.elapsed();
    if report.issued() != n {
        return Err(format!("expected {n} issued: {report}").into());
    }

    let identity = ca.identity();
    let policy = Default::default();
    let pems: Vec<(String, String)> = leaves
        .iter()
        .map(|l| (l.cert_file(false), l.key.expose().to_string()))
        .collect();
    let t = Instant::now();
    let mut keep = 0;
    for (c, (cert, key)) in desired.certificates.iter().zip(&pems) {
        let existing = Existing {
            cert_pem: Some(cert),
            key_pem: Some(key),
        };
        keep += usize::from(decide(c, &existing, &identity, now, &policy).is_keep());
    }
    let decide_mem = t.elapsed();

    let t = Instant::now();
    let (plans, errors) = phoenix_pki::plan_manifest(&desired, &identity, &out, now, &policy);
    let decide_files = t.elapsed();
    let kept_files = plans.iter().filter(|p| p.decision.is_keep()).count();
    if keep != n || kept_files != n || !errors.is_empty() {
        return Err(format!("expected all kept: {keep} / {kept_files} / {errors:?}").into());
    }

    println!("entries                                   {n}");
    println!("issue in memory (keygen + sign)           {issue_mem:?}");
    println!("issue_manifest (issue + fsync'd writes)   {issue_files:?}");
    println!("decide, in-memory PEMs                    {decide_mem:?}");
    println!("plan_manifest (read files + decide)       {decide_files:?}");
    Ok(())
}
