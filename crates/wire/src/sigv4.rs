//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for signing and verifying requests.
//!
//! The agent signs every call with [`sign`]; the server parses the `Authorization` header
//! with [`Authorization::parse`], recomputes the signature with [`expected_signature`] and
//! compares with [`signatures_match`]. The RSA variant that AWS's agent uses for
//! `RequestManagedInstanceRoleToken` shares the canonical request and string to sign
//! ([`canonical_request`], [`string_to_sign`]); only the last step differs, so callers that
//! hold an RSA key sign the string to sign themselves.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The algorithm label at the start of the `Authorization` header and the string to sign.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The last element of every credential scope.
pub const SCOPE_TERMINATOR: &str = "aws4_request";

/// Lower-case hex SHA-256 of an empty body.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

type HmacSha256 = Hmac<Sha256>;

/// Long-term or temporary AWS credentials. `Debug` hides the secret and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA…`, `ASIA…`, or a managed instance id for the RSA variant).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials, sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The date, region and service a signature is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `YYYYMMDD`, the date part of `X-Amz-Date`.
    pub date: String,
    /// The signing region, e.g. `us-east-1`.
    pub region: String,
    /// The signing name of the service, e.g. `ssm` or `ec2messages`.
    pub service: String,
}

impl Scope {
    /// Builds the scope for `amz_date` (`YYYYMMDDTHHMMSSZ`); the date is its first 8 bytes.
    pub fn new(amz_date: &str, region: &str, service: &str) -> Self {
        Self {
            date: amz_date.get(..8).unwrap_or(amz_date).to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{SCOPE_TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// The parts of an HTTP request that a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The path as sent on the request line (`/` for every JSON 1.1 call).
    pub path: &'a str,
    /// The query string without the leading `?`, empty when there is none.
    pub query: &'a str,
    /// The signed headers as (name, value) pairs in any order and case; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lower-case hex SHA-256 of the body ([`payload_hash`]).
    pub payload_sha256: &'a str,
}

/// Lower-case hex SHA-256 of `body`, the last line of the canonical request.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Builds the canonical request: method, normalised path, sorted query, canonical headers,
/// signed header names and payload hash, one per line.
///
/// Every header in `request.headers` is signed; pass only the ones to sign.
pub fn canonical_request(request: &Request<'_>) -> String {
    let headers = canonical_headers(request.headers);
    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    let header_lines: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();

    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_path(request.path),
        canonical_query(request.query),
        header_lines,
        names.join(";"),
        request.payload_sha256
    )
}

/// The `SignedHeaders` value for a set of headers: lower-case names, sorted, deduplicated.
pub fn signed_header_names(headers: &[(&str, &str)]) -> String {
    let headers = canonical_headers(headers);
    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    names.join(";")
}

/// Builds the string to sign from the request time, the scope and the canonical request.
pub fn string_to_sign(amz_date: &str, scope: &Scope, canonical_request: &str) -> String {
    let hashed = payload_hash(canonical_request.as_bytes());
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hashed}")
}

/// Derives the signing key from the secret and the scope.
pub fn signing_key(secret_access_key: &str, scope: &Scope) -> [u8; 32] {
    let key = hmac(
        format!("AWS4{secret_access_key}").as_bytes(),
        scope.date.as_bytes(),
    );
    let key = hmac(&key, scope.region.as_bytes());
    let key = hmac(&key, scope.service.as_bytes());
    hmac(&key, SCOPE_TERMINATOR.as_bytes())
}

/// Lower-case hex HMAC-SHA256 of the string to sign under the signing key.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

/// The signature a request must carry: canonical request, string to sign, key, HMAC.
pub fn expected_signature(
    request: &Request<'_>,
    secret_access_key: &str,
    amz_date: &str,
    scope: &Scope,
) -> String {
    let canonical = canonical_request(request);
    let to_sign = string_to_sign(amz_date, scope, &canonical);
    signature(&signing_key(secret_access_key, scope), &to_sign)
}

/// Compares two signatures in constant time.
pub fn signatures_match(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Formats an `Authorization` header value.
pub fn authorization_header(
    access_key_id: &str,
    scope: &Scope,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, \
         Signature={signature}"
    )
}

/// What a JSON 1.1 call needs to be signed.
#[derive(Debug, Clone, Copy)]
pub struct JsonCall<'a> {
    /// `host[:port]` exactly as the `Host` header will carry it.
    pub host: &'a str,
    /// The `X-Amz-Target` value, e.g. `AmazonSSM.UpdateInstanceInformation`.
    pub target: &'a str,
    /// The request body.
    pub body: &'a [u8],
    /// The signing region.
    pub region: &'a str,
    /// The signing name of the service (`ssm`, `ec2messages`).
    pub service: &'a str,
    /// The request time as `YYYYMMDDTHHMMSSZ` ([`crate::time::amz_date`]).
    pub amz_date: &'a str,
}

/// The content type of every AWS JSON 1.1 request.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Headers to add to a signed JSON 1.1 `POST /`, as (name, value) pairs.
///
/// Signs `content-type`, `host`, `x-amz-date`, `x-amz-security-token` (with temporary
/// credentials) and `x-amz-target`, like AWS's agent does apart from `content-length`,
/// which HTTP clients set on their own. The caller sends `Host`, `Content-Type` and
/// `X-Amz-Target` with the same values and adds the returned headers.
pub fn sign_json_call(credentials: &Credentials, call: &JsonCall<'_>) -> Vec<(String, String)> {
    let scope = Scope::new(call.amz_date, call.region, call.service);
    let mut signed = vec![
        ("content-type", JSON_CONTENT_TYPE),
        ("host", call.host),
        ("x-amz-date", call.amz_date),
        ("x-amz-target", call.target),
    ];
    if let Some(token) = &credentials.session_token {
        signed.push(("x-amz-security-token", token));
    }

    let payload = payload_hash(call.body);
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &signed,
        payload_sha256: &payload,
    };
    let signature = expected_signature(
        &request,
        &credentials.secret_access_key,
        call.amz_date,
        &scope,
    );
    let authorization = authorization_header(
        &credentials.access_key_id,
        &scope,
        &signed_header_names(&signed),
        &signature,
    );

    let mut out = vec![
        ("X-Amz-Date".to_owned(), call.amz_date.to_owned()),
        ("Authorization".to_owned(), authorization),
    ];
    if let Some(token) = &credentials.session_token {
        out.push(("X-Amz-Security-Token".to_owned(), token.clone()));
    }
    out
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id named in `Credential=`.
    pub access_key_id: String,
    /// The scope named in `Credential=`.
    pub scope: Scope,
    /// The lower-case header names of `SignedHeaders=`, in the order given.
    pub signed_headers: Vec<String>,
    /// The `Signature=` value (hex for HMAC, base64 for the RSA variant).
    pub signature: String,
}

/// Why an `Authorization` header could not be parsed or a signed header is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// The header does not start with `AWS4-HMAC-SHA256`.
    #[error("unsupported signing algorithm {0:?}")]
    Algorithm(String),
    /// One of `Credential`, `SignedHeaders`, `Signature` is absent.
    #[error("authorization header lacks {0}")]
    MissingComponent(&'static str),
    /// A component is not `Name=value`, or its name is unknown.
    #[error("malformed authorization component {0:?}")]
    Component(String),
    /// `Credential=` is not `key/date/region/service/aws4_request`.
    #[error("malformed credential scope {0:?}")]
    Credential(String),
    /// `SignedHeaders=` is empty or has upper-case or empty names.
    #[error("malformed signed headers {0:?}")]
    SignedHeaders(String),
    /// `SignedHeaders=` does not include `host`.
    #[error("host is not among the signed headers")]
    HostNotSigned,
    /// The request lacks a header that `SignedHeaders=` names.
    #[error("signed header {0:?} is missing from the request")]
    MissingSignedHeader(String),
}

impl Authorization {
    /// Parses the value of an `Authorization` header.
    pub fn parse(header: &str) -> Result<Self, AuthorizationError> {
        let rest = header
            .trim()
            .strip_prefix(ALGORITHM)
            .filter(|rest| rest.starts_with(' '))
            .ok_or_else(|| AuthorizationError::Algorithm(first_word(header)))?;

        let (mut credential, mut signed, mut signature) = (None, None, None);
        for component in rest.split(',').map(str::trim) {
            let (name, value) = component
                .split_once('=')
                .ok_or_else(|| AuthorizationError::Component(component.to_owned()))?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed = Some(value),
                "Signature" => signature = Some(value),
                _ => return Err(AuthorizationError::Component(component.to_owned())),
            }
        }

        let credential = credential.ok_or(AuthorizationError::MissingComponent("Credential"))?;
        let signed = signed.ok_or(AuthorizationError::MissingComponent("SignedHeaders"))?;
        let signature = signature
            .filter(|s| !s.is_empty())
            .ok_or(AuthorizationError::MissingComponent("Signature"))?;
        let (access_key_id, scope) = parse_credential(credential)?;
        Ok(Self {
            access_key_id,
            scope,
            signed_headers: parse_signed_headers(signed)?,
            signature: signature.to_owned(),
        })
    }

    /// Picks the signed headers out of all request headers, in `SignedHeaders` order.
    ///
    /// Names compare case-insensitively; every value of a repeated header is kept.
    pub fn select_signed_headers<'a>(
        &self,
        all: &[(&'a str, &'a str)],
    ) -> Result<Vec<(&'a str, &'a str)>, AuthorizationError> {
        let mut selected = Vec::new();
        for name in &self.signed_headers {
            let before = selected.len();
            selected.extend(
                all.iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .copied(),
            );
            if selected.len() == before {
                return Err(AuthorizationError::MissingSignedHeader(name.clone()));
            }
        }
        Ok(selected)
    }
}

fn first_word(header: &str) -> String {
    header
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn parse_credential(value: &str) -> Result<(String, Scope), AuthorizationError> {
    let bad = || AuthorizationError::Credential(value.to_owned());
    let parts: Vec<&str> = value.split('/').collect();
    let [key, date, region, service, terminator] = parts.as_slice() else {
        return Err(bad());
    };
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    if key.is_empty() || !date_ok || region.is_empty() || service.is_empty() {
        return Err(bad());
    }
    if *terminator != SCOPE_TERMINATOR {
        return Err(bad());
    }
    let scope = Scope {
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
    };
    Ok(((*key).to_owned(), scope))
}

fn parse_signed_headers(value: &str) -> Result<Vec<String>, AuthorizationError> {
    let names: Vec<String> = value.split(';').map(str::to_owned).collect();
    let valid = names
        .iter()
        .all(|n| !n.is_empty() && !n.bytes().any(|b| b.is_ascii_uppercase() || b == b' '));
    if !valid {
        return Err(AuthorizationError::SignedHeaders(value.to_owned()));
    }
    if !names.iter().any(|n| n == "host") {
        return Err(AuthorizationError::HostNotSigned);
    }
    Ok(names)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of every length, so construction cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case names, values trimmed with inner runs of spaces collapsed, repeated names
/// joined with `,` in order of appearance, sorted by name.
fn canonical_headers(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = collapse_spaces(value);
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    merged
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Removes empty and `.` segments, resolves `..`, and URI-encodes each segment.
///
/// The path is encoded as given, so an already percent-encoded path is encoded a second
/// time, as AWS does for every service but S3.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    if segments.is_empty() {
        return "/".to_owned();
    }

    let mut out = String::new();
    for segment in &segments {
        out.push('/');
        out.push_str(&uri_encode(segment.as_bytes()));
    }
    let ends_with_slash = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if ends_with_slash {
        out.push('/');
    }
    out
}

/// Decodes each `name=value` pair, re-encodes it strictly and sorts by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name)),
                uri_encode(&percent_decode(value)),
            )
        })
        .collect();
    pairs.sort();
    let encoded: Vec<String> = pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect();
    encoded.join("&")
}

fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes.get(i + 1..i + 3).and_then(|hex| {
            std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
