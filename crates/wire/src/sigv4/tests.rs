use super::*;

/// One case of AWS's published SigV4 test suite, read from `suite.txt`.
#[derive(Debug, Default)]
struct Vector {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
    signed_headers: String,
    signature: String,
    canonical_request: String,
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AMZ_DATE: &str = "20150830T123600Z";
const FORM_HASH: &str = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";

fn vectors() -> Vec<Vector> {
    let text = include_str!("suite.txt");
    let cases = text.split("%%\n").filter(|case| case.contains("name: "));
    cases.map(parse_case).collect()
}

fn parse_case(case: &str) -> Vector {
    let (fields, creq) = case
        .split_once("creq:\n")
        .expect("case has a canonical request");
    let mut vector = Vector {
        canonical_request: creq.trim_end_matches('\n').to_owned(),
        ..Default::default()
    };
    for line in fields
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line
            .split_once(": ")
            .unwrap_or((line.trim_end_matches(':'), ""));
        let value = value.to_owned();
        match key {
            "name" => vector.name = value,
            "method" => vector.method = value,
            "path" => vector.path = value,
            "query" => vector.query = value,
            "body" => vector.body = value,
            "signed" => vector.signed_headers = value,
            "signature" => vector.signature = value,
            "header" => {
                let (name, value) = value.split_once(':').expect("header has a colon");
                vector.headers.push((name.to_owned(), value.to_owned()));
            }
            other => panic!("unknown key {other} in suite.txt"),
        }
    }
    vector
}

fn canonical_of(vector: &Vector) -> (String, String) {
    let headers: Vec<(&str, &str)> = vector
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let payload = payload_hash(vector.body.as_bytes());
    let request = Request {
        method: &vector.method,
        path: &vector.path,
        query: &vector.query,
        headers: &headers,
        payload_sha256: &payload,
    };
    let signature = expected_signature(&request, SECRET, AMZ_DATE, &scope());
    (canonical_request(&request), signature)
}

fn plain_creq(method: &str, path: &str, query: &str) -> String {
    format!(
        "{method}\n{path}\n{query}\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
         host;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
    )
}

fn scope() -> Scope {
    Scope::new(AMZ_DATE, "us-east-1", "service")
}

#[test]
fn reads_every_case_of_the_suite_file() {
    let names: Vec<String> = vectors().into_iter().map(|v| v.name).collect();

    assert_eq!(names.len(), 18);
    assert!(names.iter().any(|n| n == "post-sts-header-before"));
}

#[test]
fn builds_the_canonical_request_of_every_suite_vector() {
    for vector in vectors() {
        let headers: Vec<(&str, &str)> = vector
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();

        let (canonical, _) = canonical_of(&vector);

        assert_eq!(canonical, vector.canonical_request, "{}", vector.name);
        assert_eq!(
            signed_header_names(&headers),
            vector.signed_headers,
            "{}",
            vector.name
        );
    }
}

#[test]
fn computes_the_signature_of_every_suite_vector() {
    for vector in vectors() {
        let (_, signature) = canonical_of(&vector);

        assert_eq!(signature, vector.signature, "{}", vector.name);
    }
}

#[test]
fn builds_the_suite_string_to_sign() {
    let creq = plain_creq("GET", "/", "");

    let sts = string_to_sign(AMZ_DATE, &scope(), &creq);

    assert_eq!(
        sts,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    assert_eq!(payload_hash(b"Param1=value1"), FORM_HASH);
}

#[test]
fn parses_the_suite_authorization_header() {
    let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
        SignedHeaders=host;x-amz-date;x-amz-security-token, \
        Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead";

    let parsed = Authorization::parse(header).expect("valid header");

    assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
    assert_eq!(parsed.scope, scope());
    assert_eq!(
        parsed.signed_headers,
        ["host", "x-amz-date", "x-amz-security-token"]
    );
    assert_eq!(
        parsed.signature,
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
    );
}

#[test]
fn rejects_malformed_authorization_headers() {
    let cases = [
        (
            "AWS4-HMAC-SHA1 Credential=a/20150830/r/s/aws4_request",
            "algorithm",
        ),
        (
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab",
            "credential missing",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=a/2015/r/s/aws4_request, SignedHeaders=host, Signature=ab",
            "bad date",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws5, SignedHeaders=host, Signature=ab",
            "bad terminator",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, SignedHeaders=x-amz-date, \
          Signature=ab",
            "host unsigned",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, SignedHeaders=Host, \
          Signature=ab",
            "upper case",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, SignedHeaders=host",
            "no sig",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, Bogus=1, SignedHeaders=host, \
          Signature=ab",
            "unknown component",
        ),
    ];

    for (header, why) in cases {
        assert!(Authorization::parse(header).is_err(), "{why}");
    }
}

#[test]
fn reports_which_signed_header_is_missing() {
    let header = "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, \
        SignedHeaders=host;x-amz-target, Signature=ab";
    let parsed = Authorization::parse(header).expect("valid header");

    let err = parsed
        .select_signed_headers(&[("Host", "h")])
        .expect_err("target missing");

    assert_eq!(
        err,
        AuthorizationError::MissingSignedHeader("x-amz-target".to_owned())
    );
}

#[test]
fn a_signed_json_call_verifies_and_a_changed_body_does_not() {
    let credentials = Credentials {
        access_key_id: "AKIAEXAMPLENODE00001".to_owned(),
        secret_access_key: "node-secret".to_owned(),
        session_token: Some("token".to_owned()),
    };
    let body = br#"{"Destination":"mi-0123456789abcdef0"}"#;
    let call = JsonCall {
        host: "127.0.0.1:7733",
        target: "EC2WindowsMessageDeliveryService.GetMessages",
        body,
        region: "us-east-1",
        service: "ec2messages",
        amz_date: "20261203T125025Z",
    };
    let added = sign_json_call(&credentials, &call);
    let mut all: Vec<(&str, &str)> = vec![
        ("Host", call.host),
        ("Content-Type", JSON_CONTENT_TYPE),
        ("X-Amz-Target", call.target),
        ("Content-Length", "38"),
    ];
    all.extend(added.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let header = added
        .iter()
        .find(|(n, _)| n == "Authorization")
        .expect("authorization")
        .1
        .clone();
    let parsed = Authorization::parse(&header).expect("own header parses");
    let signed = parsed
        .select_signed_headers(&all)
        .expect("all signed headers present");

    let verify = |payload: &[u8]| {
        let hash = payload_hash(payload);
        let request = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &signed,
            payload_sha256: &hash,
        };
        let expected =
            expected_signature(&request, "node-secret", "20261203T125025Z", &parsed.scope);
        signatures_match(&expected, &parsed.signature)
    };

    assert_eq!(
        parsed.signed_headers,
        [
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-target"
        ]
    );
    assert!(verify(body));
    assert!(!verify(b"{}"));
}

#[test]
fn debug_output_hides_secrets() {
    let credentials = Credentials {
        access_key_id: "AKID".to_owned(),
        secret_access_key: "very-secret".to_owned(),
        session_token: Some("session".to_owned()),
    };

    let text = format!("{credentials:?}");

    assert!(text.contains("AKID"));
    assert!(!text.contains("very-secret") && !text.contains("session\""));
}
