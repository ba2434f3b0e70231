//! One delivery of a job message: take the job under a lease (or find there is nothing to do),
//! keep the lease while the work runs, and settle the job with what came of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_consumer::{Delivery, Failure, MessageHandler};
use phoenix_domain::StoreError;
use phoenix_domain::jobs::events::emit;
use phoenix_domain::jobs::lifecycle::{self, Start, run_attempts};
use phoenix_domain::jobs::{Job, JobEventKind, JobFailure, JobMessage, JobResult, JobStatus, finish_parent_if_done};
use phoenix_domain::ports::JobStore;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use crate::Worker;
use crate::work::WorkError;

/// What a job's work came to.
pub(crate) enum Done {
    Finished(JobResult),
    /// A parent fanned out every child and waits for them (its record says so already).
    Waiting,
}

fn store_failure(e: StoreError) -> Failure {
    if e.is_transient() { Failure::Transient(e.into()) } else { Failure::Permanent(e.into()) }
}

fn seconds_until(t: OffsetDateTime) -> Duration {
    let left = (t - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
    Duration::from_secs(left.whole_seconds().unsigned_abs() + 1)
}

#[async_trait]
impl MessageHandler for Worker {
    type Message = JobMessage;

    fn decode(&self, body: &str) -> Result<JobMessage, Failure> {
        JobMessage::parse(body).map_err(|e| Failure::permanent(anyhow::anyhow!("not a job message: {e}")))
    }

    async fn handle(&self, message: JobMessage, delivery: &Delivery) -> Result<(), Failure> {
        let span = info_span!("job", job_id = %message.job_id);
        self.deliver(message, delivery).instrument(span).await
    }
}

impl Worker {
    fn jobs(&self) -> &dyn JobStore {
        self.ports.metadata.as_ref()
    }

    async fn deliver(&self, message: JobMessage, delivery: &Delivery) -> Result<(), Failure> {
        // Each delivery is its own holder: a redelivery of the same message (its holder died)
        // takes over at once; a direct call (no message) is one holder of its own.
        let holder = if delivery.message_id.is_empty() { ulid_holder() } else { delivery.message_id.clone() };
        let Some(job) = self.take(&message, &holder).await? else { return Ok(()) };
        emit(self.ports.events.as_ref(), &job, JobEventKind::Started, OffsetDateTime::now_utc()).await;
        info!(operation = job.operation.name(), attempt = job.attempts.last().map_or(0, |a| a.number), "job started");

        let (lost_tx, mut lost) = watch::channel(false);
        let renewer =
            tokio::spawn(renew(self.ports.metadata.clone(), job.job_id, holder.clone(), self.settings.lease, lost_tx));
        let outcome = tokio::select! {
            biased;
            outcome = self.work(&job, &holder) => Some(outcome),
            _ = lost.wait_for(|l| *l) => None,
        };
        renewer.abort();
        match outcome {
            None => {
                warn!("the job's lease was lost (reaped or taken over): this delivery stops without settling it");
                Ok(())
            }
            Some(Ok(Done::Waiting)) => Ok(()),
            Some(Ok(Done::Finished(result))) => {
                self.settle(&job, &holder, |j, now| lifecycle::succeed(j, result.clone(), now), false).await?;
                Ok(())
            }
            Some(Err(WorkError::Permanent { code, message })) => {
                warn!(code, %message, "job failed permanently");
                let failure = JobFailure { code: code.to_owned(), message };
                self.settle(&job, &holder, |j, now| lifecycle::fail(j, failure.clone(), now), true).await?;
                Ok(())
            }
            Some(Err(WorkError::Transient(error))) => self.retry_later(&job, &holder, delivery, error).await,
        }
    }

    /// Takes the job for `holder`: `None` when there is nothing to do (ended, cancelled, gone, a
    /// parent waiting for its children); a live lease elsewhere sends the message back after it.
    async fn take(&self, message: &JobMessage, holder: &str) -> Result<Option<Job>, Failure> {
        for _ in 0..5 {
            let job = match self.jobs().get_job(&message.job_id).await {
                Ok(job) => job,
                Err(StoreError::NotFound) => {
                    warn!("no such job (expired or never written): the message is dropped");
                    return Ok(None);
                }
                Err(e) => return Err(store_failure(e)),
            };
            let now = OffsetDateTime::now_utc();
            match lifecycle::decide(&job, holder, now) {
                Start::Nothing => {
                    info!(status = job.status.as_str(), "nothing to do for this delivery");
                    return Ok(None);
                }
                Start::Busy(until) => {
                    return Err(Failure::Later {
                        after: seconds_until(until),
                        reason: anyhow::anyhow!("another delivery holds the job's lease until {until}"),
                    });
                }
                Start::Run => {}
            }
            let mut taken = job;
            lifecycle::begin(&mut taken, holder, now, self.settings.lease);
            match self.jobs().update_job(&taken).await {
                Ok(()) => return Ok(Some(taken)),
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(store_failure(e)),
            }
        }
        Err(Failure::transient(anyhow::anyhow!("the job kept changing while it was taken")))
    }

    /// Applies `change` to the job as it is stored, if this delivery still holds it, and writes it
    /// (a child that ends is counted in its parent in the same write). Returns the job written,
    /// or `None` when the lease is no longer ours.
    pub(crate) async fn settle(
        &self,
        job: &Job,
        holder: &str,
        change: impl Fn(&mut Job, OffsetDateTime),
        failed: bool,
    ) -> Result<Option<Job>, Failure> {
        let written = settle(
            self.jobs(),
            &job.job_id,
            holder,
            |j, now| {
                change(j, now);
                true
            },
            failed,
        )
        .await
        .map_err(store_failure)?;
        let Some(written) = written else {
            warn!("the lease was lost before the job was settled: another delivery settles it");
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let kind = match written.status {
            JobStatus::Succeeded => Some(JobEventKind::Succeeded),
            JobStatus::Failed => Some(JobEventKind::Failed),
            _ => None,
        };
        if let Some(kind) = kind {
            emit(self.ports.events.as_ref(), &written, kind, now).await;
            info!(status = written.status.as_str(), "job settled");
        }
        if let (Some(parent), true) = (written.parent_id, written.status.is_terminal()) {
            finish_parent_if_done(self.jobs(), self.ports.events.as_ref(), &parent, now)
                .await
                .map_err(|e| Failure::transient(anyhow::anyhow!("{e}")))?;
        }
        Ok(Some(written))
    }

    /// A transient failure: queued again after a backoff with full jitter (the message's
    /// visibility is set to it), or, on the last attempt, failed — and the message goes on to the
    /// dead-letter queue.
    async fn retry_later(&self, job: &Job, holder: &str, delivery: &Delivery, error: String) -> Result<(), Failure> {
        let stored = self.jobs().get_job(&job.job_id).await.map_err(store_failure)?;
        let attempt = run_attempts(&stored).max(1);
        let max = self.settings.max_attempts.min(stored.max_attempts.max(1));
        if attempt >= max || delivery.receive_count >= max {
            warn!(attempt, %error, "job failed on its last attempt");
            let failure = JobFailure {
                code: "attempts_exhausted".into(),
                message: format!("failed {attempt} attempts; the last: {error}"),
            };
            self.settle(job, holder, |j, now| lifecycle::fail(j, failure.clone(), now), true).await?;
            // Visible again at once, so the queue's redrive moves it to the dead-letter queue.
            return Err(Failure::Later { after: Duration::ZERO, reason: anyhow::anyhow!(error) });
        }
        let (cap, delay) = (self.settings.backoff.cap(attempt), self.settings.backoff.draw(attempt));
        warn!(attempt, delay_ms = delay.as_millis() as u64, %error, "job failed; retrying after a backoff");
        let backed_off =
            self.settle(job, holder, |j, now| lifecycle::back_off(j, &error, delay, cap, now), false).await?;
        match backed_off {
            Some(_) => Err(Failure::Later { after: delay, reason: anyhow::anyhow!(error) }),
            None => Ok(()),
        }
    }
}

fn ulid_holder() -> String {
    format!("direct-{}", phoenix_domain::JobId::new())
}

/// Re-reads the job and, if `holder` still holds it running, applies `change` (which may decline
/// by returning false) and writes it conditionally, retrying on conflicts (children ending bump
/// a parent's version). `None` when the lease is not `holder`'s any more.
pub(crate) async fn settle(
    jobs: &dyn JobStore,
    id: &phoenix_domain::JobId,
    holder: &str,
    change: impl Fn(&mut Job, OffsetDateTime) -> bool,
    failed: bool,
) -> Result<Option<Job>, StoreError> {
    for _ in 0..8 {
        let mut job = jobs.get_job(id).await?;
        let ours = job.status == JobStatus::Running && job.lease.as_ref().is_some_and(|l| l.holder == holder);
        if !ours {
            return Ok(None);
        }
        if !change(&mut job, OffsetDateTime::now_utc()) {
            return Ok(Some(job));
        }
        let written = if job.parent_id.is_some() && job.status.is_terminal() {
            jobs.finish_child(&job, failed).await
        } else {
            jobs.update_job(&job).await
        };
        match written {
            Ok(()) => return Ok(Some(job)),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::unavailable(anyhow::anyhow!("the job kept changing while it was written")))
}

/// Renews the lease every third of its length while the work runs; says `lost` when another
/// delivery (or the reaper) has the job. A store that fails now and then is retried within the
/// lease: the work stops only when the lease is really gone.
async fn renew(
    metadata: Arc<dyn phoenix_domain::MetadataStore>,
    id: phoenix_domain::JobId,
    holder: String,
    lease: Duration,
    lost: watch::Sender<bool>,
) {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let renewed = settle(
            metadata.as_ref(),
            &id,
            &holder,
            |j, now| {
                lifecycle::renew(j, now, lease);
                true
            },
            false,
        )
        .await;
        match renewed {
            Ok(Some(_)) => {}
            Ok(None) => {
                let _ = lost.send(true);
                return;
            }
            Err(e) => warn!(error = %e, "could not renew the job's lease; trying again"),
        }
    }
}
