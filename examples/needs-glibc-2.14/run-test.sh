#!/usr/bin/env bash
set -euo pipefail
memcpy-demo | grep -q "copied with memcpy"
echo "memcpy-demo works"
