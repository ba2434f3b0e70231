//! `infra/run.sh` (`cargo run --release -p phoenix-local` from the repository root): the whole
//! system on 127.0.0.1 with the local adapters.
//! `phoenix-local token admin` or `phoenix-local token model <model_id>` prints a dev token for
//! scripts, signed with the same key (`PHOENIX_JWT_SECRET`, else the development secret).

use phoenix_api::{AuthMode, DevClaims};
use phoenix_local::{DEMO_MODEL, DEV_JWT_SECRET, LocalConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("token") {
        return print_token(&args[1..]);
    }
    phoenix_local::init_logging();
    let config = LocalConfig::from_env()?;
    let dev_secret = config.jwt_secret == DEV_JWT_SECRET;
    let system = phoenix_local::spawn(config).await?;

    let exp = (time::OffsetDateTime::now_utc() + time::Duration::days(30)).unix_timestamp() as u64;
    let admin = system.token(&DevClaims { sub: "dev-admin".into(), groups: vec!["admin".into()], model_id: None, exp });
    let model = system.token(&DevClaims {
        sub: "dev-model".into(),
        groups: vec!["model".into()],
        model_id: Some(DEMO_MODEL.into()),
        exp,
    });
    // The folder as an absolute path: `infra/run.sh` runs from the repository, wherever it was typed.
    let data = std::fs::canonicalize(&system.data_dir).unwrap_or_else(|_| system.data_dir.clone());
    println!("{}", banner(&system.base_url, &data.display().to_string(), &admin, &model, dev_secret));

    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    system.shutdown().await;
    Ok(())
}

fn print_token(args: &[String]) -> anyhow::Result<()> {
    let secret = phoenix_domain::config::env_or("PHOENIX_JWT_SECRET", DEV_JWT_SECRET.to_owned())?;
    let exp = (time::OffsetDateTime::now_utc() + time::Duration::days(1)).unix_timestamp() as u64;
    let claims = match args {
        [role] if role == "admin" => {
            DevClaims { sub: "dev-admin".into(), groups: vec!["admin".into()], model_id: None, exp }
        }
        [role, model] if role == "model" => DevClaims {
            sub: format!("dev-{model}"),
            groups: vec!["model".into()],
            model_id: Some(phoenix_domain::ModelId::parse(model)?.to_string()),
            exp,
        },
        _ => anyhow::bail!("usage: phoenix-local token admin | phoenix-local token model <model_id>"),
    };
    let AuthMode::LocalJwt(keys) = AuthMode::local(secret.as_bytes()) else { unreachable!("a local key") };
    println!("{}", claims.sign(&keys));
    Ok(())
}

fn banner(url: &str, data: &str, admin: &str, model: &str, dev_secret: bool) -> String {
    let secret_note = if dev_secret {
        "signed with the development secret (set PHOENIX_JWT_SECRET to change it)"
    } else {
        "signed with PHOENIX_JWT_SECRET"
    };
    let photo = phoenix_local::sample_photo();
    format!(
        r#"
phoenix4ge media is running (local adapters)
  API:   {url}   (health: {url}/v1/health)
  data:  {data}   (survives restarts; delete the folder to start afresh)

Dev tokens, valid 30 days, {secret_note}:
  admin:             {admin}
  model {DEMO_MODEL}: {model}

Try it: paste this into another shell, from any folder (needs curl and python3; set PHOTO to any
JPEG of yours to use another photo):
{}"#,
        phoenix_local::walkthrough(url, model, admin, &photo)
    )
}
