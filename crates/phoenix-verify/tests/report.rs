//! The report: counts, text table, JSON, exit code (golden, with fixed durations).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use phoenix_model::model::GuestId;
use phoenix_verify::{ProbeResult, Report, Status, Subject};

fn result(id: &str, subject: Subject, status: Status, ms: u64) -> ProbeResult {
    ProbeResult {
        id: id.into(),
        subject,
        check: id.replace('/', " "),
        status,
        observed: "observed".into(),
        duration: Duration::from_millis(ms),
    }
}

#[test]
fn text_json_and_exit_code() {
    let mut r = Report::new();
    assert_eq!(r.exit_code(), 0);
    r.push(result(
        "dns/a",
        Subject::Guest(GuestId(101)),
        Status::Pass,
        3,
    ));
    assert_eq!(r.exit_code(), 0);
    r.push(result(
        "tcp/b",
        Subject::Host,
        Status::Fail {
            evidence: "expected allowed, timed out\nsecond line".into(),
        },
        1500,
    ));
    r.push(result(
        "tls/c",
        Subject::Named("wan".into()),
        Status::Skip {
            reason: "no CA yet".into(),
        },
        0,
    ));
    assert_eq!(r.exit_code(), 1);
    insta::assert_snapshot!("text", r.render_text());
    insta::assert_snapshot!("json", r.to_json().unwrap());
}
