//! The job state machine, as pure functions on the record: what a delivery may do with a job,
//! and each transition a worker, the reaper or a caller makes. Every transition bumps the
//! version; the store writes it only over the version read (the fencing token).

use std::time::Duration;

use time::OffsetDateTime;

use super::{ATTEMPTS_CAP, Job, JobAttempt, JobFailure, JobLease, JobResult, JobStatus};

/// What a delivery of a job's message may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Run it (it is queued, or its holder died: the lease lapsed or this is a redelivery of
    /// the message that held it).
    Run,
    /// Nothing to do: it ended (or is cancelled), or it is a parent waiting for its children.
    /// The message is acknowledged.
    Nothing,
    /// Another delivery holds a live lease until then: come back after it.
    Busy(OffsetDateTime),
}

/// What `holder`'s delivery may do with `job` at `now`.
pub fn decide(job: &Job, holder: &str, now: OffsetDateTime) -> Start {
    match job.status {
        JobStatus::Queued => Start::Run,
        JobStatus::Running => match &job.lease {
            Some(lease) if lease.until > now && lease.holder != holder => Start::Busy(lease.until),
            Some(_) => Start::Run,
            // A parent that fanned out every child waits for them without a lease.
            None if job.fan_out.as_ref().is_some_and(|f| f.complete) => Start::Nothing,
            None => Start::Run,
        },
        _ => Start::Nothing,
    }
}

/// The attempts of the current run (since the job was last submitted or retried).
pub fn run_attempts(job: &Job) -> u32 {
    job.attempts.iter().filter(|a| a.number > job_run_base(job)).count() as u32
}

fn job_run_base(job: &Job) -> u32 {
    job.run_base
}

fn touch(job: &mut Job, now: OffsetDateTime) {
    job.version += 1;
    job.updated_at = now;
}

/// Ends an attempt that never finished (its worker died) with `why`.
fn close_abandoned(job: &mut Job, now: OffsetDateTime, why: &str) {
    if let Some(attempt) = job.current_attempt_mut() {
        attempt.finished_at = Some(now);
        attempt.error = Some(why.to_owned());
    }
}

/// Takes the job for `holder`'s delivery: `running`, a new attempt, a lease.
pub fn begin(job: &mut Job, holder: &str, now: OffsetDateTime, lease: Duration) {
    close_abandoned(job, now, "the worker stopped before finishing (its lease lapsed or its delivery ended)");
    let number = job.attempts.last().map_or(1, |a| a.number + 1);
    job.attempts.push(JobAttempt {
        number,
        started_at: now,
        finished_at: None,
        error: None,
        retry_at: None,
        backoff_cap_ms: None,
    });
    if job.attempts.len() > ATTEMPTS_CAP {
        job.attempts.remove(0);
    }
    job.status = JobStatus::Running;
    job.started_at.get_or_insert(now);
    job.lease = Some(JobLease { until: now + lease, holder: holder.to_owned() });
    touch(job, now);
}

/// Extends the lease of the delivery that holds it.
pub fn renew(job: &mut Job, now: OffsetDateTime, lease: Duration) {
    if let Some(l) = job.lease.as_mut() {
        l.until = now + lease;
    }
    touch(job, now);
}

/// The job did what it was asked.
pub fn succeed(job: &mut Job, result: JobResult, now: OffsetDateTime) {
    if let Some(attempt) = job.current_attempt_mut() {
        attempt.finished_at = Some(now);
    }
    job.status = JobStatus::Succeeded;
    job.result = Some(result);
    job.error = None;
    job.lease = None;
    job.finished_at = Some(now);
    touch(job, now);
}

/// The job failed for good (bad parameters, a corrupt source, a media gone, attempts spent).
pub fn fail(job: &mut Job, failure: JobFailure, now: OffsetDateTime) {
    if let Some(attempt) = job.current_attempt_mut() {
        attempt.finished_at = Some(now);
        attempt.error = Some(failure.message.clone());
    }
    job.status = JobStatus::Failed;
    job.error = Some(failure);
    job.lease = None;
    job.finished_at = Some(now);
    touch(job, now);
}

/// A transient failure with attempts left: queued again, to be retried after `delay`.
pub fn back_off(job: &mut Job, error: &str, delay: Duration, cap: Duration, now: OffsetDateTime) {
    if let Some(attempt) = job.current_attempt_mut() {
        attempt.finished_at = Some(now);
        attempt.error = Some(error.to_owned());
        attempt.retry_at = Some(now + delay);
        attempt.backoff_cap_ms = Some(cap.as_millis() as u64);
    }
    job.status = JobStatus::Queued;
    job.lease = None;
    touch(job, now);
}

/// The reaper found the lease lapsed with attempts left: queued again, its message re-sent.
pub fn requeue_lapsed(job: &mut Job, now: OffsetDateTime) {
    close_abandoned(job, now, "the lease lapsed: the worker died or timed out");
    job.status = JobStatus::Queued;
    job.lease = None;
    job.enqueued_at = now;
    touch(job, now);
}

/// A queued job stops before it starts.
pub fn cancel(job: &mut Job, now: OffsetDateTime) {
    job.status = JobStatus::Cancelled;
    job.finished_at = Some(now);
    job.lease = None;
    touch(job, now);
}

/// A failed job runs again from a fresh attempt budget; its earlier attempts stay listed.
pub fn resubmit(job: &mut Job, now: OffsetDateTime) {
    job.run_base = job.attempts.last().map_or(0, |a| a.number);
    job.status = JobStatus::Queued;
    job.error = None;
    job.result = None;
    job.finished_at = None;
    job.lease = None;
    job.enqueued_at = now;
    touch(job, now);
}

/// Exponential backoff with full jitter: attempt `n` (1-based) waits a uniformly random time
/// between zero and `min(max, base * 2^(n-1))`, so retries of many jobs spread out instead of
/// coming back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(2), max: Duration::from_secs(300) }
    }
}

impl Backoff {
    /// The most attempt `attempt` waits.
    pub fn cap(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A delay for `attempt`, drawn with `random` (uniform over `u64`).
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let cap = self.cap(attempt).as_millis() as u64;
        Duration::from_millis(if cap == 0 { 0 } else { random % (cap + 1) })
    }

    /// A delay for `attempt` from fresh randomness.
    pub fn draw(&self, attempt: u32) -> Duration {
        self.delay(attempt, ulid::Ulid::new().random() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::fakes::queued_job;

    #[test]
    fn backoff_caps_double_to_the_maximum_and_delays_stay_under_them() {
        let b = Backoff { base: Duration::from_millis(500), max: Duration::from_secs(5) };
        let caps: Vec<u64> = (1..=6).map(|n| b.cap(n).as_millis() as u64).collect();
        assert_eq!(caps, [500, 1000, 2000, 4000, 5000, 5000]);
        for n in 1..=6 {
            for random in [0, 1, 499, u64::MAX, 123_456_789] {
                assert!(b.delay(n, random) <= b.cap(n));
            }
        }
        assert_eq!(b.delay(3, 2000), Duration::from_millis(2000));
        assert_eq!(b.cap(200), Duration::from_secs(5), "no overflow");
    }

    #[test]
    fn a_live_lease_of_another_delivery_keeps_others_off_and_its_own_redelivery_takes_over() {
        let now = OffsetDateTime::now_utc();
        let mut job = queued_job(now);
        assert_eq!(decide(&job, "m1", now), Start::Run);
        begin(&mut job, "m1", now, Duration::from_secs(60));
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.version, 2);
        assert_eq!(decide(&job, "m2", now), Start::Busy(now + Duration::from_secs(60)));
        assert_eq!(decide(&job, "m1", now), Start::Run, "the holder's own redelivery");
        assert_eq!(decide(&job, "m2", now + Duration::from_secs(61)), Start::Run, "lapsed");
        begin(&mut job, "m2", now + Duration::from_secs(61), Duration::from_secs(60));
        assert_eq!(job.attempts.len(), 2);
        assert!(job.attempts[0].error.as_deref().unwrap().contains("lease"), "{:?}", job.attempts[0]);
        succeed(
            &mut job,
            JobResult { media_id: None, image_version: Some(2), derivatives: vec![], summary: "ok".into() },
            now,
        );
        assert_eq!(decide(&job, "m3", now), Start::Nothing, "a finished job does no work twice");
    }

    #[test]
    fn a_retry_gets_a_fresh_attempt_budget_and_keeps_history() {
        let now = OffsetDateTime::now_utc();
        let mut job = queued_job(now);
        for i in 0..3 {
            begin(&mut job, &format!("m{i}"), now, Duration::from_secs(60));
            back_off(&mut job, "boom", Duration::from_secs(1), Duration::from_secs(2), now);
        }
        assert_eq!(run_attempts(&job), 3);
        fail(&mut job, JobFailure { code: "attempts_exhausted".into(), message: "boom".into() }, now);
        resubmit(&mut job, now);
        assert_eq!(run_attempts(&job), 0);
        assert_eq!(job.attempts.len(), 3);
        assert_eq!(job.status, JobStatus::Queued);
        begin(&mut job, "m9", now, Duration::from_secs(60));
        assert_eq!(job.attempts.last().unwrap().number, 4);
        assert_eq!(run_attempts(&job), 1);
    }
}
