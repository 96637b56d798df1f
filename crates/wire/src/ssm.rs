//! The `AmazonSSM.*` operations an agent calls: health, registration, role credentials and
//! key rotation. They are signed for the service name [`SIGNING_NAME`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The SigV4 signing name of Systems Manager.
pub const SIGNING_NAME: &str = "ssm";

/// The `X-Amz-Target` prefix of Systems Manager.
pub const TARGET_PREFIX: &str = "AmazonSSM";

/// `PublicKeyType` of every key the agent registers.
pub const KEY_TYPE_RSA: &str = "Rsa";

/// The agent operations of Systems Manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentOperation {
    /// Health report with platform facts.
    UpdateInstanceInformation,
    /// Registration with a hybrid activation (unsigned).
    RegisterManagedInstance,
    /// Short-lived role credentials for a registered node (RSA-signed).
    RequestManagedInstanceRoleToken,
    /// Key rotation (RSA-signed with the old key).
    UpdateManagedInstancePublicKey,
}

impl AgentOperation {
    /// The operation name.
    pub fn name(self) -> &'static str {
        match self {
            AgentOperation::UpdateInstanceInformation => "UpdateInstanceInformation",
            AgentOperation::RegisterManagedInstance => "RegisterManagedInstance",
            AgentOperation::RequestManagedInstanceRoleToken => "RequestManagedInstanceRoleToken",
            AgentOperation::UpdateManagedInstancePublicKey => "UpdateManagedInstancePublicKey",
        }
    }

    /// The full `X-Amz-Target` value.
    pub fn target(self) -> String {
        format!("{TARGET_PREFIX}.{}", self.name())
    }
}

/// A tag as AWS's APIs carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// The tag key.
    pub key: String,
    /// The tag value.
    pub value: String,
}

/// `UpdateInstanceInformation` request; the response is `{}`.
///
/// The first call after start carries only `AgentName`, `AgentVersion`, `InstanceId` and
/// `PlatformType`; later ones add the platform facts. `Tags` is a tagrun extension that
/// AWS's agent never sends: the node's self-reported tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateInstanceInformationRequest {
    /// The agent's name.
    pub agent_name: String,
    /// `Active` in a full report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_status: Option<String>,
    /// The agent's version, at least 5 characters.
    pub agent_version: String,
    /// Availability zone (EC2 only, else empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Availability zone id (EC2 only, else empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone_id: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_name: Option<String>,
    /// First non-loopback address, IPv4 preferred.
    #[serde(default, rename = "IPAddress", skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// The node's instance id.
    pub instance_id: String,
    /// OS name, e.g. `Debian GNU/Linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_name: Option<String>,
    /// `Linux`, `Windows` or `MacOS`.
    pub platform_type: String,
    /// OS version, e.g. `12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// `ec2messages`, `ssmmessages` or empty.
    #[serde(
        default,
        rename = "SSMConnectionChannel",
        skip_serializing_if = "Option::is_none"
    )]
    pub ssm_connection_channel: Option<String>,
    /// The node's own tags (tagrun extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// `RegisterManagedInstance` request, sent unsigned with a hybrid activation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterManagedInstanceRequest {
    /// The activation code (secret).
    pub activation_code: String,
    /// The activation id.
    pub activation_id: String,
    /// Base64 of the DER SubjectPublicKeyInfo of the node's RSA key.
    pub public_key: String,
    /// Always [`KEY_TYPE_RSA`].
    pub public_key_type: String,
    /// A UUID that identifies the node's hardware.
    pub fingerprint: String,
    /// IAM role for IAM-authenticated registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_role: Option<String>,
    /// Tags for IAM-authenticated registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl fmt::Debug for RegisterManagedInstanceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterManagedInstanceRequest")
            .field("activation_code", &"***")
            .field("activation_id", &self.activation_id)
            .field("public_key_type", &self.public_key_type)
            .field("fingerprint", &self.fingerprint)
            .field("iam_role", &self.iam_role)
            .finish_non_exhaustive()
    }
}

/// `RegisterManagedInstance` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterManagedInstanceResponse {
    /// The new managed instance id, `mi-` and 17 hex digits.
    pub instance_id: String,
}

/// `RequestManagedInstanceRoleToken` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestManagedInstanceRoleTokenRequest {
    /// The node's fingerprint.
    pub fingerprint: String,
}

/// `RequestManagedInstanceRoleToken` response. A server must send every field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestManagedInstanceRoleTokenResponse {
    /// Temporary access key id.
    pub access_key_id: String,
    /// Temporary secret.
    pub secret_access_key: String,
    /// Session token, sent as `X-Amz-Security-Token`.
    pub session_token: String,
    /// Expiry in seconds since the epoch (a JSON number, possibly fractional).
    pub token_expiration_date: f64,
    /// Whether the node must rotate its key pair now.
    pub update_key_pair: bool,
}

impl fmt::Debug for RequestManagedInstanceRoleTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestManagedInstanceRoleTokenResponse")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &"***")
            .field("token_expiration_date", &self.token_expiration_date)
            .field("update_key_pair", &self.update_key_pair)
            .finish()
    }
}

/// `UpdateManagedInstancePublicKey` request, RSA-signed with the old key; response `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateManagedInstancePublicKeyRequest {
    /// Base64 of the DER SubjectPublicKeyInfo of the new key.
    pub new_public_key: String,
    /// Always [`KEY_TYPE_RSA`].
    pub new_public_key_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_minimal_health_report_like_the_captured_agent() {
        let request = UpdateInstanceInformationRequest {
            agent_name: "amazon-ssm-agent".to_owned(),
            agent_version: "3.3.0.0".to_owned(),
            instance_id: "mi-0123456789abcdef0".to_owned(),
            platform_type: "Linux".to_owned(),
            ..Default::default()
        };

        let json = serde_json::to_string(&request).expect("serializes");

        assert_eq!(
            json,
            concat!(
                r#"{"AgentName":"amazon-ssm-agent","AgentVersion":"3.3.0.0","#,
                r#""InstanceId":"mi-0123456789abcdef0","PlatformType":"Linux"}"#
            )
        );
    }

    #[test]
    fn full_health_report_uses_the_wire_spellings() {
        let request = UpdateInstanceInformationRequest {
            ip_address: Some("127.0.0.1".to_owned()),
            ssm_connection_channel: Some(String::new()),
            tags: Some(vec![Tag {
                key: "Env".to_owned(),
                value: "prod".to_owned(),
            }]),
            ..Default::default()
        };

        let json = serde_json::to_value(&request).expect("serializes");

        assert_eq!(json["IPAddress"], "127.0.0.1");
        assert_eq!(json["SSMConnectionChannel"], "");
        assert_eq!(json["Tags"][0]["Key"], "Env");
    }

    #[test]
    fn reads_the_captured_role_token_response() {
        let body = r#"{"AccessKeyId": "ASIAFAKEFAKEFAKEFAKE", "SecretAccessKey": "s",
            "SessionToken": "fakeSessionToken", "TokenExpirationDate": 1796306260.0064406,
            "UpdateKeyPair": false}"#;

        let parsed: RequestManagedInstanceRoleTokenResponse =
            serde_json::from_str(body).expect("parses");

        assert_eq!(parsed.access_key_id, "ASIAFAKEFAKEFAKEFAKE");
        assert!((parsed.token_expiration_date - 1_796_306_260.006).abs() < 0.01);
        assert!(!format!("{parsed:?}").contains("fakeSessionToken"));
    }
}
