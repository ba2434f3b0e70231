//! Watermark profiles: an admin puts a logo (a PNG with alpha) and how it is drawn; anyone signed
//! in may read them (a model user picks one for a `watermark` job).

use axum::Json;
use axum::extract::State;
use base64::Engine;
use bytes::Bytes;
use phoenix_domain::WatermarkName;
use phoenix_domain::watermarks::{self, CheckedLogo, WatermarkSettings};
use phoenix_http::openapi::AuthenticatedErrors;
use phoenix_http::{ApiError, ApiJson, ApiPath, Caller, ErrorBody};
use serde::Deserialize;
use sha2::Digest;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::error::JobApiError;
use crate::state::JobState;
use crate::views::{PutWatermarkBody, WatermarkList, WatermarkView};

/// The body limit of `PUT /v1/watermarks/{profile}` (the API's default is 64 KiB): a logo of up
/// to 4 MiB is about 5.6 MB in base64. It stays under Lambda's 6 MB request payload.
pub const WATERMARK_MAX_BODY: usize = 6 * 1024 * 1024;

/// `/v1/watermarks/{profile}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProfilePath {
    /// The profile's name: 1 to 40 of a-z, 0-9, '-' or '_' (upper case is folded)
    #[param(pattern = "^[A-Za-z0-9_-]{1,40}$")]
    pub profile: String,
}

impl ProfilePath {
    fn name(&self) -> Result<WatermarkName, ApiError> {
        WatermarkName::parse(&self.profile).map_err(|e| ApiError::InvalidId(e.to_string()))
    }
}

fn logo_error(message: impl Into<String>) -> ApiError {
    ApiError::InvalidField { field: "logo_png_base64".into(), message: message.into() }
}

/// Decodes and checks a logo (off the async threads: a 4096x4096 PNG takes a while).
async fn check_logo(base64: &str) -> Result<CheckedLogo, ApiError> {
    let png = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .map_err(|e| logo_error(format!("not valid base64 (standard alphabet, padded): {e}")))?;
    let png = Bytes::from(png);
    let decoded = {
        let png = png.clone();
        tokio::task::spawn_blocking(move || phoenix_imaging::decode_logo(&png))
            .await
            .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("the logo check did not finish: {e}")))?
    };
    // Every refusal is about the file (not a PNG, no alpha, too large, damaged): the caller's to fix.
    let logo = decoded.map_err(|e| logo_error(e.to_string()))?;
    let sha256 = hex::encode(sha2::Sha256::digest(&png));
    Ok(CheckedLogo { png, width: logo.width(), height: logo.height(), sha256 })
}

/// Creates or replaces a watermark profile (admins only). The logo must be a PNG with an alpha
/// channel, at most 4096x4096 pixels and 4 MiB. Jobs already made keep the mark they drew; new
/// `watermark` jobs use the profile as it is when they run.
#[utoipa::path(
    put,
    path = "/v1/watermarks/{profile}",
    tag = "watermarks",
    params(ProfilePath),
    request_body = PutWatermarkBody,
    responses(
        (status = 200, description = "The profile as stored", body = WatermarkView),
        (status = 400, description = "Malformed body or name; a logo that is not base64, not a PNG, without transparency, too large or damaged (`details.field: logo_png_base64`); settings out of range (`details.field` names the setting)", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 413, description = "The body is over 6 MiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn put_watermark(
    State(state): State<JobState>,
    caller: Caller,
    ApiPath(path): ApiPath<ProfilePath>,
    body: Result<ApiJson<PutWatermarkBody>, ApiError>,
) -> Result<Json<WatermarkView>, JobApiError> {
    caller.require_admin("manage watermark profiles")?;
    let name = path.name()?;
    let ApiJson(body) = body.map_err(|e| match e {
        ApiError::PayloadTooLarge(_) => ApiError::PayloadTooLarge(format!(
            "the body is over the limit of {WATERMARK_MAX_BODY} bytes; a logo may be at most 4 MiB"
        )),
        other => other,
    })?;
    let settings = WatermarkSettings {
        position: body.position.into(),
        margin: body.margin,
        scale: body.scale,
        opacity: body.opacity,
        presets: body.presets,
    };
    // Cheap checks first: a bad setting is refused before the logo is decoded.
    settings.validate()?;
    let logo = check_logo(&body.logo_png_base64).await?;
    let profile = watermarks::put_profile(
        state.ports.objects.as_ref(),
        name,
        settings,
        logo,
        &caller.subject,
        OffsetDateTime::now_utc(),
    )
    .await?;
    tracing::info!(
        profile = %profile.name,
        logo_width = profile.logo_width,
        logo_height = profile.logo_height,
        "watermark profile put"
    );
    Ok(Json(WatermarkView::new(&profile, caller.is_admin())))
}

/// One watermark profile (without the logo's bytes).
#[utoipa::path(
    get,
    path = "/v1/watermarks/{profile}",
    tag = "watermarks",
    params(ProfilePath),
    responses(
        (status = 200, body = WatermarkView),
        (status = 400, description = "Malformed name", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn get_watermark(
    State(state): State<JobState>,
    caller: Caller,
    ApiPath(path): ApiPath<ProfilePath>,
) -> Result<Json<WatermarkView>, JobApiError> {
    let profile = watermarks::get_profile(state.ports.objects.as_ref(), &path.name()?).await?;
    Ok(Json(WatermarkView::new(&profile, caller.is_admin())))
}

/// Every watermark profile, by name (at most 100).
#[utoipa::path(
    get,
    path = "/v1/watermarks",
    tag = "watermarks",
    responses((status = 200, body = WatermarkList), AuthenticatedErrors),
    security(("bearer" = []))
)]
pub async fn list_watermarks(
    State(state): State<JobState>,
    caller: Caller,
) -> Result<Json<WatermarkList>, JobApiError> {
    let profiles = watermarks::list_profiles(state.ports.objects.as_ref()).await?;
    Ok(Json(WatermarkList { items: profiles.iter().map(|p| WatermarkView::new(p, caller.is_admin())).collect() }))
}
