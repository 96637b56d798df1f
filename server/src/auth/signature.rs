//! Checking a request's SigV4 signature: header shape, clock skew, scope, the HMAC,
//! and the RSA variant that managed nodes use to obtain credentials.
//!
//! Each failure maps to the error code and wording AWS services answer with, since
//! SDKs and agents branch on them (a skewed clock, for one, is corrected and retried).

use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use tagrun_wire::sigv4::{self, Authorization, AuthorizationError, Scope};

use crate::error::ApiError;

/// How far a request's `X-Amz-Date` may be from the server's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// A request's signature, parsed and checked for shape, time and scope, but not yet
/// verified against a key.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    /// The parsed `Authorization` header.
    pub authorization: Authorization,
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Security-Token`, when sent.
    pub session_token: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
}

/// `MissingAuthenticationTokenException`: the request carries no signature.
pub fn missing_token() -> ApiError {
    ApiError::new(
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
}

/// `UnrecognizedClientException`: the access key or session token is unknown.
pub fn unrecognized_client() -> ApiError {
    ApiError::new(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

/// `ExpiredTokenException`: temporary credentials past their expiry.
pub fn expired_token() -> ApiError {
    ApiError::new(
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )
}

fn signature_mismatch() -> ApiError {
    ApiError::new(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details.",
    )
}

impl<'a> SignedRequest<'a> {
    /// Parses the signature of a request; `Ok(None)` when it carries none.
    pub fn parse(
        headers: &'a HeaderMap,
        body: &'a [u8],
        now: SystemTime,
    ) -> Result<Option<SignedRequest<'a>>, ApiError> {
        let Some(header) = headers.get("authorization") else {
            return Ok(None);
        };
        let header = header
            .to_str()
            .map_err(|_| incomplete("Authorization header is not text"))?;
        let authorization = Authorization::parse(header).map_err(|e| incomplete_from(&e))?;

        let amz_date = header_text(headers, "x-amz-date")
            .ok_or_else(|| incomplete("Authorization header requires an X-Amz-Date header"))?;
        check_skew(amz_date, now)?;

        let all: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signed = authorization
            .select_signed_headers(&all)
            .map_err(|e| incomplete_from(&e))?;

        Ok(Some(SignedRequest {
            authorization,
            amz_date: amz_date.to_owned(),
            session_token: header_text(headers, "x-amz-security-token"),
            headers: signed,
            body,
        }))
    }

    /// The access key id the request claims.
    pub fn access_key_id(&self) -> &str {
        &self.authorization.access_key_id
    }

    /// Fails unless the scope names this server's region and the expected service.
    pub fn check_scope(&self, region: &str, service: &str) -> Result<(), ApiError> {
        let scope = &self.authorization.scope;
        if scope.service != service {
            let message = format!("Credential should be scoped to correct service: '{service}'. ");
            return Err(ApiError::new("InvalidSignatureException", message));
        }
        if scope.region != region {
            let message = format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                scope.region
            );
            return Err(ApiError::new("InvalidSignatureException", message));
        }
        if scope.date != self.amz_date.get(..8).unwrap_or_default() {
            let message = format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}'",
                scope.date,
                self.amz_date.get(..8).unwrap_or_default()
            );
            return Err(ApiError::new("InvalidSignatureException", message));
        }
        Ok(())
    }

    /// Verifies the HMAC signature with `secret_access_key`.
    pub fn verify_hmac(&self, secret_access_key: &str) -> Result<(), ApiError> {
        let expected = sigv4::expected_signature(
            &self.canonical_parts(&sigv4::payload_hash(self.body)),
            secret_access_key,
            &self.amz_date,
            &self.authorization.scope,
        );
        if sigv4::signatures_match(&expected, &self.authorization.signature) {
            Ok(())
        } else {
            Err(signature_mismatch())
        }
    }

    /// Verifies the RSA-PSS (SHA-256) signature with a node's public key (base64 DER).
    pub fn verify_rsa(&self, public_key_der_base64: &str) -> Result<(), ApiError> {
        let key = BASE64
            .decode(public_key_der_base64)
            .ok()
            .and_then(|der| rsa::RsaPublicKey::from_public_key_der(&der).ok())
            .ok_or_else(unrecognized_client)?;
        let signature = BASE64
            .decode(&self.authorization.signature)
            .ok()
            .and_then(|bytes| rsa::pss::Signature::try_from(bytes.as_slice()).ok())
            .ok_or_else(signature_mismatch)?;

        let payload = sigv4::payload_hash(self.body);
        let canonical = sigv4::canonical_request(&self.canonical_parts(&payload));
        let to_sign = sigv4::string_to_sign(&self.amz_date, &self.scope(), &canonical);
        let verifier = rsa::pss::VerifyingKey::<sha2::Sha256>::new(key);
        verifier
            .verify(to_sign.as_bytes(), &signature)
            .map_err(|_| signature_mismatch())
    }

    fn scope(&self) -> Scope {
        self.authorization.scope.clone()
    }

    fn canonical_parts<'b>(&'b self, payload_sha256: &'b str) -> sigv4::Request<'b> {
        sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &self.headers,
            payload_sha256,
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn incomplete(message: &str) -> ApiError {
    ApiError::new("IncompleteSignatureException", message)
}

fn incomplete_from(error: &AuthorizationError) -> ApiError {
    incomplete(&format!("Invalid Authorization header: {error}"))
}

/// Rejects a request signed more than [`MAX_SKEW`] away from `now`, in AWS's words.
fn check_skew(amz_date: &str, now: SystemTime) -> Result<(), ApiError> {
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        incomplete(&format!(
            "X-Amz-Date {amz_date:?} is not YYYYMMDD'T'HHMMSS'Z'"
        ))
    })?;
    let format = tagrun_wire::time::amz_date;

    if signed_at + MAX_SKEW < now {
        let message = format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format(now - MAX_SKEW),
            format(now)
        );
        return Err(ApiError::new("InvalidSignatureException", message));
    }
    if signed_at > now + MAX_SKEW {
        let message = format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format(now + MAX_SKEW),
            format(now)
        );
        return Err(ApiError::new("InvalidSignatureException", message));
    }
    Ok(())
}

/// Parses `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(text, &format)
        .ok()?
        .assume_utc();
    let seconds = u64::try_from(at.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests;
