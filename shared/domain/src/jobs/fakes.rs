//! In-memory stand-ins for the ports the job use cases name (tests only).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Job, JobSettings, JobStatus, Lane, Operation, SubmitRequest, Target, new_job};
use crate::ids::{JobId, MediaId, ModelId};
use crate::ports::{
    BusEvent, EventBus, IdempotencyRecord, IdempotencyStore, JobQuery, JobStore, LaneControl, Page, Queue, QueueName,
    QueueStats, ReceivedMessage, StoreError, StoreResult,
};

/// A queued single-media regenerate of model `m1`.
pub fn queued_job(now: OffsetDateTime) -> Job {
    let request = SubmitRequest {
        operation: Operation::Regenerate { presets: vec![] },
        target: Target::media(ModelId::parse("m1").unwrap(), MediaId::new()),
        lane: Lane::Normal,
        fault: None,
    };
    new_job(JobId::new(), &request, "u1", &JobSettings::default(), now)
}

#[derive(Default)]
pub struct MemJobs {
    pub jobs: Mutex<BTreeMap<JobId, Job>>,
    pub keys: Mutex<BTreeMap<(String, String), IdempotencyRecord>>,
    pub sent: Mutex<Vec<(QueueName, String)>>,
    pub events: Mutex<Vec<BusEvent>>,
}

fn conditional<T: Clone>(slot: Option<&mut T>, version: fn(&T) -> u64, new: &T) -> StoreResult<()> {
    match slot {
        None => Err(StoreError::NotFound),
        Some(old) if version(old) + 1 != version(new) => {
            Err(StoreError::VersionConflict { current: Some(version(old)) })
        }
        Some(old) => {
            *old = new.clone();
            Ok(())
        }
    }
}

#[async_trait]
impl JobStore for MemJobs {
    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        let mut jobs = self.jobs.lock().unwrap();
        if jobs.contains_key(&job.job_id) {
            return Err(StoreError::AlreadyExists);
        }
        jobs.insert(job.job_id, job.clone());
        Ok(())
    }
    async fn get_job(&self, id: &JobId) -> StoreResult<Job> {
        self.jobs.lock().unwrap().get(id).cloned().ok_or(StoreError::NotFound)
    }
    async fn update_job(&self, job: &Job) -> StoreResult<()> {
        conditional(self.jobs.lock().unwrap().get_mut(&job.job_id), |j| j.version, job)
    }
    async fn finish_child(&self, child: &Job, failed: bool) -> StoreResult<()> {
        let mut jobs = self.jobs.lock().unwrap();
        conditional(jobs.get_mut(&child.job_id), |j| j.version, child)?;
        let parent = jobs.get_mut(&child.parent_id.unwrap()).ok_or(StoreError::NotFound)?;
        let p = parent.progress.get_or_insert_default();
        p.done += 1;
        p.failed += u64::from(failed);
        Ok(())
    }
    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>> {
        let mut items: Vec<Job> = self.jobs.lock().unwrap().values().filter(|j| query.matches(j)).cloned().collect();
        if !query.oldest_first {
            items.reverse();
        }
        Ok(Page { items, next_cursor: None })
    }
    async fn count_jobs(&self, status: JobStatus) -> StoreResult<u64> {
        Ok(self.jobs.lock().unwrap().values().filter(|j| j.status == status).count() as u64)
    }
}

#[async_trait]
impl IdempotencyStore for MemJobs {
    async fn create_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        let mut keys = self.keys.lock().unwrap();
        let k = (record.scope.clone(), record.key.clone());
        if keys.contains_key(&k) {
            return Err(StoreError::AlreadyExists);
        }
        keys.insert(k, record.clone());
        Ok(())
    }
    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<IdempotencyRecord> {
        self.keys.lock().unwrap().get(&(scope.to_owned(), key.to_owned())).cloned().ok_or(StoreError::NotFound)
    }
    async fn update_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        let mut keys = self.keys.lock().unwrap();
        conditional(keys.get_mut(&(record.scope.clone(), record.key.clone())), |r| r.version, record)
    }
}

#[async_trait]
impl LaneControl for MemJobs {
    async fn set_paused(&self, _: Lane, _: bool) -> StoreResult<()> {
        Ok(())
    }
    async fn is_paused(&self, _: Lane) -> StoreResult<bool> {
        Ok(false)
    }
}

#[async_trait]
impl EventBus for MemJobs {
    async fn publish(&self, event: &BusEvent) -> StoreResult<()> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}

#[async_trait]
impl Queue for MemJobs {
    async fn send(&self, queue: &QueueName, body: &str, _: Duration) -> StoreResult<String> {
        self.sent.lock().unwrap().push((queue.clone(), body.to_owned()));
        Ok("m".into())
    }
    async fn receive(&self, _: &QueueName, _: usize, _: Duration, _: Duration) -> StoreResult<Vec<ReceivedMessage>> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &QueueName, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn change_visibility(&self, _: &QueueName, _: &str, _: Duration) -> StoreResult<()> {
        Ok(())
    }
    async fn depth(&self, _: &QueueName) -> StoreResult<u64> {
        Ok(0)
    }
    async fn stats(&self, _: &QueueName) -> StoreResult<QueueStats> {
        Ok(QueueStats::default())
    }
}
