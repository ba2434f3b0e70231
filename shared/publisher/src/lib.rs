//! The publisher: the publish queue's [`MessageHandler`]. Each message asks for one gallery to be
//! republished because something it shows changed (`phoenix_domain::galleries::republish`). The
//! messages of one batch are coalesced per gallery: one publish (only when the document
//! changes) and one CDN [`Invalidation`](phoenix_domain::ports::Invalidation) of its paths,
//! however many messages asked. Then, when configured, the new document is requested once
//! through the CDN (cache warming).
//!
//! Failures: a CDN with too many invalidations in progress (`TooManyInProgress`) sends the
//! gallery's messages back after [`BUSY_RETRY_AFTER`](phoenix_domain::ports::cdn::BUSY_RETRY_AFTER)
//! ([`Failure::Later`]: the message's visibility); a store or CDN outage is transient; a message
//! that is not a publish message is moved to the dead-letter queue at once with its reason
//! logged. Redelivery is harmless: a gallery whose document is already current is not published
//! again, and its invalidation carries the same caller reference, which the CDN answers with
//! the first invalidation.

mod warm;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use phoenix_consumer::{Delivery, Failure, MessageHandler};
use phoenix_domain::galleries::republish::{self, Reason, Refresh, RepublishMessage};
use phoenix_domain::galleries::{GalleryError, GalleryPorts, Slug};
use phoenix_domain::ports::{Cdn, CdnError, QueueName};
use phoenix_domain::{GalleryId, MetadataStore, ModelId, ObjectStore, Queue};
use time::OffsetDateTime;
use tracing::{error, info, warn};

pub use warm::{HttpWarmer, Warmer};

/// The ports the publisher uses.
#[derive(Clone)]
pub struct PublisherPorts {
    /// Galleries and the media records they show.
    pub metadata: Arc<dyn MetadataStore>,
    /// Published documents and their pointers.
    pub objects: Arc<dyn ObjectStore>,
    /// The publish queue's dead-letter queue (malformed messages).
    pub queue: Arc<dyn Queue>,
    pub cdn: Arc<dyn Cdn>,
    /// Requests a published path once through the CDN; `None`: no warming.
    pub warmer: Option<Arc<dyn Warmer>>,
}

/// How the publisher runs.
#[derive(Debug, Clone, Default)]
pub struct PublisherConfig {
    /// What published documents put before a derivative's key: the same as the API's
    /// (`PHOENIX_PUBLIC_MEDIA_BASE`, else the CDN's base URL, else empty), so that a republish
    /// changes only what changed.
    pub media_base: String,
}

/// One message as read: a publish message, or a body that will never be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Republish(RepublishMessage),
    Malformed { body: String, reason: String },
}

pub struct Publisher {
    ports: PublisherPorts,
    config: PublisherConfig,
}

pub fn build(config: PublisherConfig, ports: PublisherPorts) -> Publisher {
    Publisher { ports, config }
}

/// What became of one gallery's work, given to each message that asked for it.
#[derive(Debug, Clone)]
enum Outcome {
    Done,
    Transient(String),
    Later(Duration, String),
    Permanent(String),
}

impl Outcome {
    fn failure(&self) -> Result<(), Failure> {
        match self {
            Self::Done => Ok(()),
            Self::Transient(m) => Err(Failure::Transient(anyhow::anyhow!("{m}"))),
            Self::Later(after, m) => Err(Failure::Later { after: *after, reason: anyhow::anyhow!("{m}") }),
            Self::Permanent(m) => Err(Failure::Permanent(anyhow::anyhow!("{m}"))),
        }
    }
}

/// Galleries handled at once within one batch.
const GALLERY_CONCURRENCY: usize = 4;

#[async_trait]
impl MessageHandler for Publisher {
    type Message = Incoming;

    /// Every body decodes: what is not a publish message is handled as `Malformed`
    /// (dead-lettered at once).
    fn decode(&self, body: &str) -> Result<Incoming, Failure> {
        Ok(match RepublishMessage::parse(body) {
            Ok(message) => Incoming::Republish(message),
            Err(reason) => Incoming::Malformed { body: body.to_owned(), reason },
        })
    }

    async fn handle(&self, message: Incoming, delivery: &Delivery) -> Result<(), Failure> {
        let mut results = self.handle_batch(vec![(message, delivery.clone())], 1).await;
        results.pop().map_or(Ok(()), |(_, result)| result)
    }

    /// Coalesces the batch per gallery: each gallery is refreshed and invalidated once, and its
    /// outcome given to every message that asked for it.
    async fn handle_batch(
        &self,
        messages: Vec<(Incoming, Delivery)>,
        _concurrency: usize,
    ) -> Vec<(Delivery, Result<(), Failure>)> {
        let mut results = Vec::with_capacity(messages.len());
        let mut work: BTreeMap<(ModelId, GalleryId), (Vec<Delivery>, BTreeSet<Slug>, BTreeSet<Reason>)> =
            BTreeMap::new();
        for (message, delivery) in messages {
            match message {
                Incoming::Malformed { body, reason } => {
                    let result = self.dead_letter(&body, &reason, &delivery).await;
                    results.push((delivery, result));
                }
                Incoming::Republish(m) => {
                    let entry = work.entry((m.model_id, m.gallery_id)).or_default();
                    entry.0.push(delivery);
                    entry.1.extend(m.previous_slug);
                    entry.2.insert(m.reason);
                }
            }
        }
        let outcomes: Vec<(Vec<Delivery>, Outcome)> = futures::stream::iter(work)
            .map(|((model, gallery), (deliveries, slugs, reasons))| async move {
                let republish = reasons.iter().any(|r| r.republishes());
                // A person's publish or rollback changed the document already: warm it too.
                let changed_by_person = reasons.contains(&Reason::Published);
                let span = tracing::info_span!(
                    "gallery", gallery_id = %gallery, messages = deliveries.len(), reasons = ?reasons
                );
                let outcome = tracing::Instrument::instrument(
                    self.gallery(&model, &gallery, &slugs, republish, changed_by_person),
                    span,
                )
                .await;
                (deliveries, outcome)
            })
            .buffer_unordered(GALLERY_CONCURRENCY)
            .collect()
            .await;
        for (deliveries, outcome) in outcomes {
            for delivery in deliveries {
                results.push((delivery, outcome.failure()));
            }
        }
        results
    }
}

fn gallery_outcome(e: GalleryError) -> Outcome {
    match e {
        GalleryError::Store(e) if e.is_transient() => Outcome::Transient(format!("{e:#}")),
        // Someone wrote the gallery (or published it) meanwhile: publish again from what is there.
        GalleryError::VersionConflict { message, .. } => Outcome::Transient(message),
        other => Outcome::Permanent(format!("{other:#}")),
    }
}

impl Publisher {
    /// Refreshes one gallery (publishing it if its document changed) and invalidates its paths;
    /// then warms them if the document is new (published here, or by a person: `changed`).
    async fn gallery(
        &self,
        model: &ModelId,
        id: &GalleryId,
        previous_slugs: &BTreeSet<Slug>,
        republish: bool,
        changed: bool,
    ) -> Outcome {
        let m = self.ports.metadata.as_ref();
        let ports = GalleryPorts { galleries: m, media: m, objects: self.ports.objects.as_ref() };
        let now = OffsetDateTime::now_utc();
        let refresh =
            match republish::refresh(ports, model, id, previous_slugs, republish, &self.config.media_base, now).await {
                Ok(r) => r,
                Err(e) => return gallery_outcome(e),
            };
        let Refresh::Invalidate { invalidation, published, gallery } = refresh else {
            info!("nothing public to republish");
            return Outcome::Done;
        };
        match self.ports.cdn.invalidate(&invalidation).await {
            Ok(cdn_id) => {
                let paths: Vec<&str> = invalidation.paths().iter().map(|p| p.as_str()).collect();
                info!(
                    invalidation_id = %cdn_id,
                    caller_reference = %invalidation.reference(),
                    ?paths,
                    published_version = ?published,
                    "gallery republished and its CDN paths invalidated"
                );
            }
            Err(CdnError::TooManyInProgress(e)) => {
                let after = phoenix_domain::ports::cdn::BUSY_RETRY_AFTER;
                return Outcome::Later(after, format!("CDN busy: too many invalidations in progress: {e:#}"));
            }
            Err(e) if e.is_transient() => return Outcome::Transient(format!("{e:#}")),
            Err(e) => return Outcome::Permanent(format!("{e:#}")),
        }
        if let (true, Some(warmer), Some(gallery)) = (published.is_some() || changed, &self.ports.warmer, gallery)
            && gallery.visibility.is_readable_publicly()
        {
            for path in [format!("/v1/public/galleries/{id}"), format!("/g/{}", gallery.slug)] {
                if let Err(e) = warmer.warm(&path).await {
                    warn!(path, error = format!("{e:#}"), "cache warming failed (the first visitor misses)");
                }
            }
        }
        Outcome::Done
    }

    /// Moves a body that will never be a publish message to the dead-letter queue, with its
    /// reason in the log, and acknowledges it.
    async fn dead_letter(&self, body: &str, reason: &str, delivery: &Delivery) -> Result<(), Failure> {
        error!(
            message_id = %delivery.message_id, reason,
            "a publish-queue message that is not a publish message: moved to the dead-letter queue"
        );
        self.ports
            .queue
            .send(&QueueName::PUBLISH_DLQ, body, Duration::ZERO)
            .await
            .map(|_| ())
            .map_err(|e| if e.is_transient() { Failure::Transient(e.into()) } else { Failure::Permanent(e.into()) })
    }
}

/// The CDN of a deployment without one: nothing is cached, so nothing is invalidated.
pub struct NoCdn;

#[async_trait]
impl Cdn for NoCdn {
    async fn invalidate(&self, invalidation: &phoenix_domain::ports::Invalidation) -> Result<String, CdnError> {
        Ok(format!("none:{}", invalidation.reference()))
    }
}

#[cfg(test)]
mod tests;
