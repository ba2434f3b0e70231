//! What callers, the reaper and workers do to jobs besides submitting them: cancel, retry, reap,
//! redrive, fan-out children, parents' completion, lane controls and queue statistics.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::events::emit;
use super::lifecycle::{self, run_attempts};
use super::{Job, JobError, JobEventKind, JobFailure, JobMessage, JobStatus, Lane, Progress, Target};
use crate::ids::{JobId, MediaId};
use crate::ports::{EventBus, JobQuery, JobStore, LaneControl, Queue, QueueStats, StoreError};

/// Sends the job's message to its lane.
pub async fn enqueue(queue: &dyn Queue, job: &Job) -> Result<(), StoreError> {
    queue.send(&job.lane.queue(), &job.message().to_json(), Duration::ZERO).await.map(|_| ())
}

/// Cancels a queued job. A running or ended job is `InvalidState`. A cancelled child counts in
/// its parent as failed (it did not do its work), so the parent still ends.
pub async fn cancel(
    jobs: &dyn JobStore,
    events: &dyn EventBus,
    id: &JobId,
    now: OffsetDateTime,
) -> Result<Job, JobError> {
    let mut job = jobs.get_job(id).await.map_err(JobError::reading(id))?;
    match job.status {
        JobStatus::Queued if job.fan_out.is_none() => {}
        JobStatus::Queued => {
            return Err(JobError::InvalidState(
                "the job has started fanning out; it can no longer be cancelled".into(),
            ));
        }
        other => {
            return Err(JobError::InvalidState(format!(
                "the job is {}; only a queued job can be cancelled",
                other.as_str()
            )));
        }
    }
    lifecycle::cancel(&mut job, now);
    match job.parent_id {
        Some(parent) => {
            jobs.finish_child(&job, true).await.map_err(JobError::writing)?;
            finish_parent_if_done(jobs, events, &parent, now).await?;
        }
        None => jobs.update_job(&job).await.map_err(JobError::writing)?,
    }
    emit(events, &job, JobEventKind::Cancelled, now).await;
    Ok(job)
}

/// Runs a failed job again: queued, with a fresh attempt budget (its attempts stay listed).
/// Only top-level, single-media jobs and parents whose fan-out itself failed: a child is counted
/// in its parent once, so a failed child is redone by a new job.
pub async fn retry(
    jobs: &dyn JobStore,
    queue: &dyn Queue,
    events: &dyn EventBus,
    id: &JobId,
    now: OffsetDateTime,
) -> Result<Job, JobError> {
    let mut job = jobs.get_job(id).await.map_err(JobError::reading(id))?;
    if job.status != JobStatus::Failed {
        return Err(JobError::InvalidState(format!(
            "the job is {}; only a failed job can be retried",
            job.status.as_str()
        )));
    }
    if job.parent_id.is_some() {
        return Err(JobError::InvalidState(
            "a child job is counted in its parent once: submit a new job for this media instead".into(),
        ));
    }
    if job.fan_out.as_ref().is_some_and(|f| f.complete) {
        return Err(JobError::InvalidState(
            "this job's children ran; submit it again to redo the media that failed".into(),
        ));
    }
    lifecycle::resubmit(&mut job, now);
    jobs.update_job(&job).await.map_err(JobError::writing)?;
    enqueue(queue, &job).await?;
    emit(events, &job, JobEventKind::Queued, now).await;
    Ok(job)
}

/// Makes (or finds, after an interrupted fan-out) `parent`'s child for one media, and sends its
/// message when it is new. Returns whether it was new.
pub async fn spawn_child(
    jobs: &dyn JobStore,
    queue: &dyn Queue,
    parent: &Job,
    media: MediaId,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let id = JobId::child(&parent.job_id, &media);
    let mut child = parent.clone();
    child.job_id = id;
    child.parent_id = Some(parent.job_id);
    child.target = Target::media(parent.model_id.clone(), media);
    child.status = JobStatus::Queued;
    child.attempts = Vec::new();
    child.run_base = 0;
    child.lease = None;
    child.progress = None;
    child.fan_out = None;
    child.result = None;
    child.error = None;
    child.queued_at = now;
    child.enqueued_at = now;
    child.started_at = None;
    child.finished_at = None;
    child.updated_at = now;
    child.version = 1;
    match jobs.create_job(&child).await {
        Ok(()) => {
            enqueue(queue, &child).await?;
            Ok(true)
        }
        // Made before the fan-out was interrupted; if its message was lost, the reaper resends it.
        Err(StoreError::AlreadyExists) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Ends a parent whose fan-out is complete and whose children have all ended: `succeeded`, or
/// `failed` (`children_failed`) when any failed. Safe to call from every child and the reaper:
/// the write is conditional, and a parent already ended is left alone.
pub async fn finish_parent_if_done(
    jobs: &dyn JobStore,
    events: &dyn EventBus,
    parent: &JobId,
    now: OffsetDateTime,
) -> Result<(), JobError> {
    for _ in 0..3 {
        let mut job = jobs.get_job(parent).await.map_err(JobError::reading(parent))?;
        let progress = job.progress.unwrap_or_default();
        let complete = job.fan_out.as_ref().is_some_and(|f| f.complete);
        if job.status.is_terminal() || !complete || progress.done < progress.total {
            return Ok(());
        }
        let kind = finish_parent(&mut job, progress, now);
        match jobs.update_job(&job).await {
            Ok(()) => {
                emit(events, &job, kind, now).await;
                return Ok(());
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn finish_parent(job: &mut Job, progress: Progress, now: OffsetDateTime) -> JobEventKind {
    let summary =
        format!("{} of {} media done, {} failed", progress.done - progress.failed, progress.total, progress.failed);
    if progress.failed == 0 {
        let result = super::JobResult { media_id: None, image_version: None, derivatives: Vec::new(), summary };
        lifecycle::succeed(job, result, now);
        JobEventKind::Succeeded
    } else {
        lifecycle::fail(job, JobFailure { code: "children_failed".into(), message: summary }, now);
        JobEventKind::Failed
    }
}

/// What one sweep of the reaper did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReapReport {
    /// Running jobs whose lease lapsed, queued again with their message re-sent.
    pub requeued: Vec<JobId>,
    /// Running jobs whose lease lapsed on their last attempt: failed.
    pub failed: Vec<JobId>,
    /// Queued jobs whose message went unanswered too long: message sent again.
    pub resent: Vec<JobId>,
    /// Parents whose children had all ended: finished.
    pub finished_parents: Vec<JobId>,
    /// Media whose trash grace period had passed: deleted (a tombstone left) and their purge
    /// queued ([`crate::media::sweep_trash`], which the worker's sweep runs after the jobs').
    pub trash_purged: Vec<(crate::ids::ModelId, crate::ids::MediaId)>,
}

/// One sweep: no job stays `running` past its lease, and none stays `queued` without a message.
/// A job the sweep re-queues may still have its old message in flight: whichever delivery comes
/// second finds the job taken or ended, and does nothing (the version fences the writes).
pub async fn reap(
    jobs: &dyn JobStore,
    queue: &dyn Queue,
    events: &dyn EventBus,
    lanes: &dyn LaneControl,
    settings: &super::JobSettings,
    now: OffsetDateTime,
) -> Result<ReapReport, JobError> {
    let mut report = ReapReport::default();
    for job in all_in(jobs, JobStatus::Running).await? {
        match &job.lease {
            Some(lease) if lease.until <= now => reap_lapsed(jobs, queue, events, job, now, &mut report).await?,
            None if job.fan_out.as_ref().is_some_and(|f| f.complete) => {
                let id = job.job_id;
                finish_parent_if_done(jobs, events, &id, now).await?;
                if jobs.get_job(&id).await.is_ok_and(|j| j.status.is_terminal()) {
                    report.finished_parents.push(id);
                }
            }
            _ => {}
        }
    }
    // A queued job's message may be lost only if its submission died between writing the job
    // and sending it. Its lane then drains without it: a queued job older than `resend_after`
    // in a lane with no message at all (and not paused) is sent again. A busy lane may simply
    // not have reached it yet, so nothing is resent there.
    let mut idle = BTreeMap::new();
    for lane in Lane::ALL {
        let QueueStats { visible, in_flight, delayed } = queue.stats(&lane.queue()).await?;
        idle.insert(lane, !lanes.is_paused(lane).await? && visible + in_flight + delayed == 0);
    }
    for mut job in all_in(jobs, JobStatus::Queued).await? {
        if job.enqueued_at + settings.resend_after > now || !idle[&job.lane] {
            continue;
        }
        job.enqueued_at = now;
        job.version += 1;
        job.updated_at = now;
        match jobs.update_job(&job).await {
            Ok(()) => {
                enqueue(queue, &job).await?;
                report.resent.push(job.job_id);
            }
            Err(StoreError::VersionConflict { .. } | StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

async fn reap_lapsed(
    jobs: &dyn JobStore,
    queue: &dyn Queue,
    events: &dyn EventBus,
    mut job: Job,
    now: OffsetDateTime,
    report: &mut ReapReport,
) -> Result<(), JobError> {
    let id = job.job_id;
    if run_attempts(&job) < job.max_attempts {
        lifecycle::requeue_lapsed(&mut job, now);
        match jobs.update_job(&job).await {
            Ok(()) => {
                enqueue(queue, &job).await?;
                report.requeued.push(id);
            }
            // Its worker came back to life and renewed, or finished: nothing to reap.
            Err(StoreError::VersionConflict { .. } | StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(());
    }
    let message = format!(
        "the lease lapsed on attempt {} of {}: the worker died or timed out",
        run_attempts(&job),
        job.max_attempts
    );
    lifecycle::fail(&mut job, JobFailure { code: "lease_lapsed".into(), message }, now);
    let written = match job.parent_id {
        Some(_) => jobs.finish_child(&job, true).await,
        None => jobs.update_job(&job).await,
    };
    match written {
        Ok(()) => {
            emit(events, &job, JobEventKind::Failed, now).await;
            if let Some(parent) = job.parent_id {
                finish_parent_if_done(jobs, events, &parent, now).await?;
            }
            report.failed.push(id);
            Ok(())
        }
        Err(StoreError::VersionConflict { .. } | StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Every job in `status` (oldest first), across models.
async fn all_in(jobs: &dyn JobStore, status: JobStatus) -> Result<Vec<Job>, JobError> {
    let mut query = JobQuery { status: Some(status), limit: 100, oldest_first: true, ..JobQuery::default() };
    let mut out = Vec::new();
    loop {
        let page = jobs.list_jobs(&query).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Moves up to `max` messages from a lane's dead-letter queue back to the lane. A failed job a
/// message names is queued again with a fresh attempt budget, as a retry would; other messages
/// (a job that is gone, a body that is not a job message) move as they are, for the worker to
/// judge. Returns how many moved.
pub async fn redrive(
    jobs: &dyn JobStore,
    queue: &dyn Queue,
    events: &dyn EventBus,
    lane: Lane,
    max: usize,
    now: OffsetDateTime,
) -> Result<u64, JobError> {
    let (dlq, target) = (lane.dead_letter_queue(), lane.queue());
    let mut moved = 0u64;
    while (moved as usize) < max {
        let batch =
            queue.receive(&dlq, (max - moved as usize).min(10), Duration::from_secs(60), Duration::ZERO).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if let Ok(JobMessage { job_id }) = JobMessage::parse(&message.body)
                && let Ok(mut job) = jobs.get_job(&job_id).await
                && job.status == JobStatus::Failed
                && job.parent_id.is_none()
            {
                lifecycle::resubmit(&mut job, now);
                if jobs.update_job(&job).await.is_ok() {
                    emit(events, &job, JobEventKind::Queued, now).await;
                }
            }
            queue.send(&target, &message.body, Duration::ZERO).await?;
            queue.delete(&dlq, &message.receipt).await?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Pauses or resumes a lane.
pub async fn set_paused(lanes: &dyn LaneControl, lane: Lane, paused: bool) -> Result<(), JobError> {
    lanes.set_paused(lane, paused).await.map_err(JobError::from)
}

/// One lane's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneStats {
    pub lane: Lane,
    pub paused: bool,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Messages in the lane's dead-letter queue.
    pub dead_letter: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStatsReport {
    pub lanes: Vec<LaneStats>,
    /// Every model's jobs, by status.
    pub jobs: BTreeMap<&'static str, u64>,
    /// Seconds since the oldest queued job was submitted (absent when none is queued).
    pub oldest_queued_age_secs: Option<u64>,
}

pub async fn queue_stats(
    jobs: &dyn JobStore,
    queue: &dyn Queue,
    lanes: &dyn LaneControl,
    now: OffsetDateTime,
) -> Result<QueueStatsReport, JobError> {
    let mut out = Vec::new();
    for lane in Lane::ALL {
        let QueueStats { visible, in_flight, delayed } = queue.stats(&lane.queue()).await?;
        let dlq = queue.stats(&lane.dead_letter_queue()).await?;
        out.push(LaneStats {
            lane,
            paused: lanes.is_paused(lane).await?,
            visible,
            in_flight,
            delayed,
            dead_letter: dlq.visible + dlq.in_flight + dlq.delayed,
        });
    }
    let mut counts = BTreeMap::new();
    for status in JobStatus::ALL {
        counts.insert(status.as_str(), jobs.count_jobs(status).await?);
    }
    let oldest = jobs
        .list_jobs(&JobQuery { status: Some(JobStatus::Queued), limit: 1, oldest_first: true, ..JobQuery::default() })
        .await?;
    let oldest_queued_age_secs =
        oldest.items.first().map(|j| (now - j.queued_at).whole_seconds().max(0).unsigned_abs());
    Ok(QueueStatsReport { lanes: out, jobs: counts, oldest_queued_age_secs })
}
