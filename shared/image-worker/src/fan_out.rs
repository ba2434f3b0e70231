//! A parent job (a target of a whole model): its children are made page by page from the media
//! listing, each page committed with the listing's cursor, so an interrupted fan-out resumes
//! where it stopped and never makes a child twice (children's ids derive from the parent's and
//! the media's).

use phoenix_domain::jobs::lifecycle;
use phoenix_domain::jobs::{FanOut, Job, JobResult, Operation, spawn_child};
use phoenix_domain::ports::MediaQuery;
use tracing::info;

use crate::Worker;
use crate::run::{Done, settle};
use crate::work::WorkError;

/// Media listed per page of the fan-out.
const PAGE: usize = 100;

impl Worker {
    pub(crate) async fn fan_out(&self, job: &Job, holder: &str) -> Result<Done, WorkError> {
        let jobs = self.ports.metadata.as_ref();
        let mut cursor = job.fan_out.as_ref().and_then(|f| f.cursor.clone());
        let stale_only = job.target.stale;
        loop {
            let mut query = MediaQuery::new(PAGE);
            query.cursor = cursor.clone();
            let page = self.ports.metadata.list_media(&job.model_id, &query).await?;
            let mut children = 0u64;
            for record in &page.items {
                if record.source.is_none() {
                    continue;
                }
                if stale_only && self.processor.stale_presets(record).is_empty() {
                    continue;
                }
                if matches!(job.operation, Operation::Regenerate { .. } | Operation::Watermark { .. }) {
                    let now = time::OffsetDateTime::now_utc();
                    spawn_child(jobs, self.ports.queue.as_ref(), job, record.media_id, now).await?;
                    children += 1;
                }
            }
            let next = page.next_cursor.clone();
            let complete = next.is_none();
            let written = settle(
                jobs,
                &job.job_id,
                holder,
                |j, now| {
                    let progress = j.progress.get_or_insert_default();
                    progress.total += children;
                    j.fan_out = Some(FanOut { cursor: next.clone(), complete });
                    if complete {
                        if progress.total == 0 {
                            let result = JobResult {
                                media_id: None,
                                image_version: None,
                                derivatives: Vec::new(),
                                summary: "no media to work on".into(),
                            };
                            lifecycle::succeed(j, result, now);
                            return true;
                        }
                        // Waits for its children without a lease; the reaper finishes it if the
                        // last child's write could not.
                        j.lease = None;
                    }
                    j.version += 1;
                    j.updated_at = now;
                    true
                },
                false,
            )
            .await?;
            let Some(written) = written else {
                return Err(WorkError::Transient("the parent's lease was lost during the fan-out".into()));
            };
            info!(children, total = written.progress.map_or(0, |p| p.total), complete, "fanned out a page");
            if complete {
                let events = self.ports.events.as_ref();
                let now = time::OffsetDateTime::now_utc();
                if written.status.is_terminal() {
                    phoenix_domain::jobs::events::emit(
                        events,
                        &written,
                        phoenix_domain::jobs::JobEventKind::Succeeded,
                        now,
                    )
                    .await;
                } else {
                    phoenix_domain::jobs::finish_parent_if_done(jobs, events, &job.job_id, now)
                        .await
                        .map_err(|e| WorkError::Transient(e.to_string()))?;
                }
                return Ok(Done::Waiting);
            }
            cursor = next;
        }
    }
}
