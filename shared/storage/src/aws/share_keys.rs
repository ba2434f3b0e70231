//! The share links' signing keys in AWS when `PHOENIX_SHARE_KEYS` does not give them (the API's
//! configuration reads that variable): the SSM SecureString parameter
//! `PHOENIX_SHARE_KEYS_PARAMETER` names (read once at start-up, decrypted with the account's
//! `aws/ssm` key). No parameter named, or one not created yet: no keys, with a warning (share
//! links answer 503 and `/s/…` 404 until the parameter exists and the function restarts).
//! docs/deploy.md ("Share-link keys") says how to make and rotate them.

use aws_config::SdkConfig;
use phoenix_domain::config::{ConfigError, env_or};
use phoenix_domain::shares::ShareKeys;

const VAR: &str = "PHOENIX_SHARE_KEYS_PARAMETER";

fn error(message: String) -> ConfigError {
    ConfigError { name: VAR.to_owned(), message }
}

/// The keys the parameter `PHOENIX_SHARE_KEYS_PARAMETER` names, if it names one.
pub async fn load_share_keys(config: &SdkConfig) -> Result<Option<ShareKeys>, ConfigError> {
    let name = env_or(VAR, String::new())?;
    if name.trim().is_empty() {
        tracing::warn!("no share-link keys (PHOENIX_SHARE_KEYS, PHOENIX_SHARE_KEYS_PARAMETER): share links are off");
        return Ok(None);
    }
    share_keys_from_parameter(&aws_sdk_ssm::Client::new(config), name.trim()).await
}

/// The keys in SecureString parameter `name`; `None` (with a warning) while it does not exist.
pub async fn share_keys_from_parameter(
    client: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<Option<ShareKeys>, ConfigError> {
    let output = match client.get_parameter().name(name).with_decryption(true).send().await {
        Ok(output) => output,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => {
            tracing::warn!(parameter = %name, "the share-link keys' parameter does not exist: share links are off");
            return Ok(None);
        }
        Err(e) => return Err(error(format!("reading the SSM parameter {name:?}: {:#}", anyhow::Error::new(e)))),
    };
    let value = output.parameter().and_then(|p| p.value()).unwrap_or_default();
    ShareKeys::parse(value).map(Some).map_err(|e| error(format!("the SSM parameter {name:?}: {e}")))
}
