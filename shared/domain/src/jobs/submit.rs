//! Submitting a job: validation, the `Idempotency-Key` rules, the record and its message.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::events::emit;
use super::{FaultPlan, JOB_RETENTION, Job, JobError, JobEventKind, JobSettings, JobStatus, Lane, Operation, Target};
use crate::idempotency::{self, Claim, IdempotencyKey};
use crate::ids::JobId;
use crate::media::MediaStatus;
use crate::ports::{EventBus, IdempotencyStore, JobStore, MediaStore, Queue, StoreError};

/// What a caller asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubmitRequest {
    pub operation: Operation,
    pub target: Target,
    pub lane: Lane,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultPlan>,
}

/// What a submission produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub job: Job,
    /// The key was used before with this body: this is the job it made then.
    pub replayed: bool,
}

/// The ports a submission uses.
pub struct SubmitPorts<'a> {
    pub jobs: &'a dyn JobStore,
    pub idempotency: &'a dyn IdempotencyStore,
    pub media: &'a dyn MediaStore,
    pub queue: &'a dyn Queue,
    pub events: &'a dyn EventBus,
}

/// Checks what the request asks makes sense before anything is written.
fn validate(request: &SubmitRequest, settings: &JobSettings) -> Result<(), JobError> {
    let t = &request.target;
    if t.media_id.is_none() && !request.operation.fans_out() {
        return Err(JobError::invalid(
            "target.media_id",
            format!("{} works on one media: give target.media_id", request.operation.name()),
        ));
    }
    if t.stale && (t.media_id.is_some() || !matches!(request.operation, Operation::Regenerate { .. })) {
        return Err(JobError::invalid(
            "target.stale",
            "target.stale selects a model's media with stale derivatives: regenerate only, without media_id",
        ));
    }
    if request.fault.is_some() && !settings.fault_injection {
        return Err(JobError::invalid("fault", "fault injection is off in this deployment"));
    }
    Ok(())
}

/// A new queued job for `request`, with id `id`.
pub fn new_job(
    id: JobId,
    request: &SubmitRequest,
    submitted_by: &str,
    settings: &JobSettings,
    now: OffsetDateTime,
) -> Job {
    Job {
        job_id: id,
        parent_id: None,
        model_id: request.target.model_id.clone(),
        operation: request.operation.clone(),
        target: request.target.clone(),
        lane: request.lane,
        status: JobStatus::Queued,
        submitted_by: submitted_by.to_owned(),
        attempts: Vec::new(),
        max_attempts: settings.max_attempts,
        run_base: 0,
        lease: None,
        progress: None,
        fan_out: None,
        result: None,
        error: None,
        fault: request.fault,
        queued_at: now,
        enqueued_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
        version: 1,
        expires_at: now + JOB_RETENTION,
    }
}

/// Submits a job: validates it (a single media must exist and be processed), honours the
/// `Idempotency-Key` (same key and body → the same job; another body → `IdempotencyMismatch`;
/// one still in flight → `IdempotencyInFlight`), writes the job `queued`, sends its message to
/// its lane and publishes `job.queued`.
///
/// Crash-safe in any order of failure: the key names its job before the job is written, so a
/// retry after a crash finishes that job instead of making a second; a job written but never
/// sent is sent again by the reaper ([`super::reap`]), and a duplicate message does no work twice.
pub async fn submit(
    ports: SubmitPorts<'_>,
    settings: &JobSettings,
    submitted_by: &str,
    request: SubmitRequest,
    key: Option<IdempotencyKey>,
    now: OffsetDateTime,
) -> Result<Submitted, JobError> {
    validate(&request, settings)?;
    if let Some(media_id) = &request.target.media_id {
        let media = ports.media.get_media(&request.target.model_id, media_id).await.map_err(|e| match e {
            StoreError::NotFound => JobError::NotFound(format!("media {media_id} not found")),
            other => JobError::Store(other),
        })?;
        if media.is_trashed() {
            return Err(JobError::NotFound(format!("media {media_id} not found (it is in the trash)")));
        }
        if media.source.is_none() || matches!(media.status, MediaStatus::Uploading | MediaStatus::Processing) {
            return Err(JobError::InvalidState(format!(
                "media {media_id} is {}: jobs work on processed media",
                media.status.as_str()
            )));
        }
    }
    let Some(key) = key else {
        let job = new_job(JobId::new(), &request, submitted_by, settings, now);
        return write_and_send(&ports, job, now).await.map(|job| Submitted { job, replayed: false });
    };

    let claimed = match idempotency::claim(ports.idempotency, &key, JobId::new().to_string(), now).await? {
        Claim::Replay(id) => {
            let id = job_id_of(&id)?;
            let job = ports.jobs.get_job(&id).await.map_err(JobError::reading(&id))?;
            return Ok(Submitted { job, replayed: true });
        }
        Claim::Submit(claimed) => claimed,
    };
    let id = job_id_of(claimed.resource_id())?;
    let job = match ports.jobs.get_job(&id).await {
        Ok(job) => {
            // Written by the submission that died; its message may be lost, so send again.
            ports.queue.send(&job.lane.queue(), &job.message().to_json(), Duration::ZERO).await?;
            job
        }
        Err(StoreError::NotFound) => {
            write_and_send(&ports, new_job(id, &request, submitted_by, settings, now), now).await?
        }
        Err(e) => return Err(e.into()),
    };
    idempotency::complete(ports.idempotency, claimed).await?;
    Ok(Submitted { job, replayed: false })
}

/// The job an idempotency record names.
fn job_id_of(resource: &str) -> Result<JobId, JobError> {
    JobId::parse(resource)
        .map_err(|e| JobError::Store(StoreError::internal(anyhow::anyhow!("an idempotency record names no job: {e}"))))
}

async fn write_and_send(ports: &SubmitPorts<'_>, job: Job, now: OffsetDateTime) -> Result<Job, JobError> {
    ports.jobs.create_job(&job).await?;
    ports.queue.send(&job.lane.queue(), &job.message().to_json(), Duration::ZERO).await?;
    emit(ports.events, &job, JobEventKind::Queued, now).await;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MediaId;
    use crate::jobs::fakes::MemJobs;
    use crate::media::fakes::{Fakes, processed_record};
    use crate::ports::QueueName;

    fn request(media: &crate::media::MediaRecord, degrees: u16) -> SubmitRequest {
        SubmitRequest {
            operation: Operation::Rotate { degrees },
            target: Target::media(media.model_id.clone(), media.media_id),
            lane: Lane::High,
            fault: None,
        }
    }

    #[tokio::test]
    async fn a_key_makes_one_job_and_refuses_another_body() {
        let (store, media) = (MemJobs::default(), Fakes::holding(processed_record()));
        let record = media.stored().unwrap();
        let ports = || SubmitPorts { jobs: &store, idempotency: &store, media: &media, queue: &store, events: &store };
        let settings = JobSettings::default();
        let now = OffsetDateTime::now_utc();
        let key = |r: &SubmitRequest| Some(IdempotencyKey::new("u1".into(), "k-1", r).unwrap());
        let first =
            submit(ports(), &settings, "u1", request(&record, 90), key(&request(&record, 90)), now).await.unwrap();
        let again =
            submit(ports(), &settings, "u1", request(&record, 90), key(&request(&record, 90)), now).await.unwrap();
        assert_eq!(first.job.job_id, again.job.job_id);
        assert!(again.replayed && !first.replayed);
        assert_eq!(store.jobs.lock().unwrap().len(), 1);
        assert_eq!(store.sent.lock().unwrap().len(), 1, "one message");
        assert_eq!(store.sent.lock().unwrap()[0].0, QueueName::JOBS_HIGH);
        let other = submit(ports(), &settings, "u1", request(&record, 180), key(&request(&record, 180)), now).await;
        assert!(matches!(other, Err(JobError::IdempotencyMismatch)), "{other:?}");
        // Another caller's same key is another key.
        let theirs = IdempotencyKey::new("u2".into(), "k-1", &request(&record, 90)).unwrap();
        let second = submit(ports(), &settings, "u2", request(&record, 90), Some(theirs), now).await.unwrap();
        assert_ne!(second.job.job_id, first.job.job_id);
    }

    #[tokio::test]
    async fn a_submission_in_flight_is_409_until_its_maker_is_presumed_dead() {
        let (store, media) = (MemJobs::default(), Fakes::holding(processed_record()));
        let record = media.stored().unwrap();
        let settings = JobSettings::default();
        let now = OffsetDateTime::now_utc();
        let key = IdempotencyKey::new("u1".into(), "k", &request(&record, 90)).unwrap();
        // A submission that took its key and died.
        let Claim::Submit(dead) = idempotency::claim(&store, &key, JobId::new().to_string(), now).await.unwrap() else {
            panic!("a fresh key is claimed");
        };
        let ports = || SubmitPorts { jobs: &store, idempotency: &store, media: &media, queue: &store, events: &store };
        let busy = submit(ports(), &settings, "u1", request(&record, 90), Some(key.clone()), now).await;
        assert!(matches!(busy, Err(JobError::IdempotencyInFlight)), "{busy:?}");
        let later = now + idempotency::IN_FLIGHT + Duration::from_secs(1);
        let taken = submit(ports(), &settings, "u1", request(&record, 90), Some(key), later).await.unwrap();
        assert_eq!(taken.job.job_id.to_string(), dead.resource_id(), "the key's job, not a second one");
        assert_eq!(store.get_idempotency("u1", "k").await.unwrap().in_flight_until, None);
    }

    #[tokio::test]
    async fn requests_that_cannot_work_are_refused_before_anything_is_written() {
        let (store, media) = (MemJobs::default(), Fakes::holding(processed_record()));
        let record = media.stored().unwrap();
        let ports = || SubmitPorts { jobs: &store, idempotency: &store, media: &media, queue: &store, events: &store };
        let settings = JobSettings::default();
        let now = OffsetDateTime::now_utc();
        let mut whole_model = request(&record, 90);
        whole_model.target.media_id = None;
        let e = submit(ports(), &settings, "u1", whole_model, None, now).await.unwrap_err();
        assert!(matches!(&e, JobError::Invalid { field, .. } if field == "target.media_id"), "{e:?}");
        let mut faulty = request(&record, 90);
        faulty.fault = Some(FaultPlan { transient_failures: 1, ..FaultPlan::default() });
        let e = submit(ports(), &settings, "u1", faulty, None, now).await.unwrap_err();
        assert!(matches!(&e, JobError::Invalid { field, .. } if field == "fault"), "{e:?}");
        let mut gone = request(&record, 90);
        gone.target.media_id = Some(MediaId::new());
        assert!(matches!(submit(ports(), &settings, "u1", gone, None, now).await, Err(JobError::NotFound(_))));
        assert!(store.jobs.lock().unwrap().is_empty() && store.sent.lock().unwrap().is_empty());
        assert!(Operation::from_request("rotate", serde_json::json!({"degrees": 45})).is_err());
        assert!(Operation::from_request("crop", serde_json::json!({})).is_err());
        assert!(Operation::from_request("explode", serde_json::Value::Null).is_err());
        assert_eq!(
            Operation::from_request("flip", serde_json::json!({"axis": "vertical"})).unwrap(),
            Operation::Flip { axis: super::super::FlipAxis::Vertical }
        );
    }
}
