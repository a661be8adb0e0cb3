//! Hostile input files: a FIFO or a device where a configuration, compose or secret file is
//! expected, links out of the configuration and in circles, a 5 MB value, and shell
//! payloads in the values that reach Proxmox as they are (templates, paths, storage ids).
//! Each command runs as a child with a deadline: a run that hangs fails the test, never it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// What a run that ended printed: exit code, stdout, stderr.
struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `cmd` with its output in files under `dir`; panic when it has not ended after
/// [`DEADLINE`] (after killing it).
fn within_deadline(mut cmd: Command, dir: &Path) -> Ended {
    let out = dir.join("run.stdout");
    let err = dir.join("run.stderr");
    let file = |p: &Path| std::fs::File::create(p).unwrap_or_else(|e| panic!("{e}"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file(&out))
        .stderr(file(&err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run phoenix: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ended {
        code: status.code(),
        stdout: read(&out),
        stderr: read(&err),
    }
}

fn validate(config: &Path, json: bool, scratch: &Path) -> Ended {
    let mut c = phoenix();
    c.arg("validate");
    if json {
        c.args(["--output", "json"]);
    }
    c.arg("--config").arg(config);
    within_deadline(c, scratch)
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo")
        .arg(p)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", p.display());
}

/// A temporary directory with the base configuration in `etc/` (returned second).
fn config() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).unwrap_or_else(|e| panic!("{e}"));
    write_config(&etc, &base());
    (tmp, etc)
}

fn json_findings(e: &Ended) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&e.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}\n{}", e.stdout, e.stderr));
    doc["findings"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_fifo_as_a_configuration_file_is_refused_at_once() {
    let (tmp, etc) = config();
    std::fs::remove_file(etc.join(VM)).unwrap_or_else(|e| panic!("{e}"));
    mkfifo(&etc.join(VM));
    let run = validate(&etc, true, tmp.path());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let fs = json_findings(&run);
    assert!(
        fs.iter().any(|f| f["code"] == "PHX-E001"
            && f["file"].as_str().is_some_and(|p| p.ends_with(VM))
            && f["message"].as_str().is_some_and(|m| m.contains("FIFO"))
            && f["hint"].as_str().is_some_and(|h| !h.is_empty())),
        "{fs:?}"
    );
}

/// `phoenix ca init --config DIR` reads `step_ca.password`: a secret file that is a FIFO or
/// `/dev/zero` is refused, naming the key, instead of blocking or filling memory.
#[test]
fn a_fifo_or_a_device_as_a_secret_file_is_refused() {
    let (tmp, etc) = config();
    let fifo = tmp.path().join("password.fifo");
    mkfifo(&fifo);
    for (secret, what) in [(fifo.as_path(), "FIFO"), (Path::new("/dev/zero"), "device")] {
        let mut files = base();
        if let Some((_, h)) = files.iter_mut().find(|(n, _)| *n == HYP) {
            h["step_ca"] = json!({"password": {"file": secret.to_string_lossy()}});
        }
        write_config(&etc, &files);
        let ca = tmp.path().join(format!("ca-{what}"));
        let mut c = phoenix();
        c.args(["ca", "init", "--ca-dir"])
            .arg(&ca)
            .arg("--config")
            .arg(&etc);
        let run = within_deadline(c, tmp.path());
        assert_ne!(run.code, Some(0), "{}", run.stderr);
        assert!(
            run.stderr.contains("step_ca.password")
                && run.stderr.contains(what)
                && run.stderr.contains(&*secret.to_string_lossy())
                && run.stderr.contains("hint:"),
            "{}",
            run.stderr
        );
    }
}

/// A compose file linked to a file outside the configuration (as `/etc/shadow` could be) is
/// refused where the stack is named, and nothing of the target is ever printed.
#[test]
fn a_compose_file_linked_out_of_the_configuration_is_refused_unread() {
    const CONTENT: &str = "root:TOPSECRET-HASH-4242:19000:0:99999:7:::";
    let (tmp, etc) = config();
    let outside = tmp.path().join("shadow");
    std::fs::write(&outside, format!("{CONTENT}\n")).unwrap_or_else(|e| panic!("{e}"));
    let stack = etc.join("stacks").join("web");
    std::fs::create_dir_all(&stack).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&outside, stack.join("docker-compose.yml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let stacks = json!({"docker_stacks": {"web": {"environments": {}}}});
    write_config(&etc, &[("phoenix_stacks_config.json", stacks)]);
    for json in [false, true] {
        let run = validate(&etc, json, tmp.path());
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(!all.contains("TOPSECRET"), "the target leaked: {all}");
        assert!(all.contains("outside the configuration directory"), "{all}");
        if json {
            let fs = json_findings(&run);
            assert!(
                fs.iter().any(|f| f["code"] == "PHX-E001"
                    && f["pointer"] == "/docker_stacks/web"
                    && f["line"].as_u64().is_some_and(|l| l > 1)),
                "not located at the stack: {fs:?}"
            );
        }
    }
    let mut c = phoenix();
    c.arg("plan").arg("--config").arg(&etc);
    let run = within_deadline(c, tmp.path());
    assert_ne!(run.code, Some(0));
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("TOPSECRET"));
}

#[test]
fn a_symlink_loop_or_a_device_as_compose_file_is_a_located_error() {
    let (tmp, etc) = config();
    let stack = etc.join("stacks").join("web");
    std::fs::create_dir_all(&stack).unwrap_or_else(|e| panic!("{e}"));
    let compose = stack.join("docker-compose.yml");
    let link = |to: &Path, at: &Path| {
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(to, at).unwrap_or_else(|e| panic!("{e}"));
    };
    link(Path::new("compose.yml"), &compose);
    link(Path::new("docker-compose.yml"), &stack.join("compose.yml"));
    let fifo_dir = etc.join("stacks").join("api");
    std::fs::create_dir_all(&fifo_dir).unwrap_or_else(|e| panic!("{e}"));
    mkfifo(&fifo_dir.join("docker-compose.yml"));
    let run = validate(&etc, true, tmp.path());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let fs = json_findings(&run);
    let found = |needle: &str, file: &str| {
        fs.iter().any(|f| {
            f["code"] == "PHX-E001"
                && f["file"].as_str().is_some_and(|p| p.ends_with(file))
                && f["message"].as_str().is_some_and(|m| m.contains(needle))
        })
    };
    assert!(found("symlink loop", "web/docker-compose.yml"), "{fs:?}");
    assert!(found("FIFO", "api/docker-compose.yml"), "{fs:?}");
}

/// A 5 MB value where a name and where a number is expected: each finding quotes 80
/// characters of it and its length, the output stays small.
#[test]
fn a_5_mb_value_gives_a_short_error() {
    let (tmp, etc) = config();
    let mut files = base();
    let huge = "a".repeat(5 * 1024 * 1024);
    set(&mut files, LXC, "/lxc_configs/101/name", json!(huge));
    set(&mut files, VM, "/vms/0/cores", json!(huge));
    write_config(&etc, &files);
    for json in [false, true] {
        let run = validate(&etc, json, tmp.path());
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let size = run.stdout.len() + run.stderr.len();
        assert!(size < 10 * 1024, "{size} bytes of output");
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(all.contains("… (5242880 bytes)"), "{all}");
    }
}

/// Values that reach the Proxmox API or a path as they are: a shell payload in each is an
/// error located at the value, and nothing runs.
#[test]
fn payloads_in_templates_paths_and_storage_ids_are_rejected_at_validate() {
    let m = marker();
    let fields: &[(&str, &str, &str, &str)] = &[
        (
            LXC,
            "/lxc_configs/101/template",
            "local:vztmpl/",
            ".tar.zst",
        ),
        (LXC, "/lxc_configs/101/template", "", ""),
        (
            LXC,
            "/lxc_configs/101/mount_points/0/host_path",
            "/srv/",
            "",
        ),
        (
            LXC,
            "/lxc_configs/101/mount_points/0/container_path",
            "/srv/",
            "",
        ),
        (LXC, "/lxc_configs/101/storage_pool", "", ""),
        (LXC, "/lxc_configs/101/template_snapshot_name", "", ""),
        (VM, "/vms/0/template_image", "local:iso/", ".img"),
        (VM, "/vms/0/storage_pool", "", ""),
        (MANIFEST, "/0/cert_path", "/srv/web/", ""),
    ];
    let mut missed = Vec::new();
    for (file, pointer, before, after) in fields {
        for payload in payloads(&m) {
            let (tmp, etc) = config();
            let mut files = base();
            let value = format!("{before}{payload}{after}");
            let (parent, key) = pointer.rsplit_once('/').unwrap_or_default();
            if let Some((_, doc)) = files.iter_mut().find(|(n, _)| n == file)
                && let Some(Value::Object(o)) = doc.pointer_mut(parent)
            {
                o.insert(key.to_string(), json!(value));
            }
            write_config(&etc, &files);
            let run = validate(&etc, true, tmp.path());
            assert!(!m.exists(), "{file}{pointer} = {value:?} was executed");
            let fs = json_findings(&run);
            let located = fs.iter().any(|f| {
                f["severity"] == "error"
                    && f["pointer"] == *pointer
                    && f["file"].as_str().is_some_and(|p| p.ends_with(file))
                    && f["line"].as_u64().is_some_and(|l| l > 1)
            });
            if !located || run.code != Some(1) {
                missed.push(format!(
                    "{file}{pointer} = {value:?}: {:?} {fs:?}",
                    run.code
                ));
            }
        }
    }
    assert!(missed.is_empty(), "not rejected:\n{}", missed.join("\n"));
}
