//! OpenAPI pieces every route crate shares, declared once: the bearer scheme and the error
//! responses most operations can give (path parameters are in [`crate::params`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify};

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

/// What any authenticated operation may answer besides its own outcomes.
#[derive(IntoResponses)]
pub enum AuthenticatedErrors {
    /// No valid token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
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
