//! `lvsctl pki`: keys 0600, nothing overwritten without --force, identities in place.
use std::os::unix::fs::PermissionsExt;

use lvs_controller::pki::{Pki, PkiError};

#[test]
fn init_and_issue_write_private_keys_0600_and_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path().join("pki"));
    assert!(matches!(pki.issue_agent("rs1", false), Err(PkiError::NoCa(_))));
    pki.init("lab", false).unwrap();
    let rs1 = pki.issue_agent("rs1", false).unwrap();
    for key in [pki.ca().key, pki.controller().key, rs1.key.clone()] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let before = std::fs::read(&rs1.cert).unwrap();
    let e = pki.issue_agent("rs1", false).unwrap_err().to_string();
    assert!(e.contains("exists; pass --force"), "{e}");
    assert_eq!(std::fs::read(&rs1.cert).unwrap(), before, "not overwritten");
    assert!(pki.init("lab", false).unwrap_err().to_string().contains("exists; pass --force"));
    pki.issue_agent("rs1", true).unwrap();
    assert_ne!(std::fs::read(&rs1.cert).unwrap(), before, "--force re-issues");
}

#[test]
fn certificates_carry_the_identities_the_agent_checks() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.init("lab", false).unwrap();
    let rs1 = pki.issue_agent("rs1", false).unwrap();
    let san = |p: &std::path::Path| {
        let pem = std::fs::read(p).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value.clone();
        san.general_names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
    };
    let admin =
        lvs_proto::identity::Caller { name: "controller".into(), role: lvs_proto::identity::Role::Admin };
    assert!(san(&pki.controller().cert).contains(&admin.uri()));
    let a = san(&rs1.cert);
    assert!(
        a.contains("rs1") && a.contains(&lvs_proto::identity::agent_uri("rs1")) && !a.contains("controller"),
        "{a}"
    );
}
