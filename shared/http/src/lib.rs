//! The HTTP toolkit every route crate shares: one error type mapped once to a status and a
//! stable code (`{"error":{"code","message","details"?}}`), extractors whose rejections speak
//! that format, the authenticated [`Caller`] (usable with any router state that yields an
//! [`AuthMode`] through `FromRef`), conditional requests, the common layers, and the OpenAPI
//! pieces declared once.

pub mod auth;
pub mod conditional;
pub mod cors;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod lambda;
pub mod layers;
pub mod openapi;
pub mod params;

pub use auth::{AuthMode, Caller, DevClaims, LocalKeys, Role};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use layers::{MAX_JSON_BODY, finish};
pub use params::{MediaPath, ModelPath};
