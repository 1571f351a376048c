#!/usr/bin/env bash
# Optional: the image-diff tools the benchmark's classical cell compares imgdiff-rt with (odiff, pixelmatch),
# installed from npm into the project's ignored .peers/ folder (needs node >= 18 and npm; nothing global).
# `imgdiff-rt bench --classical-runs N` skips a tool, with the reason, when node or its package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .peers
npm install --prefix .peers --no-audit --no-fund odiff-bin@4.5.0 pixelmatch@7.2.0 pngjs@7.0.0
echo "installed into $(pwd)/.peers/node_modules"
