//! The OpenAPI 3.1 document, generated from the handlers and view types. `docs/openapi.json` is a
//! checked-in copy; a test fails when they differ (regenerate with `UPDATE_OPENAPI=1 cargo test -p phoenix-api`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::views::{
    BatchGetBody, BatchGetResult, CreateUploadBody, CreditView, DecisionView, DerivativeView, DuplicateView, ErrorBody,
    ErrorDetail, FocalPointView, GalleryLinkView, GpsView, Health, HistoryEntryView, MediaKeyView, MediaPage,
    MediaPatchBody, MediaView, PlaceholderView, PresignedRequestView, RejectionView, ReviewBody, ReviewView,
    SeverityView, SourceView, UploadCreated, ViolationView,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "phoenix4ge media API",
        version = "1",
        description = "Media library for model portfolios. Errors are `{\"error\":{\"code\",\"message\",\"details\"?}}`."
    ),
    paths(
        crate::health,
        crate::media::create_upload,
        crate::media::get_media,
        crate::media::list_media,
        crate::media::batch_get,
        crate::media::patch_media,
        crate::media::review_media,
        crate::media::delete_media
    ),
    components(schemas(
        CreateUploadBody, UploadCreated, PresignedRequestView, MediaView, MediaPage, DerivativeView, SourceView,
        GpsView, PlaceholderView, RejectionView, ErrorBody, ErrorDetail, Health, FocalPointView, CreditView,
        GalleryLinkView, ViolationView, SeverityView, ReviewView, HistoryEntryView, DuplicateView, MediaPatchBody,
        DecisionView, ReviewBody, MediaKeyView, BatchGetBody, BatchGetResult
    )),
    modifiers(&BearerAuth),
    tags((name = "media", description = "Uploads and the media library"), (name = "system"))
)]
pub struct ApiDoc;

/// Bearer JWTs with Cognito claims (`sub`, `cognito:groups`, `custom:model_id`); see docs/auth.md.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The document as served and checked in: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut json = ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    #[test]
    fn checked_in_document_matches_the_code() {
        let generated = document();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p phoenix-api` and commit it"
        );
        let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    }
}
