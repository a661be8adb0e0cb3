//! fakepve as an external process for the integration tests: a CA and a leaf for 127.0.0.2
//! made with rcgen, an API token and a password user added through fakepve's Python API (a
//! small launcher passed to the venv's python as argv; the secrets go over stdin), readiness polled with a deadline,
//! and the process killed by a Drop guard. fakepve is AGPL: it is only ever run, never copied.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fakenode;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use phoenix_pve::connection::{ApiToken, Password, PveAuth};
use phoenix_pve::tls::{TlsTrust, der_fingerprint};
use phoenix_pve::{ConnectionSettings, PveClient};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

pub const HOST: &str = "127.0.0.2";
pub const TOKEN_ID: &str = "root@pam!phoenix";
pub const SECRET: &str = "9f1c2d3e-phoenix-test-secret-4b5a";
/// A password login (fakepve's `users`), for ticket auth.
pub const USERNAME: &str = "phoenix@pve";
pub const PASSWORD: &str = "Tr0ub4dor-phoenix-test-pw-77c1";

/// The launcher: fakepve's own Python API (FakePve, apitokens, storages), no copied code.
const LAUNCHER: &str = r#"
import asyncio, json, os, re, sys
from fakepve.server import FakePve

def vendor_snippet_installs_agent(pve, vm):
    # A VM boots its cloud-init vendor data: the agent runs when `agent` is on and `cicustom`
    # names a vendor snippet (which, with a host root given, must exist there and install
    # qemu-guest-agent) - what cloud-init does on a real first boot.
    cfg = vm.config
    if str(cfg.get('agent', '0')).split(',')[0].split('=')[-1] != '1':
        return False
    found = re.search(r'vendor=([^:,]+):snippets/([^,]+)', str(cfg.get('cicustom', '')))
    if not found:
        return False
    if pve.agent_root is None:
        return True
    base = pve.storages.get(found.group(1), {}).get('path', '')
    path = os.path.join(pve.agent_root, base.lstrip('/'), 'snippets', found.group(2))
    try:
        with open(path) as f:
            return 'qemu-guest-agent' in f.read()
    except OSError:
        return False

def record_statuses(pve):
    # Every answer's HTTP status next to fakepve's own request log (it records requests only).
    pve.statuses = []
    pve.agent_root = None
    inner = pve._answer
    async def answer(request, handler, generic, path_node):
        resp = await inner(request, handler, generic, path_node)
        pve.statuses.append([request.method, request.path, resp.status])
        started = re.search(r'/qemu/(\d+)/status/start$', request.path)
        if started and request.method == 'POST' and resp.status == 200:
            vm = pve.vm(int(started.group(1)))
            if vm is not None and vm.agent is None and vendor_snippet_installs_agent(pve, vm):
                vm.agent = {}
        return resp
    pve._answer = answer
    keep_access(pve)

def keep_access(pve):
    # fakepve answers /access/users and /access/acl from the schema without storing them: after
    # its own checks (auth, parameters) pass, these writes are kept here and the reads answered
    # from what was kept, as PVE's user.cfg would.
    from aiohttp import web
    pve.kept_users, pve.kept_acl = {}, set()
    inner = pve._answer
    async def answer(request, handler, generic, path_node):
        resp = await inner(request, handler, generic, path_node)
        tail = re.sub(r'^/api2/(json|extjs)', '', request.path)
        if resp.status != 200 or not tail.startswith('/access/'):
            return resp
        form = await request.post() if request.method in ('POST', 'PUT') else {}
        if tail == '/access/users' and request.method == 'POST':
            pve.kept_users[form['userid']] = {'userid': form['userid'], 'enable': 1,
                                              'comment': form.get('comment', '')}
        elif tail == '/access/users' and request.method == 'GET':
            return web.json_response({'data': sorted(pve.kept_users.values(), key=lambda u: u['userid'])})
        elif tail == '/access/acl' and request.method == 'PUT':
            for role in form.get('roles', '').split(','):
                for user in form.get('users', '').split(','):
                    if role and user:
                        pve.kept_acl.add((form['path'], role, user))
        elif tail == '/access/acl' and request.method == 'GET':
            return web.json_response({'data': [{'path': p, 'roleid': r, 'type': 'user', 'ugid': u, 'propagate': 1}
                                               for (p, r, u) in sorted(pve.kept_acl)]})
        return resp
    pve._answer = answer

async def main():
    cert, key, tokenid, storages, failures, time_scale, latency, vms = sys.argv[1:9]
    secret = sys.stdin.readline().strip()
    username, password = sys.stdin.readline().strip().split(' ', 1)
    pve = FakePve(host='127.0.0.2', port=0)
    pve.time_scale = float(time_scale)
    pve.slow_network(float(latency))
    pve.apitokens[tokenid] = secret
    pve.users[username] = password
    record_statuses(pve)
    for name, opts in json.loads(storages).items():
        store = {'active': 1, 'files': set(), 'volumes': {}}
        store.update(opts)
        pve.storages[name] = store
    for f in json.loads(failures):
        pve.fail(f['method'], f['suffix'], f['status'], f['message'], times=f.get('times'))
    for v in json.loads(vms):
        vm = pve.add_vm(v['vmid'], v['name'], node='pve1', status=v.get('status', 'running'),
                        config=v.get('config'))
        vm.agent = v.get('agent')
    await pve.start(cert, key)
    print('PORT', pve.port, flush=True)
    # Control lines (JSON, one per line) from the test: fault modes switched on and off while
    # running, and fakepve's own records read back. Each is answered with one `CTL json` line.
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            await asyncio.Event().wait()
        try:
            answer = await control(pve, json.loads(line))
        except Exception as e:  # noqa: BLE001 - reported to the test
            answer = {'error': repr(e)}
        print('CTL', json.dumps(answer), flush=True)

async def control(pve, cmd):
    op = cmd['op']
    if op == 'flaky':
        pve.flaky_network(cmd.get('drop_rate', 0.0), cmd.get('hang_rate', 0.0),
                          cmd.get('hang_secs', 120), cmd.get('seed'))
        pve._random.seed(cmd.get('seed'))
    elif op == 'slow':
        pve.slow_network(cmd['latency'], cmd.get('jitter', 0.0))
    elif op == 'time_scale':
        pve.time_scale = float(cmd['value'])
    elif op == 'lock_wait':
        pve.lock_wait = cmd['value']
    elif op == 'hold_lock':
        await pve.hold_config_lock(cmd['vmid'], cmd.get('secs'))
    elif op == 'release_lock':
        pve.release_config_lock(cmd['vmid'])
    elif op == 'fail':
        pve.fail(cmd['method'], cmd['suffix'], cmd.get('status'), cmd.get('message'),
                 error=cmd.get('error'), times=cmd.get('times'))
    elif op == 'guest_attr':
        setattr(pve.guest(cmd['vmid']), cmd['attr'], cmd['value'])
    elif op == 'clear_failures':
        pve.failures.clear()
    elif op == 'tasks':
        return [{k: t.get(k) for k in ('type', 'id', 'status', 'exitstatus')} for t in pve.tasklog]
    elif op == 'requests':
        return [[m, p] for (m, p, _) in pve.requests]
    elif op == 'request_bodies':
        return [[m, p, b.decode('utf-8', 'replace') if isinstance(b, bytes) else str(b)] for (m, p, b) in pve.requests
                if p.endswith(cmd['suffix'])]
    elif op == 'statuses':
        return pve.statuses
    elif op == 'agent_root':
        pve.agent_root = cmd['root']
    else:
        raise ValueError('unknown op ' + op)
    return {'ok': True}

asyncio.run(main())
"#;

pub fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv")
}

/// `None` (after a note) when fakepve is not installed and `CI` is unset; panics under CI.
pub fn fakepve_available() -> bool {
    if venv().join("bin/fakepve").exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("fakepve is not installed in .venv (scripts/peers.sh) and CI is set");
    }
    eprintln!("note: .venv/bin/fakepve missing (run scripts/peers.sh); skipping");
    false
}

/// A scratch CA and a server certificate for 127.0.0.2 signed by it, as PEM files.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub leaf_fingerprint: [u8; 32],
}

pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    (path, Issuer::new(params, key))
}

pub fn make_pki() -> TestPki {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = make_ca(dir.path(), "phoenix-test-ca");
    let mut params = CertificateParams::new(vec![HOST.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fakepve");
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let cert_pem = dir.path().join("leaf.pem");
    let key_pem = dir.path().join("leaf.key");
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    TestPki {
        leaf_fingerprint: der_fingerprint(cert.der()),
        dir,
        ca_pem,
        cert_pem,
        key_pem,
    }
}

/// A running fakepve; killed on drop.
pub struct FakePve {
    child: Child,
    pub port: u16,
    pub pki: TestPki,
    /// The launcher's stdin (control lines) and its stdout lines.
    control: std::sync::Mutex<(std::process::ChildStdin, mpsc::Receiver<String>)>,
}

impl Drop for FakePve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakePve {
    /// Start with extra storages (`{"name": {storage.cfg options}}`).
    pub fn start(storages: &serde_json::Value) -> FakePve {
        FakePve::start_with_failures(storages, &serde_json::json!([]))
    }

    /// Start with injected failures (`[{method, suffix, status, message, times}]`, fakepve's
    /// `fail()`).
    pub fn start_with_failures(
        storages: &serde_json::Value,
        failures: &serde_json::Value,
    ) -> FakePve {
        FakePve::start_full(storages, failures, 0.0, 0.0)
    }

    /// Start with real time: `time_scale` real seconds per PVE second, `latency` PVE seconds
    /// added to every response.
    pub fn start_full(
        storages: &serde_json::Value,
        failures: &serde_json::Value,
        time_scale: f64,
        latency: f64,
    ) -> FakePve {
        FakePve::start_with_vms(
            storages,
            failures,
            time_scale,
            latency,
            &serde_json::json!([]),
        )
    }

    /// Start with VMs already there (`[{vmid, name, status?, config?, agent?}]`; `agent` is
    /// fakepve's per-command answers, `null` for no agent).
    pub fn start_with_vms(
        storages: &serde_json::Value,
        failures: &serde_json::Value,
        time_scale: f64,
        latency: f64,
        vms: &serde_json::Value,
    ) -> FakePve {
        let pki = make_pki();
        let mut child = Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(LAUNCHER)
            .arg(&pki.cert_pem)
            .arg(&pki.key_pem)
            .arg(TOKEN_ID)
            .arg(storages.to_string())
            .arg(failures.to_string())
            .arg(time_scale.to_string())
            .arg(latency.to_string())
            .arg(vms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fakepve");
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{SECRET}").unwrap();
        writeln!(stdin, "{USERNAME} {PASSWORD}").unwrap();
        stdin.flush().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut guard = FakePve {
            child,
            port: 0,
            pki,
            control: std::sync::Mutex::new((stdin, rx)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while guard.port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "fakepve did not report its port in 30 s");
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!("fakepve exited early: {status}");
            }
            let line = guard
                .control
                .lock()
                .unwrap()
                .1
                .recv_timeout(left.min(Duration::from_millis(200)));
            if let Ok(line) = line
                && let Some(p) = line.strip_prefix("PORT ")
            {
                guard.port = p.trim().parse().unwrap();
            }
        }
        // Ready once the API answers (poll with a deadline).
        let client = guard.client(TlsTrust::CaFile(guard.pki.ca_pem.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client.get("/version", &[]) {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("fakepve not ready yet: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("fakepve not ready: {e}"),
            }
        }
        guard
    }

    /// Freeze (SIGSTOP) or thaw (SIGCONT) the fakepve process: a node that stops answering
    /// (its socket still accepts). No control command reaches a frozen fakepve.
    pub fn freeze(&self, frozen: bool) {
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} fakepve");
    }

    /// Send one control command to the running fakepve (`{"op": …}`: `flaky` {drop_rate,
    /// hang_rate, hang_secs, seed}, `slow` {latency}, `time_scale` {value}, `lock_wait`
    /// {value}, `guest_attr` {vmid, attr, value} (e.g. `start_secs`), `hold_lock` {vmid, secs}, `release_lock` {vmid}, `fail` {method, suffix, status,
    /// message | error, times}, `clear_failures`, `tasks` (fakepve's task log in start order:
    /// type, id, status, exitstatus), `requests` ([method, path] in arrival order)) and return
    /// its answer.
    pub fn control(&self, cmd: &serde_json::Value) -> serde_json::Value {
        let mut ctl = self.control.lock().unwrap();
        writeln!(ctl.0, "{cmd}").unwrap();
        ctl.0.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "fakepve did not answer {cmd} in 30 s");
            if let Ok(line) = ctl.1.recv_timeout(left)
                && let Some(answer) = line.strip_prefix("CTL ")
            {
                let v: serde_json::Value = serde_json::from_str(answer).unwrap();
                assert!(v.get("error").is_none(), "fakepve control {cmd}: {v}");
                return v;
            }
        }
    }

    /// Every answer's `(method, path, HTTP status)`, in order (recorded by the launcher).
    pub fn statuses(&self) -> Vec<(String, String, u16)> {
        let v = self.control(&serde_json::json!({"op": "statuses"}));
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap().into(),
                    r[1].as_str().unwrap().into(),
                    u16::try_from(r[2].as_u64().unwrap()).unwrap(),
                )
            })
            .collect()
    }

    /// The bodies fakepve recorded (secrets redacted) of requests whose path ends with
    /// `suffix`: `(method, path, body)`.
    pub fn request_bodies(&self, suffix: &str) -> Vec<(String, String, String)> {
        let v = self.control(&serde_json::json!({"op": "request_bodies", "suffix": suffix}));
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
                (s(0), s(1), s(2))
            })
            .collect()
    }

    /// A VM's agent starts only if its vendor snippet exists under `root` (the host shell's
    /// root) and installs qemu-guest-agent; without this, `agent: 1` and a vendor `cicustom`
    /// suffice.
    pub fn agent_needs_snippet_under(&self, root: &Path) {
        self.control(&serde_json::json!({"op": "agent_root", "root": root}));
    }

    /// fakepve's task log, in start order: `(type, id, exitstatus)`.
    pub fn tasks(&self) -> Vec<(String, String, String)> {
        let v = self.control(&serde_json::json!({"op": "tasks"}));
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
                (s("type"), s("id"), s("exitstatus"))
            })
            .collect()
    }

    /// Every request fakepve recorded, `(method, path)` in arrival order.
    pub fn requests(&self) -> Vec<(String, String)> {
        let v = self.control(&serde_json::json!({"op": "requests"}));
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
            .collect()
    }

    pub fn settings(&self, trust: TlsTrust) -> ConnectionSettings {
        ConnectionSettings {
            endpoint: format!("https://{HOST}:{}", self.port),
            auth: PveAuth::Token(ApiToken::parse(&format!("{TOKEN_ID}={SECRET}")).unwrap()),
            node: "pve1".into(),
            trust,
        }
    }

    /// Settings for ticket login as [`USERNAME`] with `password`.
    pub fn ticket_settings(&self, trust: TlsTrust, password: &str) -> ConnectionSettings {
        ConnectionSettings {
            auth: PveAuth::Ticket {
                username: USERNAME.into(),
                password: Password::new(password),
            },
            ..self.settings(trust)
        }
    }

    pub fn client(&self, trust: TlsTrust) -> PveClient {
        PveClient::new(&self.settings(trust)).unwrap()
    }
}

/// fakepve's storage.cfg for `plan`: every storage id its create calls name (`STORAGE:…`
/// values) as a directory storage, and `local` accepting imported cloud images (which the node
/// downloads) and cloud-init snippets.
pub fn storages_for(plan: &phoenix_plan::Plan) -> serde_json::Value {
    let mut names = std::collections::BTreeSet::new();
    for a in plan.actions() {
        if let phoenix_plan::Action::CreateGuest { calls, .. } = a {
            for v in calls.iter().flat_map(|c| c.params.values()) {
                for part in v.split(',') {
                    let part = part.split_once('=').map_or(part, |(_, v)| v);
                    if let Some((sid, _)) = part.split_once(':')
                        && sid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !["local", "local-lvm"].contains(&sid)
                        && sid.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    {
                        names.insert(sid.to_string());
                    }
                }
            }
        }
    }
    let mut map: serde_json::Map<String, serde_json::Value> = names
        .into_iter()
        .map(|n| {
            let path = format!("/mnt/pve/{n}");
            let v = serde_json::json!({"type": "dir", "path": path,
                "content": "images,rootdir,vztmpl,iso,snippets,import"});
            (n, v)
        })
        .collect();
    map.insert(
        "local".into(),
        serde_json::json!({"type": "dir", "path": "/var/lib/vz",
            "content": "iso,vztmpl,backup,import,snippets"}),
    );
    serde_json::Value::Object(map)
}
