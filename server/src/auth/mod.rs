//! Who is calling, and whether they may do what they ask.
//!
//! [`authenticate`] turns a signed request into a [`Principal`]: an IAM user from the
//! configuration, or a node (static keys, or temporary credentials issued by
//! `RequestManagedInstanceRoleToken`). [`Caller::authorize`] then evaluates the
//! principal's IAM policies for one action over the resources the operation touches.

pub mod managed;
pub mod signature;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tagrun_policy::{Context, Policy, ResourceRequest};

use crate::config::{Config, Role, User};
use crate::error::ApiError;
use crate::store::{Store, now_ms};
use signature::SignedRequest;

/// The identities the configuration defines, indexed for lookup by access key.
#[derive(Debug, Default)]
pub struct Identities {
    users: HashMap<String, Arc<User>>,
    static_nodes: HashMap<String, StaticKey>,
    roles: HashMap<String, Arc<Role>>,
}

#[derive(Debug)]
struct StaticKey {
    instance_id: String,
    secret_access_key: String,
    role: String,
}

impl Identities {
    /// Indexes the users, static nodes and roles of `config`.
    pub fn from_config(config: &Config) -> Identities {
        let users = config
            .users
            .iter()
            .map(|u| (u.access_key_id.clone(), Arc::new(u.clone())));
        let static_nodes = config.nodes.iter().map(|n| {
            let key = StaticKey {
                instance_id: n.instance_id.clone(),
                secret_access_key: n.secret_access_key.clone(),
                role: n.role.clone(),
            };
            (n.access_key_id.clone(), key)
        });
        let roles = config
            .roles
            .iter()
            .map(|r| (r.name.clone(), Arc::new(r.clone())));
        Identities {
            users: users.collect(),
            static_nodes: static_nodes.collect(),
            roles: roles.collect(),
        }
    }

    /// The role called `name`.
    pub fn role(&self, name: &str) -> Option<&Arc<Role>> {
        self.roles.get(name)
    }
}

/// Who signed a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An IAM user from the configuration.
    User(Arc<User>),
    /// A node, acting with its role's policies.
    Node {
        /// Its instance id.
        instance_id: String,
        /// Its role, if the configuration still defines it.
        role: Option<Arc<Role>>,
        /// The role's name.
        role_name: String,
    },
    /// A managed node proving itself with its private key (credential requests only).
    NodeKey {
        /// Its instance id.
        instance_id: String,
    },
    /// Nobody: an unsigned request (registration only).
    Anonymous,
}

/// How a request must be signed, decided by its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningRule {
    /// SigV4 with an access key (users, nodes).
    Hmac,
    /// No signature (`RegisterManagedInstance`).
    Anonymous,
    /// SigV4 structure with an RSA-PSS signature by the node's key.
    NodeKey,
}

/// The caller of one request: principal plus the request facts policies can test.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where.
    pub source_ip: IpAddr,
    /// Whether the request came over TLS.
    pub secure: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The server's account id.
    pub account_id: String,
    /// The server's region.
    pub region: String,
}

/// One resource an action touches, with the tags policies may test.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its ARN.
    pub arn: String,
    /// Its tags, offered as `ssm:resourceTag/<Key>` and `aws:ResourceTag/<Key>`.
    pub tags: BTreeMap<String, String>,
}

impl Resource {
    /// A resource with no tags.
    pub fn untagged(arn: String) -> Resource {
        Resource {
            arn,
            tags: BTreeMap::new(),
        }
    }
}

/// Request facts that authentication needs besides the headers and body.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The signing name the operation's service expects (`ssm`, `ec2messages`).
    pub service: &'a str,
    /// How the operation must be signed.
    pub rule: SigningRule,
    /// When the request arrived.
    pub now: SystemTime,
}

/// Establishes who signed the request.
pub async fn authenticate(
    config: &Config,
    identities: &Identities,
    store: &Store,
    headers: &HeaderMap,
    body: &[u8],
    facts: RequestFacts<'_>,
) -> Result<Principal, ApiError> {
    let signed = SignedRequest::parse(headers, body, facts.now)?;
    let Some(signed) = signed else {
        return match facts.rule {
            SigningRule::Anonymous => Ok(Principal::Anonymous),
            _ => Err(signature::missing_token()),
        };
    };
    signed.check_scope(&config.region, facts.service)?;

    if facts.rule == SigningRule::NodeKey && crate::ids::is_instance_id(signed.access_key_id()) {
        return authenticate_node_key(store, &signed).await;
    }
    let long_term = identities.users.contains_key(signed.access_key_id())
        || identities.static_nodes.contains_key(signed.access_key_id());
    if long_term && signed.session_token.is_some() {
        // A session token belongs to temporary credentials; with a long-term key it
        // names a session that was never issued.
        return Err(signature::unrecognized_client());
    }
    if let Some(user) = identities.users.get(signed.access_key_id()) {
        signed.verify_hmac(&user.secret_access_key)?;
        return Ok(Principal::User(user.clone()));
    }
    if let Some(key) = identities.static_nodes.get(signed.access_key_id()) {
        signed.verify_hmac(&key.secret_access_key)?;
        return Ok(node_principal(identities, &key.instance_id, &key.role));
    }
    authenticate_temporary(identities, store, &signed).await
}

/// Temporary credentials that `RequestManagedInstanceRoleToken` issued to a node.
async fn authenticate_temporary(
    identities: &Identities,
    store: &Store,
    signed: &SignedRequest<'_>,
) -> Result<Principal, ApiError> {
    let credentials = store.credentials(signed.access_key_id()).await?;
    let Some(credentials) = credentials else {
        return Err(signature::unrecognized_client());
    };
    let token_matches = signed.session_token.is_some_and(|token| {
        tagrun_wire::sigv4::signatures_match(&credentials.session_token, token)
    });
    if !token_matches {
        return Err(signature::unrecognized_client());
    }
    if credentials.expires_ms <= now_ms() {
        return Err(signature::expired_token());
    }
    signed.verify_hmac(&credentials.secret_access_key)?;

    let node = store.node(&credentials.instance_id).await?;
    let node = node.ok_or_else(signature::unrecognized_client)?;
    Ok(node_principal(
        identities,
        &node.instance_id,
        &node.iam_role,
    ))
}

/// A managed node signing with its private key.
async fn authenticate_node_key(
    store: &Store,
    signed: &SignedRequest<'_>,
) -> Result<Principal, ApiError> {
    let node = store.node(signed.access_key_id()).await?;
    let public_key = node.as_ref().and_then(|n| n.public_key.as_deref());
    let Some(public_key) = public_key else {
        return Err(signature::unrecognized_client());
    };
    signed.verify_rsa(public_key)?;
    Ok(Principal::NodeKey {
        instance_id: signed.access_key_id().to_owned(),
    })
}

fn node_principal(identities: &Identities, instance_id: &str, role: &str) -> Principal {
    Principal::Node {
        instance_id: instance_id.to_owned(),
        role: identities.role(role).cloned(),
        role_name: role.to_owned(),
    }
}

/// What authorizes a caller again after its request is gone: the principal by name
/// and the request facts that policies test. A `SendCommand` whose `Targets` are
/// still being resolved when the server stops keeps these, and the server finishes
/// the work after it restarts with the principal's policies as configured then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerFacts {
    /// The IAM user's name, when a user called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    /// The node and its role's name, when a node called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<(String, String)>,
    source_ip: IpAddr,
    secure: bool,
    user_agent: String,
}

impl CallerFacts {
    /// A caller nobody is: every action is denied to it.
    pub fn nobody() -> CallerFacts {
        CallerFacts {
            user: None,
            node: None,
            source_ip: IpAddr::from([127, 0, 0, 1]),
            secure: false,
            user_agent: String::new(),
        }
    }
}

impl Caller {
    /// What authorizes this caller again later; see [`CallerFacts`].
    pub fn facts(&self) -> CallerFacts {
        let (user, node) = match &self.principal {
            Principal::User(user) => (Some(user.name.clone()), None),
            Principal::Node {
                instance_id,
                role_name,
                ..
            } => (None, Some((instance_id.clone(), role_name.clone()))),
            Principal::NodeKey { .. } | Principal::Anonymous => (None, None),
        };
        CallerFacts {
            user,
            node,
            source_ip: self.source_ip,
            secure: self.secure,
            user_agent: self.user_agent.clone(),
        }
    }

    /// The caller that `facts` describe, with the policies `config` gives it now. A
    /// user or role no longer configured is a caller without policies: denied.
    pub fn from_facts(facts: CallerFacts, config: &Config, identities: &Identities) -> Caller {
        let principal = match (facts.user, facts.node) {
            (Some(name), _) => {
                let configured = identities.users.values().find(|u| u.name == name);
                let user = configured.cloned().unwrap_or_else(|| {
                    Arc::new(User {
                        name,
                        access_key_id: String::new(),
                        secret_access_key: String::new(),
                        policies: Vec::new(),
                        tags: BTreeMap::new(),
                    })
                });
                Principal::User(user)
            }
            (None, Some((instance_id, role_name))) => {
                node_principal(identities, &instance_id, &role_name)
            }
            (None, None) => Principal::Anonymous,
        };
        Caller {
            principal,
            source_ip: facts.source_ip,
            secure: facts.secure,
            user_agent: facts.user_agent,
            account_id: config.account_id.clone(),
            region: config.region.clone(),
        }
    }

    /// The caller's ARN as AWS writes it in error messages.
    pub fn arn(&self) -> String {
        let account = &self.account_id;
        match &self.principal {
            Principal::User(user) => format!("arn:aws:iam::{account}:user/{}", user.name),
            Principal::Node {
                instance_id,
                role_name,
                ..
            } => format!("arn:aws:sts::{account}:assumed-role/{role_name}/{instance_id}"),
            Principal::NodeKey { instance_id } => {
                format!(
                    "arn:aws:ssm:{}:{account}:managed-instance/{instance_id}",
                    self.region
                )
            }
            Principal::Anonymous => "anonymous".to_owned(),
        }
    }

    /// The node's instance id, when a node is calling.
    pub fn node_instance_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::Node { instance_id, .. } | Principal::NodeKey { instance_id } => {
                Some(instance_id)
            }
            _ => None,
        }
    }

    /// Allows `action` on every resource, or fails with AWS's `AccessDeniedException`.
    ///
    /// An empty `resources` means an action without a resource type, checked against
    /// `*` and reported without a resource in the message.
    pub fn authorize(&self, action: &str, resources: &[Resource]) -> Result<(), ApiError> {
        let policies = self.policies();
        let context = self.context();
        let requests: Vec<ResourceRequest> = resources.iter().map(resource_request).collect();

        let decision = tagrun_policy::evaluate(policies, action, &requests, &context);
        if decision.is_allowed() {
            return Ok(());
        }
        tracing::debug!(caller = %self.arn(), action, %decision, "access denied");
        Err(ApiError::access_denied(
            decision.access_denied_message(&self.arn(), action),
        ))
    }

    /// A check of `action` on one resource at a time, for a call that reaches many
    /// (a `SendCommand` through `Targets`): the request's context is built once.
    pub fn authorizer<'a>(&'a self, action: &'a str) -> impl Fn(&Resource) -> bool + 'a {
        let policies = self.policies();
        let context = self.context();
        move |resource| {
            let request = [resource_request(resource)];
            tagrun_policy::evaluate(policies, action, &request, &context).is_allowed()
        }
    }

    fn policies(&self) -> &[Policy] {
        match &self.principal {
            Principal::User(user) => &user.policies,
            Principal::Node {
                role: Some(role), ..
            } => &role.policies,
            _ => &[],
        }
    }

    /// The global condition keys AWS offers for a signed request.
    fn context(&self) -> Context {
        let mut context = Context::new();
        let now = SystemTime::now();
        context.insert_date("aws:CurrentTime", now);
        let epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        context.insert_number("aws:EpochTime", epoch as f64);
        context.insert_ip("aws:SourceIp", self.source_ip);
        context.insert_bool("aws:SecureTransport", self.secure);
        context.insert_string("aws:RequestedRegion", &self.region);
        context.insert_string("aws:UserAgent", &self.user_agent);
        context.insert_string("aws:PrincipalAccount", &self.account_id);
        context.insert_arn("aws:PrincipalArn", &self.principal_arn());

        match &self.principal {
            Principal::User(user) => {
                context.insert_string("aws:username", &user.name);
                context.insert_string("aws:userid", &user.access_key_id);
                context.insert_string("aws:PrincipalType", "User");
                for (key, value) in &user.tags {
                    context.insert_string(&format!("aws:PrincipalTag/{key}"), value);
                }
            }
            Principal::Node {
                instance_id,
                role_name,
                ..
            } => {
                context.insert_string("aws:userid", &format!("{role_name}:{instance_id}"));
                context.insert_string("aws:PrincipalType", "AssumedRole");
                context.insert_arn("ssm:SourceInstanceARN", &self.node_arn(instance_id));
            }
            Principal::NodeKey { .. } | Principal::Anonymous => {}
        }
        context
    }

    /// The principal's own ARN (`aws:PrincipalArn`): for a role session, the role.
    fn principal_arn(&self) -> String {
        match &self.principal {
            Principal::Node { role_name, .. } => {
                format!("arn:aws:iam::{}:role/{role_name}", self.account_id)
            }
            _ => self.arn(),
        }
    }

    fn node_arn(&self, instance_id: &str) -> String {
        crate::arn::node(&self.region, &self.account_id, instance_id)
    }
}

fn resource_request(resource: &Resource) -> ResourceRequest {
    ResourceRequest::new(resource.arn.clone()).with_tags(&resource.tags)
}
