//! Ticket (username + password) auth against fakepve, which implements `POST /access/ticket`,
//! checks the `PVEAuthCookie` cookie and refuses a write without the session's
//! `CSRFPreventionToken`: login for a read and a write, renewal by age and after a 401, a wrong
//! password refused without echoing it, no secret in `Debug`, and token auth unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{FakePve, HOST, PASSWORD, SECRET, USERNAME, fakepve_available};
use phoenix_pve::tls::{TlsTrust, client_config};
use phoenix_pve::{PveClient, PveError, RequestCounts};
use reqwest::Method;

fn trust(pve: &FakePve) -> TlsTrust {
    TlsTrust::CaFile(pve.pki.ca_pem.clone())
}

fn ticket_client(pve: &FakePve, password: &str) -> PveClient {
    PveClient::new(&pve.ticket_settings(trust(pve), password)).unwrap()
}

fn pool(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("poolid".to_string(), name.to_string())])
}

fn pool_ids(client: &PveClient) -> Vec<String> {
    let pools = client.get("/pools", &[]).unwrap();
    pools
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("poolid").and_then(|v| v.as_str()).map(String::from))
        .collect()
}

#[test]
fn ticket_login_reads_and_writes() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let client = ticket_client(&pve, PASSWORD);
    let version = client.get("/version", &[]).expect("read with a ticket");
    assert!(version.get("version").is_some(), "{version}");
    // The login counts as a request, not as a write.
    assert_eq!(
        client.counts(),
        RequestCounts {
            requests: 2,
            writes: 0,
            retries: 0
        }
    );
    // A write: fakepve answers 401 unless the CSRF token of the session comes along.
    client
        .write(Method::POST, "/pools", &pool("phoenix-ticket"))
        .expect("write with a ticket and its CSRF token");
    assert!(pool_ids(&client).contains(&"phoenix-ticket".to_string()));
    assert_eq!(
        client.counts(),
        RequestCounts {
            requests: 4,
            writes: 1,
            retries: 0
        },
        "one login for all requests"
    );
    // Clones share the session: no second login.
    let clone = client.clone();
    clone.get("/version", &[]).unwrap();
    assert_eq!(client.counts().requests, 5);
}

#[test]
fn server_refuses_a_write_without_the_csrf_token() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    // By hand, to show what the client must send: the server enforces CSRF on writes.
    let http = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(client_config(&trust(&pve)).unwrap())
        .build()
        .unwrap();
    let base = format!("https://{HOST}:{}/api2/json", pve.port);
    let login: serde_json::Value = http
        .post(format!("{base}/access/ticket"))
        .form(&[("username", USERNAME), ("password", PASSWORD)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ticket = login["data"]["ticket"].as_str().unwrap();
    let csrf = login["data"]["CSRFPreventionToken"].as_str().unwrap();
    let cookie = format!("PVEAuthCookie={ticket}");
    let read = http
        .get(format!("{base}/version"))
        .header("Cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(read.status(), 200, "a read needs no CSRF token");
    let write = |csrf: Option<&str>| {
        let rb = http
            .post(format!("{base}/pools"))
            .header("Cookie", &cookie)
            .form(&[("poolid", "phoenix-csrf")]);
        let rb = match csrf {
            Some(token) => rb.header("CSRFPreventionToken", token),
            None => rb,
        };
        rb.send().unwrap().status()
    };
    assert_eq!(write(None), 401, "a write without CSRF token must fail");
    assert_eq!(
        write(Some("00000000:forged")),
        401,
        "a forged CSRF token too"
    );
    assert_eq!(write(Some(csrf)), 200);
}

#[test]
fn wrong_password_is_refused_without_echo() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let wrong = format!("{PASSWORD}-wrong");
    let client = ticket_client(&pve, &wrong);
    let err = client.get("/version", &[]).expect_err("wrong password");
    println!("wrong password: {err}");
    assert!(
        matches!(&err, PveError::Login { username, status: Some(401), .. } if username == USERNAME),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(USERNAME) && text.contains("authentication failure"));
    assert!(
        text.contains("PROXMOX_VE_PASSWORD"),
        "names where the password came from"
    );
    for text in [format!("{err}"), format!("{err:?}"), format!("{client:?}")] {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
    }
    // A refused login is final: one request, no retry, and `login()` reports the same.
    assert_eq!(client.counts().requests, 1);
    assert!(matches!(client.login(), Err(PveError::Login { .. })));
}

#[test]
fn password_never_in_debug() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let settings = pve.ticket_settings(trust(&pve), PASSWORD);
    let client = PveClient::new(&settings).unwrap();
    client.login().expect("login");
    let texts = [
        format!("{settings:?}"),
        format!("{:?}", settings.auth),
        format!("{client:?}"),
    ];
    for text in &texts {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(!text.contains("PVE:"), "ticket leaked: {text}");
    }
    assert!(texts[2].contains(USERNAME), "{}", texts[2]);
}

#[test]
fn ticket_is_renewed_when_old() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let mut client = ticket_client(&pve, PASSWORD);
    client.ticket_renewal = Duration::ZERO;
    client.get("/version", &[]).unwrap();
    client
        .write(Method::POST, "/pools", &pool("phoenix-renew"))
        .unwrap();
    // Every request found the ticket too old: a login before each.
    assert_eq!(client.counts().requests, 4);
    assert_eq!(client.counts().writes, 1);
}

#[test]
fn a_401_logs_in_once_more() {
    if !fakepve_available() {
        return;
    }
    let refuse = |times: u32| {
        serde_json::json!([{"method": "GET", "suffix": "/nodes", "status": 401,
            "message": "permission denied - invalid PVE ticket", "times": times}])
    };
    let pve = FakePve::start_with_failures(&serde_json::json!({}), &refuse(1));
    let client = ticket_client(&pve, PASSWORD);
    client
        .get("/nodes", &[])
        .expect("a fresh login after the 401");
    // login, GET (401), login, GET.
    assert_eq!(
        client.counts(),
        RequestCounts {
            requests: 4,
            writes: 0,
            retries: 1
        }
    );

    // Refused again after the fresh login: the 401 is reported, not looped on.
    let pve = FakePve::start_with_failures(&serde_json::json!({}), &refuse(2));
    let client = ticket_client(&pve, PASSWORD);
    let err = client.get("/nodes", &[]).expect_err("401 twice");
    assert!(matches!(err, PveError::Http { status: 401, .. }), "{err:?}");
    assert_eq!(client.counts().requests, 4);
}

#[test]
fn token_auth_still_reads_and_writes() {
    if !fakepve_available() {
        return;
    }
    let pve = FakePve::start(&serde_json::json!({}));
    let client = pve.client(trust(&pve));
    client.get("/version", &[]).unwrap();
    client
        .write(Method::POST, "/pools", &pool("phoenix-token"))
        .expect("a token needs no CSRF token");
    assert!(pool_ids(&client).contains(&"phoenix-token".to_string()));
    assert_eq!(
        client.counts(),
        RequestCounts {
            requests: 3,
            writes: 1,
            retries: 0
        }
    );
    assert!(!format!("{client:?}").contains(SECRET));
    client.login().unwrap();
    assert_eq!(
        client.counts().requests,
        3,
        "login() sends nothing with a token"
    );
}
