//! Who is calling, and may they act on this model?
//!
//! Claims are Cognito's: `sub`, `cognito:groups` (`admin` or `model`) and `custom:model_id`.
//! In AWS the HttpApi JWT authorizer has verified the token and passes the claims in the request
//! context; locally the server verifies an HS256 token itself.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::request::RequestContext;
use phoenix_domain::ModelId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Clone)]
pub enum AuthMode {
    /// Claims come from API Gateway's JWT authorizer, in the Lambda request context.
    ApiGateway,
    /// Bearer tokens are verified here with this HS256 secret.
    LocalJwt(Arc<LocalKeys>),
}

pub struct LocalKeys {
    decoding: DecodingKey,
    encoding: EncodingKey,
}

impl AuthMode {
    pub fn local(secret: &[u8]) -> Self {
        Self::LocalJwt(Arc::new(LocalKeys {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
        }))
    }
}

/// The claims a local token carries; also what tests and the local server mint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevClaims {
    pub sub: String,
    #[serde(rename = "cognito:groups", default)]
    pub groups: Vec<String>,
    #[serde(rename = "custom:model_id", default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    pub exp: u64,
}

impl DevClaims {
    /// Signs these claims with the local key (HS256).
    pub fn sign(&self, keys: &LocalKeys) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), self, &keys.encoding).expect("HS256 signing cannot fail")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    Model(ModelId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Admins only: the agency's own operations (reviews, lane controls).
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::Forbidden(format!("only the agency's admins may {what}"))) }
    }

    /// Admins act on every model; a model only on itself.
    pub fn authorize(&self, model: &ModelId) -> Result<(), ApiError> {
        match &self.role {
            Role::Admin => Ok(()),
            Role::Model(own) if own == model => Ok(()),
            Role::Model(_) => Err(ApiError::Forbidden("you may only act on your own model".into())),
        }
    }

    fn from_claims(subject: Option<String>, groups: &[String], model_id: Option<&str>) -> Result<Self, ApiError> {
        let subject = subject
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("the token has no subject".into()))?;
        let role = if groups.iter().any(|g| g == "admin") {
            Role::Admin
        } else if groups.iter().any(|g| g == "model") {
            let raw = model_id.ok_or_else(|| ApiError::Forbidden("a model token must carry custom:model_id".into()))?;
            Role::Model(
                ModelId::parse(raw)
                    .map_err(|_| ApiError::Forbidden("the token's custom:model_id is not valid".into()))?,
            )
        } else {
            return Err(ApiError::Forbidden("the token grants no role: it must be in group admin or model".into()));
        };
        Ok(Self { subject, role })
    }
}

/// API Gateway flattens list claims to strings: `[admin model]`, `["admin","model"]` or `admin`.
fn parse_groups(raw: &str) -> Vec<String> {
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split([',', ' '])
        .map(|g| g.trim().trim_matches('"').to_owned())
        .filter(|g| !g.is_empty())
        .collect()
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let value = header.to_str().map_err(|_| ApiError::Unauthorized("the Authorization header is not valid".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())),
    }
}

/// Any router whose state can give the [`AuthMode`] (`FromRef`) authenticates its callers.
impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    AuthMode: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match &AuthMode::from_ref(state) {
            AuthMode::LocalJwt(keys) => {
                let token = bearer(parts)?;
                let mut validation = Validation::new(Algorithm::HS256);
                validation.set_required_spec_claims(&["exp", "sub"]);
                let data = jsonwebtoken::decode::<DevClaims>(token, &keys.decoding, &validation)
                    .map_err(|e| ApiError::Unauthorized(format!("the token was refused: {e}")))?;
                let c = data.claims;
                Self::from_claims(Some(c.sub), &c.groups, c.model_id.as_deref())
            }
            AuthMode::ApiGateway => {
                let claims = match parts.extensions.get::<RequestContext>() {
                    Some(RequestContext::ApiGatewayV2(ctx)) => {
                        ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|jwt| &jwt.claims)
                    }
                    _ => None,
                }
                .ok_or_else(|| ApiError::Unauthorized("no verified token claims on the request".into()))?;
                let groups = claims.get("cognito:groups").map(|g| parse_groups(g)).unwrap_or_default();
                Self::from_claims(
                    claims.get("sub").cloned(),
                    &groups,
                    claims.get("custom:model_id").map(String::as_str),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_gateway_group_claims_in_every_shape() {
        assert_eq!(parse_groups("[admin model]"), vec!["admin", "model"]);
        assert_eq!(parse_groups(r#"["admin","model"]"#), vec!["admin", "model"]);
        assert_eq!(parse_groups("model"), vec!["model"]);
        assert!(parse_groups("[]").is_empty());
    }

    #[test]
    fn roles_and_authorisation() {
        let m1 = ModelId::parse("m1").unwrap();
        let m2 = ModelId::parse("m2").unwrap();
        let admin = Caller::from_claims(Some("a".into()), &["admin".into()], None).unwrap();
        assert!(admin.authorize(&m1).is_ok() && admin.authorize(&m2).is_ok());
        let model = Caller::from_claims(Some("b".into()), &["model".into()], Some("m1")).unwrap();
        assert!(model.authorize(&m1).is_ok());
        assert_eq!(model.authorize(&m2).unwrap_err().code(), "forbidden");
        assert_eq!(Caller::from_claims(Some("c".into()), &["model".into()], None).unwrap_err().code(), "forbidden");
        assert_eq!(Caller::from_claims(Some("d".into()), &[], None).unwrap_err().code(), "forbidden");
        assert_eq!(Caller::from_claims(None, &["admin".into()], None).unwrap_err().code(), "unauthorized");
    }
}
