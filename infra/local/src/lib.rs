//! The whole system on one machine, on the local adapters: the API router exactly as Lambda
//! serves it, an object endpoint that accepts presigned uploads and serves derivatives, and the
//! ingest queue drained into the same processor the Lambda runs. Data lives in one folder.

mod objects;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use phoenix_api::{AuthMode, DerivativeLinks, DevClaims, Ports};
use phoenix_consumer::{DrainSettings, PauseSwitch};
use phoenix_domain::config::env_or;
use phoenix_domain::jobs::Lane;
use phoenix_domain::ports::LaneControl;
use phoenix_domain::{MetadataStore, ObjectStore, Queue, QueueName, keys};
use phoenix_http::cors::{AllowedOrigin, CorsPolicy};
use phoenix_storage::local::{
    LocalLanes, LocalMetadataStore, LocalObjectStore, LocalQueue, Notification, QueueSettings, RecordingCdn,
    RecordingEventBus, RememberedPointers,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The documented development secret, used when `PHOENIX_JWT_SECRET` is unset. Local only.
pub const DEV_JWT_SECRET: &str = "phoenix-local-dev-secret";
/// The model the printed walkthrough uses.
pub const DEMO_MODEL: &str = "demo-model";

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    pub jwt_secret: String,
    /// The API's configuration, as its Lambda reads it (derivative links aside: the local
    /// server serves derivatives itself, under its own URL).
    pub api: phoenix_api::Config,
    /// The processor's configuration, as its Lambda reads it.
    pub ingest: phoenix_ingest::Config,
    /// The image worker's configuration, as its Lambda reads it.
    pub worker: phoenix_image_worker::WorkerConfig,
    /// The batch worker's configuration, as its Lambda reads it.
    pub batches: phoenix_batch_worker::BatchWorkerConfig,
    /// Jobs of each lane run at once, as the template's `MaximumConcurrency`
    /// (`PHOENIX_JOBS_HIGH_CONCURRENCY`, default 5; `PHOENIX_JOBS_NORMAL_CONCURRENCY`, default 3).
    /// Image work itself is bounded further by the worker's CPU permits, so uploads keep a core.
    pub lane_concurrency: [(Lane, usize); 2],
    /// How often the reaper sweeps (`PHOENIX_REAPER_INTERVAL_SECS`, default 15; the template's
    /// schedule runs every minute).
    pub reaper_interval: std::time::Duration,
    /// The page origin the API and the object endpoint allow, as the template's `AllowedOrigin`
    /// does in AWS (`PHOENIX_CORS_ORIGIN`; any origin by default, as the template's default).
    pub cors_origin: AllowedOrigin,
    /// Whether the publisher requests a republished document once from the local server
    /// (`PHOENIX_CDN_WARM`, default false: there is no CDN locally).
    pub cdn_warm: bool,
}

impl LocalConfig {
    /// From `PHOENIX_DATA_DIR` (default `.phoenix-data`), `PHOENIX_ADDR` (default
    /// `127.0.0.1:8080`), `PHOENIX_JWT_SECRET`, and the variables the API and the processor read.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            data_dir: env_or("PHOENIX_DATA_DIR", PathBuf::from(".phoenix-data"))?,
            addr: env_or("PHOENIX_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            jwt_secret: env_or("PHOENIX_JWT_SECRET", DEV_JWT_SECRET.to_owned())?,
            api: phoenix_api::Config::from_env()?,
            ingest: phoenix_ingest::Config::from_env()?,
            worker: phoenix_image_worker::WorkerConfig::from_env()?,
            batches: phoenix_batch_worker::BatchWorkerConfig::from_env()?,
            lane_concurrency: [
                (Lane::High, env_or("PHOENIX_JOBS_HIGH_CONCURRENCY", 5)?),
                (Lane::Normal, env_or("PHOENIX_JOBS_NORMAL_CONCURRENCY", 3)?),
            ],
            reaper_interval: std::time::Duration::from_secs(env_or("PHOENIX_REAPER_INTERVAL_SECS", 15)?),
            cors_origin: AllowedOrigin::from_env()?,
            cdn_warm: env_or("PHOENIX_CDN_WARM", false)?,
        })
    }
}
/// Logs to standard output, filtered by `RUST_LOG` (default `info`). Colours only for a person
/// watching a terminal: a log file or a pipe gets plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stdout().is_terminal()).init();
}

/// The photo the printed walkthrough uploads: the repository's sample portrait when it is there
/// (as an absolute path, so the walkthrough works from any folder), else a placeholder to replace.
pub fn sample_photo() -> String {
    std::fs::canonicalize("../shared/testdata/photos/portrait-6mp.jpg")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/path/to/a/photo.jpg".to_owned())
}

/// The copy-paste walkthrough the server prints: upload a JPEG, PUT it, wait for its derivatives,
/// edit it with its ETag, approve it as the admin, publish it in a public gallery. Each step prints what it did; it works pasted
/// from any folder (a test runs it).
pub fn walkthrough(url: &str, model_token: &str, admin_token: &str, photo: &str) -> String {
    format!(
        r#"
export API={url} MODEL={DEMO_MODEL}
export TOKEN={model_token}
export ADMIN={admin_token}
export PHOTO="${{PHOTO:-{photo}}}"
json() {{ python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[int(k) if k.isdigit() else k]
print(v)' "$@"; }}
# 1. create the upload: the media record and a presigned PUT bound to type and length
CREATED=$(curl -sS -X POST "$API/v1/models/$MODEL/media/uploads" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d "{{\"filename\":\"photo.jpg\",\"content_type\":\"image/jpeg\",\"bytes\":$(wc -c < "$PHOTO")}}")
export MEDIA=$(echo "$CREATED" | json media_id) URL=$(echo "$CREATED" | json upload url)
echo "created media $MEDIA"
# 2. PUT the bytes to the presigned URL, with the content type it was signed for
curl -sS -X PUT "$URL" -H 'Content-Type: image/jpeg' --data-binary @"$PHOTO" -o /dev/null \
  -w 'PUT: HTTP %{{http_code}}\n'
# 3. wait until the derivatives are made, then open one in a browser
until STATUS=$(curl -sS "$API/v1/models/$MODEL/media/$MEDIA" -H "Authorization: Bearer $TOKEN" | json status) &&
  [ "$STATUS" != uploading ] && [ "$STATUS" != processing ]; do sleep 1; done; echo "status: $STATUS"
curl -sS "$API/v1/models/$MODEL/media/$MEDIA" -H "Authorization: Bearer $TOKEN" | json derivatives 0 url
# 4. edit the caption on the version read (its ETag), then approve the photo as the admin
ETAG=$(curl -sS -o /dev/null -D - "$API/v1/models/$MODEL/media/$MEDIA" -H "Authorization: Bearer $TOKEN" \
  | tr -d '\r' | awk 'tolower($1) == "etag:" {{ print $2 }}')
curl -sS -X PATCH "$API/v1/models/$MODEL/media/$MEDIA" -H "Authorization: Bearer $TOKEN" -H "If-Match: $ETAG" \
  -H 'Content-Type: application/json' -d '{{"caption":"First light"}}' | json caption
curl -sS -X POST "$API/v1/models/$MODEL/media/$MEDIA/review" -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' -d '{{"decision":"approve"}}' | json status
# 5. put it in a public gallery and publish it: a page for people, JSON for frontends, no auth
export SLUG="first-light-${{MEDIA: -8}}"
export GALLERY=$(curl -sS -X POST "$API/v1/models/$MODEL/galleries" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d "{{\"title\":\"First light\",\"slug\":\"$SLUG\",\"visibility\":\"public\"}}" \
  | json gallery_id)
curl -sS -X PATCH "$API/v1/models/$MODEL/galleries/$GALLERY" -H "Authorization: Bearer $TOKEN" -H 'If-Match: "1"' \
  -H 'Content-Type: application/json' -d "{{\"operations\":[{{\"op\":\"insert_items\",\"media_ids\":[\"$MEDIA\"]}}]}}" \
  -o /dev/null -w 'gallery: HTTP %{{http_code}}\n'
echo "open $API$(curl -sS -X POST "$API/v1/models/$MODEL/galleries/$GALLERY/publish" \
  -H "Authorization: Bearer $TOKEN" | json publication page)"
curl -sS "$API/v1/public/galleries/$GALLERY" | json sections 0 items 0 caption
"#
    )
}

pub struct RunningSystem {
    pub base_url: String,
    pub data_dir: PathBuf,
    pub auth: AuthMode,
    pub metadata: Arc<dyn MetadataStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn Queue>,
    /// Every lifecycle event published (also appended to `events.jsonl` in the data folder).
    pub events: Arc<RecordingEventBus>,
    /// Every CDN invalidation the publisher asked for (also appended to `cdn.jsonl` in the data
    /// folder).
    pub cdn: Arc<RecordingCdn>,
    pub lanes: Arc<dyn LaneControl>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSystem {
    /// A token for these claims, signed with the local key.
    pub fn token(&self, claims: &DevClaims) -> String {
        match &self.auth {
            AuthMode::LocalJwt(keys) => claims.sign(keys),
            AuthMode::ApiGateway => unreachable!("the local server always verifies tokens itself"),
        }
    }

    /// Stops accepting requests and draining queues, and waits for both.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts everything and returns once the listener is bound.
pub async fn spawn(config: LocalConfig) -> anyhow::Result<RunningSystem> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let listener = TcpListener::bind(config.addr).await.with_context(|| format!("binding {}", config.addr))?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");

    let dead_letter = QueueSettings { max_receive: u32::MAX, dead_letter: None };
    let mut queues = vec![
        (
            QueueName::INGEST,
            QueueSettings { max_receive: config.ingest.max_receives, dead_letter: Some(QueueName::INGEST_DLQ) },
        ),
        (QueueName::INGEST_DLQ, dead_letter.clone()),
    ];
    for lane in Lane::ALL {
        // As the template's RedrivePolicy: a job's message is received at most its attempts.
        let settings =
            QueueSettings { max_receive: config.worker.jobs.max_attempts, dead_letter: Some(lane.dead_letter_queue()) };
        queues.push((lane.queue(), settings));
        queues.push((lane.dead_letter_queue(), dead_letter.clone()));
    }
    // As the template's RedrivePolicy: a chunk is received at most 5 times.
    queues.push((QueueName::BATCHES, QueueSettings { max_receive: 5, dead_letter: Some(QueueName::BATCHES_DLQ) }));
    queues.push((QueueName::BATCHES_DLQ, dead_letter.clone()));
    // As the template's RedrivePolicy: a republish request is received at most 10 times.
    queues.push((QueueName::PUBLISH, QueueSettings { max_receive: 10, dead_letter: Some(QueueName::PUBLISH_DLQ) }));
    queues.push((QueueName::PUBLISH_DLQ, dead_letter.clone()));
    let queues_path = config.data_dir.join("queues.sqlite");
    let queue = Arc::new(LocalQueue::open(&queues_path, queues)?);
    let lanes: Arc<dyn LaneControl> = Arc::new(LocalLanes::open(&queues_path)?);
    let events = Arc::new(RecordingEventBus::open(&config.data_dir.join("events.jsonl"))?);
    let cdn = Arc::new(RecordingCdn::open(&config.data_dir.join("cdn.jsonl"))?);
    let metadata: Arc<dyn MetadataStore> =
        Arc::new(LocalMetadataStore::open(&config.data_dir.join("metadata.sqlite"))?);
    let object_store = LocalObjectStore::open(
        &config.data_dir.join("objects"),
        base_url.clone(),
        format!("object-signing:{}", config.jwt_secret).into_bytes(),
    )?
    .with_notification(Notification {
        prefix: keys::ORIGINALS_PREFIX.into(),
        queue: queue.clone(),
        queue_name: QueueName::INGEST,
    });
    // Every pointer writer runs in this process on this one store: pointers can live in memory.
    let objects: Arc<dyn ObjectStore> = Arc::new(RememberedPointers::new(object_store.clone()));

    let auth = AuthMode::local(config.jwt_secret.as_bytes());
    let ports = Ports {
        objects: objects.clone(),
        metadata: metadata.clone(),
        queue: queue.clone(),
        events: events.clone(),
        lanes: lanes.clone(),
        // No CDN locally: the cache statistics are the public routes' own counts.
        cdn_metrics: None,
    };
    let mut api = phoenix_api::Config { links: DerivativeLinks::PublicBase(base_url.clone()), ..config.api };
    if api.galleries.share_keys.is_none() {
        api.galleries.share_keys = Some(local_share_keys(&config.data_dir)?);
    }
    let sweep_media_base = api.gallery_media_base();
    // The publisher links derivatives exactly as the API's publish does, so a republish changes
    // only what changed.
    let publisher_config = phoenix_publisher::PublisherConfig { media_base: api.gallery_media_base() };
    let max_upload_bytes = api.limits.max_upload_bytes;
    // API Gateway answers CORS for the API in AWS, so the API itself does not: the local server
    // adds it here, from the same policy; the object endpoint answers with the bucket's rules.
    let api_router =
        phoenix_api::build(api, ports, auth.clone()).layer(CorsPolicy::api(config.cors_origin.clone()).layer());
    let object_router = objects::ObjectEndpoint::new(object_store, max_upload_bytes, config.cors_origin).router();
    let app = api_router.merge(object_router);
    // A delivery may take as long as a claim lasts: the queue hides it that long (as SQS's
    // visibility timeout does, at least the Lambda's timeout), then gives it to the next.
    let visibility = config.ingest.limits.processing_lease;
    let processor = Arc::new(
        phoenix_ingest::build(config.ingest, objects.clone(), metadata.clone()).with_publish_queue(queue.clone()),
    );
    let worker_ports = phoenix_image_worker::WorkerPorts {
        objects: objects.clone(),
        metadata: metadata.clone(),
        queue: queue.clone(),
        events: events.clone(),
        lanes: lanes.clone(),
    };
    let job_lease = config.worker.jobs.lease;
    let worker = Arc::new(phoenix_image_worker::build(config.worker, worker_ports).with_media_base(sweep_media_base));

    let (shutdown, mut stop) = watch::channel(false);
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %e, "server stopped");
        }
    });
    let settings = DrainSettings { visibility, concurrency: processor.concurrency(), ..DrainSettings::default() };
    let drainer = tokio::spawn(phoenix_consumer::drain(
        queue.clone(),
        QueueName::INGEST,
        processor,
        settings,
        shutdown.subscribe(),
    ));

    let mut tasks = vec![server, drainer];
    for (lane, concurrency) in config.lane_concurrency {
        // As Lambda's event source with batch size 1: up to `concurrency` jobs at once, each
        // received as soon as a slot is free. A job
        // message stays hidden for 6 leases, as the template's visibility timeout is 6 worker
        // timeouts: a worker that dies is found by the reaper long before.
        let settings = DrainSettings {
            visibility: job_lease * 6,
            batch_size: 1,
            concurrency: 1,
            in_flight: concurrency.max(1),
            paused: Some(Arc::new(LanePause { lanes: lanes.clone(), lane })),
        };
        tasks.push(tokio::spawn(phoenix_consumer::drain(
            queue.clone(),
            lane.queue(),
            worker.clone(),
            settings,
            shutdown.subscribe(),
        )));
    }
    tasks.push(tokio::spawn(reaper(worker, config.reaper_interval, shutdown.subscribe())));
    // The batch worker, as its Lambda with batch size 1: a chunk at a time per slot; two slots,
    // as SQLite takes one writer at a time anyway.
    let batch_worker = Arc::new(phoenix_batch_worker::build(
        config.batches,
        phoenix_batch_worker::BatchWorkerPorts {
            metadata: metadata.clone(),
            queue: queue.clone(),
            events: events.clone(),
        },
    ));
    let settings = DrainSettings {
        visibility: std::time::Duration::from_secs(120),
        batch_size: 1,
        concurrency: 1,
        in_flight: 2,
        paused: None,
    };
    tasks.push(tokio::spawn(phoenix_consumer::drain(
        queue.clone(),
        QueueName::BATCHES,
        batch_worker,
        settings,
        shutdown.subscribe(),
    )));

    // The publisher, as the batch worker's Lambda runs it on the publish queue: batches of up to
    // 10 (coalesced per gallery), invalidations recorded in `cdn.jsonl`. There is no CDN to
    // warm locally: `PHOENIX_CDN_WARM=true` requests the document from the local server instead.
    let warmer: Option<Arc<dyn phoenix_publisher::Warmer>> = match config.cdn_warm {
        true => Some(Arc::new(phoenix_publisher::HttpWarmer::new(base_url.clone())?)),
        false => None,
    };
    let publisher = Arc::new(phoenix_publisher::build(
        publisher_config,
        phoenix_publisher::PublisherPorts {
            metadata: metadata.clone(),
            objects: objects.clone(),
            queue: queue.clone(),
            cdn: cdn.clone(),
            warmer,
        },
    ));
    let settings = DrainSettings {
        visibility: std::time::Duration::from_secs(120),
        batch_size: phoenix_consumer::DEFAULT_BATCH_SIZE,
        concurrency: 1,
        in_flight: 1,
        paused: None,
    };
    tasks.push(tokio::spawn(phoenix_consumer::drain(
        queue.clone(),
        QueueName::PUBLISH,
        publisher,
        settings,
        shutdown.subscribe(),
    )));

    Ok(RunningSystem {
        base_url,
        cdn,
        data_dir: config.data_dir,
        auth,
        metadata,
        objects,
        queue,
        events,
        lanes,
        shutdown,
        tasks,
    })
}

/// A lane's drain holds off while the lane is paused.
struct LanePause {
    lanes: Arc<dyn LaneControl>,
    lane: Lane,
}

#[async_trait::async_trait]
impl PauseSwitch for LanePause {
    async fn is_paused(&self) -> bool {
        self.lanes.is_paused(self.lane).await.unwrap_or(false)
    }
}

/// The share links' signing key when `PHOENIX_SHARE_KEYS` is unset: made once (32 bytes from
/// the system's random source) and kept in `{data}/share-keys` (owner-only), so links survive
/// restarts. Delete the file to end every link made with it.
fn local_share_keys(data_dir: &std::path::Path) -> anyhow::Result<phoenix_domain::shares::ShareKeys> {
    use base64::Engine;
    use std::io::Read;
    let path = data_dir.join("share-keys");
    let raw = match std::fs::read_to_string(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut key))
                .context("reading /dev/urandom for the share-link key")?;
            let raw = format!("local1:{}", base64::engine::general_purpose::STANDARD.encode(key));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(
                &mut options.open(&path).with_context(|| format!("creating {}", path.display()))?,
                raw.as_bytes(),
            )?;
            raw
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    phoenix_domain::shares::ShareKeys::parse(&raw).with_context(|| format!("the share-link keys in {}", path.display()))
}

/// The reaper (and the rights sweep) on a timer, as the template's schedules run them in AWS.
async fn reaper(
    worker: Arc<phoenix_image_worker::Worker>,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match worker.reap().await {
            Ok(report) if report != Default::default() => tracing::info!(?report, "reaper sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reaper sweep failed"),
        }
        // The rights sweep, as its own schedule runs it in AWS (`{"task":"rights_sweep"}`).
        match worker.rights_sweep().await {
            Ok(report) if report != Default::default() => tracing::info!(?report, "rights sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "rights sweep failed"),
        }
    }
}
