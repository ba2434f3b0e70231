#!/usr/bin/env node
// The job of `phoenix-derive`, done with sharp: the yardstick in `bench/compare.sh`.
//
//   node derive.mjs <input> <output-dir> [--presets FILE]
//
// Reads one image, decodes it once (`sharp(buffer)`, then `.clone()` per output), orients it from
// EXIF, and writes every format of every preset in the presets file (the format of
// `shared/imaging/presets.json`, which is also the default) plus a `metadata.json`, so both sides
// write the same set of files. One thread: `sharp.concurrency(1)`; run it with
// `UV_THREADPOOL_SIZE=1` as well, which must be set before node starts.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

// sharp comes from `npm install` in this folder or, as compare.sh does it, from a temporary folder
// named in NODE_PATH, which only CommonJS resolution honours; hence `require`, not `import`.
const require = createRequire(import.meta.url);
const sharp = require('sharp');

const DEFAULT_PRESETS = fileURLToPath(new URL('../../shared/imaging/presets.json', import.meta.url));
const EXTENSIONS = { jpeg: 'jpg', webp: 'webp', avif: 'avif' };

function usage(message) {
  console.error(`${message}\nusage: node derive.mjs <input> <output-dir> [--presets FILE]`);
  process.exit(2);
}

function parseArgs(argv) {
  const positional = [];
  let presets = DEFAULT_PRESETS;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--presets') {
      presets = argv[++i];
      if (!presets) usage('--presets needs a file');
    } else if (argv[i].startsWith('--presets=')) {
      presets = argv[i].slice('--presets='.length);
    } else {
      positional.push(argv[i]);
    }
  }
  if (positional.length !== 2) usage('expected <input> and <output-dir>');
  return { input: positional[0], outDir: positional[1], presets };
}

// A preset's geometry, as `shared/imaging` reads it: `"fit": "width"` is `width` wide (the photo's
// width if smaller), aspect ratio kept; `"fit": "cover"` is exactly `width`x`height` cropped around
// the centre or, from a photo too small for that, the largest centred crop of that aspect ratio.
// Neither ever upscales. `photo` is the displayed (oriented) size.
function resizeOptions(preset, photo) {
  switch (preset.fit) {
    case 'width':
      return { width: preset.width, withoutEnlargement: true };
    case 'cover': {
      const scale = Math.min(1, photo.width / preset.width, photo.height / preset.height);
      const width = Math.max(1, Math.round(preset.width * scale));
      const height = Math.max(1, Math.round(preset.height * scale));
      return { width, height, fit: 'cover', position: 'centre' };
    }
    default:
      throw new Error(`preset ${preset.name}: unknown fit ${JSON.stringify(preset.fit)}`);
  }
}

function encode(pipeline, format, preset, background) {
  const quality = preset.quality?.[format];
  switch (format) {
    case 'jpeg':
      // JPEG has no alpha: flatten onto the configured background, as the pipeline does.
      return pipeline.flatten({ background }).jpeg({
        quality: quality ?? 80,
        progressive: Boolean(preset.progressive),
        chromaSubsampling: '4:2:0',
        optimiseCoding: true,
        mozjpeg: false,
      });
    case 'webp':
      return pipeline.webp({ quality: quality ?? 80 });
    case 'avif':
      return pipeline.avif({ quality: quality ?? 60 });
    default:
      throw new Error(`unknown format ${format} in preset ${preset.name}`);
  }
}

async function main() {
  const { input, outDir, presets: presetsPath } = parseArgs(process.argv.slice(2));
  sharp.concurrency(1);

  const config = JSON.parse(await readFile(presetsPath, 'utf8'));
  const background = config.background ?? '#ffffff';
  const bytes = await readFile(input);
  await mkdir(outDir, { recursive: true });

  const started = process.hrtime.bigint();
  const source = sharp(bytes, { failOn: 'error' });
  // The header only (no pixels): the displayed size, for cover crops of photos smaller than the box.
  const meta = await source.metadata();
  const swapped = (meta.orientation ?? 1) >= 5;
  const photo = swapped ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
  const jobs = [];
  for (const preset of config.presets) {
    for (const format of preset.formats) {
      const pipeline = source.clone().rotate().resize(resizeOptions(preset, photo)).toColourspace('srgb');
      const file = `${preset.name}.${EXTENSIONS[format] ?? format}`;
      jobs.push(
        encode(pipeline, format, preset, background)
          .toBuffer({ resolveWithObject: true })
          .then(async ({ data, info }) => {
            await writeFile(join(outDir, file), data);
            const { width, height } = info;
            return { preset: preset.name, version: preset.version, format, file, width, height, bytes: data.length };
          }),
      );
    }
  }
  const renditions = await Promise.all(jobs);
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;

  const metadata = {
    format: meta.format,
    width: photo.width,
    height: photo.height,
    orientation: meta.orientation ?? 1,
    renditions,
    elapsed_ms: Math.round(elapsedMs * 10) / 10,
  };
  await writeFile(join(outDir, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err?.message ?? err);
  process.exit(1);
});
