//! HTTPS on the listener: a self-signed certificate for 127.0.0.1 from PEM files, a
//! signed call over TLS, and a plain-HTTP call to the same port refused.

mod common;

use std::path::Path;

use common::{Reply, TestServer};
use tagrun_server::config::TlsConfig;

/// A certificate for `127.0.0.1` and its key, written as PEM files under `dir`.
struct SelfSigned {
    certificate_pem: String,
    tls: TlsConfig,
}

fn self_signed(dir: &Path) -> SelfSigned {
    std::fs::create_dir_all(dir).expect("certificate directory");
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a certificate for 127.0.0.1");
    let certificate_pem = generated.cert.pem();
    let certificate = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&certificate, &certificate_pem).expect("certificate written");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("key written");
    SelfSigned {
        certificate_pem,
        tls: TlsConfig { certificate, key },
    }
}

/// A client that trusts only `certificate_pem`.
fn client_trusting(certificate_pem: &str) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(certificate_pem.as_bytes()).expect("a PEM root");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .build()
        .expect("an HTTPS client")
}

async fn tls_server(dir: &Path) -> (TestServer, SelfSigned) {
    let certificate = self_signed(dir);
    let mut config = common::config(&dir.join("data"));
    config.tls = Some(certificate.tls.clone());
    (TestServer::start(config).await, certificate)
}

#[tokio::test]
async fn signed_call_over_https_lists_the_built_in_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (server, certificate) = tls_server(dir.path()).await;
    let client = client_trusting(&certificate.certificate_pem);

    let target = "AmazonSSM.ListDocuments";
    let body = br#"{"Filters":[{"Key":"Name","Values":["AWS-RunShellScript"]}]}"#;
    let headers = common::signed_headers(&common::reader(), &server.host(), target, body);
    let url = format!("https://{}/", server.address);
    let response = common::request(&client, &url, target, body, &headers)
        .send()
        .await
        .expect("the HTTPS call completes");
    let reply = Reply::read(response).await;

    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.assert_request_id();
    let names: Vec<&str> = reply.body["DocumentIdentifiers"]
        .as_array()
        .expect("a list of documents")
        .iter()
        .filter_map(|d| d["Name"].as_str())
        .collect();
    assert!(names.contains(&"AWS-RunShellScript"), "{names:?}");
    server.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _certificate) = tls_server(dir.path()).await;
    let client = reqwest::Client::new();

    let target = "AmazonSSM.ListDocuments";
    let headers = common::signed_headers(&common::reader(), &server.host(), target, b"{}");
    let url = format!("http://{}/", server.address);
    let outcome = common::request(&client, &url, target, b"{}", &headers)
        .send()
        .await;

    assert!(outcome.is_err(), "plain HTTP got an answer: {outcome:?}");
    server.stop().await;
}

#[tokio::test]
async fn https_client_that_does_not_trust_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _certificate) = tls_server(dir.path()).await;
    let other = self_signed(&dir.path().join("other"));
    let client = client_trusting(&other.certificate_pem);

    let url = format!("https://{}/", server.address);
    let outcome = common::request(&client, &url, "AmazonSSM.ListDocuments", b"{}", &[])
        .send()
        .await;

    let error = outcome.expect_err("a certificate from another key must not verify");
    assert!(error.is_connect(), "{error:?}");
    server.stop().await;
}
