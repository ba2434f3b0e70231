//! The whole system on one machine, on the local adapters: the API router exactly as Lambda
//! serves it, an object endpoint that accepts presigned uploads and serves derivatives, and the
//! ingest queue drained into the same processor the Lambda runs. Data lives in one folder.

mod objects;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use phoenix_api::{AuthMode, DerivativeLinks, DevClaims, Ports};
use phoenix_consumer::DrainSettings;
use phoenix_domain::config::env_or;
use phoenix_domain::{MetadataStore, ObjectStore, Queue, QueueName, keys};
use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore, LocalQueue, Notification, QueueSettings};
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
    /// Deliveries of one ingest message before it moves to the dead-letter queue.
    pub ingest_max_receive: u32,
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
            ingest_max_receive: 5,
        })
    }
}
pub struct RunningSystem {
    pub base_url: String,
    pub data_dir: PathBuf,
    pub auth: AuthMode,
    pub metadata: Arc<dyn MetadataStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn Queue>,
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

    let queue = Arc::new(LocalQueue::open(
        &config.data_dir.join("queues.sqlite"),
        vec![
            (
                QueueName::INGEST,
                QueueSettings { max_receive: config.ingest_max_receive, dead_letter: Some(QueueName::INGEST_DLQ) },
            ),
            (QueueName::INGEST_DLQ, QueueSettings { max_receive: u32::MAX, dead_letter: None }),
        ],
    )?);
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
    let objects: Arc<dyn ObjectStore> = Arc::new(object_store.clone());

    let auth = AuthMode::local(config.jwt_secret.as_bytes());
    let ports = Ports { objects: objects.clone(), metadata: metadata.clone(), queue: queue.clone() };
    let api = phoenix_api::Config { links: DerivativeLinks::PublicBase(base_url.clone()), ..config.api };
    let max_upload_bytes = api.limits.max_upload_bytes;
    let app = phoenix_api::build(api, ports, auth.clone()).merge(objects::router(object_store, max_upload_bytes));
    let processor = Arc::new(phoenix_ingest::build(config.ingest, objects.clone(), metadata.clone()));

    let (shutdown, mut stop) = watch::channel(false);
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    let settings = DrainSettings {
        visibility: Duration::from_secs(120),
        concurrency: processor.concurrency(),
        ..DrainSettings::default()
    };
    let drainer = tokio::spawn(phoenix_consumer::drain(
        queue.clone(),
        QueueName::INGEST,
        processor,
        settings,
        shutdown.subscribe(),
    ));

    Ok(RunningSystem {
        base_url,
        data_dir: config.data_dir,
        auth,
        metadata,
        objects,
        queue,
        shutdown,
        tasks: vec![server, drainer],
    })
}
