//! Runs exactly the production pipeline on one file, for inspection and benchmarking:
//!
//! ```text
//! phoenix-derive <input> <output-dir> [--presets FILE] [--keep-gps]
//! ```
//!
//! Writes every rendition as `{preset}.{ext}` and `metadata.json` (probe, analysis, renditions'
//! provenance and sizes, timings). A rejected file exits with status 2 and `code: message`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use phoenix_imaging::{ImageLimits, PresetSet, RenderOptions, process};
use serde_json::json;

const USAGE: &str = "usage: phoenix-derive <input> <output-dir> [--presets FILE] [--keep-gps]";

struct Args {
    input: PathBuf,
    output: PathBuf,
    presets: Option<PathBuf>,
    keep_gps: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let (mut presets, mut keep_gps) = (None, false);
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--presets") => presets = Some(args.next().ok_or("--presets needs a file")?.into()),
            Some("--keep-gps") => keep_gps = true,
            Some("-h" | "--help") => return Err(USAGE.into()),
            Some(s) if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [input, output]: [PathBuf; 2] = positional.try_into().map_err(|_| USAGE.to_owned())?;
    Ok(Args { input, output, presets, keep_gps })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phoenix-derive: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let presets = match &args.presets {
        Some(path) => PresetSet::from_file(path)?,
        None => PresetSet::default(),
    };
    let bytes = std::fs::read(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let started = Instant::now();
    let processed = match process(&bytes, &ImageLimits::default(), &presets, None, &RenderOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", e.code());
            return Ok(ExitCode::from(2));
        }
    };
    let total = started.elapsed();
    drop(bytes);

    std::fs::create_dir_all(&args.output)?;
    let mut renditions = Vec::new();
    for r in &processed.renditions {
        let file = format!("{}.{}", r.preset, r.format.extension());
        std::fs::write(args.output.join(&file), &r.bytes)?;
        renditions.push(json!({
            "file": file,
            "preset": r.preset,
            "preset_version": r.preset_version,
            "format": r.format,
            "width": r.width,
            "height": r.height,
            "bytes": r.bytes.len(),
            "operations": r.operations,
        }));
    }
    let mut probe = processed.probe.clone();
    if !args.keep_gps {
        probe.gps = None;
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let t = &processed.timings;
    let metadata = json!({
        "probe": probe,
        "analysis": processed.analysis,
        "renditions": renditions,
        "timings_ms": {
            "decode": ms(t.decode),
            "resize": ms(t.resize),
            "encode": ms(t.encode),
            "analysis": ms(t.analysis),
            "total": ms(total),
        },
    });
    std::fs::write(args.output.join("metadata.json"), serde_json::to_string_pretty(&metadata)? + "\n")?;
    println!(
        "{} renditions of {}x{} in {:.0} ms -> {}",
        processed.renditions.len(),
        processed.probe.width,
        processed.probe.height,
        ms(total),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
