//! The Swarm planner on examples/homelab and the upstream snapshot: what the model wants, an
//! empty target, a converged one, and one drift at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::PathBuf;

use phoenix_model::model::{Secret, SwarmRole};

use super::*;

fn load(dir: &str) -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    phoenix_model::validate_dir(&dir)
        .desired
        .expect("the model builds")
}

fn homelab() -> DesiredState {
    load("../../examples/homelab")
}

const SVC: &str = "production_portainer_service_portainer";
const NS: &str = "production_portainer_service";
const SECRETS: [&str; 3] = [
    "portainer_admin_password",
    "portainer_tls_cert",
    "portainer_tls_key",
];

fn hash(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn stack_hashes() -> BTreeMap<String, String> {
    BTreeMap::from([(SVC.to_string(), hash('a'))])
}

fn secret_hashes() -> BTreeMap<String, String> {
    SECRETS
        .iter()
        .zip(['1', '2', '3'])
        .map(|(s, c)| (s.to_string(), hash(c)))
        .collect()
}

/// The target after a complete, correct apply of `s`.
fn converged(s: &SwarmDesired) -> SwarmObserved {
    let secrets = secret_hashes();
    let nodes = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| ObservedNode {
            guest: n.guest.0,
            name: n.name.clone(),
            engine: Ok(()),
            local_state: Some(LocalState::Active),
            node_id: format!("id{i}"),
            is_manager: n.role == SwarmRole::Manager,
            node_addr: n.advertise_addr.to_string(),
            labels: n.labels.clone(),
        })
        .collect();
    let cluster_nodes = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| ClusterNode {
            id: format!("id{i}"),
            hostname: n.name.clone(),
            role: role_name(n.role).into(),
            availability: "active".into(),
            state: "ready".into(),
            addr: n.advertise_addr.to_string(),
            labels: n.labels.clone(),
        })
        .collect();
    let mut networks: Vec<ObservedNetwork> = s
        .overlays
        .iter()
        .map(|o| ObservedNetwork {
            name: o.name.clone(),
            driver: "overlay".into(),
            attachable: true,
            options: BTreeMap::from([(MTU_OPTION.to_string(), o.mtu_option.to_string())]),
            labels: BTreeMap::new(),
        })
        .collect();
    networks.push(ObservedNetwork {
        name: "ingress".into(),
        driver: "overlay".into(),
        attachable: false,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
    });
    let secret_list: Vec<ObservedSecret> = s
        .secrets
        .iter()
        .map(|d| ObservedSecret {
            name: versioned_secret(&d.name, &secrets[&d.name]),
            labels: BTreeMap::from([(LABEL_SECRET_HASH.to_string(), secrets[&d.name].clone())]),
        })
        .collect();
    let services = s
        .stacks
        .iter()
        .flat_map(|st| {
            st.services.iter().map(|svc| ObservedService {
                name: svc.clone(),
                labels: BTreeMap::from([
                    (LABEL_STACK_NAMESPACE.to_string(), st.namespace.clone()),
                    (LABEL_SPEC_HASH.to_string(), hash('a')),
                ]),
                secrets: st
                    .secrets
                    .iter()
                    .map(|b| versioned_secret(b, &secrets[b]))
                    .collect(),
            })
        })
        .collect();
    SwarmObserved {
        nodes,
        cluster: Some(ClusterObserved {
            via: s.nodes[0].name.clone(),
            nodes: cluster_nodes,
            networks,
            secrets: secret_list,
            services,
        }),
    }
}

fn run(s: &SwarmDesired, o: &SwarmObserved) -> Vec<SwarmAction> {
    plan(s, o, &stack_hashes(), &secret_hashes())
}

fn kinds(a: &[SwarmAction]) -> Vec<(SwarmActionKind, &str)> {
    a.iter().map(|a| (a.kind, a.subject.as_str())).collect()
}

fn cluster(o: &mut SwarmObserved) -> &mut ClusterObserved {
    o.cluster.as_mut().unwrap()
}

fn node_mut<'a>(o: &'a mut SwarmObserved, name: &str) -> &'a mut ObservedNode {
    o.nodes.iter_mut().find(|n| n.name == name).unwrap()
}

#[test]
fn homelab_desired_swarm() {
    let d = homelab();
    let s = desired(&d).expect("the homelab has a Swarm");
    let nodes: Vec<_> = s
        .nodes
        .iter()
        .map(|n| {
            (
                n.guest.0,
                n.name.as_str(),
                n.role,
                n.bridge.as_str(),
                n.advertise_addr.to_string(),
            )
        })
        .collect();
    // Two NICs each (vmbr0 10.0.0.x is net0): the mesh address wins.
    assert_eq!(
        nodes,
        vec![
            (
                1001,
                "portainer-manager",
                SwarmRole::Manager,
                "vmbr100",
                "172.16.100.21".to_string()
            ),
            (
                1002,
                "drphoenix",
                SwarmRole::Worker,
                "vmbr100",
                "172.16.100.22".to_string()
            ),
        ]
    );
    assert!(s.nodes.iter().all(|n| n.data_path_addr == n.advertise_addr));
    assert_eq!(s.leader().unwrap().name, "portainer-manager");
    assert_eq!(s.nodes[0].labels["role"], "management");
    assert_eq!(s.nodes[1].labels["role"], "apps");

    let mesh_mtu = d.mesh().unwrap().mtu;
    assert_eq!(s.overlays.len(), 1);
    assert_eq!(s.overlays[0].name, OVERLAY_NETWORK);
    assert!(s.overlays[0].attachable);
    assert_eq!(s.overlays[0].mtu_option, mesh_mtu);
    assert_eq!(s.overlays[0].container_mtu, mesh_mtu - 50);

    assert_eq!(s.stacks.len(), 1);
    let st = &s.stacks[0];
    assert_eq!(st.namespace, NS);
    assert_eq!(
        (st.stack.as_str(), st.environment.as_str()),
        ("portainer_service", "production")
    );
    assert_eq!(st.guest.0, 1001);
    assert_eq!(st.manager, "portainer-manager");
    assert_eq!(st.services, vec![SVC.to_string()]);
    assert_eq!(st.secrets, SECRETS.map(String::from).to_vec());
    assert_eq!(st.networks, vec![OVERLAY_NETWORK.to_string()]);
    assert_eq!(st.variables, vec!["TZ".to_string()]);

    let names: Vec<_> = s.secrets.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, SECRETS.to_vec());
    assert_eq!(
        s.secrets[0].source,
        SecretSource::AdminPassword {
            reference: "env:PORTAINER_ADMIN_PASSWORD".into()
        }
    );
    let cert = d.certificates.iter().find(|c| c.guest.0 == 1001).unwrap();
    assert_eq!(
        s.secrets[1].source,
        SecretSource::Certificate {
            guest: GuestId(1001),
            common_name: cert.common_name.clone(),
            path: cert.cert_path.clone(),
        }
    );
    assert_eq!(
        s.secrets[2].source,
        SecretSource::Key {
            guest: GuestId(1001),
            common_name: cert.common_name.clone(),
            path: cert.key_path.clone(),
        }
    );
    assert!(s.secrets.iter().all(|x| x.stacks == vec![NS.to_string()]));
}

#[test]
fn no_swarm_vm_no_swarm() {
    let mut d = homelab();
    for g in d.guests.values_mut() {
        g.swarm = None;
    }
    d.roles.swarm_managers.clear();
    d.roles.swarm_workers.clear();
    assert_eq!(desired(&d), None);
}

#[test]
fn node_address_is_the_mesh_nic_else_the_first_static() {
    let mut d = homelab();
    let g = d.guests.get_mut(&GuestId(1001)).unwrap();
    // Put the mesh NIC first and the management NIC second: still the mesh one.
    g.nics.reverse();
    let s = desired(&d).unwrap();
    assert_eq!(s.nodes[0].advertise_addr.to_string(), "172.16.100.21");
    // Without a mesh NIC: the first static address (management).
    let g = d.guests.get_mut(&GuestId(1001)).unwrap();
    g.nics.retain(|n| n.bridge != "vmbr100");
    let s = desired(&d).unwrap();
    assert_eq!(s.nodes[0].advertise_addr.to_string(), "10.0.0.111");
    assert_eq!(s.nodes[0].bridge, "vmbr0");
}

#[test]
fn overlay_mtu_is_the_smallest_underlay() {
    assert_eq!(overlay_mtu_option([1500, 9000]), 1500);
    assert_eq!(overlay_mtu_option([]), 1500);
    assert_eq!(container_mtu(1500), 1450);
    assert_eq!(container_mtu(9000), 8950);
    let mut d = homelab();
    let mesh = d.bridges.iter_mut().find(|b| b.name == "vmbr100").unwrap();
    mesh.mtu = 9000;
    let s = desired(&d).unwrap();
    assert_eq!(
        (s.overlays[0].mtu_option, s.overlays[0].container_mtu),
        (9000, 8950)
    );
    // A NIC with a smaller MTU than its bridge lowers the whole overlay.
    let g = d.guests.get_mut(&GuestId(1002)).unwrap();
    g.nics
        .iter_mut()
        .find(|n| n.bridge == "vmbr100")
        .unwrap()
        .mtu = Some(1400);
    let s = desired(&d).unwrap();
    assert_eq!(
        (s.overlays[0].mtu_option, s.overlays[0].container_mtu),
        (1400, 1350)
    );
}

#[test]
fn empty_target_gets_everything_in_order() {
    let s = desired(&homelab()).unwrap();
    let a = run(&s, &SwarmObserved::default());
    use SwarmActionKind::*;
    assert_eq!(
        kinds(&a),
        vec![
            (Init, "portainer-manager"),
            (Join, "drphoenix"),
            (Label, "portainer-manager"),
            (Label, "drphoenix"),
            (Overlay, OVERLAY_NETWORK),
            (Secret, "portainer_admin_password"),
            (Secret, "portainer_tls_cert"),
            (Secret, "portainer_tls_key"),
            (StackDeploy, NS),
        ]
    );
    let text: Vec<String> = a.iter().map(ToString::to_string).collect();
    let mtu = s.overlays[0].mtu_option;
    assert_eq!(
        text[0],
        "swarm init on portainer-manager: no Swarm on portainer-manager (not observed); \
         advertise and data path 172.16.100.21 on eth1"
    );
    assert!(text[1].starts_with("swarm join drphoenix: worker drphoenix not in the Swarm"));
    assert!(
        text[1].contains("join portainer-manager as worker"),
        "{}",
        text[1]
    );
    assert!(
        text[2].contains("labels role=management missing"),
        "{}",
        text[2]
    );
    assert_eq!(
        text[4],
        format!(
            "overlay traefik-public: overlay traefik-public missing → create (attachable, MTU option {mtu}: containers {})",
            mtu - 50
        )
    );
    let tls = versioned_secret("portainer_tls_cert", &hash('2'));
    assert!(text[6].contains(&format!("missing → create {tls} from certificate")));
    assert!(text[5].contains("portainer_api.admin_password (env:PORTAINER_ADMIN_PASSWORD)"));
    assert!(text[8].contains("not deployed (services portainer) → deploy on portainer-manager"));
    assert!(
        a.iter()
            .all(|x| x.effect() == crate::action::Effect::Create || x.kind == Label)
    );
}

#[test]
fn engines_without_swarm_init_and_join() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    o.cluster = None;
    for n in &mut o.nodes {
        n.local_state = Some(LocalState::Inactive);
        n.is_manager = false;
        n.node_id.clear();
    }
    let a = run(&s, &o);
    assert_eq!(
        a[0].reason,
        "no Swarm on portainer-manager (engine state inactive); advertise and data path 172.16.100.21 on eth1"
    );
    assert!(
        a[1].reason
            .starts_with("worker drphoenix not in the Swarm (engine state inactive)")
    );
}

#[test]
fn converged_target_needs_nothing() {
    let s = desired(&homelab()).unwrap();
    assert_eq!(run(&s, &converged(&s)), Vec::new());
    // Without hashes nothing is compared, and still nothing is missing.
    let none = BTreeMap::new();
    assert_eq!(plan(&s, &converged(&s), &none, &none), Vec::new());
}

#[test]
fn observed_round_trips_through_json() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    node_mut(&mut o, "drphoenix").engine = Err("connection refused".into());
    let text = serde_json::to_string(&o).unwrap();
    let back: SwarmObserved = serde_json::from_str(&text).unwrap();
    assert_eq!(back, o);
}

#[test]
fn worker_left_the_swarm_joins_again() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    let w = node_mut(&mut o, "drphoenix");
    w.local_state = Some(LocalState::Inactive);
    w.node_id.clear();
    cluster(&mut o).nodes.retain(|n| n.hostname != "drphoenix");
    let a = run(&s, &o);
    assert_eq!(
        kinds(&a),
        vec![
            (SwarmActionKind::Join, "drphoenix"),
            (SwarmActionKind::Label, "drphoenix")
        ]
    );
    assert!(
        a[0].reason
            .starts_with("worker drphoenix not in the Swarm (engine state inactive)")
    );
}

#[test]
fn unreachable_worker_engine_is_named() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    let w = node_mut(&mut o, "drphoenix");
    w.engine = Err("connection refused".into());
    w.local_state = None;
    cluster(&mut o)
        .nodes
        .iter_mut()
        .find(|n| n.hostname == "drphoenix")
        .unwrap()
        .state = "down".into();
    let a = run(&s, &o);
    assert_eq!(kinds(&a), vec![(SwarmActionKind::Engine, "drphoenix")]);
    assert_eq!(
        a[0].to_string(),
        "start engine drphoenix: engine unreachable on drphoenix (connection refused); the managers see it down"
    );
    // Unknown to the managers as well: also a join.
    cluster(&mut o).nodes.retain(|n| n.hostname != "drphoenix");
    let a = run(&s, &o);
    assert_eq!(
        kinds(&a)[..2],
        [
            (SwarmActionKind::Engine, "drphoenix"),
            (SwarmActionKind::Join, "drphoenix")
        ]
    );
    assert!(a[1].reason.contains("(engine unreachable)"));
}

#[test]
fn member_of_another_swarm_is_rejoined() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    node_mut(&mut o, "drphoenix").node_id = "stranger".into();
    cluster(&mut o).nodes.retain(|n| n.hostname != "drphoenix");
    let a = run(&s, &o);
    assert_eq!(a[0].kind, SwarmActionKind::Join);
    assert!(
        a[0].reason
            .contains("in another Swarm as node stranger → leave first")
    );
}

#[test]
fn label_drift() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    let c = cluster(&mut o);
    c.nodes[1].labels = BTreeMap::from([("zone".into(), "b".into())]);
    c.nodes[0].labels = BTreeMap::from([("role".into(), "apps".into())]);
    let a = run(&s, &o);
    assert_eq!(
        a.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "node labels portainer-manager: label role=apps, want role=management",
            "node labels drphoenix: label role=apps missing (has zone=b); label zone=b not in the config → remove",
        ]
    );
}

#[test]
fn role_drift() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    cluster(&mut o).nodes[1].role = "manager".into();
    let a = run(&s, &o);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].to_string(),
        "node role drphoenix: drphoenix is a manager, want worker → demote"
    );
}

#[test]
fn overlay_drift() {
    let s = desired(&homelab()).unwrap();
    let want = s.overlays[0].mtu_option;
    let mut o = converged(&s);
    cluster(&mut o).networks[0]
        .options
        .insert(MTU_OPTION.into(), "1450".into());
    let a = run(&s, &o);
    assert_eq!(
        a[0].to_string(),
        format!(
            "overlay traefik-public: overlay MTU 1450 (containers 1400), want {want} (containers {}) → recreate (detach services first)",
            want - 50
        )
    );
    // No option at all means Docker's 1500.
    cluster(&mut o).networks[0].options.clear();
    let a = run(&s, &o);
    assert_eq!(a.is_empty(), want == 1500, "{a:?}");
    cluster(&mut o).networks[0].attachable = false;
    cluster(&mut o).networks[0].driver = "bridge".into();
    let a = run(&s, &o);
    assert!(
        a[0].reason
            .starts_with("driver bridge, want overlay; not attachable"),
        "{}",
        a[0].reason
    );
    cluster(&mut o)
        .networks
        .retain(|n| n.name != OVERLAY_NETWORK);
    let a = run(&s, &o);
    assert!(
        a[0].reason
            .contains("overlay traefik-public missing → create")
    );
}

#[test]
fn renewed_certificate_rotates_its_secret_and_updates_the_stack() {
    let s = desired(&homelab()).unwrap();
    let o = converged(&s);
    let mut hashes = secret_hashes();
    hashes.insert("portainer_tls_cert".into(), hash('9'));
    let a = plan(&s, &o, &stack_hashes(), &hashes);
    let new = versioned_secret("portainer_tls_cert", &hash('9'));
    assert_eq!(
        a.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            format!(
                "secret portainer_tls_cert: secret portainer_tls_cert content changed (PKI renewal) → rotate: create {new}, update services of {NS}"
            ),
            format!("stack update {NS}: stack {NS}: secret portainer_tls_cert rotated"),
        ]
    );
    assert!(new.starts_with("portainer_tls_cert-999999999999"));
}

#[test]
fn unlabelled_secret_is_rotated_and_unknown_hash_kept() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    let sec = &mut cluster(&mut o).secrets[0];
    sec.name = "portainer_admin_password".into();
    sec.labels.clear();
    let a = run(&s, &o);
    assert!(
        a[0].reason.starts_with(
            "secret portainer_admin_password has no phoenix.sha256 label (content unknown) → rotate"
        ),
        "{}",
        a[0].reason
    );
    // The caller could not read the password: the existing secret is kept.
    let mut hashes = secret_hashes();
    hashes.remove("portainer_admin_password");
    let a = plan(&s, &o, &stack_hashes(), &hashes);
    assert_eq!(a, Vec::new());
}

#[test]
fn service_on_a_stale_secret_version_is_updated() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    let old = "portainer_tls_key-000000000000";
    let c = cluster(&mut o);
    c.secrets.push(ObservedSecret {
        name: old.into(),
        labels: BTreeMap::from([(LABEL_SECRET_HASH.into(), hash('0'))]),
    });
    c.services[0].secrets[2] = old.into();
    let a = run(&s, &o);
    assert_eq!(kinds(&a), vec![(SwarmActionKind::StackUpdate, NS)]);
    assert!(a[0].reason.contains(&format!(
        "service {SVC} uses secret {old}, current is {}",
        versioned_secret("portainer_tls_key", &hash('3'))
    )));
}

#[test]
fn stack_drift_and_orphans() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    cluster(&mut o).services[0]
        .labels
        .insert(LABEL_SPEC_HASH.into(), hash('b'));
    let a = run(&s, &o);
    assert_eq!(
        a[0].to_string(),
        format!("stack update {NS}: stack {NS}: service {SVC} spec changed")
    );

    let mut o = converged(&s);
    let c = cluster(&mut o);
    let mut extra = c.services[0].clone();
    extra.name = format!("{NS}_agent");
    c.services.push(extra);
    let mut old = c.services[0].clone();
    old.name = "testing_qdrant_service_qdrant".into();
    old.labels.insert(
        LABEL_STACK_NAMESPACE.into(),
        "testing_qdrant_service".into(),
    );
    c.services.push(old);
    // A service outside any stack (the lab's stand-in) is left alone.
    c.services.push(ObservedService {
        name: "portainer-stand-in".into(),
        labels: BTreeMap::new(),
        secrets: Vec::new(),
    });
    let a = run(&s, &o);
    assert_eq!(
        a.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            format!(
                "stack update {NS}: stack {NS}: service {NS}_agent no longer in the compose file"
            ),
            "stack remove testing_qdrant_service: stack testing_qdrant_service no longer in the config → remove".to_string(),
        ]
    );
    assert_eq!(a[1].effect(), crate::action::Effect::Delete);
}

#[test]
fn missing_service_of_a_deployed_stack() {
    let s = desired(&homelab()).unwrap();
    let mut o = converged(&s);
    let c = cluster(&mut o);
    c.services[0].name = format!("{NS}_old");
    let a = run(&s, &o);
    assert_eq!(
        a[0].reason,
        format!(
            "stack {NS}: service {SVC} missing; service {NS}_old no longer in the compose file"
        )
    );
}

#[test]
fn secret_values_never_reach_a_string() {
    let mut d = homelab();
    let pw = "s3cret-Plaintext-Value";
    d.portainer.as_mut().unwrap().admin_password = Some(Secret::Plain(pw.into()));
    for st in d.stacks.values_mut() {
        for e in st.environments.values_mut() {
            e.variables
                .push(("DB_PASSWORD".into(), Secret::Plain(pw.into())));
        }
    }
    let s = desired(&d).unwrap();
    let a = run(&s, &SwarmObserved::default());
    let all = format!(
        "{s:?} {} {a:?} {}",
        serde_json::to_string(&s).unwrap(),
        a.iter().map(ToString::to_string).collect::<String>()
    );
    assert!(!all.contains(pw));
    assert!(all.contains("<plaintext, redacted>"));
    assert!(s.stacks[0].variables.contains(&"DB_PASSWORD".to_string()));
}

#[test]
fn upstream_snapshot_maps_every_secret() {
    let d = load("../../../shared/fixtures/upstream/rootesting-2025-11-25/etc");
    let s = desired(&d).expect("the snapshot has a Swarm");
    let names: Vec<_> = s
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.advertise_addr.to_string()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Portainer", "10.0.0.111".to_string()),
            ("drphoenix", "10.0.0.102".to_string())
        ]
    );
    let stacks: Vec<_> = s
        .stacks
        .iter()
        .map(|x| (x.namespace.as_str(), x.guest.0, x.manager.as_str()))
        .collect();
    assert_eq!(
        stacks,
        vec![
            ("production_portainer_service", 1001, "Portainer"),
            ("production_qdrant_service", 1002, "Portainer"),
        ]
    );
    let by_name: BTreeMap<_, _> = s
        .secrets
        .iter()
        .map(|x| (x.name.as_str(), &x.source))
        .collect();
    assert_eq!(by_name["portainer_tls_ca.pem"], &SecretSource::CaRoot);
    assert!(matches!(
        by_name["portainer_tls_cert.pem"],
        SecretSource::Certificate {
            guest: GuestId(1001),
            ..
        }
    ));
    assert!(matches!(
        by_name["portainer_tls_key.pem"],
        SecretSource::Key {
            guest: GuestId(1001),
            ..
        }
    ));
    assert!(matches!(
        by_name["portainer_admin_password"],
        SecretSource::AdminPassword { .. }
    ));
    // The manifest's client certificate of 1001, not its server one.
    assert!(matches!(
        by_name["portainer_client_cert"],
        SecretSource::Certificate { common_name, .. }
            if common_name == "portainer-client.internal.thinkheads.ai"
    ));
    assert!(matches!(
        by_name["portainer_tls_cert.pem"],
        SecretSource::Certificate { common_name, .. }
            if common_name == "portainer.internal.thinkheads.ai"
    ));
    let a = plan(
        &s,
        &SwarmObserved::default(),
        &BTreeMap::new(),
        &BTreeMap::new(),
    );
    assert_eq!(a.first().unwrap().kind, SwarmActionKind::Init);
    assert!(
        a.iter()
            .all(|x| !x.reason.contains("REDACTED-plaintext-password"))
    );
}

#[test]
fn leader_that_left_rejoins_through_the_other_manager() {
    let mut d = homelab();
    // Make the worker a second manager.
    let w = d.guests.get_mut(&GuestId(1002)).unwrap();
    w.swarm.as_mut().unwrap().role = SwarmRole::Manager;
    d.roles.swarm_workers.clear();
    d.roles.swarm_managers.push(GuestId(1002));
    let s = desired(&d).unwrap();
    let mut o = converged(&s);
    let l = node_mut(&mut o, "portainer-manager");
    l.local_state = Some(LocalState::Inactive);
    l.node_id.clear();
    let c = cluster(&mut o);
    c.via = "drphoenix".into();
    c.nodes.retain(|n| n.hostname != "portainer-manager");
    let a = run(&s, &o);
    assert_eq!(a[0].kind, SwarmActionKind::Join, "{a:#?}");
    assert_eq!(
        a[0].reason,
        "manager portainer-manager not in the Swarm (engine state inactive); join drphoenix as \
         manager, advertise and data path 172.16.100.21 on eth1"
    );
    assert!(a.iter().all(|x| x.kind != SwarmActionKind::Init));
}

#[test]
fn external_names_follow_compose_rules() {
    let c = serde_json::json!({
        "secrets": {
            "a": {"external": true},
            "b": {"external": true, "name": "b_real"},
            "c": {"external": {"name": "c_old_style"}},
            "d": {"file": "./d.txt"},
            "e": {"external": false}
        }
    });
    assert_eq!(
        external_names(&c, "secrets"),
        vec!["a".to_string(), "b_real".into(), "c_old_style".into()]
    );
    assert_eq!(external_names(&c, "networks"), Vec::<String>::new());
}
