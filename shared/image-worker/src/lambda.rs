//! The worker as a Lambda function: SQS batches from the lanes (partial batch failures; a backoff
//! sets the failed message's visibility), the reaper's schedule (`{"task": "reap"}`) and the
//! rights sweep's (`{"task": "rights_sweep"}`) arrive at the same function.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use phoenix_consumer::{Retimer, handle_sqs_batch_retimed};
use serde_json::Value;

use crate::Worker;

/// Serves `worker` until the runtime stops: each SQS message of a batch on its own (batch size 1
/// in the template, one job per invocation), and reaper sweeps.
pub async fn run(worker: Worker, retimer: Retimer) -> Result<(), lambda_runtime::Error> {
    let (worker, retimer) = (&worker, &retimer);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let payload = event.payload;
        if payload.get("task").and_then(Value::as_str) == Some("reap") {
            let report = worker.reap().await.map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
            tracing::info!(?report, "reaper sweep");
            return Ok::<Value, lambda_runtime::Error>(serde_json::to_value(report)?);
        }
        if payload.get("task").and_then(Value::as_str) == Some("rights_sweep") {
            let report = worker.rights_sweep().await.map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
            tracing::info!(?report, "rights sweep");
            return Ok(serde_json::to_value(report)?);
        }
        let event: SqsEvent = serde_json::from_value(payload)?;
        let response = handle_sqs_batch_retimed(worker, event, 1, retimer).await;
        Ok(serde_json::to_value(response)?)
    }))
    .await
}
