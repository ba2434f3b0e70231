//! The walkthrough the local server prints, pasted into a shell from another folder, as a
//! newcomer would: every step must succeed and say so.

use crate::helpers::{spawn_app, testdata};

#[tokio::test]
async fn the_printed_walkthrough_works_pasted_from_any_folder() {
    let app = spawn_app().await;
    let photo = testdata("photos/portrait-6mp.jpg").canonicalize().unwrap();
    let script = phoenix_local::walkthrough(
        &app.url,
        &app.model_token(phoenix_local::DEMO_MODEL),
        &app.admin_token(),
        &photo.display().to_string(),
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let folder = elsewhere.path().to_owned();
    // The server runs on this test's runtime: the shell waits on another thread.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(folder)
            .env_remove("PHOTO")
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("created media ") && lines[0].len() == "created media ".len() + 26, "{stdout}");
    assert_eq!(lines[1], "PUT: HTTP 200", "{stdout}");
    assert_eq!(lines[2], "status: pending_review", "{stdout}");
    assert!(lines[3].starts_with(&format!("{}/derived/", app.url)), "{stdout}");
    assert_eq!(&lines[4..6], ["First light", "approved"], "{stdout}");
    assert_eq!(lines[6], "gallery: HTTP 200", "{stdout}");
    let page = lines[7].strip_prefix(&format!("open {}/g/first-light-", app.url)).expect("the page's URL");
    assert_eq!(page.len(), 8, "{stdout}");
    assert_eq!(&lines[8..], ["First light"], "the public document shows the caption: {stdout}");
    // The page it says to open is there, for anyone.
    let opened = app.client.get(lines[7].trim_start_matches("open ")).send().await.unwrap();
    assert_eq!(opened.status(), 200);
    assert!(opened.text().await.unwrap().contains("First light"));
    assert!(stderr.is_empty(), "{stderr}");
}

/// The `curl` examples of docs/api.md (its `sh` blocks), pasted after the walkthrough (whose
/// variables they use), in order: each answers without an error. `upload-url` is left out: it is
/// for media still `uploading`, and the walkthrough's photo has been processed. Examples that need
/// things of the reader's own (a logo file, a failed job) are `shell` blocks, shown but not run.
#[tokio::test]
async fn the_api_examples_work_after_the_walkthrough() {
    let app = spawn_app().await;
    let photo = testdata("photos/portrait-6mp.jpg").canonicalize().unwrap();
    let mut script = phoenix_local::walkthrough(
        &app.url,
        &app.model_token(phoenix_local::DEMO_MODEL),
        &app.admin_token(),
        &photo.display().to_string(),
    );
    let docs = include_str!("../../docs/api.md");
    let mut examples = 0;
    for block in docs.split("```sh\n").skip(1).map(|rest| &rest[..rest.find("```").unwrap()]) {
        if block.contains("/upload-url") {
            continue;
        }
        script.push_str(&format!("echo '--- example'\n{block}\necho\n"));
        examples += 1;
    }
    assert!(examples >= 6, "docs/api.md lost its examples");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash").args(["-euo", "pipefail", "-c", &script]).output().expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let answers: Vec<&str> = stdout.split("--- example").skip(1).collect();
    assert_eq!(answers.len(), examples, "{stdout}");
    for answer in answers {
        assert!(!answer.contains("\"error\""), "an example of docs/api.md failed:\n{answer}");
    }
}
