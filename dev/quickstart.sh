#!/usr/bin/env bash
# Quick start, step 1: install dependencies, build, and run the demo on the embedded default
# (a throwaway local PostgreSQL and a local directory repository).
set -euo pipefail
cd "$(dirname "$0")/.."
./dev/install-deps.sh
./dev/build.sh
./dev/demo.sh
