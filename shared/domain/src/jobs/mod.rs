//! Background image jobs: what a job is (operation, target, lane), its record and lifecycle
//! (queued → running → succeeded | failed | cancelled, with attempts, a lease and progress), and
//! the use cases that submit, run, reap and control them. The image work itself is the worker's;
//! this module decides what may happen to a job and when.

mod error;
pub mod events;
#[cfg(test)]
pub(crate) mod fakes;
pub mod lifecycle;
mod operations;
mod submit;

pub use error::JobError;
pub use events::{JobEvent, JobEventKind};
pub use lifecycle::{Backoff, Start};
pub use operations::{
    LaneStats, QueueStatsReport, ReapReport, cancel, enqueue, finish_parent_if_done, queue_stats, reap, redrive, retry,
    set_paused, spawn_child,
};
pub use submit::{SubmitPorts, SubmitRequest, Submitted, new_job, submit};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{JobId, MediaId, ModelId, WatermarkName};
use crate::media::Derivative;
use crate::ports::QueueName;

/// A lane: a queue of its own, with its own dead-letter queue, alarm and concurrency, so urgent
/// edits never wait behind bulk work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    High,
    Normal,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::High, Lane::Normal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == raw)
    }

    pub fn queue(self) -> QueueName {
        match self {
            Self::High => QueueName::JOBS_HIGH,
            Self::Normal => QueueName::JOBS_NORMAL,
        }
    }

    pub fn dead_letter_queue(self) -> QueueName {
        match self {
            Self::High => QueueName::JOBS_HIGH_DLQ,
            Self::Normal => QueueName::JOBS_NORMAL_DLQ,
        }
    }

    /// The lane whose queue is `queue` (what a worker consumes tells it its lane).
    pub fn of_queue(queue: &QueueName) -> Option<Self> {
        Self::ALL.into_iter().find(|l| &l.queue() == queue)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Nothing more happens to a job in this state (but a retry of a failed one).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// A crop: a rectangle in the displayed image's pixels, or an aspect ratio around the focal point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AspectRatio {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipAxis {
    Horizontal,
    Vertical,
}

/// What a job does, with its parameters. Stored tagged by `op`; the API shows `operation` and
/// `params` apart ([`Operation::name`], [`Operation::params`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// Exactly one of `rect` and `aspect`.
    Crop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rect: Option<CropRect>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aspect: Option<AspectRatio>,
    },
    /// Clockwise, 90, 180 or 270 degrees.
    Rotate {
        degrees: u16,
    },
    Flip {
        axis: FlipAxis,
    },
    /// Draws the named profile's logo on the derivatives the profile names.
    Watermark {
        profile: WatermarkName,
    },
    /// Brings derivatives up to date with the presets; `presets` are rebuilt even if current.
    Regenerate {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        presets: Vec<String>,
    },
}

impl Operation {
    pub const NAMES: [&'static str; 5] = ["crop", "rotate", "flip", "watermark", "regenerate"];

    pub fn name(&self) -> &'static str {
        match self {
            Self::Crop { .. } => "crop",
            Self::Rotate { .. } => "rotate",
            Self::Flip { .. } => "flip",
            Self::Watermark { .. } => "watermark",
            Self::Regenerate { .. } => "regenerate",
        }
    }

    /// The parameters as the API shows them (the stored form without its tag).
    pub fn params(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("op");
        }
        value
    }

    /// Builds an operation from the API's `operation` and `params`; the error says what is wrong
    /// in the words of the request.
    pub fn from_request(name: &str, params: serde_json::Value) -> Result<Self, JobError> {
        if !Self::NAMES.contains(&name) {
            return Err(JobError::invalid(
                "operation",
                format!("unknown operation {name:?}; one of {:?}", Self::NAMES),
            ));
        }
        let mut map = match params {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(map) => map,
            _ => return Err(JobError::invalid("params", "params must be a JSON object")),
        };
        map.insert("op".into(), serde_json::Value::String(name.to_owned()));
        let op: Self = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| JobError::invalid("params", format!("params of {name}: {e}")))?;
        op.validate()?;
        Ok(op)
    }

    fn validate(&self) -> Result<(), JobError> {
        match self {
            Self::Crop { rect: Some(_), aspect: Some(_) } | Self::Crop { rect: None, aspect: None } => {
                Err(JobError::invalid("params", "a crop takes exactly one of `rect` and `aspect`"))
            }
            Self::Crop { rect: Some(r), .. } if r.width == 0 || r.height == 0 => {
                Err(JobError::invalid("params.rect", "a crop rectangle must be at least 1x1"))
            }
            Self::Crop { aspect: Some(a), .. } if a.width == 0 || a.height == 0 || a.width > 100 || a.height > 100 => {
                Err(JobError::invalid("params.aspect", "an aspect ratio's sides must be 1 to 100 (e.g. 4:5)"))
            }
            Self::Rotate { degrees } if !matches!(degrees, 90 | 180 | 270) => {
                Err(JobError::invalid("params.degrees", "rotation is 90, 180 or 270 degrees (clockwise)"))
            }
            Self::Regenerate { presets } if presets.len() > 32 => {
                Err(JobError::invalid("params.presets", "at most 32 preset names"))
            }
            _ => Ok(()),
        }
    }

    /// Whether the operation may target every media of a model (a parent job that fans out).
    pub fn fans_out(&self) -> bool {
        matches!(self, Self::Regenerate { .. } | Self::Watermark { .. })
    }

    /// Whether the operation makes a new version of the image.
    pub fn makes_version(&self) -> bool {
        !matches!(self, Self::Regenerate { .. })
    }
}

/// Which media a job works on: one (`media_id`), or every media of the model — or, with
/// `stale`, those whose derivatives are stale after a preset change (regenerate only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub model_id: ModelId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<MediaId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl Target {
    pub fn media(model_id: ModelId, media_id: MediaId) -> Self {
        Self { model_id, media_id: Some(media_id), stale: false }
    }
}

/// Test-only fault injection, honoured only by a worker configured for it
/// (`PHOENIX_FAULT_INJECTION=1`) and refused at submission otherwise. The API takes and shows it
/// as it is (the field docs are the API's; with the `openapi` feature it is `FaultPlanView`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(
        as = FaultPlanView,
        description = "Test-only fault injection: refused (400, `details.field: \"fault\"`) unless the deployment runs\nwith `PHOENIX_FAULT_INJECTION=1`. Shown to admins only."
    )
)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// The first this many attempts fail transiently.
    // `u32::MAX`: every attempt.
    #[serde(default)]
    pub transient_failures: u32,
    /// The first attempt fails permanently.
    #[serde(default)]
    pub permanent: bool,
    /// Each attempt holds its lease this long before working.
    // Long enough, it lets a test kill a worker mid-job.
    #[serde(default)]
    pub stall_ms: u64,
}

/// One try at a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAttempt {
    pub number: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    /// Why it failed (absent when it succeeded or is still running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When a transient failure is tried again (the backoff).
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<OffsetDateTime>,
    /// The backoff's ceiling for this attempt (the delay was drawn between zero and it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_cap_ms: Option<u64>,
}

/// A running job's hold: renewed by its worker while it works; past `until` the reaper takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLease {
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// The queue message whose delivery holds it: a redelivery of the same message takes over.
    pub holder: String,
}

/// A parent's children: how many there are and how many ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub failed: u64,
    pub total: u64,
}

/// Where a parent's fan-out has got to, so an interrupted one resumes instead of restarting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOut {
    /// The media listing's cursor after the last page fanned out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Every page is fanned out: `progress.total` is final.
    #[serde(default)]
    pub complete: bool,
}

/// What a job made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<MediaId>,
    /// The image version the job made (or brought up to date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derivatives: Vec<Derivative>,
    /// One line: `rebuilt medium, large`, `up to date`, `cropped to 1600x900`.
    pub summary: String,
}

/// Why a job failed, for people and for programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// `invalid_params`, `source_unreadable`, `media_gone`, `attempts_exhausted`, `lease_lapsed`,
    /// `children_failed`, `internal`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: JobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<JobId>,
    pub model_id: ModelId,
    pub operation: Operation,
    pub target: Target,
    pub lane: Lane,
    pub status: JobStatus,
    /// The caller's subject (`sub`).
    pub submitted_by: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<JobAttempt>,
    /// The attempts a run may take before it is dead-lettered (the queue's max receive count).
    pub max_attempts: u32,
    /// The number of the last attempt before the current run (a retry starts a new run).
    #[serde(default)]
    pub run_base: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<JobLease>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_out: Option<FanOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultPlan>,
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    /// When its message was last sent: the reaper re-sends a queued job's message that long
    /// unanswered (a submission that died between writing the job and sending it).
    #[serde(with = "time::serde::rfc3339")]
    pub enqueued_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Incremented by every write; every write is conditional on the version read. It is also
    /// the fencing token: a worker writes only as the version it last wrote.
    pub version: u64,
    /// The TTL: the store forgets the job after this (30 days after submission).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Job records live this long after submission (then the table's TTL removes them).
pub const JOB_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Attempts kept on a record (a retried job keeps its history, up to this).
pub const ATTEMPTS_CAP: usize = 50;

impl Job {
    pub fn is_parent(&self) -> bool {
        self.target.media_id.is_none()
    }

    /// The message that asks a worker to run this job.
    pub fn message(&self) -> JobMessage {
        JobMessage { job_id: self.job_id }
    }

    /// The attempt in progress (the last one, unfinished).
    pub fn current_attempt_mut(&mut self) -> Option<&mut JobAttempt> {
        self.attempts.last_mut().filter(|a| a.finished_at.is_none())
    }
}

/// The body of a lane message: just the job's id; the record holds the rest, so a message can
/// never disagree with its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    pub job_id: JobId,
}

impl JobMessage {
    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job message always serialises")
    }
}

/// How jobs run: the same numbers for the API (which stamps them on jobs), the worker and the
/// reaper; read once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Attempts per run before the message is dead-lettered and the job failed
    /// (`PHOENIX_JOB_MAX_ATTEMPTS`, the lane queues' `maxReceiveCount`).
    pub max_attempts: u32,
    /// A running job's lease, renewed every third of it (`PHOENIX_JOB_LEASE_SECS`).
    pub lease: Duration,
    /// The backoff after a transient failure.
    pub backoff: Backoff,
    /// A queued job this old in a lane with no messages has its message sent again (its
    /// submission died before sending it).
    pub resend_after: Duration,
    /// Whether the test-only fault plans are honoured (`PHOENIX_FAULT_INJECTION`).
    pub fault_injection: bool,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            lease: Duration::from_secs(60),
            backoff: Backoff::default(),
            resend_after: Duration::from_secs(5 * 60),
            fault_injection: false,
        }
    }
}

impl JobSettings {
    /// From `PHOENIX_JOB_MAX_ATTEMPTS`, `PHOENIX_JOB_LEASE_SECS`, `PHOENIX_JOB_BACKOFF_BASE_MS`,
    /// `PHOENIX_JOB_BACKOFF_MAX_SECS`, `PHOENIX_JOB_RESEND_AFTER_SECS`, `PHOENIX_FAULT_INJECTION`.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use crate::config::env_or;
        let d = Self::default();
        let max_attempts: u32 = env_or("PHOENIX_JOB_MAX_ATTEMPTS", d.max_attempts)?;
        let lease = env_or("PHOENIX_JOB_LEASE_SECS", d.lease.as_secs())?;
        if max_attempts == 0 || lease < 3 {
            return Err(crate::config::ConfigError {
                name: "PHOENIX_JOB_MAX_ATTEMPTS / PHOENIX_JOB_LEASE_SECS".into(),
                message: "need at least 1 attempt and a lease of at least 3 s".into(),
            });
        }
        Ok(Self {
            max_attempts,
            lease: Duration::from_secs(lease),
            backoff: Backoff {
                base: Duration::from_millis(env_or("PHOENIX_JOB_BACKOFF_BASE_MS", d.backoff.base.as_millis() as u64)?),
                max: Duration::from_secs(env_or("PHOENIX_JOB_BACKOFF_MAX_SECS", d.backoff.max.as_secs())?),
            },
            resend_after: Duration::from_secs(env_or("PHOENIX_JOB_RESEND_AFTER_SECS", d.resend_after.as_secs())?),
            fault_injection: env_or("PHOENIX_FAULT_INJECTION", false)?,
        })
    }
}
