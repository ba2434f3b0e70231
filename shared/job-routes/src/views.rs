//! What the job routes send and accept, as types: the OpenAPI document is generated from these.

use std::collections::BTreeMap;

use phoenix_domain::jobs::{FaultPlan, Job, JobStatus, Lane, LaneStats, Operation, QueueStatsReport};
use phoenix_domain::watermarks::{WatermarkPosition, WatermarkProfile};
use phoenix_domain::{MediaId, ModelId};
use phoenix_media_routes::views::DerivativeView;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The enums of request bodies are read as strings first: serde_json reports a value of another
/// type (`"priority": 5`) as a syntax error, which would hide the field that is wrong.
macro_rules! from_name {
    ($t:ty, $what:literal, [$($variant:ident = $name:literal),+ $(,)?]) => {
        impl TryFrom<String> for $t {
            type Error = String;

            fn try_from(raw: String) -> Result<Self, String> {
                match raw.as_str() {
                    $($name => Ok(Self::$variant),)+
                    _ => {
                        let known = concat!($("`", $name, "` ",)+);
                        Err(format!("unknown {} {raw:?}; one of {}", $what, known.trim_end()))
                    }
                }
            }
        }
    };
}

from_name!(
    OperationName,
    "operation",
    [Crop = "crop", Rotate = "rotate", Flip = "flip", Watermark = "watermark", Regenerate = "regenerate"]
);
from_name!(Priority, "priority", [High = "high", Normal = "normal"]);
from_name!(
    PositionView,
    "position",
    [
        TopLeft = "top_left",
        TopRight = "top_right",
        BottomLeft = "bottom_left",
        BottomRight = "bottom_right",
        Center = "center",
    ]
);

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum OperationName {
    /// `params`: exactly one of `rect: {x, y, width, height}` (displayed pixels) and
    /// `aspect: {width, height}` (1 to 100 each, centred on the focal point).
    Crop,
    /// `params`: `{degrees}`, clockwise: 90, 180 or 270.
    Rotate,
    /// `params`: `{axis}`: `horizontal` or `vertical`.
    Flip,
    /// `params`: `{profile}`, a watermark profile that exists (`PUT /v1/watermarks/{profile}`).
    Watermark,
    /// `params`: `{presets?}`: presets to rebuild even if current (at most 32); the others are
    /// brought up to date.
    Regenerate,
}

impl OperationName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crop => "crop",
            Self::Rotate => "rotate",
            Self::Flip => "flip",
            Self::Watermark => "watermark",
            Self::Regenerate => "regenerate",
        }
    }

    fn of(operation: &Operation) -> Self {
        match operation {
            Operation::Crop { .. } => Self::Crop,
            Operation::Rotate { .. } => Self::Rotate,
            Operation::Flip { .. } => Self::Flip,
            Operation::Watermark { .. } => Self::Watermark,
            Operation::Regenerate { .. } => Self::Regenerate,
        }
    }
}

/// The lane a job runs in: `high` for urgent single edits, `normal` (the default) for bulk work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Priority {
    High,
    #[default]
    Normal,
}

impl From<Priority> for Lane {
    fn from(p: Priority) -> Self {
        match p {
            Priority::High => Lane::High,
            Priority::Normal => Lane::Normal,
        }
    }
}

impl From<Lane> for Priority {
    fn from(lane: Lane) -> Self {
        match lane {
            Lane::High => Priority::High,
            Lane::Normal => Priority::Normal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatusView {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<JobStatus> for JobStatusView {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => Self::Queued,
            JobStatus::Running => Self::Running,
            JobStatus::Succeeded => Self::Succeeded,
            JobStatus::Failed => Self::Failed,
            JobStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// Which media a job works on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    #[schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$", example = "model-42")]
    pub model_id: ModelId,
    /// One media; absent: every media of the model (`regenerate` and `watermark` only: a parent
    /// job whose children each do one media).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub media_id: Option<MediaId>,
    /// With `regenerate` and no `media_id`: only the media whose derivatives are stale.
    #[serde(default)]
    pub stale: bool,
}

/// `POST /v1/jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJobBody {
    pub operation: OperationName,
    pub target: TargetBody,
    /// The operation's parameters (see `operation`); an object, or absent when it takes none.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"degrees": 90}))]
    pub params: Option<serde_json::Value>,
    /// Default `normal`.
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub fault: Option<FaultPlan>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    pub model_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    pub stale: bool,
}

/// One try at a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub number: u32,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// After a transient failure: when the next attempt may start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// The backoff's ceiling for this attempt (the delay was drawn between 0 and it: full jitter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_cap_ms: Option<u64>,
}

/// A parent's children: how many there are (final once every page of media is fanned out), how
/// many ended, how many of those failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub done: u64,
    pub failed: u64,
    pub total: u64,
}

/// What a job made.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResultView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// The image version the job made (or brought up to date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_version: Option<u32>,
    #[schema(example = "rotated 90°")]
    pub summary: String,
    pub derivatives: Vec<DerivativeView>,
}

/// Why a job failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobFailureView {
    /// `invalid_params`, `source_unreadable`, `media_gone`, `invalid_state`,
    /// `attempts_exhausted`, `lease_lapsed`, `children_failed`, `internal`.
    #[schema(example = "attempts_exhausted")]
    pub code: String,
    pub message: String,
}

/// A running job's lease (admins only).
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    pub until: String,
    /// The queue message whose delivery holds it.
    pub holder: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    #[schema(example = "01jd3k6v2q8m3y7x9t0b5n4c2a")]
    pub job_id: String,
    /// The parent job, for one media of a whole-model job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub model_id: String,
    pub operation: OperationName,
    /// The operation's parameters, as understood.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub target: TargetView,
    pub priority: Priority,
    pub status: JobStatusView,
    /// The caller's subject who submitted it.
    pub submitted_by: String,
    /// Every attempt, oldest first (a retried job keeps the earlier ones).
    pub attempts: Vec<AttemptView>,
    /// Attempts a run may take before the job fails.
    pub max_attempts: u32,
    /// Whole-model jobs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
    pub queued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResultView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailureView>,
    /// Incremented by every change of the job (the `ETag` names it).
    pub version: u64,
    /// Admins only, while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseView>,
    /// Admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultPlan>,
}

impl JobView {
    /// The public shape of a job; `urls` are its result's derivatives' links in order, `admin`
    /// whether the caller may see the lease and the fault plan.
    pub fn new(job: &Job, urls: Vec<String>, admin: bool) -> Self {
        Self {
            job_id: job.job_id.to_string(),
            parent_id: job.parent_id.map(|p| p.to_string()),
            model_id: job.model_id.to_string(),
            operation: OperationName::of(&job.operation),
            params: job.operation.params(),
            target: TargetView {
                model_id: job.target.model_id.to_string(),
                media_id: job.target.media_id.map(|m| m.to_string()),
                stale: job.target.stale,
            },
            priority: job.lane.into(),
            status: job.status.into(),
            submitted_by: job.submitted_by.clone(),
            attempts: job
                .attempts
                .iter()
                .map(|a| AttemptView {
                    number: a.number,
                    started_at: rfc3339(a.started_at),
                    finished_at: a.finished_at.map(rfc3339),
                    error: a.error.clone(),
                    retry_at: a.retry_at.map(rfc3339),
                    backoff_cap_ms: a.backoff_cap_ms,
                })
                .collect(),
            max_attempts: job.max_attempts,
            progress: job.progress.map(|p| ProgressView { done: p.done, failed: p.failed, total: p.total }),
            queued_at: rfc3339(job.queued_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            updated_at: rfc3339(job.updated_at),
            result: job.result.as_ref().map(|r| JobResultView {
                media_id: r.media_id.map(|m| m.to_string()),
                image_version: r.image_version,
                summary: r.summary.clone(),
                derivatives: r.derivatives.iter().zip(urls).map(|(d, url)| DerivativeView::new(d, url)).collect(),
            }),
            error: job.error.as_ref().map(|e| JobFailureView { code: e.code.clone(), message: e.message.clone() }),
            version: job.version,
            lease: job
                .lease
                .as_ref()
                .filter(|_| admin)
                .map(|l| LeaseView { until: rfc3339(l.until), holder: l.holder.clone() }),
            fault: job.fault.filter(|_| admin),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Newest first.
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One lane's numbers (SQS's approximate counts).
#[derive(Debug, Serialize, ToSchema)]
pub struct LaneStatsView {
    pub lane: Priority,
    /// No worker takes its messages until it is resumed.
    pub paused: bool,
    /// Waiting to be received.
    pub visible: u64,
    /// Received and not yet deleted (being worked on, or waiting out a backoff).
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
    /// In the lane's dead-letter queue (`POST /v1/queues/{lane}/redrive` moves them back).
    pub dead_letter: u64,
}

impl From<&LaneStats> for LaneStatsView {
    fn from(s: &LaneStats) -> Self {
        Self {
            lane: s.lane.into(),
            paused: s.paused,
            visible: s.visible,
            in_flight: s.in_flight,
            delayed: s.delayed,
            dead_letter: s.dead_letter,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStatsView {
    pub lanes: Vec<LaneStatsView>,
    /// Every model's jobs, by status.
    #[schema(example = json!({"queued": 3, "running": 1, "succeeded": 120, "failed": 2, "cancelled": 0}))]
    pub jobs: BTreeMap<String, u64>,
    /// Seconds since the oldest queued job was submitted (absent when none is queued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_queued_age_secs: Option<u64>,
}

impl From<&QueueStatsReport> for QueueStatsView {
    fn from(r: &QueueStatsReport) -> Self {
        Self {
            lanes: r.lanes.iter().map(Into::into).collect(),
            jobs: r.jobs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            oldest_queued_age_secs: r.oldest_queued_age_secs,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveView {
    pub lane: Priority,
    /// Messages moved from the dead-letter queue back to the lane by this call (at most 100):
    /// call again until it is 0.
    pub moved: u64,
}

/// Where a watermark's logo sits.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum PositionView {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Center,
}

impl From<PositionView> for WatermarkPosition {
    fn from(p: PositionView) -> Self {
        match p {
            PositionView::TopLeft => Self::TopLeft,
            PositionView::TopRight => Self::TopRight,
            PositionView::BottomLeft => Self::BottomLeft,
            PositionView::BottomRight => Self::BottomRight,
            PositionView::Center => Self::Center,
        }
    }
}

impl From<WatermarkPosition> for PositionView {
    fn from(p: WatermarkPosition) -> Self {
        match p {
            WatermarkPosition::TopLeft => Self::TopLeft,
            WatermarkPosition::TopRight => Self::TopRight,
            WatermarkPosition::BottomLeft => Self::BottomLeft,
            WatermarkPosition::BottomRight => Self::BottomRight,
            WatermarkPosition::Center => Self::Center,
        }
    }
}

/// `PUT /v1/watermarks/{profile}`: creates or replaces a profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWatermarkBody {
    /// The logo: a PNG with an alpha channel, at most 4096x4096 pixels and 4 MiB, base64
    /// (standard alphabet, with padding).
    #[schema(example = "iVBORw0KGgoAAAANSUhEUgAA…")]
    pub logo_png_base64: String,
    pub position: PositionView,
    /// Space between the logo and the nearest edges, as a fraction of the image's shorter side (0 to 0.25).
    #[schema(example = 0.03, minimum = 0, maximum = 0.25)]
    pub margin: f32,
    /// The logo's width as a fraction of the image's width (above 0, at most 1).
    #[schema(example = 0.2, exclusive_minimum = 0, maximum = 1)]
    pub scale: f32,
    /// Multiplies the logo's own alpha (above 0, at most 1).
    #[schema(example = 0.6, exclusive_minimum = 0, maximum = 1)]
    pub opacity: f32,
    /// The presets whose derivatives carry the mark: 1 to 32 names.
    #[schema(example = json!(["large", "xlarge"]), min_items = 1, max_items = 32)]
    pub presets: Vec<String>,
}

/// A watermark profile (its logo's bytes are not sent back).
#[derive(Debug, Serialize, ToSchema)]
pub struct WatermarkView {
    #[schema(example = "agency-logo")]
    pub name: String,
    pub position: PositionView,
    pub margin: f32,
    pub scale: f32,
    pub opacity: f32,
    pub presets: Vec<String>,
    /// SHA-256 of the logo PNG, hex.
    pub logo_sha256: String,
    pub logo_width: u32,
    pub logo_height: u32,
    pub updated_at: String,
    /// The admin who last put it (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl WatermarkView {
    pub fn new(p: &WatermarkProfile, admin: bool) -> Self {
        Self {
            name: p.name.to_string(),
            position: p.settings.position.into(),
            margin: p.settings.margin,
            scale: p.settings.scale,
            opacity: p.settings.opacity,
            presets: p.settings.presets.clone(),
            logo_sha256: p.logo_sha256.clone(),
            logo_width: p.logo_width,
            logo_height: p.logo_height,
            updated_at: rfc3339(p.updated_at),
            updated_by: Some(p.updated_by.clone()).filter(|_| admin),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatermarkList {
    /// By name (at most 100).
    pub items: Vec<WatermarkView>,
}
