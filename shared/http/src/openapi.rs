//! OpenAPI pieces every route crate shares, declared once: the bearer scheme and the error
//! responses most operations can give (path parameters are in [`crate::params`]).

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, ToSchema};

use crate::error::ErrorBody;

/// Bearer JWTs with Cognito claims (`sub`, `cognito:groups`, `custom:model_id`); see docs/auth.md.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The body API Gateway sends when it answers a request itself (in AWS only): a refused token
/// (401), no matching route (404), throttling (429), a function that timed out (503).
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayError {
    #[schema(example = "Unauthorized")]
    pub message: String,
}

/// A 401's body: ours, or API Gateway's when its authorizer refused the token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RefusedToken {
    Api(ErrorBody),
    Gateway(GatewayError),
}

/// What any authenticated operation may answer besides its own outcomes.
#[derive(IntoResponses)]
pub enum AuthenticatedErrors {
    /// No valid token. In AWS, API Gateway's authorizer answers this itself, as `GatewayError`
    /// (`{"message":"Unauthorized"}`)
    #[response(status = 401)]
    Unauthorized(RefusedToken),
    /// A dependency is unavailable; nothing was changed
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What an operation on one model's resources may answer besides [`AuthenticatedErrors`].
#[derive(IntoResponses)]
pub enum ModelScopedErrors {
    /// Not this caller's model
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// What an operation with a JSON body may answer about the body itself.
#[derive(IntoResponses)]
pub enum JsonBodyErrors {
    /// The body is too large
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON
    #[response(status = 415)]
    NotJson(ErrorBody),
}
