//! Extractors whose rejections speak the API's error format.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// A JSON body. Syntax errors, wrong types (naming the field in `details.field`), unknown
/// fields, a missing content type and oversized bodies each become the matching 4xx.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "the body is over the limit of {} bytes",
                    crate::layers::MAX_JSON_BODY
                ))
            } else {
                ApiError::InvalidRequest(rejection.body_text())
            }
        })?;
        parse_json(&body).map(Self)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body; a value of the wrong shape names its field (`items[2].media_id`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| json_error(e.path().to_string(), e.into_inner()))?;
    deserializer.end().map_err(|e| json_error(String::new(), e))?;
    Ok(value)
}

fn json_error(field: String, error: serde_json::Error) -> ApiError {
    // serde_json ends its messages with the position; the field says where in a body this small.
    let text = error.to_string();
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m).to_owned();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedJson(format!("the body is not valid JSON: {text}"))
        }
        Category::Data if field == "." || field.is_empty() => ApiError::InvalidRequest(message),
        Category::Data => ApiError::InvalidField { field, message },
    }
}

/// Path parameters, as strings; handlers parse them into newtypes.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError::InvalidId(e.body_text()))
    }
}

/// A query string.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::InvalidRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        bytes: u64,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        media_id: String,
    }

    fn field(body: &str) -> (String, Option<String>, String) {
        let e = parse_json::<Body>(body.as_bytes()).unwrap_err();
        let field = match &e {
            ApiError::InvalidField { field, .. } => Some(field.clone()),
            _ => None,
        };
        (e.code().to_owned(), field, e.to_string())
    }

    #[test]
    fn a_wrong_value_names_its_field() {
        let (code, f, message) = field(r#"{"bytes": "ten", "items": []}"#);
        assert_eq!((code.as_str(), f.as_deref()), ("invalid_request", Some("bytes")));
        assert!(message.contains("invalid type") && !message.contains("line 1"), "{message}");
        let (_, f, _) = field(r#"{"bytes": 1, "items": [{"media_id": "a"}, {"media_id": 7}]}"#);
        assert_eq!(f.as_deref(), Some("items[1].media_id"));
        let (_, f, message) = field(r#"{"bytes": 1, "items": [], "extra": true}"#);
        assert_eq!(f.as_deref(), Some("extra"), "{message}");
        let (code, f, _) = field(r#"{"bytes": 1}"#);
        assert_eq!((code.as_str(), f), ("invalid_request", None), "a missing field is the object's fault");
    }

    #[test]
    fn broken_json_is_malformed_and_json_types_are_recognised() {
        assert_eq!(field(r#"{"bytes": 1,"#).0, "malformed_json");
        assert_eq!(field(r#"{"bytes": 1, "items": []} trailing"#).0, "malformed_json");
        let headers = |v: &str| HeaderMap::from_iter([(CONTENT_TYPE, v.parse().unwrap())]);
        assert!(is_json(&headers("application/json; charset=utf-8")));
        assert!(is_json(&headers("application/merge-patch+json")));
        assert!(!is_json(&headers("text/plain")) && !is_json(&HeaderMap::new()));
    }
}
